package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// acts is how workflows name activities: a nil *Activities whose methods the SDK resolves to
// the registered names, so registration and call sites cannot drift apart.
var acts *activities.Activities

// Bounds of one IntegrationSync run and its back-offs.
const (
	// maxRoundsPerRun: continue-as-new after this many fetch rounds even when the server does
	// not suggest it yet, so a run's history stays small and quick to replay.
	maxRoundsPerRun = 100
	// maxEventsPerRun: continue-as-new after this many signals (the server rejects signals past
	// 10,000 per run).
	maxEventsPerRun = 2000
	// recentEvents: event ids remembered to drop duplicate deliveries.
	recentEvents = 64

	firstSyncBackoffMin = 30 * time.Second
	firstSyncBackoffMax = 15 * time.Minute
	retryBackoffMin     = time.Minute
	retryBackoffMax     = 15 * time.Minute
)

// IntegrationSyncInput starts an integration's workflow, or continues it.
type IntegrationSyncInput struct {
	IntegrationID string
	Tool          string
	Category      string
	// Carried is what the previous run handed over with continue-as-new; nil on a first start.
	Carried *SyncState
}

// SyncState is IntegrationSync's state: everything a run needs, carried into the next run by
// continue-as-new. Deadlines are absolute times, because timers do not carry over.
type SyncState struct {
	Tool              string
	Category          string
	KomboState        string // ACTIVE, INVALID, INACTIVE
	LastSyncState     string
	LastSyncStateAt   *time.Time
	FirstSyncFinished bool

	// Pending endpoints ("hris/employees") wait for the debounce deadline: the earlier of
	// QuietUntil (the last event + the quiet window) and PendingSince + the maximum delay.
	Pending      []string
	PendingSince *time.Time
	QuietUntil   *time.Time

	// OpenRuns are passes that ran out of retries; the next fetch of the endpoint resumes them
	// from their last committed page.
	OpenRuns map[string]OpenRun

	FirstSyncPending  bool
	FirstSyncAttempts int
	AuthFailed        bool
	KomboInactive     bool
	OperatorPaused    bool
	PauseReason       string
	// RetryAt holds fetching back until then: the first-sync wait, or the back-off after a
	// failed round.
	RetryAt       *time.Time
	RetryAttempts int

	LastError   string
	LastErrorAt *time.Time
	LastSyncAt  *time.Time
	LastRuns    map[string]RunSummary
	Unavailable []string
	RecentIDs   []string

	// ReconcileWanted: a full pass starts as soon as no delta runs; ConfirmSweep lets its sweep
	// exceed the guard.
	ReconcileWanted bool
	ConfirmSweep    bool
	LastFullSyncAt  *time.Time
	// Attention says why an operator is needed (a refused sweep); empty when all is well.
	Attention string

	// Deleted: Kombo deleted the integration. Nothing is fetched; its rows are purged at PurgeAt.
	Deleted   bool
	DeletedAt *time.Time
	PurgeAt   *time.Time
}

// OpenRun is an unfinished pass kept for resumption.
type OpenRun struct {
	ID           string
	StartedAt    time.Time
	UpdatedAfter *time.Time
}

// IntegrationSync is the long-lived workflow of one integration (ID IntegrationWorkflowID): it
// debounces Kombo's events into fetch rounds, runs FetchEndpoint for each dirty endpoint, waits
// out the first sync and authentication failures, and continues as new before its history grows
// large.
func IntegrationSync(ctx workflow.Context, in IntegrationSyncInput) error {
	s, err := newSyncer(ctx, in)
	if err != nil {
		return err
	}
	return s.run(ctx)
}

