package webhookgw

import (
	"context"
	"sync"
)

// marks writes the signaled marks of concurrent requests in one statement (group commit): the
// first request to mark leads, writing its own mark and any that queued while the previous
// statement ran; the requests it wrote for return with its result, and the first of those that
// queued meanwhile leads the next statement. One request alone costs one statement, as before;
// 32 at a time share a few. Each request still answers only after its mark is written.
type marks struct {
	write func(ctx context.Context, ids ...string) error

	mu    sync.Mutex
	busy  bool // a leader is writing
	queue []*mark
}

type mark struct {
	id   string
	err  error
	lead chan bool // true: lead the next statement; false: written, see err
}

// mark records id as signaled, alone or with others.
func (m *marks) mark(ctx context.Context, id string) error {
	me := &mark{id: id, lead: make(chan bool, 1)}
	m.mu.Lock()
	m.queue = append(m.queue, me)
	lead := !m.busy
	m.busy = true
	m.mu.Unlock()
	if !lead && !<-me.lead {
		return me.err
	}
	m.mu.Lock()
	batch := m.queue // holds me
	m.queue = nil
	m.mu.Unlock()
	ids := make([]string, len(batch))
	for i, b := range batch {
		ids[i] = b.id
	}
	err := m.write(ctx, ids...)
	for _, b := range batch {
		if b != me {
			b.err = err
			b.lead <- false
		}
	}
	m.mu.Lock()
	if len(m.queue) > 0 {
		next := m.queue[0]
		m.mu.Unlock()
		next.lead <- true
	} else {
		m.busy = false
		m.mu.Unlock()
	}
	return err
}
