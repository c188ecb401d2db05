package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/store"
)

// RetentionInput configures one retention run. The retention periods and the field policy are
// the worker's settings (README "Personal data").
type RetentionInput struct {
	Reason string
}

// RetentionStatus answers the retention run's status query.
type RetentionStatus struct {
	Step   string // the step under way; "done" at the end
	Counts store.RetentionCounts
}

// Retention is the daily retention run the kombo-daily-retention schedule launches (or `starter
// retention run`): it brings stored rows to a changed field policy, reduces deleted records to
// tombstones, redacts old change values, empties the inbox of old webhooks and (since version
// retention-action-payloads) removes finished actions' requests, in that order,
// each step in batches whose counts Postgres records with their work (kombo.retention_runs).
// Its history holds counts only, never a record's content.
func Retention(ctx workflow.Context, in RetentionInput) (store.RetentionCounts, error) {
	runID := workflow.GetInfo(ctx).WorkflowExecution.ID
	status := RetentionStatus{Step: "starting"}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (RetentionStatus, error) { return status, nil }); err != nil {
		return store.RetentionCounts{}, err
	}
	retry := &temporal.RetryPolicy{MaximumInterval: time.Minute}
	var plan activities.RetentionPlan
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: retry,
		Summary: "start retention run"})
	if err := workflow.ExecuteActivity(sctx, acts.StartRetention, runID).Get(ctx, &plan); err != nil {
		return store.RetentionCounts{}, err
	}
	steps := store.RetentionSteps
	if workflow.GetVersion(ctx, "retention-action-payloads", workflow.DefaultVersion, 1) >= 1 {
		steps = append(slices.Clone(steps), store.RetainActionPayloads)
	}
	for _, step := range steps {
		status.Step = step
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Minute,
			HeartbeatTimeout:    heartbeatOrDefault(plan.HeartbeatTimeout),
			RetryPolicy:         retry,
			Summary:             "retention: " + step,
		})
		for {
			var r activities.RetainStepResult
			if err := workflow.ExecuteActivity(actx, acts.RetainStep, activities.RetainStepInput{RunID: runID, Step: step}).
				Get(ctx, &r); err != nil {
				return status.Counts, err
			}
			status.Counts = status.Counts.Add(r.Counts)
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("**retention**: %s; %d rows so far", step, status.Counts.Total()))
			if r.Done {
				break
			}
		}
	}
	var final store.RetentionCounts
	fctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: retry,
		Summary: "finish retention run"})
	if err := workflow.ExecuteActivity(fctx, acts.FinishRetention, runID).Get(ctx, &final); err != nil {
		return status.Counts, err
	}
	status.Step, status.Counts = "done", final
	workflow.GetLogger(ctx).Info("retention run finished", "rows", final.Total())
	return final, nil
}
