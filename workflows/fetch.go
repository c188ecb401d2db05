package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// fetchCall is one FetchEndpoint activity in flight.
type fetchCall struct {
	endpoint  string
	run       OpenRun
	advanceTo time.Time
	kind      string
	future    workflow.Future
}

// blocked says why no fetch may start, or "".
func (s *syncer) blocked() string {
	switch {
	case s.st.OperatorPaused:
		return "paused by an operator"
	case s.st.KomboInactive:
		return "integration is " + s.st.KomboState + " at Kombo"
	case s.st.AuthFailed:
		return "authentication failed"
	}
	return ""
}

// launchDue starts the fetches that are due, up to the parallelism bound.
func (s *syncer) launchDue(ctx workflow.Context) {
	now := workflow.Now(ctx)
	if s.st.Deleted || s.blocked() != "" || s.wantContinueAsNew(ctx) || s.child != nil {
		return // a full pass runs alone: deltas wait for it
	}
	if s.st.RetryAt != nil {
		if now.Before(*s.st.RetryAt) {
			return
		}
		s.st.RetryAt = nil
	}
	if s.st.ReconcileWanted {
		if len(s.inflight) == 0 { // deltas under way finish first
			s.startFullSync(ctx, now)
		}
		return
	}
	at, ok := s.fireAt()
	if !ok || now.Before(at) {
		return
	}
	started := false
	var left []string
	for _, ep := range s.st.Pending {
		if s.isInflight(ep) || len(s.inflight) >= max(1, s.settings.MaxParallelFetches) {
			left = append(left, ep)
			continue
		}
		s.launch(ctx, ep, now)
		started = true
	}
	s.st.Pending = left
	if len(left) == 0 {
		s.st.PendingSince, s.st.QuietUntil = nil, nil
		if started {
			s.rounds++ // the debounced set is dispatched: one round
		}
	}
}

func (s *syncer) isInflight(ep string) bool {
	return slices.ContainsFunc(s.inflight, func(c *fetchCall) bool { return c.endpoint == ep })
}

// launch starts one FetchEndpoint. The pass's start, taken before scheduling, minus the safety
// overlap becomes the endpoint's next updated_after once it succeeds: anything that changed
// while it ran is fetched again by the next delta. Kombo's sync_started_at and the records'
// changed_at are never used.
func (s *syncer) launch(ctx workflow.Context, ep string, now time.Time) {
	e, ok := kombo.LookupEndpoint(ep)
	if !ok {
		s.logger.Warn("dropping an unknown endpoint", "endpoint", ep)
		return
	}
	run, resumed := s.st.OpenRuns[ep]
	if !resumed {
		run = OpenRun{ID: fmt.Sprintf("%s|%s|%d", s.id, ep, now.UnixMilli()), StartedAt: now}
		if w, ok := s.watermarks[ep]; ok {
			run.UpdatedAfter = &w
		}
		s.st.OpenRuns[ep] = run
	}
	what := "delta"
	if run.UpdatedAfter == nil {
		what = "backfill"
	}
	advanceTo := run.StartedAt.Add(-s.settings.FetchOverlap)
	actx := workflow.WithActivityOptions(ctx, fetchOptions(fmt.Sprintf("fetch %s (%s)", ep, what), s.settings.FetchHeartbeatTimeout))
	f := workflow.ExecuteActivity(actx, acts.FetchEndpoint, activities.FetchEndpointInput{
		IntegrationID: s.id, Endpoint: e, UpdatedAfter: run.UpdatedAfter, Kind: store.KindDelta,
		RunID: run.ID, AdvanceWatermarkTo: &advanceTo, ChangedSince: s.st.PendingSince,
	})
	s.inflight = append(s.inflight, &fetchCall{endpoint: ep, run: run, advanceTo: advanceTo, kind: store.KindDelta, future: f})
}

