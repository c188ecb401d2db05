package kombo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Integration is what GET /integrations/{integration_id} says of an integration, as far as the
// sync needs it.
type Integration struct {
	ID          string
	Tool        string
	Category    string
	State       string // ACTIVE, INVALID or INACTIVE (Kombo's "status")
	SetupStatus string // INCOMPLETE, FINAL_SYNC_PENDING or COMPLETED
}

// GetIntegration asks Kombo for an integration's state. An integration Kombo does not know (any
// more) is an *APIError with code PLATFORM.INTEGRATION_NOT_FOUND.
func (c *Client) GetIntegration(ctx context.Context, integrationID string) (Integration, error) {
	u := *c.base
	u.Path += "/integrations/" + url.PathEscape(integrationID)
	body, err := c.get(ctx, u.String(), "")
	if err != nil {
		return Integration{}, fmt.Errorf("get integration %s: %w", integrationID, err)
	}
	var answer struct {
		Status string `json:"status"`
		Data   *struct {
			ID   string `json:"id"`
			Tool struct {
				ID string `json:"id"`
			} `json:"tool"`
			Category    string `json:"category"`
			Status      string `json:"status"`
			SetupStatus string `json:"setup_status"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Status != "success" || answer.Data == nil || answer.Data.Status == "" {
		return Integration{}, &DecodeError{fmt.Errorf("get integration %s: not an integration answer", integrationID)}
	}
	d := answer.Data
	return Integration{ID: d.ID, Tool: d.Tool.ID, Category: d.Category, State: d.Status, SetupStatus: d.SetupStatus}, nil
}

// Sync types of POST /force-sync.
const (
	SyncFull  = "FULL"
	SyncDelta = "DELTA"
)

// ForcedSync is Kombo's answer to POST /force-sync.
type ForcedSync struct {
	// AlreadyQueued: Kombo runs or queues one sync per integration at a time; SyncID is then
	// that sync's, not a new one.
	AlreadyQueued bool   `json:"already_queued"`
	SyncID        string `json:"sync_id"`
	// Type is what Kombo runs, which may differ from the request (a tool without delta syncs,
	// a sync already running).
	Type string `json:"type"`
}

// ForceSync asks Kombo to sync an integration from its source tool now (POST /force-sync).
// syncType is SyncFull, SyncDelta, or empty for Kombo's default (FULL). Kombo's sync-finished
// webhook with the answer's SyncID says when it ended. Kombo asks not to call it periodically:
// it is for a person's "sync now".
func (c *Client) ForceSync(ctx context.Context, integrationID, syncType string) (ForcedSync, error) {
	if syncType != "" && syncType != SyncFull && syncType != SyncDelta {
		return ForcedSync{}, fmt.Errorf("kombo: sync type must be %s or %s, not %q", SyncFull, SyncDelta, syncType)
	}
	req := map[string]string{}
	if syncType != "" {
		req["type"] = syncType
	}
	body, err := json.Marshal(req)
	if err != nil {
		return ForcedSync{}, err
	}
	u := *c.base
	u.Path += "/force-sync"
	answer, err := c.do(ctx, http.MethodPost, u.String(), integrationID, body)
	if err != nil {
		return ForcedSync{}, fmt.Errorf("force sync of %s: %w", integrationID, err)
	}
	var out struct {
		Status string      `json:"status"`
		Data   *ForcedSync `json:"data"`
	}
	if err := json.Unmarshal(answer, &out); err != nil || out.Status != "success" || out.Data == nil || out.Data.SyncID == "" {
		return ForcedSync{}, &DecodeError{fmt.Errorf("force sync of %s: not a force-sync answer", integrationID)}
	}
	return *out.Data, nil
}
