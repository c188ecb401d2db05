package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
)

// ActionType is the workflow type that executes one action (a write to Kombo).
const ActionType = "Action"

// ActionWorkflowID is the ID of an action's workflow: one per action, so the action's id is also
// the workflow's idempotency key.
func ActionWorkflowID(actionID string) string { return "kombo-action:" + actionID }

// ActionStatus answers the action workflow's status query.
type ActionStatus struct {
	ActionID string
	Step     string // sending, looking (an attempt's outcome is unknown), done
	Sends    int    // ExecuteAction calls in this run
	Lookups  int
}

// actionLookupWaitMax bounds one wait between two looks at Kombo.
const actionLookupWaitMax = time.Minute

// Action executes one action exactly once: ExecuteAction sends it when it may (its attempt
// recorded before the request leaves); an unknown outcome is looked for at Kombo on durable
// timers (LookUpAction) until it is found (succeeded) or surely absent (then sent again);
// refusals and successes end it. The workflow carries the action's id only: the request, with
// its candidate data, stays in Postgres. Every decision comes from an activity's result, so a
// replay needs nothing else; a crash anywhere repeats no request that reached Kombo, because
// the row says whether one may have.
func Action(ctx workflow.Context, in activities.ActionInput) (activities.ActionStep, error) {
	if in.ActionID == "" {
		return activities.ActionStep{}, temporal.NewNonRetryableApplicationError("action id is required", activities.ErrInvalidInput, nil)
	}
	st := ActionStatus{ActionID: in.ActionID, Step: "sending"}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (ActionStatus, error) { return st, nil }); err != nil {
		return activities.ActionStep{}, err
	}
	// Retryable failures (Kombo's limits, no free slot, Postgres or Kombo unreachable) are retried
	// for about two hours (1 s doubling to 5 min, 30 attempts); then the action fails for a person.
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute, MaximumAttempts: 30,
		NonRetryableErrorTypes: []string{activities.ErrInvalidInput}}
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute, // the slot wait and one request; the heartbeat catches a dead worker
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         retry,
		Summary:             "send " + in.ActionID,
	})
	lctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         retry,
		Summary:             "look for " + in.ActionID,
	})
	giveUp := func(err error) (activities.ActionStep, error) {
		cause := "unknown"
		var appErr *temporal.ApplicationError
		var timeoutErr *temporal.TimeoutError
		switch {
		case errors.As(err, &appErr):
			cause = appErr.Type()
		case errors.As(err, &timeoutErr):
			cause = "timeout"
		}
		var step activities.ActionStep
		gctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{MaximumInterval: time.Minute}, Summary: "give up " + in.ActionID})
		if err := workflow.ExecuteActivity(gctx, acts.GiveUpAction, activities.GiveUpInput{ActionID: in.ActionID, Cause: cause}).Get(ctx, &step); err != nil {
			return step, err
		}
		st.Step = "done"
		return step, nil
	}
	for {
		st.Step = "sending"
		st.Sends++
		var step activities.ActionStep
		if err := workflow.ExecuteActivity(sctx, acts.ExecuteAction, in).Get(ctx, &step); err != nil {
			return giveUp(err)
		}
		for step.Outcome == activities.StepInDoubt {
			st.Step = "looking"
			if err := workflow.NewTimerWithOptions(ctx, min(max(step.LookAgainIn, time.Second), actionLookupWaitMax),
				workflow.TimerOptions{Summary: "Kombo's reads may lag its writes"}).Get(ctx, nil); err != nil {
				return step, err
			}
			st.Lookups++
			step = activities.ActionStep{} // decoding into the last answer would keep its omitted fields
			if err := workflow.ExecuteActivity(lctx, acts.LookUpAction, in).Get(ctx, &step); err != nil {
				return giveUp(err)
			}
		}
		if step.Outcome == activities.StepFinal {
			st.Step = "done"
			workflow.GetLogger(ctx).Info("action finished", "action_id", in.ActionID, "state", step.State, "code", step.Code)
			return step, nil
		}
		// StepResend: the attempt did nothing; send again.
	}
}

// StartAction starts an action's workflow, or finds the one running (its ID is the action's):
// the back-office API after storing an action, its relay for actions whose start failed, and the
// starter's retry. A completed run is started again (a retry), and then reads the action's row
// first, so a late duplicate start of a finished action ends at once.
func StartAction(ctx context.Context, c client.Client, taskQueue, actionID, kind, integrationID string) error {
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       ActionWorkflowID(actionID),
		TaskQueue:                taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(SAIntegrationID.ValueSet(integrationID)),
		StaticSummary:            kind + " " + actionID + " for integration " + integrationID,
		StaticDetails: "Executes action `" + actionID + "` (`" + kind + "`) exactly once: the attempt is recorded in " +
			"`kombo.actions` before the request leaves, and an unknown outcome is looked for at Kombo before anything is sent again. " +
			"Query `status`.",
	}, ActionType, activities.ActionInput{ActionID: actionID})
	if err != nil {
		return fmt.Errorf("start %s: %w", ActionWorkflowID(actionID), err)
	}
	return nil
}
