package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/kombo"
)

// backfill dirties every configured endpoint that never completed a fetch: a new integration,
// or an endpoint newly added to KOMBO_ENDPOINTS. Endpoints the integration does not offer wait
// for an event naming them.
func (s *syncer) backfill(ctx workflow.Context) {
	var eps []kombo.Endpoint
	for _, e := range s.configured() {
		if _, ok := s.watermarks[e.String()]; !ok && !slices.Contains(s.st.Unavailable, e.String()) && !s.isInflight(e.String()) {
			eps = append(eps, e)
		}
	}
	if len(eps) > 0 {
		s.markDirty(ctx, eps, s.leadingEdge && s.quiet(workflow.Now(ctx))) // a new integration starts at once
	}
}

// markDirty adds endpoints to the pending set and (re)arms the debounce deadline; now skips
// the quiet window (sync-now, the leading edge).
func (s *syncer) markDirty(ctx workflow.Context, eps []kombo.Endpoint, now bool) {
	if len(eps) == 0 {
		return
	}
	t := workflow.Now(ctx)
	for _, e := range eps {
		if !slices.Contains(s.st.Pending, e.String()) {
			s.st.Pending = append(s.st.Pending, e.String())
		}
	}
	s.sortPending()
	if s.st.PendingSince == nil {
		s.st.PendingSince = &t
	}
	quiet := t.Add(s.settings.DebounceQuiet)
	if now {
		quiet = t
	}
	if s.leadingEdge && s.st.QuietUntil != nil && !s.st.QuietUntil.After(t) {
		quiet = *s.st.QuietUntil // already due: these endpoints join the round about to start
	}
	s.st.QuietUntil = &quiet
}

// quiet says that nothing runs or waits and no data-changed came for the quiet window: one now
// is fetched at once (the leading edge). Kombo already coalesces data-changed (the first at once,
// then at most one per 30 s per integration), so a quiet window of our own would only delay every
// isolated change; events of a burst, or that arrive while a round runs or waits, are gathered
// into one trailing round, after the quiet window and within DEBOUNCE_MAX, as before.
func (s *syncer) quiet(now time.Time) bool {
	return len(s.inflight) == 0 && s.child == nil && len(s.st.Pending) == 0 &&
		(s.st.LastChangeAt == nil || now.Sub(*s.st.LastChangeAt) >= s.settings.DebounceQuiet)
}

func (s *syncer) sortPending() {
	order := map[string]int{}
	for i, e := range kombo.DefaultEndpoints() {
		order[e.String()] = i
	}
	slices.SortStableFunc(s.st.Pending, func(a, b string) int { return order[a] - order[b] })
}

// fireAt is when the pending endpoints are due: the quiet window after the last event, but no
// later than the maximum delay after the first.
func (s *syncer) fireAt() (time.Time, bool) {
	if len(s.st.Pending) == 0 || s.st.PendingSince == nil || s.st.QuietUntil == nil {
		return time.Time{}, false
	}
	latest := s.st.PendingSince.Add(s.settings.DebounceMax)
	if s.st.QuietUntil.Before(latest) {
		return *s.st.QuietUntil, true
	}
	return latest, true
}

// wakeTimer is the one timer the event loop waits on: for the debounce deadline, a retry or
// first-sync back-off, or the purge.
type wakeTimer struct {
	at     time.Time
	future workflow.Future
	cancel workflow.CancelFunc
}

// nextWake is the next deadline to wake up for, and what it is for.
func (s *syncer) nextWake() (time.Time, string) {
	if s.st.Deleted && s.st.PurgeAt != nil {
		return *s.st.PurgeAt, "purge after retention"
	}
	if s.pausedByKombo() && s.st.ProbeAt != nil {
		return *s.st.ProbeAt, "ask Kombo for the integration's state"
	}
	if s.st.Deleted || s.blocked() != "" || (len(s.st.Pending) == 0 && !s.st.ReconcileWanted) {
		return time.Time{}, ""
	}
	if s.st.ReconcileWanted && s.st.RetryAt == nil {
		return time.Time{}, "" // starts as soon as running fetches finish
	}
	if s.st.RetryAt != nil {
		if s.st.FirstSyncPending {
			return *s.st.RetryAt, "waiting for first sync"
		}
		return *s.st.RetryAt, "retry after error"
	}
	at, _ := s.fireAt()
	return at, "debounce"
}

// armTimer adds a timer for the next deadline to the selector. The timer is kept across loop
// iterations while the deadline does not move earlier: an event that only extends the quiet
// window costs no timer commands, and a timer that fires early is followed by one for the rest.
func (s *syncer) armTimer(ctx workflow.Context, sel workflow.Selector) {
	at, why := s.nextWake()
	if at.IsZero() || ctx.Err() != nil {
		// Cancelled: a timer on the cancelled context would be ready at once, picked before
		// ctx.Done, and armed again, for ever: the workflow spun and never closed (found by e2e
		// when a cancellation met a fetch finishing with a retry due).
		s.cancelTimer()
		return
	}
	if s.timer != nil && s.timer.at.After(at) {
		s.cancelTimer()
	}
	if s.timer == nil {
		d := at.Sub(workflow.Now(ctx))
		if d <= 0 {
			// Due, but not startable now (every fetch slot is busy): a finishing fetch wakes us.
			return
		}
		tctx, cancel := workflow.WithCancel(ctx)
		s.timer = &wakeTimer{at: at, cancel: cancel,
			future: workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: why})}
	}
	t := s.timer
	sel.AddFuture(t.future, func(workflow.Future) {
		if s.timer == t {
			s.timer = nil
		}
	})
}

func (s *syncer) cancelTimer() {
	if s.timer != nil {
		s.timer.cancel()
		s.timer = nil
	}
}
