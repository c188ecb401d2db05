package komboemu

import (
	"encoding/json"
	"net/http"

	"github.com/kombosync/kombosync/kombo"
)

// serveIntegration answers GET /v1/integrations/{integration_id} as Kombo does: the integration's
// state ("status") and setup status, its tool and end user; 404 PLATFORM.INTEGRATION_NOT_FOUND
// for one that does not exist or was deleted.
func (e *Emulator) serveIntegration(w http.ResponseWriter, r *http.Request) {
	e.answer(w, r, e.integrationAnswer)
}

func (e *Emulator) integrationAnswer(r *http.Request) ([]byte, *apiError) {
	if !e.authorized(r) {
		return nil, &apiError{status: 401, code: kombo.CodePlatformAuthInvalid, message: "The API key is invalid."}
	}
	id := r.PathValue("integration_id")
	i, ok := e.integrations[id]
	if !ok || i.deleted {
		return nil, &apiError{status: 404, code: kombo.CodeIntegrationNotFound, message: "No integration with ID " + id + " exists."}
	}
	setup := "COMPLETED"
	if i.firstSyncPending {
		setup = "FINAL_SYNC_PENDING"
	}
	b, err := json.Marshal(map[string]any{"status": "success", "data": map[string]any{
		"id": i.id,
		"tool": map[string]any{"id": i.tool, "label": i.tool, "internal_label": nil,
			"logo_url": "https://storage.googleapis.com/kombo-assets/integrations/" + i.tool + "/logo.svg",
			"icon_url": "https://storage.googleapis.com/kombo-assets/integrations/" + i.tool + "/icon.svg"},
		"category":        string(i.category),
		"status":          i.state,
		"setup_status":    setup,
		"end_user":        endUserJSON(i.endUser),
		"scope_config":    map[string]any{"id": "emulator-scope", "name": nil},
		"data_expired_at": nil,
		"created_at":      kombo.FormatTime(i.createdAt),
		"beta":            false,
		"read_models":     []any{},
		"write_actions":   []any{},
	}})
	if err != nil {
		panic("komboemu: render integration: " + err.Error()) // only our own values are in it
	}
	return b, nil
}
