package webhookgw_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/webhookgw"
	"github.com/kombosync/kombosync/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Postgres|testenv.Temporal) }

const secret = "whsec-current"

type gw struct {
	url  string
	pool *pgxpool.Pool
	tc   client.Client // a working client, to look at workflows
	gw   *webhookgw.Gateway
	reg  *prometheus.Registry
}

func newGateway(t *testing.T, tc client.Client) *gw {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), testenv.Database(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	live := testenv.TemporalClient(t)
	if tc == nil {
		tc = live
	}
	reg := prometheus.NewRegistry()
	g, err := webhookgw.New(webhookgw.Options{Secrets: []string{secret, "whsec-previous"}, Store: store.New(pool),
		Temporal: tc, TaskQueue: testenv.TaskQueue(t), Registry: reg, RelayAge: time.Nanosecond})
	require.NoError(t, err)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return &gw{url: srv.URL + webhookgw.Path, pool: pool, tc: live, gw: g, reg: reg}
}

// integrationID is unique per test: every test shares the dev server.
func integrationID(t *testing.T) string {
	return "personio:" + strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
}

func event(id, typ string, data map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "type": typ, "data": data})
	return b
}

func dataChanged(id, integration string) []byte {
	return event(id, kombo.EventDataChanged, map[string]any{"integration_id": integration, "integration_tool": "personio",
		"integration_category": "HRIS", "changed_models": []map[string]string{{"name": "hris_employees"}}})
}

func (g *gw) post(t *testing.T, body []byte, sig string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.url, bytes.NewReader(body))
	require.NoError(t, err)
	if sig != "" {
		req.Header.Set(kombo.SignatureHeader, sig)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]string
	raw, _ := io.ReadAll(resp.Body)
	require.NoError(t, json.Unmarshal(raw, &out), "answers are JSON: %s", raw)
	return resp.StatusCode, out
}

func (g *gw) inbox(t *testing.T) int {
	var n int
	require.NoError(t, g.pool.QueryRow(t.Context(), "select count(*) from kombo.webhook_events").Scan(&n))
	return n
}

// signals counts the kombo-event signals in the integration's workflow history; 0 when it does
// not exist.
func (g *gw) signals(t *testing.T, integration string) int {
	t.Helper()
	it := g.tc.GetWorkflowHistory(t.Context(), workflows.IntegrationWorkflowID(integration), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		e, err := it.Next()
		if _, ok := err.(*serviceerror.NotFound); ok {
			return 0
		}
		require.NoError(t, err)
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.SignalName == workflows.SignalKomboEvent {
			n++
		}
	}
	return n
}

func TestAcceptedEventIsStoredAndSignaled(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	id := integrationID(t)
	body := dataChanged("ev-1", id)
	code, out := g.post(t, body, kombo.Sign(secret, body))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "accepted", out["status"])

	ev, err := store.New(g.pool).WebhookEvent(t.Context(), "ev-1")
	require.NoError(t, err)
	require.Equal(t, id, ev.IntegrationID)
	require.NotNil(t, ev.SignaledAt)
	require.Equal(t, 1, g.signals(t, id))

	desc, err := g.tc.DescribeWorkflowExecution(t.Context(), workflows.IntegrationWorkflowID(id), "")
	require.NoError(t, err)
	require.Equal(t, workflows.IntegrationSyncType, desc.WorkflowExecutionInfo.Type.Name)
	require.Equal(t, 1.0, counter(t, g, "data-changed", "accepted"))
}

func TestDuplicateIsAnsweredOKAndSignaledOnce(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	id := integrationID(t)
	body := dataChanged("ev-dup", id)
	for range 3 {
		code, _ := g.post(t, body, kombo.Sign(secret, body))
		require.Equal(t, http.StatusOK, code)
	}
	require.Equal(t, 1, g.inbox(t))
	require.Equal(t, 1, g.signals(t, id))
	require.Equal(t, 2.0, counter(t, g, "data-changed", "duplicate"))
}

func TestEitherRotationSecretVerifies(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	body := dataChanged("ev-old-secret", integrationID(t))
	code, _ := g.post(t, body, kombo.Sign("whsec-previous", body))
	require.Equal(t, http.StatusOK, code)
}

func TestVerifiedEventsNobodyActsOnAreAcceptedAndStored(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	for _, body := range [][]byte{
		event("ev-cff", kombo.EventConnectionFlowFailed, map[string]any{"integration_tool": "personio", "integration_category": "HRIS"}),
		event("ev-future", "brand-new-event-type", map[string]any{"whatever": 1}),
	} {
		code, out := g.post(t, body, kombo.Sign(secret, body))
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ignored", out["status"])
	}
	require.Equal(t, 2, g.inbox(t), "kept for the record")
	n, err := g.gw.Relay(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "and never relayed")
}

