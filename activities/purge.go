package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
)

// PurgeIntegration removes a deleted integration's rows once its retention period has passed.
func (a *Activities) PurgeIntegration(ctx context.Context, integrationID string) (int64, error) {
	n, err := heartbeating(ctx, func() (int64, error) { return a.Store.PurgeIntegration(ctx, integrationID) })
	if err == nil {
		activity.GetLogger(ctx).Info("purged a deleted integration", "integration_id", integrationID, "records", n)
	}
	return n, err
}
