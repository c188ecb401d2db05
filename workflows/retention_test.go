package workflows_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// Retention takes its steps in order, calls a step again until it says it is done, and returns
// what Postgres counted (FinishRetention), not its own sum.
func TestRetentionRunsEveryStepToTheEnd(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	a := &activities.Activities{}
	env.RegisterActivity(a)
	workflows.Register(env)
	var calls []string
	env.OnActivity(a.StartRetention, mock.Anything, mock.Anything).Return(activities.RetentionPlan{}, nil)
	env.OnActivity(a.RetainStep, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RetainStepInput) (activities.RetainStepResult, error) {
			calls = append(calls, in.Step)
			n := 0
			for _, c := range calls {
				if c == in.Step {
					n++
				}
			}
			done := in.Step != store.RetainDeleted || n == 3 // the tombstones take three calls
			return activities.RetainStepResult{Counts: store.RetentionCounts{Tombstoned: 1}, Done: done}, nil
		})
	final := store.RetentionCounts{Tombstoned: 99}
	env.OnActivity(a.FinishRetention, mock.Anything, mock.Anything).Return(final, nil)
	env.ExecuteWorkflow(workflows.Retention, workflows.RetentionInput{Reason: "test"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var got store.RetentionCounts
	require.NoError(t, env.GetWorkflowResult(&got))
	require.Equal(t, final, got)
	require.Equal(t, []string{store.RetainPolicy, store.RetainDeleted, store.RetainDeleted, store.RetainDeleted,
		store.RetainChanges, store.RetainWebhooks, store.RetainActionPayloads}, calls)
}