// syncer is one run of IntegrationSync.
type syncer struct {
	id       string
	st       *SyncState
	settings activities.Settings
	// watermarks: the updated_after of each endpoint's next delta, from Postgres at the start of
	// each run and advanced by each successful fetch.
	watermarks map[string]time.Time
	inflight   []*fetchCall
	timer      *wakeTimer
	logger     log.Logger

	events, syncNow, pause, resume, reconcile workflow.ReceiveChannel
	child                                     *fullSyncCall
	purged                                    bool // the retention period passed and the rows are gone

	eventsThisRun int
	rounds        int
	unknownModels map[string]bool

	published struct { // what search attributes and Postgres last heard
		state      string
		lastSyncAt time.Time
		saved      *store.Integration
	}
}

type fetchCall struct {
	endpoint  string
	run       OpenRun
	advanceTo time.Time
	kind      string
	future    workflow.Future
}

type fullSyncCall struct {
	id     string
	future workflow.ChildWorkflowFuture
}

type wakeTimer struct {
	at     time.Time
	future workflow.Future
	cancel workflow.CancelFunc
}

func newSyncer(ctx workflow.Context, in IntegrationSyncInput) (*syncer, error) {
	if in.IntegrationID == "" {
		return nil, temporal.NewNonRetryableApplicationError("integration id is required", "InvalidInput", nil)
	}
	s := &syncer{
		id:            in.IntegrationID,
		st:            in.Carried,
		logger:        log.With(workflow.GetLogger(ctx), "integration_id", in.IntegrationID),
		events:        workflow.GetSignalChannel(ctx, SignalKomboEvent),
		syncNow:       workflow.GetSignalChannel(ctx, SignalSyncNow),
		pause:         workflow.GetSignalChannel(ctx, SignalPause),
		resume:        workflow.GetSignalChannel(ctx, SignalResume),
		reconcile:     workflow.GetSignalChannel(ctx, SignalReconcile),
		unknownModels: map[string]bool{},
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return s.status(), nil }); err != nil {
		return nil, err
	}
	if s.st == nil {
		s.st = &SyncState{Tool: in.Tool, Category: in.Category}
	}
	if s.st.OpenRuns == nil {
		s.st.OpenRuns = map[string]OpenRun{}
	}
	if s.st.LastRuns == nil {
		s.st.LastRuns = map[string]RunSummary{}
	}

	// Settings, the integration's row and its watermarks, once per run: Postgres is the durable
	// truth, and a new run picks up the worker's current configuration.
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
		Summary:             "load integration",
	})
	var loaded activities.LoadIntegrationResult
	err := workflow.ExecuteLocalActivity(lctx, acts.LoadIntegration, activities.LoadIntegrationInput{
		IntegrationID: s.id, Tool: s.st.Tool, Category: s.st.Category}).Get(lctx, &loaded)
	if err != nil {
		return nil, fmt.Errorf("load integration %s: %w", s.id, err)
	}
	s.settings, s.watermarks = loaded.Settings, loaded.Watermarks
	if s.watermarks == nil {
		s.watermarks = map[string]time.Time{}
	}
	row := loaded.Integration
	s.st.Tool = firstNonEmpty(s.st.Tool, row.Tool)
	s.st.Category = firstNonEmpty(s.st.Category, row.Category)
	s.st.KomboState = firstNonEmpty(s.st.KomboState, row.State)
	s.st.FirstSyncFinished = s.st.FirstSyncFinished || row.FirstSyncFinished
	if in.Carried == nil {
		s.st.LastSyncState, s.st.LastSyncStateAt, s.st.LastSyncAt = row.LastSyncState, row.LastSyncStateAt, row.LastSyncedAt
		s.st.KomboInactive = row.State == kombo.IntegrationInvalid || row.State == kombo.IntegrationInactive
		if row.Attention != nil {
			s.st.Attention = *row.Attention
		}
		s.published.saved = &row
	}
	if row.DeletedAt != nil && !s.st.Deleted {
		// Deleted before this run started: finish the retention wait, never sync again.
		s.markDeleted(*row.DeletedAt)
	}
	s.purged = row.PurgedAt != nil
	if !s.st.Deleted {
		s.backfill(ctx)
	}
	return s, nil
}

