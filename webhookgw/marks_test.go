package webhookgw

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// Concurrent marks are written together, each exactly once, and none returns before the
// statement that holds it has run; a failed statement fails exactly the marks it held.
func TestMarksGroupConcurrentRequests(t *testing.T) {
	var mu sync.Mutex
	written := map[string]int{}
	statements, failing := 0, map[string]bool{"m-7": true}
	release := make(chan struct{})
	m := marks{write: func(_ context.Context, ids ...string) error {
		if statements == 0 {
			<-release // hold the first statement until everyone else has queued
		}
		mu.Lock()
		defer mu.Unlock()
		statements++
		var err error
		for _, id := range ids {
			written[id]++
			if failing[id] {
				err = errors.New("the statement failed")
			}
		}
		return err
	}}
	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = m.mark(t.Context(), "m-0") }()
	for !m.leading() {
		runtime.Gosched()
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.mark(t.Context(), fmt.Sprintf("m-%d", i))
			mu.Lock()
			if written[fmt.Sprintf("m-%d", i)] != 1 {
				t.Errorf("m-%d returned before it was written", i)
			}
			mu.Unlock()
		}()
	}
	for m.queued() < n-1 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i := range n {
		if got := written[fmt.Sprintf("m-%d", i)]; got != 1 {
			t.Errorf("m-%d written %d times", i, got)
		}
	}
	if statements != 2 {
		t.Errorf("%d statements for %d marks queued behind one, want 2", statements, n)
	}
	for i, err := range errs {
		if (err != nil) != (i != 0) {
			t.Errorf("m-%d: error %v; only the statement holding m-7 (every mark but m-0) fails", i, err)
		}
	}
}

func (m *marks) leading() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.busy }
func (m *marks) queued() int   { m.mu.Lock(); defer m.mu.Unlock(); return len(m.queue) }