// fetchDone records a finished fetch: the new watermark on success, or the state its error
// calls for, with the endpoint pending again.
func (s *syncer) fetchDone(ctx workflow.Context, call *fetchCall, f workflow.Future) {
	s.inflight = slices.DeleteFunc(s.inflight, func(c *fetchCall) bool { return c == call })
	now := workflow.Now(ctx)
	var res activities.FetchEndpointResult
	err := f.Get(ctx, &res)
	if err == nil {
		delete(s.st.OpenRuns, call.endpoint)
		s.st.LastRuns[call.endpoint] = runSummary(call.run.ID, call.kind, res.Outcome, call.run.StartedAt, now, res.Counts)
		if res.Outcome == store.OutcomeModelUnavailable {
			if !slices.Contains(s.st.Unavailable, call.endpoint) {
				s.st.Unavailable = append(s.st.Unavailable, call.endpoint)
			}
			return
		}
		s.st.Unavailable = slices.DeleteFunc(s.st.Unavailable, func(e string) bool { return e == call.endpoint })
		delete(s.st.DataErrors, call.endpoint)
		s.st.Rejected[call.endpoint] = res.RejectedOpen
		s.round.add(call.endpoint, res.Counts.Written())
		s.watermarks[call.endpoint] = call.advanceTo
		s.st.LastSyncAt = &now
		s.st.FirstSyncFinished, s.st.FirstSyncPending, s.st.FirstSyncAttempts = true, false, 0
		s.st.AuthFailed, s.st.RetryAttempts = false, 0
		s.st.LastError, s.st.LastErrorAt = "", nil
		return
	}

	s.st.LastError, s.st.LastErrorAt = fmt.Sprintf("fetch %s: %v", call.endpoint, rootMessage(err)), &now
	var appErr *temporal.ApplicationError
	isApp := errors.As(err, &appErr)
	if isApp && appErr.NonRetryable() {
		delete(s.st.OpenRuns, call.endpoint) // the activity finished the run as failed
	}
	errType := ""
	if isApp {
		errType = appErr.Type()
	}
	if errType == activities.ErrDataError {
		// The same data fails every attempt: the endpoint waits for its next change (an event
		// naming it, sync-now, a full pass) with the error in the attention, and holds nothing
		// else back: the integration's other endpoints go on.
		s.st.DataErrors[call.endpoint] = rootMessage(err)
		s.logger.Warn("fetch failed on data that fails every attempt; waiting for the endpoint's next change",
			"endpoint", call.endpoint, "error", err)
		return
	}
	// The endpoint is fetched again once whatever stopped it has passed.
	e, _ := kombo.LookupEndpoint(call.endpoint)
	pendingSince := s.st.PendingSince
	s.markDirty(ctx, []kombo.Endpoint{e}, true)
	if pendingSince != nil {
		s.st.PendingSince = pendingSince
	}
	if s.blockOn(errType, now, call.run.StartedAt) {
		if errType == activities.ErrFirstSyncPending {
			s.st.LastError = "Kombo's first sync of the integration has not finished"
		}
		s.logger.Warn("fetch stopped; waiting", "endpoint", call.endpoint, "state", s.state(), "error_type", errType)
		return
	}
	s.holdUntilRetry(now, retryBackoffMin, retryBackoffMax, &s.st.RetryAttempts)
	s.logger.Warn("fetch failed; retrying later", "endpoint", call.endpoint, "retry_at", *s.st.RetryAt, "error", err)
}

// blockOn records what a fetch error that no retry can cure calls for, and reports whether the
// error type was such a one: the first sync not finished (fetching held back by a back-off timer
// that sync-finished ends early), invalid credentials (auth_failed until a success, resume or
// ACTIVE) or an integration Kombo does not serve (paused). It only sets state; the event loop
// does the waiting.
//
// startedAt is when the failed fetch started: an ACTIVE state applied after it is newer than
// what the fetch saw, so an IntegrationUnavailable from it does not pause the integration.
func (s *syncer) blockOn(errType string, now, startedAt time.Time) bool {
	switch errType {
	case activities.ErrFirstSyncPending:
		s.st.FirstSyncPending = true
		s.holdUntilRetry(now, firstSyncBackoffMin, firstSyncBackoffMax, &s.st.FirstSyncAttempts)
	case activities.ErrAuthFailed:
		s.st.AuthFailed = true
	case activities.ErrIntegrationUnavailable:
		if s.st.KomboState == kombo.IntegrationActive && s.st.KomboStateSetAt != nil && s.st.KomboStateSetAt.After(startedAt) {
			return false // retried after the back-off, on the newer state
		}
		s.st.KomboInactive = true
		s.st.KomboState = firstNonEmpty(s.st.KomboState, "UNAVAILABLE")
	default:
		return false
	}
	return true
}

// holdUntilRetry holds fetching back for min·2ⁿ (capped at max, n counted in attempts), unless a
// wait is already set: endpoints failing together wait once.
func (s *syncer) holdUntilRetry(now time.Time, minimum, maximum time.Duration, attempts *int) {
	if s.st.RetryAt != nil && s.st.RetryAt.After(now) {
		return
	}
	at := now.Add(backoff(minimum, maximum, *attempts))
	s.st.RetryAt = &at
	*attempts++
}

func runSummary(runID, kind, outcome string, started, finished time.Time, c store.Counts) RunSummary {
	return RunSummary{RunID: runID, Kind: kind, Outcome: outcome, StartedAt: started, FinishedAt: finished,
		Pages: c.Pages, Fetched: c.Fetched, Inserted: c.Inserted, Updated: c.Updated, Unchanged: c.Unchanged,
		Deleted: c.Deleted, Restored: c.Restored, Sanitized: c.Sanitized, Rejected: c.Rejected}
}

// backoff is min·2ⁿ, capped.
func backoff(minimum, maximum time.Duration, n int) time.Duration {
	d := minimum
	for range n {
		d *= 2
		if d >= maximum {
			return maximum
		}
	}
	return d
}

// rootMessage is the innermost error's message: an activity error wraps the application error
// that says what happened.
func rootMessage(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// heartbeatOrDefault is the heartbeat timeout of the activities that heartbeat (every one but
// the local ones): FETCH_HEARTBEAT_TIMEOUT, or a minute when a run's input predates it.
func heartbeatOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Minute
	}
	return d
}

// fetchAttempts bounds the attempts of one FetchEndpoint.
const fetchAttempts = 10

// fetchOptions are FetchEndpoint's activity options, for deltas and full passes alike. The
// activity heartbeats while it waits for a page too, so the heartbeat timeout only has to
// outlast a dead worker's silence, not a slow page.
func fetchOptions(summary string, heartbeat time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute, // a longer pass resumes from its last page
		HeartbeatTimeout:    heartbeatOrDefault(heartbeat),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    fetchAttempts,
		},
		Summary: summary,
	}
}
