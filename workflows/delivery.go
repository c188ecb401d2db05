package workflows

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
)

// SubscriptionDeliveryType is the workflow type that delivers one subscription's webhooks.
const SubscriptionDeliveryType = "SubscriptionDelivery"

// SignalDeliver wakes a subscription's delivery workflow: new deliveries, a resume, a replay.
const SignalDeliver = "deliver"

// SubscriptionWorkflowID is the ID of a subscription's long-lived delivery workflow.
func SubscriptionWorkflowID(subscriptionID string) string {
	return "kombo-subscription:" + subscriptionID
}

// DeliveryInput starts a subscription's delivery workflow.
type DeliveryInput struct {
	SubscriptionID string
}

// DeliverSignal is the deliver signal's payload. Now (an operator's resume or replay) ends a
// back-off wait; new events do not.
type DeliverSignal struct {
	Reason string
	Now    bool
}

// DeliveryStatus is the delivery workflow's status query answer.
type DeliveryStatus struct {
	SubscriptionID string
	State          string // delivering, idle, waiting (back-off), paused, disabled
	Sent           int    // in this run
	Failures       int
	LastError      string
	RetryAt        time.Time `json:",omitzero"`
}

// deliveryIdlePoll is how long an idle delivery workflow waits for a signal before looking
// again, in case a wake-up was lost (the deliveries are in Postgres either way).
const deliveryIdlePoll = 5 * time.Minute

// SubscriptionDelivery delivers one subscription's pending deliveries in order, for as long as
// the subscription exists: DeliverPending in batches; on a failed attempt a durable timer for
// the back-off (or the receiver's Retry-After) that only an operator's deliver signal cuts
// short; paused or disabled, it waits for a signal. Every decision's inputs come from the
// activity's result, so a replay needs nothing else. It continues as new when Temporal suggests.
func SubscriptionDelivery(ctx workflow.Context, in DeliveryInput) error {
	if in.SubscriptionID == "" {
		return temporal.NewNonRetryableApplicationError("subscription id is required", activities.ErrInvalidInput, nil)
	}
	st := DeliveryStatus{SubscriptionID: in.SubscriptionID, State: "delivering"}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (DeliveryStatus, error) { return st, nil }); err != nil {
		return err
	}
	signals := workflow.GetSignalChannel(ctx, SignalDeliver)
	// drain takes the signals already received; now says whether one asked for no waiting.
	drain := func() (got, now bool) {
		var s DeliverSignal
		for signals.ReceiveAsync(&s) {
			got, now = true, now || s.Now
		}
		return got, now
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
		Summary:             "deliver " + in.SubscriptionID,
	})
	for {
		st.State = "delivering"
		drain()
		var res activities.DeliverResult
		if err := workflow.ExecuteActivity(actx, acts.DeliverPending, activities.DeliverInput{SubscriptionID: in.SubscriptionID}).
			Get(ctx, &res); err != nil {
			return fmt.Errorf("deliver %s: %w", in.SubscriptionID, err)
		}
		st.Sent += res.Sent
		st.Failures, st.LastError, st.RetryAt = res.Failures, res.Error, time.Time{}
		switch res.Outcome {
		case activities.DeliverDeleted:
			return nil
		case activities.DeliverMore:
			continue
		case activities.DeliverFailed:
			st.State, st.RetryAt = "waiting", workflow.Now(ctx).Add(res.RetryIn)
			waitForSignal(ctx, signals, res.RetryIn, true)
		case activities.DeliverDrained:
			if got, _ := drain(); got {
				continue // something arrived while the batch ran
			}
			st.State = "idle"
			waitForSignal(ctx, signals, deliveryIdlePoll, false)
		default: // paused, disabled: until a deliver signal (resume), or a look now and then
			st.State = res.Outcome
			waitForSignal(ctx, signals, deliveryIdlePoll, false)
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			drain() // the new run starts by delivering: nothing a signal asked for is lost
			return workflow.NewContinueAsNewError(ctx, SubscriptionDelivery, in)
		}
	}
}

// waitForSignal waits up to d for a deliver signal. With backoff, only a signal with Now ends the
// wait early (the others are left for the next round's drain).
func waitForSignal(ctx workflow.Context, signals workflow.ReceiveChannel, d time.Duration, backoff bool) {
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: "deliver wait"})
	for done := false; !done; {
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) { done = true })
		sel.AddReceive(signals, func(c workflow.ReceiveChannel, _ bool) {
			var s DeliverSignal
			c.Receive(ctx, &s)
			done = !backoff || s.Now
		})
		sel.Select(ctx)
	}
}

// WakeSubscription signals a subscription's delivery workflow, starting it if none runs. The
// worker (after queuing events), the back-office API and the starter use it; never workflow code.
func WakeSubscription(ctx context.Context, c client.Client, taskQueue, subscriptionID string, sig DeliverSignal) error {
	_, err := c.SignalWithStartWorkflow(ctx, SubscriptionWorkflowID(subscriptionID), SignalDeliver, sig,
		client.StartWorkflowOptions{ID: SubscriptionWorkflowID(subscriptionID), TaskQueue: taskQueue,
			StaticSummary: "Webhook deliveries of subscription " + subscriptionID,
			StaticDetails: "Delivers `kombo.deliveries` of subscription `" + subscriptionID + "` in order, " +
				"backing off on failures; query `status`."},
		SubscriptionDeliveryType, DeliveryInput{SubscriptionID: subscriptionID})
	if err != nil {
		return fmt.Errorf("signal-with-start %s: %w", SubscriptionWorkflowID(subscriptionID), err)
	}
	return nil
}
