package workflows

import (
	"errors"
	"fmt"
	"strings"
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
	// RejectedOpen: the endpoint's records in kombo.rejected_records after the pass.
	RejectedOpen int
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
		MaxAttempts: fetchAttempts,
	}).Get(ctx, &fetched)
	if err != nil {
		out.Outcome, out.Error = store.OutcomeFailed, rootMessage(err)
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			out.ErrorType = appErr.Type()
		}
		return out
	}
	out.Outcome, out.Counts, out.RejectedOpen = fetched.Outcome, fetched.Counts, fetched.RejectedOpen
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

// fullSyncCall is the FullSync child workflow in flight.
type fullSyncCall struct {
	id     string
	future workflow.ChildWorkflowFuture
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
		case p.ErrorType == activities.ErrDataError:
			s.st.DataErrors[p.Endpoint] = p.Error
		case p.Outcome == store.OutcomeSucceeded && p.Error == "":
			delete(s.st.DataErrors, p.Endpoint)
			s.st.Rejected[p.Endpoint] = p.RejectedOpen
			s.round.add(p.Endpoint, p.Counts.Written()+p.Swept) // the sweep writes change rows too
			s.round.full = true
		}
		switch {
		case p.SweepRefused:
			refused = append(refused, fmt.Sprintf("%s would mark %d of %d rows deleted", p.Endpoint, p.Missing, p.Alive))
		case p.Outcome == store.OutcomeFailed || p.Error != "":
			failed = append(failed, p.Endpoint+": "+p.Error)
			s.blockOn(p.ErrorType, now, res.StartedAt)
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
