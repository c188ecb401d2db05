package workflows

import (
	"context"
	"fmt"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
	"go.temporal.io/sdk/client"
)

// SignalWithStart delivers a signal to an integration's workflow, starting the workflow first if
// none runs. The gateway, the worker's reconciliation and the starter CLI all use it. It runs in
// clients, never in workflow code.
func SignalWithStart(ctx context.Context, c client.Client, taskQueue, integrationID, tool, category, signal string, arg any) error {
	_, err := c.SignalWithStartWorkflow(ctx, IntegrationWorkflowID(integrationID), signal, arg,
		StartOptions(integrationID, tool, category, taskQueue), IntegrationSyncType,
		IntegrationSyncInput{IntegrationID: integrationID, Tool: tool, Category: category})
	if err != nil {
		return fmt.Errorf("signal-with-start %s: %w", IntegrationWorkflowID(integrationID), err)
	}
	return nil
}

// ReconcileIntegration is the weekly reconciliation's message to one integration: what Kombo said
// of it when asked (as a kombo-event, so a lost integration-state-changed or integration-deleted
// is caught up), then a reconcile signal for a full pass, unless Kombo no longer knows it.
func ReconcileIntegration(ctx context.Context, c client.Client, taskQueue string, ref store.IntegrationRef, reason string,
	state activities.KomboState) error {
	if state.Checked {
		ev := KomboEvent{ID: fmt.Sprintf("reconcile-state:%s:%d", ref.ID, state.At.UnixMilli()), IntegrationID: ref.ID,
			Tool: ref.Tool, Category: ref.Category, ReceivedAt: state.At.UTC()}
		if state.Found {
			at := state.At.UTC()
			ev.Type, ev.IntegrationState, ev.StateUpdatedAt = kombo.EventIntegrationStateChanged, state.State, &at
		} else {
			ev.Type = kombo.EventIntegrationDeleted
		}
		if err := SignalWithStart(ctx, c, taskQueue, ref.ID, ref.Tool, ref.Category, SignalKomboEvent, ev); err != nil {
			return err
		}
		if !state.Found {
			return nil
		}
	}
	return SignalWithStart(ctx, c, taskQueue, ref.ID, ref.Tool, ref.Category, SignalReconcile, ReconcileRequest{Reason: reason})
}
