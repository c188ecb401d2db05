package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// markDeleted stops syncing: nothing pending, no full pass, the purge due after the retention.
func (s *syncer) markDeleted(at time.Time) {
	purge := at.Add(s.settings.DeletedRetention)
	s.st.Deleted, s.st.DeletedAt, s.st.PurgeAt = true, &at, &purge
	s.st.Pending, s.st.PendingSince, s.st.QuietUntil = nil, nil, nil
	s.st.ReconcileWanted, s.st.RetryAt = false, nil
}

// purgeIfDue removes a deleted integration's rows once the retention period has passed and no
// fetch is still running; done says the workflow is complete.
func (s *syncer) purgeIfDue(ctx workflow.Context) (done bool, err error) {
	if !s.st.Deleted || s.st.PurgeAt == nil || workflow.Now(ctx).Before(*s.st.PurgeAt) || len(s.inflight) > 0 || s.child != nil {
		return false, nil
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    heartbeatOrDefault(s.settings.FetchHeartbeatTimeout),
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 10 * time.Minute},
		Summary:             "purge deleted integration",
	})
	var n int64
	if err := workflow.ExecuteActivity(actx, acts.PurgeIntegration, s.id).Get(ctx, &n); err != nil {
		return true, err
	}
	s.purged = true
	s.publish(ctx)
	s.logger.Info("deleted integration purged; workflow complete", "records", n)
	return true, nil
}