// run is the event loop: start due fetches, publish the state, then wait for a signal, a fetch
// to finish or the next deadline.
func (s *syncer) run(ctx workflow.Context) error {
	for {
		if s.purged {
			// A late event restarted the workflow of an integration whose rows are gone: it
			// does not come back to life.
			s.logger.Info("integration deleted and purged; not syncing it again")
			return nil
		}
		if done, err := s.purgeIfDue(ctx); done || err != nil {
			return err
		}
		s.launchDue(ctx)
		s.publish(ctx)
		if s.wantContinueAsNew(ctx) && len(s.inflight) == 0 && s.child == nil {
			// Signals already delivered to this run would be lost with it: take them first.
			for s.receiveAll(ctx) {
			}
			s.cancelTimer()
			s.logger.Info("continuing as new", "rounds", s.rounds, "events", s.eventsThisRun)
			return workflow.NewContinueAsNewError(ctx, IntegrationSync, IntegrationSyncInput{
				IntegrationID: s.id, Tool: s.st.Tool, Category: s.st.Category, Carried: s.st})
		}
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(s.events, func(c workflow.ReceiveChannel, _ bool) { s.receiveEvent(ctx, c) })
		sel.AddReceive(s.syncNow, func(c workflow.ReceiveChannel, _ bool) { s.receiveSyncNow(ctx, c) })
		sel.AddReceive(s.pause, func(c workflow.ReceiveChannel, _ bool) { s.receivePause(ctx, c) })
		sel.AddReceive(s.resume, func(c workflow.ReceiveChannel, _ bool) { s.receiveResume(ctx, c) })
		sel.AddReceive(s.reconcile, func(c workflow.ReceiveChannel, _ bool) { s.receiveReconcile(ctx, c) })
		if s.child != nil {
			child := s.child
			sel.AddFuture(child.future, func(f workflow.Future) { s.fullSyncDone(ctx, child, f) })
		}
		for _, call := range s.inflight {
			sel.AddFuture(call.future, func(f workflow.Future) { s.fetchDone(ctx, call, f) })
		}
		s.armTimer(ctx, sel)
		cancelled := false
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { cancelled = true })
		sel.Select(ctx)
		if cancelled {
			// Cancelled from the UI or the CLI: in-flight fetches are cancelled with the context and
			// resume from their last committed page if the integration is started again.
			s.logger.Info("cancelled")
			return ctx.Err()
		}
		// A burst arrives in one workflow task: handle all of it before deciding anything.
		s.receiveAll(ctx)
	}
}

// receiveAll handles every buffered signal without blocking; it reports whether there was one.
func (s *syncer) receiveAll(ctx workflow.Context) bool {
	received := false
	for {
		got := false
		for _, h := range []struct {
			ch workflow.ReceiveChannel
			f  func(workflow.Context, workflow.ReceiveChannel)
		}{{s.events, s.receiveEvent}, {s.syncNow, s.receiveSyncNow}, {s.pause, s.receivePause}, {s.resume, s.receiveResume},
			{s.reconcile, s.receiveReconcile}} {
			if h.ch.Len() > 0 {
				h.f(ctx, h.ch)
				got = true
			}
		}
		if !got {
			return received
		}
		received = true
	}
}

// configured is the configured endpoints of the integration's category, in catalogue order.
func (s *syncer) configured() []kombo.Endpoint {
	cat, ok := kombo.ParseCategory(s.st.Category)
	if !ok {
		return nil
	}
	var out []kombo.Endpoint
	for _, e := range s.settings.Endpoints {
		if e.Category == cat {
			out = append(out, e)
		}
	}
	return out
}

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
		s.markDirty(ctx, eps, false)
	}
}

