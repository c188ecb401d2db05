package kombo

import (
	"context"
	"encoding/json"
	"fmt"
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
