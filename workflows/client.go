package workflows

import (
	"context"
	"fmt"

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