// markDirty adds endpoints to the pending set and (re)arms the debounce deadline; now skips
// the quiet window (sync-now).
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
	s.st.QuietUntil = &quiet
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
		s.watermarks[call.endpoint] = call.advanceTo
		s.st.LastSyncAt = &now
		s.st.FirstSyncFinished, s.st.FirstSyncPending, s.st.FirstSyncAttempts = true, false, 0
		s.st.AuthFailed, s.st.RetryAttempts = false, 0
		s.st.LastError, s.st.LastErrorAt = "", nil
		return
	}

	// The endpoint is fetched again once whatever stopped it has passed.
	e, _ := kombo.LookupEndpoint(call.endpoint)
	pendingSince := s.st.PendingSince
	s.markDirty(ctx, []kombo.Endpoint{e}, true)
	if pendingSince != nil {
		s.st.PendingSince = pendingSince
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
	if s.waitFor(errType, now) {
		if errType == activities.ErrFirstSyncPending {
			s.st.LastError = "Kombo's first sync of the integration has not finished"
		}
		s.logger.Warn("fetch stopped; waiting", "endpoint", call.endpoint, "state", s.state(), "error_type", errType)
		return
	}
	s.holdUntilRetry(now, retryBackoffMin, retryBackoffMax, &s.st.RetryAttempts)
	s.logger.Warn("fetch failed; retrying later", "endpoint", call.endpoint, "retry_at", *s.st.RetryAt, "error", err)
}

// waitFor turns the error type of a fetch that cannot go on into the state that waits it out,
// and reports whether it was such a type: the first sync (a back-off timer or sync-finished),
// invalid credentials (auth_failed) or an integration Kombo does not serve (paused).
func (s *syncer) waitFor(errType string, now time.Time) bool {
	switch errType {
	case activities.ErrFirstSyncPending:
		s.st.FirstSyncPending = true
		s.holdUntilRetry(now, firstSyncBackoffMin, firstSyncBackoffMax, &s.st.FirstSyncAttempts)
	case activities.ErrAuthFailed:
		s.st.AuthFailed = true
	case activities.ErrIntegrationUnavailable:
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
		Deleted: c.Deleted, Restored: c.Restored}
}

func (s *syncer) receiveEvent(ctx workflow.Context, c workflow.ReceiveChannel) {
	var ev KomboEvent
	c.Receive(ctx, &ev)
	s.eventsThisRun++
	if ev.ID != "" {
		if slices.Contains(s.st.RecentIDs, ev.ID) {
			return // a duplicate delivery
		}
		s.st.RecentIDs = append(s.st.RecentIDs, ev.ID)
		if len(s.st.RecentIDs) > recentEvents {
			s.st.RecentIDs = s.st.RecentIDs[len(s.st.RecentIDs)-recentEvents:]
		}
	}
	if s.st.Deleted {
		s.logger.Info("event for a deleted integration ignored", "type", ev.Type, "event_id", ev.ID)
		return
	}
	if s.st.Tool == "" {
		s.st.Tool = ev.Tool
	}
	if s.st.Category == "" && ev.Category != "" {
		s.st.Category = ev.Category
		s.backfill(ctx) // now the endpoints are known
	}
	triggers := s.settings.Triggers
	switch ev.Type {
	case kombo.EventDataChanged:
		if !slices.Contains(triggers, kombo.EventDataChanged) {
			return
		}
		for _, m := range ev.ChangedModels {
			eps, known := kombo.DirtiedEndpoints(m, s.configured())
			if !known && !s.unknownModels[m] {
				s.unknownModels[m] = true
				s.logger.Warn("unknown model in data-changed; fetching every endpoint of its category", "model", m)
			}
			s.markDirty(ctx, eps, false)
		}
	case kombo.EventSyncFinished:
		now := workflow.Now(ctx)
		s.st.LastSyncState, s.st.LastSyncStateAt = ev.SyncState, &now
		switch ev.SyncState {
		case kombo.SyncSucceeded, kombo.SyncPartiallyFailed:
			if s.st.FirstSyncPending {
				s.st.RetryAt = nil // the first-sync wait ends now
			}
			s.st.FirstSyncFinished, s.st.FirstSyncPending, s.st.AuthFailed = true, false, false
			if slices.Contains(triggers, kombo.EventSyncFinished) {
				s.markDirty(ctx, s.configured(), false)
			}
		case kombo.SyncAuthenticationFailed:
			s.st.AuthFailed = true
		default: // CANCELLED, FAILED, TIMED_OUT and states Kombo adds later: recorded only
			s.logger.Info("sync-finished recorded", "sync_state", ev.SyncState)
		}
	case kombo.EventRemoteEventReceived:
		if slices.Contains(triggers, kombo.EventRemoteEventReceived) {
			s.markDirty(ctx, s.configured(), false)
		}
	case kombo.EventIntegrationStateChanged:
		s.st.KomboState = ev.IntegrationState
		switch ev.IntegrationState {
		case kombo.IntegrationActive:
			s.st.KomboInactive, s.st.AuthFailed = false, false
		case kombo.IntegrationInvalid, kombo.IntegrationInactive:
			s.st.KomboInactive = true
		}
	case kombo.EventIntegrationCreated:
		// Tool and category are recorded above; backfill follows from the missing watermarks.
	case kombo.EventIntegrationDeleted:
		s.markDeleted(workflow.Now(ctx))
		s.logger.Info("integration deleted; purging its rows after the retention period", "purge_at", *s.st.PurgeAt)
	default:
		s.logger.Info("event recorded, nothing to do", "type", ev.Type, "event_id", ev.ID)
	}
}

