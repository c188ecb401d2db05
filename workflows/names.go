// Package workflows defines kombosync's Temporal workflows and the names other programs rely on
// (docs/ARCHITECTURE.md section 3): workflow types and IDs, signals, queries and search attributes.
// Everything in this package runs inside workflows and must stay deterministic.
package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Workflow types.
const (
	IntegrationSyncType = "IntegrationSync"
	FullSyncType        = "FullSync"
	ReconcileType       = "Reconcile"
	RetentionType       = "Retention"
)

// WeeklyReconcileScheduleID is the Temporal Schedule that launches Reconcile.
const WeeklyReconcileScheduleID = "kombo-weekly-reconcile"

// DailyRetentionScheduleID is the Temporal Schedule that launches Retention.
const DailyRetentionScheduleID = "kombo-daily-retention"

// Signal and query names.
const (
	SignalKomboEvent = "kombo-event"
	SignalSyncNow    = "sync-now"
	SignalReconcile  = "reconcile"
	SignalPause      = "pause"
	SignalResume     = "resume"
	QueryStatus      = "status"
)

// IntegrationWorkflowID is the ID of an integration's long-lived IntegrationSync workflow.
// Integration ids contain ':' (personio:CBNMt7…) and are used as they are.
func IntegrationWorkflowID(integrationID string) string {
	return "kombo-integration:" + integrationID
}

// FullSyncWorkflowID is the ID of one full pass of an integration, started at the given time.
func FullSyncWorkflowID(integrationID string, startedAt time.Time) string {
	return fmt.Sprintf("kombo-fullsync:%s:%d", integrationID, startedAt.Unix())
}

// Search attributes, registered on the server by the local stack and documented in the README.
var (
	SAIntegrationID = temporal.NewSearchAttributeKeyKeyword("KomboIntegrationId")
	SATool          = temporal.NewSearchAttributeKeyKeyword("KomboTool")
	SACategory      = temporal.NewSearchAttributeKeyKeyword("KomboCategory")
	SASyncState     = temporal.NewSearchAttributeKeyKeyword("KomboSyncState")
	SALastSyncAt    = temporal.NewSearchAttributeKeyTime("KomboLastSyncAt")
)

// SearchAttributeDefinitions lists every search attribute with its server type, in the
// NAME=Type form of `temporal server start-dev --search-attribute`.
func SearchAttributeDefinitions() []string {
	return []string{
		SAIntegrationID.GetName() + "=Keyword",
		SATool.GetName() + "=Keyword",
		SACategory.GetName() + "=Keyword",
		SASyncState.GetName() + "=Keyword",
		SALastSyncAt.GetName() + "=Datetime",
	}
}

// Register adds every workflow under its contract name: the worker and the replay tests use it,
// so the two cannot disagree.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(IntegrationSync, workflow.RegisterOptions{Name: IntegrationSyncType})
	r.RegisterWorkflowWithOptions(FullSync, workflow.RegisterOptions{Name: FullSyncType})
	r.RegisterWorkflowWithOptions(Reconcile, workflow.RegisterOptions{Name: ReconcileType})
	r.RegisterWorkflowWithOptions(Retention, workflow.RegisterOptions{Name: RetentionType})
	r.RegisterWorkflowWithOptions(SubscriptionDelivery, workflow.RegisterOptions{Name: SubscriptionDeliveryType})
	r.RegisterWorkflowWithOptions(Action, workflow.RegisterOptions{Name: ActionType})
}

// StartOptions are the options every starter of an integration's workflow uses (the gateway's
// signal-with-start, the starter CLI): its ID, the search attributes known up front and the
// summary the Temporal UI lists.
func StartOptions(integrationID, tool, category, taskQueue string) client.StartWorkflowOptions {
	sas := []temporal.SearchAttributeUpdate{SAIntegrationID.ValueSet(integrationID)}
	if tool != "" {
		sas = append(sas, SATool.ValueSet(tool))
	}
	if category != "" {
		sas = append(sas, SACategory.ValueSet(category))
	}
	summary := "Kombo integration " + integrationID
	if tool != "" || category != "" {
		summary += " (" + strings.TrimSpace(tool+" "+category) + ")"
	}
	return client.StartWorkflowOptions{
		ID:                    IntegrationWorkflowID(integrationID),
		TaskQueue:             taskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(sas...),
		StaticSummary:         summary,
		StaticDetails: "Keeps `kombo.*` in step with Kombo for integration `" + integrationID + "`: " +
			"debounces Kombo's webhooks, fetches the changed endpoints and waits out the first sync. " +
			"Query `status` for pending endpoints, watermarks and the last runs.",
	}
}
