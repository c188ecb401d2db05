package workflows

import (
	"fmt"
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
	Carried *CarriedState
}

// CarriedState is everything one IntegrationSync run hands to the next with continue-as-new.
// Deadlines are absolute times, because timers do not carry over. Its field names are in
// recorded histories: rename none of them. Of its "states", KomboState is the integration's
// state at Kombo and LastSyncState the sync_state of Kombo's last sync-finished; the workflow's
// own state (the KomboSyncState search attribute) is derived from the flags, see syncer.state.
type CarriedState struct {
	Tool              string
	Category          string
	KomboState        string // the integration at Kombo: ACTIVE, INVALID, INACTIVE
	LastSyncState     string // Kombo's sync_state of its last sync-finished: SUCCEEDED, …
	LastSyncStateAt   *time.Time
	LastSyncID        string // Kombo's sync_id of its last sync-finished
	FirstSyncFinished bool
	// Upstream is the Kombo sync an operator asked for (sync --upstream) whose sync-finished
	// the workflow waits for, to fetch then.
	Upstream *UpstreamWait

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

	// KomboStateUpdatedAt is Kombo's updated_at of the integration state applied last (older
	// ones change nothing); KomboStateSetAt is when the workflow applied it.
	KomboStateUpdatedAt *time.Time
	KomboStateSetAt     *time.Time
	// ProbeAt: while Kombo's state pauses the integration, when the workflow asks Kombo next
	// (GET /integrations/{id}); ProbeAttempts counts the answers that were not ACTIVE.
	ProbeAt       *time.Time
	ProbeAttempts int
	LastProbeAt   *time.Time
	// DataErrors are endpoints whose last pass failed on data that fails every attempt
	// (DataError), with the error; such an endpoint waits for its next change.
	DataErrors map[string]string
	// Rejected counts each endpoint's records set aside in kombo.rejected_records.
	Rejected map[string]int
	// LastChangeAt is when the last data-changed arrived: the integration is quiet (a new one
	// is fetched at once) only when none came for the quiet window.
	LastChangeAt *time.Time
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

// syncer is one run of IntegrationSync. Its methods are grouped by concern, a file each:
//
//   - integration.go: the event loop, the carried state and continue-as-new;
//   - signal_handlers.go: what each signal (Kombo's events, the operator's controls) changes;
//   - debounce.go: the pending set, the quiet window and maximum delay, the wake-up timer;
//   - fetch.go: starting FetchEndpoint activities and taking in their outcomes and errors;
//   - fullsync.go: the full pass, as a FullSync child workflow (and that workflow itself);
//   - status.go and publish.go: the status query, search attributes, the UI's current
//     details and the kombo.integrations row;
//   - deletion.go: an integration Kombo deleted, and the purge of its rows;
//   - probe.go: asking Kombo for its state while Kombo's state pauses the integration.
type syncer struct {
	id       string
	st       *CarriedState // carried into the next run
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
	probing       bool // the kombo-state-probe version: see probe.go
	leadingEdge   bool // the leading-edge version: see debounce.go
	notifyRounds  bool // the round-notify version: see notify.go
	reportRounds  bool // the round-report version: see notify.go
	round         roundSoFar

	published struct { // what search attributes and Postgres last heard
		state      string
		lastSyncAt time.Time
		saved      *store.Integration
	}
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
		s.st = &CarriedState{Tool: in.Tool, Category: in.Category}
	}
	if s.st.OpenRuns == nil {
		s.st.OpenRuns = map[string]OpenRun{}
	}
	if s.st.LastRuns == nil {
		s.st.LastRuns = map[string]RunSummary{}
	}
	if s.st.DataErrors == nil {
		s.st.DataErrors = map[string]string{}
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
	if loaded.Rejected != nil {
		s.st.Rejected = loaded.Rejected // Postgres is the truth of what is set aside
	}
	if s.st.Rejected == nil {
		s.st.Rejected = map[string]int{}
	}
	// Version 1: while Kombo's state pauses the integration, ask Kombo on a timer.
	s.probing = workflow.GetVersion(ctx, "kombo-state-probe", workflow.DefaultVersion, 1) == 1
	// Version 1: an idle integration fetches a data-changed at once (see debounce.go).
	s.leadingEdge = workflow.GetVersion(ctx, "leading-edge", workflow.DefaultVersion, 1) == 1
	// Version 1: a finished fetch round sends one kombo_changes notification (see notify.go).
	s.notifyRounds = workflow.GetVersion(ctx, "round-notify", workflow.DefaultVersion, 1) == 1
	// Version 1: a round's end is reported by the PublishRound activity (outbound events and
	// the notification in one transaction) instead of the NotifyRound local activity.
	s.reportRounds = s.notifyRounds && workflow.GetVersion(ctx, "round-report", workflow.DefaultVersion, 1) == 1
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
		s.probeIfDue(ctx)
		s.notifyIfRoundDone(ctx)
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

func (s *syncer) wantContinueAsNew(ctx workflow.Context) bool {
	return workflow.GetInfo(ctx).GetContinueAsNewSuggested() || s.rounds >= maxRoundsPerRun || s.eventsThisRun >= maxEventsPerRun
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

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