func (s *syncer) receiveSyncNow(ctx workflow.Context, c workflow.ReceiveChannel) {
	var req SyncNowRequest
	c.Receive(ctx, &req)
	eps := s.configured()
	if len(req.Endpoints) > 0 {
		eps = nil
		for _, name := range req.Endpoints {
			if e, ok := kombo.LookupEndpoint(name); ok && slices.Contains(s.configured(), e) {
				eps = append(eps, e)
			} else {
				s.logger.Warn("sync-now: endpoint not configured for this integration", "endpoint", name)
			}
		}
	}
	if s.st.Deleted {
		s.logger.Info("sync-now ignored: the integration is deleted")
		return
	}
	s.st.RetryAt, s.st.AuthFailed = nil, false
	s.markDirty(ctx, eps, true)
	s.logger.Info("sync-now", "endpoints", len(eps), "reason", req.Reason)
}

func (s *syncer) receivePause(ctx workflow.Context, c workflow.ReceiveChannel) {
	var req PauseRequest
	c.Receive(ctx, &req)
	s.st.OperatorPaused, s.st.PauseReason = true, firstNonEmpty(req.Reason, "paused by an operator")
	s.logger.Info("paused", "reason", s.st.PauseReason)
}

func (s *syncer) receiveResume(ctx workflow.Context, c workflow.ReceiveChannel) {
	var req ResumeRequest
	c.Receive(ctx, &req)
	s.st.OperatorPaused, s.st.PauseReason = false, ""
	s.st.KomboInactive, s.st.AuthFailed, s.st.RetryAt = false, false, nil
	s.logger.Info("resumed", "reason", req.Reason)
}

// state is the KomboSyncState the workflow is in.
func (s *syncer) state() string {
	switch {
	case s.st.Deleted:
		return StateDeleted
	case s.st.OperatorPaused || s.st.KomboInactive:
		return StatePaused
	case s.st.AuthFailed:
		return StateAuthFailed
	case s.st.FirstSyncPending:
		return StateWaitingFirstSync
	case s.child != nil:
		return StateReconciling
	case len(s.inflight) > 0:
		return StateSyncing
	case len(s.st.Pending) > 0 && s.st.RetryAt == nil:
		return StateDebouncing
	}
	return StateIdle
}

