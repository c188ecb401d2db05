package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// FullSyncInput is one full pass over an integration's configured endpoints.
type FullSyncInput struct {
	IntegrationID string
	Endpoints     []string // "hris/employees", …
	FetchOverlap  time.Duration
	Parallelism   int
	// HeartbeatTimeout of each fetch; one minute when zero (inputs recorded before it existed).
	HeartbeatTimeout time.Duration
	SweepMaxShare    float64
	ConfirmSweep     bool
}

// EndpointPass is what the full pass did to one endpoint.
type EndpointPass struct {
	Endpoint     string
	RunID        string
	Outcome      string // succeeded, model_unavailable or failed
	Counts       store.Counts
	Alive        int  // live rows before the sweep
	Missing      int  // of those, rows the pass did not see
	Swept        int  // rows the sweep marked deleted
	SweepRefused bool // Missing exceeded the allowed share without confirmation
	// Watermark is the endpoint's new updated_after (the pass's start minus the overlap).
	Watermark *time.Time
	Error     string
	ErrorType string // the activity's application error type
}

// FullSyncResult is the full pass's result, per endpoint.
type FullSyncResult struct {
	StartedAt  time.Time
	FinishedAt time.Time
	Endpoints  []EndpointPass
}

// FullSync fetches every configured endpoint without updated_after (include_deleted=true),
// marking each record seen, and only after an endpoint's pass completed sweeps the rows it did
// not see: they get deleted_at and a deleted change row. A sweep that would delete more than
// SweepMaxShare of an endpoint's rows is refused unless confirmed. A failed pass sweeps nothing.
// IntegrationSync runs it as a child, so a full pass and a delta of one integration never run
// at once.
func FullSync(ctx workflow.Context, in FullSyncInput) (FullSyncResult, error) {
	start := workflow.Now(ctx)
	res := FullSyncResult{StartedAt: start, Endpoints: make([]EndpointPass, len(in.Endpoints))}
	slots := workflow.NewBufferedChannel(ctx, max(1, in.Parallelism))
	wg := workflow.NewWaitGroup(ctx)
	for i, ep := range in.Endpoints {
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			slots.Send(ctx, struct{}{})
			defer slots.Receive(ctx, nil)
			res.Endpoints[i] = fullPass(ctx, in, ep, start)
		})
	}
	wg.Wait(ctx)
	res.FinishedAt = workflow.Now(ctx)
	return res, nil
}

// fullPass fetches one endpoint completely and sweeps it.
func fullPass(ctx workflow.Context, in FullSyncInput, ep string, start time.Time) EndpointPass {
	out := EndpointPass{Endpoint: ep, RunID: fmt.Sprintf("%s|%s|full|%d", in.IntegrationID, ep, start.UnixMilli())}
	e, ok := kombo.LookupEndpoint(ep)
	if !ok {
		out.Outcome, out.Error = store.OutcomeFailed, "unknown endpoint"
		return out
	}
	advanceTo := start.Add(-in.FetchOverlap)
	actx := workflow.WithActivityOptions(ctx, fetchOptions(fmt.Sprintf("fetch %s (full)", ep), in.HeartbeatTimeout))
	var fetched activities.FetchEndpointResult
	err := workflow.ExecuteActivity(actx, acts.FetchEndpoint, activities.FetchEndpointInput{
		IntegrationID: in.IntegrationID, Endpoint: e, Kind: store.KindFull, RunID: out.RunID, AdvanceWatermarkTo: &advanceTo,
	}).Get(ctx, &fetched)
	if err != nil {
		out.Outcome, out.Error = store.OutcomeFailed, rootMessage(err)
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			out.ErrorType = appErr.Type()
		}
		return out
	}
	out.Outcome, out.Counts = fetched.Outcome, fetched.Counts
	if fetched.Outcome != store.OutcomeSucceeded {
		return out // the integration does not offer this model: nothing to sweep
	}
	out.Watermark = &advanceTo
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    heartbeatOrDefault(in.HeartbeatTimeout), // it heartbeats while its statement runs
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: time.Minute, MaximumAttempts: 10},
		Summary:             "sweep " + ep,
	})
	var swept store.SweepResult
	if err := workflow.ExecuteActivity(sctx, acts.SweepEndpoint, activities.SweepInput{
		IntegrationID: in.IntegrationID, Endpoint: e, RunID: out.RunID, MaxShare: in.SweepMaxShare, Confirmed: in.ConfirmSweep,
	}).Get(ctx, &swept); err != nil {
		out.Error = "sweep: " + rootMessage(err)
		return out
	}
	out.Alive, out.Missing, out.Swept, out.SweepRefused = swept.Alive, swept.Missing, swept.Swept, swept.Refused
	out.Counts.Deleted += swept.Swept
	return out
}

// heartbeatOrDefault is the heartbeat timeout of the activities that heartbeat (every one but
// the local ones): FETCH_HEARTBEAT_TIMEOUT, or a minute when a run's input predates it.
func heartbeatOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Minute
	}
	return d
}

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
			MaximumAttempts:    10,
		},
		Summary: summary,
	}
}

// ReconcileInput configures one weekly reconciliation.
type ReconcileInput struct {
	BatchSize  int           // integrations asked per batch; 100 when zero
	BatchPause time.Duration // pause between batches, so thousands do not start at once; 10 s when zero
	Reason     string
}

// ReconcileResult counts the integrations reached.
type ReconcileResult struct {
	Integrations int
	Reached      int
	Failed       []string
}

// Reconcile is the weekly reconciliation the kombo-weekly-reconcile schedule launches: it asks
// every integration that is not deleted to run a full pass (a reconcile signal-with-start), in
// batches, and reports how many it reached.
func Reconcile(ctx workflow.Context, in ReconcileInput) (ReconcileResult, error) {
	if in.BatchSize <= 0 {
		in.BatchSize = 100
	}
	if in.BatchPause <= 0 {
		in.BatchPause = 10 * time.Second
	}
	if in.Reason == "" {
		in.Reason = "weekly reconciliation"
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    heartbeatOrDefault(0),
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: time.Minute},
		Summary:             "reconcile batch",
	})
	var res ReconcileResult
	after := ""
	for {
		var batch []store.IntegrationRef
		if err := workflow.ExecuteActivity(actx, acts.ListIntegrations, activities.ListIntegrationsInput{After: after, Limit: in.BatchSize}).
			Get(ctx, &batch); err != nil {
			return res, err
		}
		if len(batch) == 0 {
			break
		}
		var br activities.ReconcileBatchResult
		if err := workflow.ExecuteActivity(actx, acts.ReconcileBatch, activities.ReconcileBatchInput{Integrations: batch, Reason: in.Reason}).
			Get(ctx, &br); err != nil {
			return res, err
		}
		res.Integrations += len(batch)
		res.Reached += br.Reached
		res.Failed = append(res.Failed, br.Failed...)
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**reconciling**: %d integrations asked, %d reached, %d failed",
			res.Integrations, res.Reached, len(res.Failed)))
		if len(batch) < in.BatchSize {
			break
		}
		after = batch[len(batch)-1].ID
		if err := workflow.NewTimerWithOptions(ctx, in.BatchPause, workflow.TimerOptions{Summary: "spread the next batch"}).Get(ctx, nil); err != nil {
			return res, err
		}
	}
	workflow.GetLogger(ctx).Info("reconciliation asked every integration", "integrations", res.Integrations,
		"reached", res.Reached, "failed", len(res.Failed))
	return res, nil
}
