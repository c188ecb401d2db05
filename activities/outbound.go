package activities

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/store"
)

// Outbound holds what the outbound webhook activities need (README "Outbound webhooks").
type Outbound struct {
	Client *outbound.Client
	// Wake asks a subscription's delivery workflow to look for deliveries (signal-with-start).
	// The worker provides it: activities cannot import the workflows package.
	Wake func(ctx context.Context, subscriptionID, reason string) error
	// GiveUpAfter: a subscription whose deliveries have failed for this long is disabled.
	GiveUpAfter time.Duration
	// MaxBackoff caps the wait between two failed attempts (before jitter).
	MaxBackoff time.Duration
	// MaxRetryAfter caps a receiver's Retry-After.
	MaxRetryAfter time.Duration
	Metrics       *OutboundMetrics
}

// OutboundMetrics are the delivery metrics; labels never hold a URL or a subscription's id.
type OutboundMetrics struct {
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
}

// NewOutboundMetrics registers the delivery metrics.
func NewOutboundMetrics(reg prometheus.Registerer) *OutboundMetrics {
	m := &OutboundMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_outbound_deliveries_total",
			Help: "Outbound webhook attempts, by event type and outcome (delivered, failed, rate_limited, gone).",
		}, []string{"type", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kombosync_outbound_delivery_seconds",
			Help:    "Time of one outbound webhook attempt, from the request to the receiver's answer, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.deliveries, m.latency)
	return m
}

func (m *OutboundMetrics) observe(typ, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(typ, outcome).Inc()
	m.latency.WithLabelValues(outcome).Observe(d.Seconds())
}

// wake wakes the delivery workflows of subscriptions with something new. A wake-up that fails
// is logged: the delivery workflow also looks on a timer.
func (a *Activities) wake(ctx context.Context, subs []string, reason string) {
	if a.Outbound.Wake == nil {
		return
	}
	for _, id := range subs {
		if err := a.Outbound.Wake(ctx, id, reason); err != nil {
			activity.GetLogger(ctx).Warn("could not wake a subscription's delivery", "subscription_id", id, "error", err)
		}
	}
}

// PublishRoundInput is a finished fetch round of an integration.
type PublishRoundInput struct {
	IntegrationID string
	Tool          string
	Category      string
	Full          bool // a full pass wrote some of it
	Notice        store.RoundNotice
}

// PublishRoundResult says what was reported.
type PublishRoundResult struct {
	Event bool               // a records.changed event was queued
	To    store.FeedPosition // the feed position reported up to
}

// ErrFeedBehind: committed change rows of the integration are past the feed's horizon (a
// transaction still running elsewhere); the activity is retried.
const ErrFeedBehind = "FeedBehind"

// PublishRound reports the integration's new change rows (store.ReportChanges: a records.changed
// event for subscriptions, an attention event for newly rejected records, the kombo_changes
// notification) and wakes the subscriptions concerned. When the feed's horizon holds some of
// the round back, it reports again for a few seconds, then fails so Temporal retries it; what
// it could report stays reported.
func (a *Activities) PublishRound(ctx context.Context, in PublishRoundInput) (PublishRoundResult, error) {
	report := store.ChangeReport{IntegrationID: in.IntegrationID, Tool: in.Tool, Category: in.Category, Full: in.Full, Notice: in.Notice}
	var out PublishRoundResult
	deadline := time.Now().Add(5 * time.Second)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		res, err := a.Store.ReportChanges(ctx, report)
		if err != nil {
			return out, err
		}
		out.Event = out.Event || res.Event
		out.To = res.To
		a.wake(ctx, res.Wake, "records.changed")
		if slices.Contains(res.Endpoints, "ats/jobs") {
			// ats/jobs changed: unresolved job links are matched again (a back-office job
			// created before its ATS job links itself once that job appears).
			if n, err := a.Store.RetryUnresolved(ctx, in.IntegrationID); err != nil {
				activity.GetLogger(ctx).Warn("could not match unresolved job links again", "integration_id", in.IntegrationID, "error", err)
			} else if n > 0 {
				activity.GetLogger(ctx).Info("unresolved job links matched", "integration_id", in.IntegrationID, "links", n)
			}
		}
		if !res.Behind {
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, temporal.NewApplicationError("the change feed's horizon is held back by a running transaction: "+res.HeldBy, ErrFeedBehind)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(wait): // the horizon moves when another transaction ends: nothing to wait on
		}
	}
}

// DeliverInput names the subscription to deliver for.
type DeliverInput struct {
	SubscriptionID string
}

// Delivery outcomes, DeliverResult.Outcome.
const (
	DeliverDrained  = "drained"  // nothing pending
	DeliverMore     = "more"     // the batch's time was up: call again
	DeliverFailed   = "failed"   // an attempt failed: wait RetryIn, then call again
	DeliverPaused   = "paused"   // the subscription is paused
	DeliverDisabled = "disabled" // the subscription is disabled (410, failures, an operator)
	DeliverDeleted  = "deleted"  // the subscription no longer exists
)

// DeliverResult is what one DeliverPending call did. It carries ids and numbers only.
type DeliverResult struct {
	Outcome  string
	Sent     int
	RetryIn  time.Duration // DeliverFailed: the back-off with jitter, or the receiver's Retry-After
	Failures int           // the subscription's consecutive failed attempts
	Error    string        // the last attempt's error (no body content)
}