// nextWake is the next deadline to wake up for, and what it is for.
func (s *syncer) nextWake() (time.Time, string) {
	if s.st.Deleted && s.st.PurgeAt != nil {
		return *s.st.PurgeAt, "purge after retention"
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
	if at.IsZero() {
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

func (s *syncer) wantContinueAsNew(ctx workflow.Context) bool {
	return workflow.GetInfo(ctx).GetContinueAsNewSuggested() || s.rounds >= maxRoundsPerRun || s.eventsThisRun >= maxEventsPerRun
}

// publish makes the state visible: search attributes when they change, the current details for
// the UI, and the kombo.integrations row when a lasting field changes (not for the brief
// debouncing and syncing states, which would cost history events every round).
func (s *syncer) publish(ctx workflow.Context) {
	state := s.state()
	var sas []temporal.SearchAttributeUpdate
	if state != s.published.state {
		sas = append(sas, SASyncState.ValueSet(state))
		s.published.state = state
	}
	if s.st.LastSyncAt != nil && !s.st.LastSyncAt.Equal(s.published.lastSyncAt) {
		sas = append(sas, SALastSyncAt.ValueSet(*s.st.LastSyncAt))
		s.published.lastSyncAt = *s.st.LastSyncAt
	}
	if len(sas) > 0 {
		if s.st.Tool != "" {
			sas = append(sas, SATool.ValueSet(s.st.Tool))
		}
		if s.st.Category != "" {
			sas = append(sas, SACategory.ValueSet(s.st.Category))
		}
		sas = append(sas, SAIntegrationID.ValueSet(s.id))
		if err := workflow.UpsertTypedSearchAttributes(ctx, sas...); err != nil {
			s.logger.Warn("could not upsert search attributes", "error", err)
		}
	}
	workflow.SetCurrentDetails(ctx, s.details(state))

	lasting := state
	if state == StateDebouncing || state == StateSyncing || state == StateReconciling {
		lasting = StateIdle
	}
	row := store.Integration{ID: s.id, Tool: s.st.Tool, Category: s.st.Category, State: s.st.KomboState,
		SyncState: lasting, LastSyncState: s.st.LastSyncState, LastSyncStateAt: s.st.LastSyncStateAt,
		FirstSyncFinished: s.st.FirstSyncFinished, LastSyncedAt: s.st.LastSyncAt, DeletedAt: s.st.DeletedAt,
		Attention: &s.st.Attention}
	if s.published.saved != nil && sameIntegration(*s.published.saved, row) {
		return
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 30 * time.Second,
		Summary:                "record state " + lasting,
	})
	if err := workflow.ExecuteLocalActivity(lctx, acts.SaveIntegration, row).Get(lctx, nil); err != nil {
		// Postgres's copy is for reading only; the next change tries again.
		s.logger.Warn("could not record the integration's state", "error", err)
		return
	}
	s.published.saved = &row
}

func sameIntegration(a, b store.Integration) bool {
	return a.Tool == b.Tool && a.Category == b.Category && a.State == b.State && a.SyncState == b.SyncState &&
		a.LastSyncState == b.LastSyncState && a.FirstSyncFinished == b.FirstSyncFinished &&
		sameTime(a.LastSyncStateAt, b.LastSyncStateAt) && sameTime(a.LastSyncedAt, b.LastSyncedAt) &&
		sameTime(a.DeletedAt, b.DeletedAt) && (a.Attention == nil) == (b.Attention == nil) &&
		(a.Attention == nil || *a.Attention == *b.Attention)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// details is the markdown the Temporal UI shows as the workflow's current details.
func (s *syncer) details(state string) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**%s** · %s %s", state, s.st.Tool, s.st.Category))
	if why := s.blocked(); why != "" {
		b.WriteString(fmt.Sprintf(" · %s", why))
	}
	b.WriteString("\n\n")
	if len(s.inflight) > 0 {
		names := make([]string, len(s.inflight))
		for i, c := range s.inflight {
			names[i] = c.endpoint
		}
		b.WriteString(fmt.Sprintf("- fetching: %s\n", strings.Join(names, ", ")))
	}
	if len(s.st.Pending) > 0 {
		b.WriteString(fmt.Sprintf("- pending: %s\n", strings.Join(s.st.Pending, ", ")))
	}
	if at, why := s.nextWake(); !at.IsZero() {
		b.WriteString(fmt.Sprintf("- next wake-up: %s (%s)\n", at.UTC().Format(time.RFC3339), why))
	}
	if s.st.LastSyncAt != nil {
		b.WriteString(fmt.Sprintf("- last sync: %s\n", s.st.LastSyncAt.UTC().Format(time.RFC3339)))
	}
	if s.st.LastError != "" {
		b.WriteString(fmt.Sprintf("- last error: %s\n", s.st.LastError))
	}
	if s.st.Attention != "" {
		b.WriteString(fmt.Sprintf("- **needs an operator**: %s\n", s.st.Attention))
	}
	return b.String()
}

// status answers the status query.
func (s *syncer) status() Status {
	st := Status{
		IntegrationID: s.id, Tool: s.st.Tool, Category: s.st.Category, State: s.state(),
		KomboState: s.st.KomboState, LastSyncState: s.st.LastSyncState, FirstSyncFinished: s.st.FirstSyncFinished,
		PauseReason: s.st.PauseReason, Pending: slices.Clone(s.st.Pending), Unavailable: slices.Clone(s.st.Unavailable),
		Watermarks: maps.Clone(s.watermarks), LastRuns: maps.Clone(s.st.LastRuns), LastSyncAt: s.st.LastSyncAt,
		LastError: s.st.LastError, LastErrorAt: s.st.LastErrorAt, EventsThisRun: s.eventsThisRun, RoundsThisRun: s.rounds,
		LastFullSyncAt: s.st.LastFullSyncAt, Attention: s.st.Attention, PurgeAt: s.st.PurgeAt,
	}
	for _, c := range s.inflight {
		st.InFlight = append(st.InFlight, c.endpoint)
	}
	if s.child != nil {
		st.InFlight = append(st.InFlight, "full pass "+s.child.id)
	}
	if at, why := s.nextWake(); !at.IsZero() {
		st.NextWakeAt, st.NextWake = &at, why
	}
	return st
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

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func (s *syncer) receiveReconcile(ctx workflow.Context, c workflow.ReceiveChannel) {
	var req ReconcileRequest
	c.Receive(ctx, &req)
	if s.st.Deleted {
		s.logger.Info("reconcile ignored: the integration is deleted")
		return
	}
	s.st.ReconcileWanted = true
	s.st.ConfirmSweep = s.st.ConfirmSweep || req.ConfirmSweep
	s.logger.Info("reconcile requested", "confirm_sweep", req.ConfirmSweep, "reason", req.Reason)
}

// startFullSync runs a full pass of every configured endpoint as a FullSync child workflow.
func (s *syncer) startFullSync(ctx workflow.Context, now time.Time) {
	var eps []string
	for _, e := range s.configured() {
		eps = append(eps, e.String())
	}
	s.st.ReconcileWanted = false
	if len(eps) == 0 {
		s.logger.Warn("reconcile skipped: no configured endpoint for the integration's category", "category", s.st.Category)
		return
	}
	id := FullSyncWorkflowID(s.id, now)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:    id,
		StaticSummary: fmt.Sprintf("full pass of %s (%d endpoints)", s.id, len(eps)),
		StaticDetails: "Fetches every endpoint without updated_after and marks records Kombo no longer returns as deleted.",
	})
	f := workflow.ExecuteChildWorkflow(cctx, FullSync, FullSyncInput{
		IntegrationID: s.id, Endpoints: eps, FetchOverlap: s.settings.FetchOverlap, Parallelism: s.settings.MaxParallelFetches,
		HeartbeatTimeout: s.settings.FetchHeartbeatTimeout,
		SweepMaxShare:    s.settings.SweepMaxShare, ConfirmSweep: s.st.ConfirmSweep,
	})
	s.st.ConfirmSweep = false
	s.child = &fullSyncCall{id: id, future: f}
	s.logger.Info("full pass started", "workflow_id", id, "endpoints", len(eps))
}

// fullSyncDone takes in a full pass's result: watermarks, run counts, refused sweeps and errors.
func (s *syncer) fullSyncDone(ctx workflow.Context, call *fullSyncCall, f workflow.Future) {
	s.child = nil
	now := workflow.Now(ctx)
	var res FullSyncResult
	if err := f.Get(ctx, &res); err != nil {
		s.st.LastError, s.st.LastErrorAt = "full pass: "+rootMessage(err), &now
		return
	}
	s.st.LastFullSyncAt = &now
	var refused, failed []string
	for _, p := range res.Endpoints {
		run := runSummary(p.RunID, store.KindFull, p.Outcome, res.StartedAt, res.FinishedAt, p.Counts)
		run.Swept = p.Swept
		s.st.LastRuns[p.Endpoint] = run
		if p.Watermark != nil {
			s.watermarks[p.Endpoint] = *p.Watermark
		}
		switch {
		case p.SweepRefused:
			refused = append(refused, fmt.Sprintf("%s would mark %d of %d rows deleted", p.Endpoint, p.Missing, p.Alive))
		case p.Outcome == store.OutcomeFailed || p.Error != "":
			failed = append(failed, p.Endpoint+": "+p.Error)
			s.waitFor(p.ErrorType, now)
		}
	}
	s.st.Attention = ""
	if len(refused) > 0 {
		s.st.Attention = fmt.Sprintf("sweep refused (more than %.0f%% of the rows): %s; confirm with `starter integration reconcile %s --confirm-sweep`",
			s.settings.SweepMaxShare*100, strings.Join(refused, "; "), s.id)
		s.logger.Warn("full pass refused to sweep; an operator must confirm", "endpoints", len(refused))
	}
	if len(failed) > 0 {
		s.st.LastError, s.st.LastErrorAt = "full pass: "+strings.Join(failed, "; "), &now
	} else {
		s.st.LastSyncAt = &now
		s.st.FirstSyncFinished = true
	}
	s.logger.Info("full pass finished", "workflow_id", call.id, "endpoints", len(res.Endpoints),
		"refused", len(refused), "failed", len(failed))
}

// markDeleted stops syncing: nothing pending, no full pass, the purge due after the retention.
func (s *syncer) markDeleted(at time.Time) {
	purge := at.Add(s.settings.DeletedRetention)
	s.st.Deleted, s.st.DeletedAt, s.st.PurgeAt = true, &at, &purge
	s.st.Pending, s.st.PendingSince, s.st.QuietUntil = nil, nil, nil
	s.st.ReconcileWanted, s.st.RetryAt = false, nil
}

// purgeIfDue removes a deleted integration's rows once the retention period has passed and no
// fetch is still running; done says the workflow is complete.
func (s *syncer) purgeIfDue(ctx workflow.Context) (done bool, err error) {
	if !s.st.Deleted || s.st.PurgeAt == nil || workflow.Now(ctx).Before(*s.st.PurgeAt) || len(s.inflight) > 0 || s.child != nil {
		return false, nil
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    heartbeatOrDefault(s.settings.FetchHeartbeatTimeout),
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 10 * time.Minute},
		Summary:             "purge deleted integration",
	})
	var n int64
	if err := workflow.ExecuteActivity(actx, acts.PurgeIntegration, s.id).Get(ctx, &n); err != nil {
		return true, err
	}
	s.purged = true
	s.publish(ctx)
	s.logger.Info("deleted integration purged; workflow complete", "records", n)
	return true, nil
}
