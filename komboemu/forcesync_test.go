package komboemu_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

func post(t *testing.T, srv *httptest.Server, path, integration, body string) (int, []byte) {
	t.Helper()
	return call(t, srv, http.MethodPost, path, integration, body)
}

// syncFinishedIDs are the sync ids of the sync-finished webhooks sent for an integration so far.
func syncFinishedIDs(t *testing.T, emu *komboemu.Emulator, sink *webhookSink, integration string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, emu.WaitWebhooks(ctx))
	var ids []string
	for _, body := range sink.all() {
		var ev kombo.Event
		require.NoError(t, json.Unmarshal(body, &ev))
		if ev.Type != kombo.EventSyncFinished || ev.IntegrationID() != integration {
			continue
		}
		p, err := ev.Payload()
		require.NoError(t, err)
		ids = append(ids, p.(*kombo.SyncFinished).SyncID)
	}
	return ids
}

// POST /force-sync answers as Kombo's document says (kombosync's client reads it), keeps one
// sync per integration (already_queued with the running sync's id and type), and the sync ends
// with a sync-finished webhook carrying that id.
func TestForceSyncAnswersAsKomboDocumentsIt(t *testing.T) {
	emu, srv, sink := start(t, komboemu.Options{})
	const id = "personio:force"
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 3}))
	ok := schemaAt(t, "/paths/~1force-sync/post/responses/200/content/application~1json/schema")
	errSchema := schemaAt(t, "/components/responses/ErrorResponseGeneral/content/application~1json/schema")

	status, body := post(t, srv, "/v1/force-sync", id, `{"type": "DELTA"}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	validate(t, ok, body, "force-sync answer")

	client, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1", APIKey: apiKey})
	require.NoError(t, err)
	ctx := context.Background()
	again, err := client.ForceSync(ctx, id, kombo.SyncFull)
	require.NoError(t, err)
	var first struct{ Data kombo.ForcedSync }
	require.NoError(t, json.Unmarshal(body, &first))
	require.False(t, first.Data.AlreadyQueued)
	require.Equal(t, kombo.ForcedSync{AlreadyQueued: true, SyncID: first.Data.SyncID, Type: kombo.SyncDelta}, again,
		"a second request while the first runs answers that sync, with its type")

	require.NoError(t, emu.SendSyncFinished(id, kombo.SyncSucceeded))
	require.Equal(t, []string{first.Data.SyncID}, syncFinishedIDs(t, emu, sink, id))
	next, err := client.ForceSync(ctx, id, "")
	require.NoError(t, err)
	require.False(t, next.AlreadyQueued, "the finished sync no longer blocks a new one")
	require.NotEqual(t, first.Data.SyncID, next.SyncID)
	require.Equal(t, kombo.SyncFull, next.Type, "FULL is Kombo's default type")

	for _, c := range []struct {
		integration, body string
		status            int
	}{
		{id, `{"type": "HOURLY"}`, 400},
		{id, `{"type": `, 400},
		{"", `{}`, 400},
		{"personio:nope", `{}`, 404},
	} {
		status, body := post(t, srv, "/v1/force-sync", c.integration, c.body)
		require.Equal(t, c.status, status, "%s %s: %s", c.integration, c.body, body)
		validate(t, errSchema, body, "force-sync error")
	}
	_, err = client.ForceSync(ctx, "personio:nope", "")
	var apiErr *kombo.APIError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, kombo.CodeIntegrationNotFound, apiErr.Code)
	_, err = client.ForceSync(ctx, id, "delta")
	require.ErrorContains(t, err, "FULL or DELTA", "the client refuses a type Kombo does not know before sending")
}

// An integration whose first sync runs answers already_queued with that sync, which
// FinishFirstSync ends under the same id; with ForcedSyncDuration a forced sync ends by itself.
func TestForceSyncOfTheFirstSyncAndBySelf(t *testing.T) {
	emu, srv, sink := start(t, komboemu.Options{ForcedSyncDuration: 20 * time.Millisecond})
	client, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1", APIKey: apiKey})
	require.NoError(t, err)
	ctx := context.Background()

	const pending = "personio:first"
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: pending, Category: kombo.CategoryHRIS, Records: 1, FirstSyncPending: true}))
	fs, err := client.ForceSync(ctx, pending, kombo.SyncDelta)
	require.NoError(t, err)
	require.Equal(t, kombo.ForcedSync{AlreadyQueued: true, SyncID: fs.SyncID, Type: kombo.SyncFull}, fs)
	require.NoError(t, emu.FinishFirstSync(pending))
	require.Equal(t, []string{fs.SyncID}, syncFinishedIDs(t, emu, sink, pending))

	const auto = "personio:auto"
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: auto, Category: kombo.CategoryHRIS, Records: 1}))
	fs, err = client.ForceSync(ctx, auto, "")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ids := syncFinishedIDs(t, emu, sink, auto)
		return len(ids) == 1 && ids[0] == fs.SyncID
	}, 10*time.Second, 10*time.Millisecond)
}