// deliverBatchTime bounds one DeliverPending call, so the workflow sees pauses and new signals.
const deliverBatchTime = 20 * time.Second

// DeliverPending sends the subscription's pending deliveries in order, each recorded in the
// database after its attempt, until none is left, one fails, the subscription is paused, or the
// batch's time is up. It heartbeats after each attempt: a worker that dies mid-batch has its
// call retried elsewhere, which re-sends the one delivery whose attempt was not recorded with the
// same webhook-id (at least once; receivers dedupe by it).
func (a *Activities) DeliverPending(ctx context.Context, in DeliverInput) (DeliverResult, error) {
	if a.Outbound.Client == nil {
		return DeliverResult{}, temporal.NewNonRetryableApplicationError("this worker delivers no webhooks", ErrInvalidInput, nil)
	}
	var res DeliverResult
	start := time.Now()
	for time.Since(start) < deliverBatchTime {
		sub, err := a.Store.GetSubscription(ctx, in.SubscriptionID)
		if errors.Is(err, store.ErrNotFound) {
			res.Outcome = DeliverDeleted
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.Failures = sub.Failures
		switch sub.State {
		case store.SubscriptionPaused:
			res.Outcome = DeliverPaused
			return res, nil
		case store.SubscriptionDisabled:
			res.Outcome = DeliverDisabled
			return res, nil
		}
		keys := make([][]byte, 0, len(sub.Secrets))
		for _, s := range sub.Secrets {
			k, err := outbound.ParseSecret(s)
			if err != nil {
				return res, temporal.NewNonRetryableApplicationError("a stored secret is not one: "+err.Error(), ErrInvalidInput, nil)
			}
			keys = append(keys, k)
		}
		ds, err := a.Store.PendingDeliveries(ctx, sub.ID, 50)
		if err != nil {
			return res, err
		}
		if len(ds) == 0 {
			res.Outcome = DeliverDrained
			return res, nil
		}
		for _, d := range ds {
			at := time.Now()
			out := a.Outbound.Client.Deliver(ctx, sub.URL, keys, d.ID, at, d.Body())
			if ctx.Err() != nil {
				return res, ctx.Err() // cancelled or timed out: the attempt is not recorded, it is retried
			}
			after, err := a.Store.RecordAttempt(ctx, sub.ID, d.Seq, store.Attempt{At: at, Status: out.Status,
				Delivered: out.Delivered, Gone: out.Gone, Error: out.Error, GiveUpAfter: a.Outbound.GiveUpAfter})
			if err != nil {
				return res, err
			}
			activity.RecordHeartbeat(ctx, res.Sent)
			res.Failures = after.Failures
			switch {
			case out.Delivered:
				a.Outbound.Metrics.observe(d.Type, "delivered", time.Since(at))
				res.Sent++
				continue
			case out.Gone:
				a.Outbound.Metrics.observe(d.Type, "gone", time.Since(at))
			case out.RetryAfter > 0:
				a.Outbound.Metrics.observe(d.Type, "rate_limited", time.Since(at))
			default:
				a.Outbound.Metrics.observe(d.Type, "failed", time.Since(at))
			}
			res.Error = out.Error
			if after.State == store.SubscriptionDisabled {
				activity.GetLogger(ctx).Warn("subscription disabled", "subscription_id", sub.ID, "reason", after.StateReason)
				res.Outcome = DeliverDisabled
				return res, nil
			}
			res.Outcome, res.RetryIn = DeliverFailed, a.retryIn(after.Failures, out.RetryAfter)
			activity.GetLogger(ctx).Info("delivery failed", "subscription_id", sub.ID, "webhook_id", d.ID,
				"status", out.Status, "error", out.Error, "failures", after.Failures, "retry_in", res.RetryIn)
			return res, nil
		}
	}
	res.Outcome = DeliverMore
	return res, nil
}

// retryIn is the wait before the next attempt after failures consecutive failures: the
// receiver's Retry-After when it sent one (capped), otherwise 5 s doubling per failure up to
// MaxBackoff, with ±20% jitter so receivers coming back are not hit by every sender at once.
func (a *Activities) retryIn(failures int, retryAfter time.Duration) time.Duration {
	maxBackoff, maxRetryAfter := a.Outbound.MaxBackoff, a.Outbound.MaxRetryAfter
	if maxBackoff <= 0 {
		maxBackoff = 6 * time.Hour
	}
	if maxRetryAfter <= 0 {
		maxRetryAfter = 24 * time.Hour
	}
	if retryAfter > 0 {
		return min(retryAfter, maxRetryAfter)
	}
	wait := 5 * time.Second
	for i := 1; i < failures && wait < maxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, maxBackoff)
	return time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64())) //nolint:gosec // jitter, not a secret
}

// saveWithEvents records the integration's state and wakes the subscriptions its events concern.
func (a *Activities) saveWithEvents(ctx context.Context, in store.Integration) error {
	wake, err := a.Store.SaveIntegrationEvents(ctx, in)
	if err != nil {
		return err
	}
	a.wake(ctx, wake, "integration event")
	return nil
}
