package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/workflows"
)

// actionScript answers the action activities in order and records the calls with their times.
type actionScript struct {
	mu      sync.Mutex
	answers []scripted
	calls   []string
}

type scripted struct {
	activity string // ExecuteAction, LookUpAction or GiveUpAction
	step     activities.ActionStep
	err      error
}

func runAction(t *testing.T, script *actionScript) (activities.ActionStep, time.Duration, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Action, workflow.RegisterOptions{Name: workflows.ActionType})
	var a *activities.Activities
	start := env.Now()
	answer := func(name string) (activities.ActionStep, error) {
		script.mu.Lock()
		defer script.mu.Unlock()
		script.calls = append(script.calls, name+"@"+env.Now().Sub(start).Round(time.Second).String())
		require.NotEmpty(t, script.answers, "no answer left for %s", name)
		next := script.answers[0]
		script.answers = script.answers[1:]
		require.Equal(t, next.activity, name, "calls so far: %v", script.calls)
		return next.step, next.err
	}
	env.OnActivity(a.ExecuteAction, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ActionInput) (activities.ActionStep, error) {
		require.Equal(t, "act_1", in.ActionID)
		return answer("ExecuteAction")
	})
	env.OnActivity(a.LookUpAction, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ActionInput) (activities.ActionStep, error) {
		return answer("LookUpAction")
	})
	env.OnActivity(a.GiveUpAction, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.GiveUpInput) (activities.ActionStep, error) {
		require.NotEmpty(t, in.Cause)
		return answer("GiveUpAction")
	})
	env.ExecuteWorkflow(workflows.ActionType, activities.ActionInput{ActionID: "act_1"})
	require.True(t, env.IsWorkflowCompleted())
	var step activities.ActionStep
	if err := env.GetWorkflowError(); err != nil {
		return step, env.Now().Sub(start), err
	}
	require.NoError(t, env.GetWorkflowResult(&step))
	require.Empty(t, script.answers, "unused answers")
	return step, env.Now().Sub(start), nil
}

var (
	succeeded = activities.ActionStep{Outcome: activities.StepFinal, State: "succeeded"}
	inDoubt   = func(d time.Duration) activities.ActionStep {
		return activities.ActionStep{Outcome: activities.StepInDoubt, LookAgainIn: d}
	}
)

// A clean answer ends the action with one send.
func TestActionSucceedsWithOneSend(t *testing.T) {
	script := &actionScript{answers: []scripted{{activity: "ExecuteAction", step: succeeded}}}
	step, _, err := runAction(t, script)
	require.NoError(t, err)
	require.Equal(t, succeeded, step)
	require.Equal(t, []string{"ExecuteAction@0s"}, script.calls)
}

// A refusal ends it too: no retry, no look.
func TestActionRefusedIsNotRetried(t *testing.T) {
	refused := activities.ActionStep{Outcome: activities.StepFinal, State: "refused", Code: "ATS.JOB_CLOSED"}
	script := &actionScript{answers: []scripted{{activity: "ExecuteAction", step: refused}}}
	step, _, err := runAction(t, script)
	require.NoError(t, err)
	require.Equal(t, refused, step)
}

// An unknown outcome is looked for on durable timers, as long as the look says to, and what it
// finds ends the action without a second send.
func TestActionUnknownOutcomeIsLookedForNotResent(t *testing.T) {
	script := &actionScript{answers: []scripted{
		{activity: "ExecuteAction", step: inDoubt(time.Second)},
		{activity: "LookUpAction", step: inDoubt(4 * time.Second)},
		{activity: "LookUpAction", step: inDoubt(10 * time.Minute)}, // capped at a minute
		{activity: "LookUpAction", step: succeeded},
	}}
	step, took, err := runAction(t, script)
	require.NoError(t, err)
	require.Equal(t, succeeded, step)
	require.Equal(t, []string{"ExecuteAction@0s", "LookUpAction@1s", "LookUpAction@5s", "LookUpAction@1m5s"}, script.calls)
	require.Equal(t, 65*time.Second, took.Round(time.Second))
}

// An attempt found to have done nothing is sent again, and only then.
func TestActionSurelyAbsentIsSentAgain(t *testing.T) {
	script := &actionScript{answers: []scripted{
		{activity: "ExecuteAction", step: inDoubt(time.Second)},
		{activity: "LookUpAction", step: activities.ActionStep{Outcome: activities.StepResend}},
		{activity: "ExecuteAction", step: succeeded},
	}}
	step, _, err := runAction(t, script)
	require.NoError(t, err)
	require.Equal(t, succeeded, step)
	require.Equal(t, []string{"ExecuteAction@0s", "LookUpAction@1s", "ExecuteAction@1s"}, script.calls)
}

// Retries that run out end the action as failed through GiveUpAction, not as a failed workflow.
func TestActionGivesUpThroughTheStore(t *testing.T) {
	failed := activities.ActionStep{Outcome: activities.StepFinal, State: "failed", Code: "KOMBOSYNC.OUTCOME_UNKNOWN"}
	script := &actionScript{answers: []scripted{
		{activity: "ExecuteAction", step: inDoubt(time.Second)},
		{activity: "LookUpAction", err: temporal.NewNonRetryableApplicationError("gone", activities.ErrInvalidInput, nil)},
		{activity: "GiveUpAction", step: failed},
	}}
	step, _, err := runAction(t, script)
	require.NoError(t, err)
	require.Equal(t, failed, step)
}

// The workflow refuses to start without an action id.
func TestActionNeedsAnID(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Action, workflow.RegisterOptions{Name: workflows.ActionType})
	env.ExecuteWorkflow(workflows.ActionType, activities.ActionInput{})
	require.ErrorContains(t, env.GetWorkflowError(), "action id is required")
}
