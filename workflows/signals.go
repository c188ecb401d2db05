package workflows

import (
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// KomboEvent is the kombo-event signal: one verified webhook, reduced to what IntegrationSync acts
// on. Signals stay small (ids and names), never the whole body.
type KomboEvent struct {
	ID            string
	Type          string
	IntegrationID string
	Tool          string
	Category      string // HRIS, ATS, …
	ReceivedAt    time.Time

	ChangedModels    []string // data-changed: the changed models' names
	SyncState        string   // sync-finished: Kombo's sync_state
	SyncID           string   // sync-finished: Kombo's sync_id
	IntegrationState string   // integration-state-changed: ACTIVE, INVALID, INACTIVE
	// StateUpdatedAt is the integration-state-changed's data.updated_at: a state older than the
	// one applied last changes nothing (Kombo and the relay may deliver them out of order).
	StateUpdatedAt *time.Time
}

// EventFromWebhook turns a parsed webhook into its signal. ok is false for events that concern
// no integration (connection-flow-failed, types this version does not know): nothing to signal.
func EventFromWebhook(ev kombo.Event, receivedAt time.Time) (KomboEvent, bool) {
	out := KomboEvent{ID: ev.ID, Type: ev.Type, IntegrationID: ev.IntegrationID(), ReceivedAt: receivedAt.UTC()}
	p, err := ev.Payload()
	if err != nil || out.IntegrationID == "" {
		return KomboEvent{}, false
	}
	switch p := p.(type) {
	case *kombo.DataChanged:
		out.Tool, out.Category = p.IntegrationTool, p.IntegrationCategory
		for _, m := range p.ChangedModels {
			out.ChangedModels = append(out.ChangedModels, m.Name)
		}
	case *kombo.SyncFinished:
		out.Tool, out.Category, out.SyncState, out.SyncID = p.IntegrationTool, p.IntegrationCategory, p.SyncState, p.SyncID
	case *kombo.RemoteEventReceived:
		out.Tool, out.Category = p.IntegrationTool, p.IntegrationCategory
	case *kombo.IntegrationCreated:
		out.Tool, out.Category = p.Tool, p.Category
	case *kombo.IntegrationDeleted:
		out.Tool, out.Category = p.Tool, p.Category
	case *kombo.IntegrationStateChanged:
		out.Tool, out.Category, out.IntegrationState, out.StateUpdatedAt = p.IntegrationTool, p.IntegrationCategory, p.State, p.UpdatedAt
	default:
		return KomboEvent{}, false
	}
	return out, true
}

// SyncNowRequest is the sync-now signal: fetch now, without waiting for the debounce window.
type SyncNowRequest struct {
	// Endpoints ("hris/employees") to fetch; empty means every configured endpoint.
	Endpoints []string
	Reason    string
	// AfterKomboSync, when set, is the id of a sync Kombo runs from the source tool (POST
	// /force-sync, `starter integration sync --upstream`): the endpoints are fetched when its
	// sync-finished arrives, whatever KOMBO_TRIGGERS says, not now.
	AfterKomboSync string
	KomboSyncType  string // FULL or DELTA, as Kombo answered; for the status
}

// UpstreamWait is a sync Kombo runs from the source tool that the workflow waits for, to fetch
// Endpoints when its sync-finished arrives (SyncNowRequest.AfterKomboSync).
type UpstreamWait struct {
	SyncID      string
	Type        string
	Endpoints   []string
	RequestedAt time.Time
}

// PauseRequest is the pause signal: no fetch starts until resume. Events keep accumulating.
type PauseRequest struct {
	Reason string
}

// ResumeRequest is the resume signal. It also ends an auth_failed or Kombo-inactive wait and any
// retry back-off: an operator's "try again now".
type ResumeRequest struct {
	Reason string
}

// ReconcileRequest is the reconcile signal: run a full pass as soon as no delta runs.
type ReconcileRequest struct {
	// ConfirmSweep lets the pass's sweep delete more than SWEEP_MAX_SHARE of an endpoint's rows.
	ConfirmSweep bool
	Reason       string
}
