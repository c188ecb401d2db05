package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/store"
)

// Retention are the worker's personal-data retention settings (README "Personal data"). A zero
// duration switches its step off.
type Retention struct {
	DeletedRecords time.Duration // DELETED_RECORD_RETENTION
	ChangeValues   time.Duration // CHANGE_VALUES_RETENTION
	WebhookEvents  time.Duration // WEBHOOK_EVENTS_RETENTION
	ActionPayloads time.Duration // ACTION_PAYLOAD_RETENTION
	BatchSize      int           // RETENTION_BATCH_SIZE: rows per transaction
	BatchPause     time.Duration // RETENTION_BATCH_PAUSE: between two batches
}

// RetentionPlan is what the run needs from the worker's settings, recorded in its history.
type RetentionPlan struct {
	HeartbeatTimeout time.Duration
}

// StartRetention records the retention run (its counts row) and returns its plan.
func (a *Activities) StartRetention(ctx context.Context, runID string) (RetentionPlan, error) {
	if err := a.Store.StartRetentionRun(ctx, runID); err != nil {
		return RetentionPlan{}, err
	}
	return RetentionPlan{HeartbeatTimeout: a.Settings.FetchHeartbeatTimeout}, nil
}

// FinishRetention marks the run finished and returns what it did, as Postgres counted it.
func (a *Activities) FinishRetention(ctx context.Context, runID string) (store.RetentionCounts, error) {
	c, err := a.Store.FinishRetentionRun(ctx, runID)
	if err == nil {
		activity.GetLogger(ctx).Info("retention run finished", "run_id", runID, "policy_rows", c.PolicyRows,
			"policy_changes", c.PolicyChanges, "tombstoned", c.Tombstoned, "changes_redacted", c.ChangesRedacted,
			"webhooks_deleted", c.WebhooksDeleted, "deliveries_deleted", c.DeliveriesDeleted,
			"action_payloads_removed", c.ActionPayloadsRemoved)
	}
	return c, err
}

// RetainStepInput is one call of a retention step: batches until the step is done or the time
// budget is spent.
type RetainStepInput struct {
	RunID string
	Step  string // store.RetainPolicy, RetainDeleted, RetainChanges or RetainWebhooks
}

// retainStepBudget bounds one RetainStep call; the workflow calls again while the step is not
// done, so a long step shows its progress in the history and a retry redoes little.
const retainStepBudget = time.Minute

// RetainStepResult is what the call did.
type RetainStepResult struct {
	Counts store.RetentionCounts
	Done   bool
}

// RetainStep runs batches of a retention step. Each batch is one transaction that also adds to
// the run's counts, and is heartbeated after its commit: a worker killed mid-call loses at most
// the batch under way, which its retry does again from what Postgres holds (the rows it had not
// committed still match), so nothing is skipped or done twice.
func (a *Activities) RetainStep(ctx context.Context, in RetainStepInput) (RetainStepResult, error) {
	limit := a.Retention.BatchSize
	if limit <= 0 {
		limit = 1000
	}
	deadline := time.Now().Add(retainStepBudget)
	var res RetainStepResult
	stop := heartbeatEvery(ctx, nil) // also while a long batch runs
	defer stop()
	record := func(c store.RetentionCounts) {
		res.Counts = res.Counts.Add(c)
		a.Metrics.retained(c)
		activity.RecordHeartbeat(ctx, res.Counts)
	}
	pause := func() error { // between two batches, never after the last
		if a.Retention.BatchPause <= 0 {
			return nil
		}
		select {
		case <-time.After(a.Retention.BatchPause):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if in.Step == store.RetainPolicy {
		eps, err := a.Store.PolicyEndpoints(ctx)
		if err != nil {
			return res, err
		}
		for _, ep := range eps {
			for done := false; !done; {
				if time.Now().After(deadline) {
					return res, nil
				}
				var c store.RetentionCounts
				if c, done, err = a.Store.PolicyBatch(ctx, in.RunID, ep, limit); err != nil {
					return res, err
				}
				record(c)
				if !done {
					if err := pause(); err != nil {
						return res, err
					}
				}
			}
		}
		res.Done = true
		return res, nil
	}
	var keep time.Duration
	switch in.Step {
	case store.RetainDeleted:
		keep = a.Retention.DeletedRecords
	case store.RetainChanges:
		keep = a.Retention.ChangeValues
	case store.RetainWebhooks:
		keep = a.Retention.WebhookEvents
	case store.RetainActionPayloads:
		keep = a.Retention.ActionPayloads
	default:
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("unknown retention step %q", in.Step), ErrInvalidInput, nil)
	}
	if keep <= 0 {
		res.Done = true // switched off
		return res, nil
	}
	now, err := a.Store.DatabaseTime(ctx)
	if err != nil {
		return res, err
	}
	cutoff := now.Add(-keep)
	for time.Now().Before(deadline) {
		c, rows, err := a.Store.RetainBatch(ctx, in.RunID, in.Step, cutoff, limit)
		if err != nil {
			return res, err
		}
		record(c)
		if rows < limit {
			res.Done = true
			return res, nil
		}
		if err := pause(); err != nil {
			return res, err
		}
	}
	return res, nil
}
