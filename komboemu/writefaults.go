package komboemu

import (
	"net"
	"net/http"
	"time"
)

// Write faults make the emulator's writes (writes.go) fail the ways that make writes hard: an
// answer lost after the commit (connection reset, or held past the client's timeout, or a 504
// although the write finished), a failure before it (500, 503), reads that lag the writes, and
// the integration's cap on concurrent writes. WriteStats counts what the writes did.

// WriteFaults make writes unreliable. Rates are shares of write requests.
type WriteFaults struct {
	ResetAfterCommit float64 // commit, then reset the connection: no answer
	HoldAfterCommit  float64 // commit, then hold the answer until the client gives up (or HoldFor)
	FailBeforeCommit float64 // 500 PLATFORM.UNKNOWN_ERROR or 503 REMOTE.SERVICE_UNAVAILABLE, nothing written
	// HoldFor bounds a held answer (then it is sent after all); two minutes when zero.
	HoldFor time.Duration
	// ReadLag hides created candidates and applications from reads (and delays their
	// data-changed) for this long after the write.
	ReadLag time.Duration
	// ConcurrencyCap is the integration's limit of writes in flight (Kombo: at most 30, fewer for
	// some tools); 0 means 30.
	ConcurrencyCap int
	// Latency is added to every write before it commits.
	Latency time.Duration
}

// WriteFault is one forced failure of the next write (QueueWriteFaults).
type WriteFault string

const (
	WriteResetAfterCommit    WriteFault = "reset-after-commit"
	WriteHoldAfterCommit     WriteFault = "hold-after-commit"
	WriteFailBeforeCommit    WriteFault = "fail-before-commit"        // 500 PLATFORM.UNKNOWN_ERROR
	WriteUnavailable         WriteFault = "unavailable-before-commit" // 503 REMOTE.SERVICE_UNAVAILABLE
	WriteTimedOutAfterCommit WriteFault = "timed-out-after-commit"    // 504 PLATFORM.TASK_TIMED_OUT although the remote finished
)

// defaultConcurrencyCap is Kombo's documented limit of actions in flight per integration.
const defaultConcurrencyCap = 30

// SetWriteFaults replaces the write faults.
func (e *Emulator) SetWriteFaults(f WriteFaults) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeFaults = f
}

// QueueWriteFaults makes the next writes fail, one fault each, in order.
func (e *Emulator) QueueWriteFaults(fs ...WriteFault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeQueue = append(e.writeQueue, fs...)
}

// WriteStats is what the emulator counted of writes.
type WriteStats struct {
	Requests       int            `json:"requests"`         // write requests received
	Committed      int            `json:"committed"`        // writes that changed the ATS
	ConcurrencyHit int            `json:"concurrency_hits"` // answered 429 CONCURRENCY_LIMIT_EXCEEDED
	MaxInFlight    map[string]int `json:"max_in_flight"`    // per integration, the most writes being answered at once (refused ones included)
}

// WriteStats returns the counts so far.
func (e *Emulator) WriteStats() WriteStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.writeStats
	s.MaxInFlight = map[string]int{}
	for k, v := range e.writeStats.MaxInFlight {
		s.MaxInFlight[k] = v
	}
	return s
}

// pickWriteFault takes the next queued write fault or draws one. Call with e.mu held.
func (e *Emulator) pickWriteFault() WriteFault {
	if len(e.writeQueue) > 0 {
		f := e.writeQueue[0]
		e.writeQueue = e.writeQueue[1:]
		return f
	}
	f := e.writeFaults
	switch x := e.rng.Float64(); {
	case x < f.ResetAfterCommit:
		return WriteResetAfterCommit
	case x < f.ResetAfterCommit+f.HoldAfterCommit:
		return WriteHoldAfterCommit
	case x < f.ResetAfterCommit+f.HoldAfterCommit+f.FailBeforeCommit:
		if e.rng.IntN(2) == 0 {
			return WriteFailBeforeCommit
		}
		return WriteUnavailable
	}
	return ""
}

// resetConnection closes the connection without an answer (a TCP reset where the OS allows).
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
