package store_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/store"
)

// Two workers (two pools on one database) pacing their requests through one budget send them at
// least the interval apart between them, not each.
func TestPaceSpacesTheRequestsOfEveryWorkerTogether(t *testing.T) {
	t.Parallel()
	first, pool := newStore(t)
	other, err := pgxpool.New(t.Context(), pool.Config().ConnString())
	require.NoError(t, err)
	t.Cleanup(other.Close)
	second := store.New(other)

	const interval, each = 40 * time.Millisecond, 10
	var mu sync.Mutex
	var sent []time.Time
	var wg sync.WaitGroup
	for _, st := range []*store.Store{first, second, first, second} { // two goroutines per worker
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				require.NoError(t, st.Pace(t.Context(), "test-budget", interval))
				mu.Lock()
				sent = append(sent, time.Now())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	// The slots are exactly interval apart on the database's clock; waking from a timer adds
	// jitter on this side, never a burst: no 400 ms holds more than 12 of the 40 (10 slots, one
	// at the window's edge, one woken late under the race detector beside the other tests;
	// unpaced, all 40 go within a few milliseconds).
	for i := range sent {
		j := i
		for j < len(sent) && sent[j].Sub(sent[i]) < 10*interval {
			j++
		}
		require.LessOrEqual(t, j-i, 12, "requests %d..%d within %s", i, j, 10*interval)
	}
	require.GreaterOrEqual(t, sent[len(sent)-1].Sub(sent[0]), 38*interval, "40 requests take at least 39 intervals")

	// A budget idle for a while starts at once, without a burst of the slots it missed: the next
	// request still waits a whole interval after it.
	const idle = 200 * time.Millisecond
	time.Sleep(3 * idle) // idle, on purpose
	start := time.Now()
	require.NoError(t, first.Pace(t.Context(), "test-budget", idle))
	require.Less(t, time.Since(start), idle, "the first request after a pause goes at once")
	require.NoError(t, first.Pace(t.Context(), "test-budget", idle))
	require.GreaterOrEqual(t, time.Since(start), idle-5*time.Millisecond, "the next one waits its turn")
}