// Every bad input of docs/ARCHITECTURE.md section 5 gets its answer and writes nothing.
func TestBadInputIsRejectedAndWritesNothing(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	id := integrationID(t)
	valid := dataChanged("ev-bad", id)
	signed := func(b []byte) string { return kombo.Sign(secret, b) }
	cases := []struct {
		name   string
		body   []byte
		sig    string
		status int
	}{
		{"missing signature", valid, "", http.StatusUnauthorized},
		{"signature by another secret", valid, kombo.Sign("not-our-secret", valid), http.StatusUnauthorized},
		{"signature of another body", valid, signed([]byte(`{}`)), http.StatusUnauthorized},
		{"padded signature", valid, signed(valid) + "=", http.StatusUnauthorized},
		{"garbage signature", valid, "!!!", http.StatusUnauthorized},
		{"body changed after signing", append(bytes.Clone(valid), ' '), signed(valid), http.StatusUnauthorized},
		{"malformed json", []byte(`{"id": "x", `), signed([]byte(`{"id": "x", `)), http.StatusBadRequest},
		{"not an object", []byte(`[1,2]`), signed([]byte(`[1,2]`)), http.StatusBadRequest},
		{"missing id", event("", kombo.EventDataChanged, map[string]any{"integration_id": id}), "", http.StatusBadRequest},
		{"missing type", event("ev-x", "", map[string]any{"integration_id": id}), "", http.StatusBadRequest},
		{"missing data", []byte(`{"id":"ev-x","type":"data-changed"}`), "", http.StatusBadRequest},
		{"data-changed without integration", event("ev-x", kombo.EventDataChanged, map[string]any{"changed_models": []any{}}), "", http.StatusBadRequest},
		{"sync-finished without state", event("ev-x", kombo.EventSyncFinished, map[string]any{"integration_id": id}), "", http.StatusBadRequest},
		{"too large", append([]byte(`{"id":"ev-big","type":"data-changed","data":{"pad":"`), bytes.Repeat([]byte("x"), webhookgw.MaxBody)...), "", http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sig := c.sig
			if sig == "" && c.status != http.StatusUnauthorized {
				sig = signed(c.body)
			}
			code, out := g.post(t, c.body, sig)
			require.Equal(t, c.status, code, "answer: %v", out)
			require.NotEmpty(t, out["detail"], "the answer says what is wrong")
		})
	}

	t.Run("too large without a content length", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), webhookgw.MaxBody+1)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.url, io.MultiReader(bytes.NewReader(big)))
		require.NoError(t, err)
		req.ContentLength = -1 // chunked
		req.Header.Set(kombo.SignatureHeader, signed(big))
		code, _ := do(t, req)
		require.Equal(t, http.StatusRequestEntityTooLarge, code)
	})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		t.Run("method "+m, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), m, g.url, bytes.NewReader(valid))
			require.NoError(t, err)
			req.Header.Set(kombo.SignatureHeader, signed(valid))
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
			require.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
		})
	}

	require.Zero(t, g.inbox(t), "a rejected request stores nothing")
	require.Zero(t, g.signals(t, id), "and signals nothing")
}

func TestNoSecretNoGateway(t *testing.T) {
	_, err := webhookgw.New(webhookgw.Options{Secrets: []string{"", ""}, Store: &store.Store{}, Temporal: testenv.TemporalClient(t), TaskQueue: "q"})
	require.ErrorContains(t, err, "a webhook secret is required")
}

// While Temporal is unreachable an event is stored and answered 503 (Kombo retries); the relay
// signals it once Temporal is back, even if Kombo never retries.
func TestTemporalDownStoresThenRelays(t *testing.T) {
	t.Parallel()
	port, err := localstack.FreePort()
	require.NoError(t, err)
	down, err := client.NewLazyClient(client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", port)})
	require.NoError(t, err)
	t.Cleanup(down.Close)
	g := newGateway(t, down)
	id := integrationID(t)
	body := dataChanged("ev-while-down", id)
	code, out := g.post(t, body, kombo.Sign(secret, body))
	require.Equal(t, http.StatusServiceUnavailable, code, "%v", out)

	ev, err := store.New(g.pool).WebhookEvent(t.Context(), "ev-while-down")
	require.NoError(t, err, "the verified event is kept")
	require.Nil(t, ev.SignaledAt)
	require.Equal(t, 1, ev.Attempts)

	// Temporal is back: a gateway on the same database relays it.
	up, err := webhookgw.New(webhookgw.Options{Secrets: []string{secret}, Store: store.New(g.pool),
		Temporal: testenv.TemporalClient(t), TaskQueue: testenv.TaskQueue(t), RelayAge: time.Nanosecond})
	require.NoError(t, err)
	n, err := up.Relay(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, g.signals(t, id))
	ev, err = store.New(g.pool).WebhookEvent(t.Context(), "ev-while-down")
	require.NoError(t, err)
	require.NotNil(t, ev.SignaledAt)

	// Kombo's own retry after the 503 is a duplicate now.
	srv := httptest.NewServer(up)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+webhookgw.Path, bytes.NewReader(body))
	req.Header.Set(kombo.SignatureHeader, kombo.Sign(secret, body))
	code, out = do(t, req)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "duplicate", out["status"])
	require.Equal(t, 1, g.signals(t, id))
}

// Kombo's retry of an event that was stored but not signaled signals it then.
func TestRetriedUnsignaledEventIsSignaledByTheRetry(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	id := integrationID(t)
	body := dataChanged("ev-retry", id)
	_, err := store.New(g.pool).InsertWebhookEvent(t.Context(), store.InboxEvent{ID: "ev-retry", Type: kombo.EventDataChanged,
		IntegrationID: id, Payload: body, ReceivedAt: time.Now()}, true)
	require.NoError(t, err)
	code, out := g.post(t, body, kombo.Sign(secret, body))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "accepted", out["status"])
	require.Equal(t, 1, g.signals(t, id))
}

func TestPostgresDownAnswers503(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	g.pool.Close()
	id := integrationID(t)
	body := dataChanged("ev-nodb", id)
	code, _ := g.post(t, body, kombo.Sign(secret, body))
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Zero(t, g.signals(t, id), "an event that could not be stored is not signaled: Kombo retries it")
}

// counter reads kombosync_webhooks_total{type, outcome}.
func counter(t *testing.T, g *gw, typ, outcome string) float64 {
	t.Helper()
	mfs, err := g.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "kombosync_webhooks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == typ && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no kombosync_webhooks_total{type=%q,outcome=%q}", typ, outcome)
	return 0
}
