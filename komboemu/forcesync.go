package komboemu

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// queuedSync is a sync of the integration that Kombo runs or has queued: POST /force-sync
// answers its id (already_queued) until it ends. The first sync of an integration created with
// FirstSyncPending is one too.
type queuedSync struct {
	id  string
	typ string
}

// serveForceSync answers POST /v1/force-sync as Kombo documents it: header X-Integration-Id,
// body {"type": "FULL"|"DELTA"} (FULL when absent); one sync runs or is queued per integration,
// so a second request answers already_queued with the first one's id and type. The sync ends
// with a sync-finished webhook carrying its id: after Options.ForcedSyncDuration when set,
// otherwise when SendSyncFinished (the control API's sync-finished) or FinishFirstSync is
// called.
func (e *Emulator) serveForceSync(w http.ResponseWriter, r *http.Request) {
	e.answer(w, r, e.forceSyncAnswer)
}

func (e *Emulator) forceSyncAnswer(r *http.Request) ([]byte, *apiError) {
	if !e.authorized(r) {
		return nil, &apiError{status: 401, code: kombo.CodePlatformAuthInvalid, message: "The API key is invalid."}
	}
	iid := r.Header.Get("X-Integration-Id")
	if iid == "" {
		return nil, invalid("The X-Integration-Id header is required.")
	}
	var in struct {
		Type *string `json:"type"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		return nil, invalid("The request body is not valid: %v", err)
	}
	typ := kombo.SyncFull
	if in.Type != nil {
		if *in.Type != kombo.SyncFull && *in.Type != kombo.SyncDelta {
			return nil, invalid(`"type" must be FULL or DELTA, not %q.`, *in.Type)
		}
		typ = *in.Type
	}
	i, apiErr := e.usableIntegration(iid)
	if apiErr != nil {
		return nil, apiErr
	}
	already := true
	if i.queued == nil {
		if i.firstSyncPending {
			i.queued = &queuedSync{id: i.gen.id(), typ: kombo.SyncFull} // the first sync, running since the setup
		} else {
			already = false
			i.queued = &queuedSync{id: i.gen.id(), typ: typ}
			if d := e.opts.ForcedSyncDuration; d > 0 {
				id := i.queued.id
				time.AfterFunc(d, func() { e.finishQueued(iid, id) })
			}
		}
	}
	b, err := json.Marshal(map[string]any{"status": "success", "data": map[string]any{
		"already_queued": already, "sync_id": i.queued.id, "type": i.queued.typ}})
	if err != nil {
		panic("komboemu: render force-sync: " + err.Error()) // only our own values are in it
	}
	return b, nil
}

// finishQueued ends the forced sync id with SUCCEEDED unless it ended already.
func (e *Emulator) finishQueued(integrationID, id string) {
	_ = e.withIntegration(integrationID, func(i *integration) {
		if i.queued != nil && i.queued.id == id {
			e.sendSyncFinished(i, kombo.SyncSucceeded)
		}
	})
}
