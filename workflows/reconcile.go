package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/store"
)

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
