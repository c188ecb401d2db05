package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/workflows"
)

// deliveryScript answers DeliverPending calls in order and records when each came.
type deliveryScript struct {
	mu      sync.Mutex
	answers []activities.DeliverResult
	calls   []time.Duration
}

func runDelivery(t *testing.T, script *deliveryScript, signals map[time.Duration]workflows.DeliverSignal) (*testsuite.TestWorkflowEnvironment, time.Time) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.SubscriptionDelivery, workflow.RegisterOptions{Name: workflows.SubscriptionDeliveryType})
	var a *activities.Activities
	start := env.Now()
	env.OnActivity(a.DeliverPending, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		script.mu.Lock()
		defer script.mu.Unlock()
		require.Equal(t, "sub_1", in.SubscriptionID)
		script.calls = append(script.calls, env.Now().Sub(start).Round(time.Second))
		if len(script.answers) == 0 {
			return activities.DeliverResult{Outcome: activities.DeliverDeleted}, nil
		}
		next := script.answers[0]
		script.answers = script.answers[1:]
		return next, nil
	})
	for at, sig := range signals {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalDeliver, sig) }, at)
	}
	env.ExecuteWorkflow(workflows.SubscriptionDeliveryType, workflows.DeliveryInput{SubscriptionID: "sub_1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	return env, start
}

// A failed attempt waits its back-off on a durable timer; new events do not cut it short; an
// operator's deliver signal (Now) does. A batch cut by time goes on at once.
func TestDeliveryBacksOffAndOnlyAnOperatorCutsTheWait(t *testing.T) {
	script := &deliveryScript{answers: []activities.DeliverResult{
		{Outcome: activities.DeliverMore, Sent: 50},
		{Outcome: activities.DeliverFailed, RetryIn: 10 * time.Minute, Failures: 1},
		{Outcome: activities.DeliverFailed, RetryIn: time.Hour, Failures: 2},
		{Outcome: activities.DeliverDrained, Sent: 3},
	}}
	runDelivery(t, script, map[time.Duration]workflows.DeliverSignal{
		5 * time.Minute:  {Reason: "records.changed"},            // during the first back-off: no effect
		20 * time.Minute: {Reason: "operator resume", Now: true}, // during the second: delivers at once
	})
	require.Equal(t, []time.Duration{0, 0, 10 * time.Minute, 20 * time.Minute, 25 * time.Minute}, script.calls,
		"more → at once; failed → after RetryIn; the operator's signal ends the hour; idle → the next look after the idle poll")
}

// Drained, paused and disabled wait for a signal (or the idle poll); a deleted subscription ends
// the workflow.
func TestDeliveryWaitsWhenIdleAndEndsWhenDeleted(t *testing.T) {
	script := &deliveryScript{answers: []activities.DeliverResult{
		{Outcome: activities.DeliverDrained},
		{Outcome: activities.DeliverPaused},
		{Outcome: activities.DeliverDisabled},
	}}
	runDelivery(t, script, map[time.Duration]workflows.DeliverSignal{
		time.Minute:     {Reason: "records.changed"},
		2 * time.Minute: {Reason: "resume", Now: true},
	})
	require.Equal(t, []time.Duration{0, time.Minute, 2 * time.Minute, 7 * time.Minute}, script.calls)
}
