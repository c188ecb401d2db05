package backoffice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/backoffice"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/store"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Postgres) }

const token = "test-token-0123456789abcdef0123456789"

// apiClient calls the API as the back office would, and checks every request and answer
// against the served OpenAPI document (kin-openapi), so the document cannot drift from the code.
type apiClient struct {
	t      *testing.T
	srv    *httptest.Server
	router routers.Router
	pool   *pgxpool.Pool
	mu     sync.Mutex
	woken  []string // "id now reason"
	api    *backoffice.API
}

func newAPI(t *testing.T) *apiClient { return newAPIWith(t, nil, nil) }

// newAPIWith is newAPI with a Kombo client for live lookups and what asks for a sync.
func newAPIWith(t *testing.T, kc *kombo.Client, syncJobs func(context.Context, string) error) *apiClient {
	return newAPIFull(t, kc, syncJobs, nil)
}

// newAPIFull is newAPIWith with what starts an action's workflow.
func newAPIFull(t *testing.T, kc *kombo.Client, syncJobs func(context.Context, string) error,
	startAction func(ctx context.Context, actionID, kind, integrationID string) error) *apiClient {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), testenv.Database(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	c := &apiClient{t: t, pool: pool}
	api, err := backoffice.New(backoffice.Options{Tokens: []string{"old-token-0123456789abcdef0123456789", token},
		Subscriptions: &outbound.Manager{Store: store.New(pool), Client: outbound.NewClient(outbound.Options{}),
			Wake: func(_ context.Context, id string, now bool, reason string) error {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.woken = append(c.woken, id+" "+map[bool]string{true: "now", false: "later"}[now]+" "+reason)
				return nil
			}}, Kombo: kc, SyncJobs: syncJobs, StartAction: startAction})
	require.NoError(t, err)
	c.api = api
	c.srv = httptest.NewServer(api)
	t.Cleanup(c.srv.Close)

	doc, err := openapi3.NewLoader().LoadFromData(backoffice.OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(t.Context()), "the OpenAPI document is valid")
	doc.Servers = openapi3.Servers{{URL: c.srv.URL}}
	c.router, err = gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return c
}

// do sends a request (body: a JSON string or nil) with the token given ("" for none) and returns
// the status and the decoded body, after checking the answer against the document.
func (c *apiClient) do(method, path, body, tok string) (int, map[string]any) {
	c.t.Helper()
	return c.doWith(method, path, body, tok, nil)
}

// doWith is do with extra request headers.
func (c *apiClient) doWith(method, path, body, tok string, headers map[string]string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.srv.URL+path, rd)
	require.NoError(c.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.srv.Client().Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)

	route, params, err := c.router.FindRoute(req)
	require.NoError(c.t, err, "%s %s is in the OpenAPI document", method, path)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: true}}
	require.NoError(c.t, openapi3filter.ValidateResponse(c.t.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(raw)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}), "%s %s answered %d as documented: %s", method, path, resp.StatusCode, raw)

	var out map[string]any
	if len(raw) > 0 {
		require.NoError(c.t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out
}

func (c *apiClient) count(table string) int {
	var n int
	require.NoError(c.t, c.pool.QueryRow(c.t.Context(), "select count(*) from "+table).Scan(&n))
	return n
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestSubscriptionsThroughTheAPI(t *testing.T) {
	t.Parallel()
	c := newAPI(t)

	status, body := c.do("POST", "/v1/subscriptions", `{"url": "https://app.example/hooks", "event_types": ["records.changed"], "description": "app"}`, token)
	require.Equal(t, http.StatusCreated, status)
	secret := body["secret"].(string)
	_, err := outbound.ParseSecret(secret)
	require.NoError(t, err, "a usable whsec_ secret is made")
	sub := body["subscription"].(map[string]any)
	id := sub["id"].(string)
	require.Equal(t, "active", sub["state"])
	require.EqualValues(t, 1, sub["secrets"])
	require.NotContains(t, sub, "secret", "a subscription never shows its secrets again")

	status, body = c.do("GET", "/v1/subscriptions", "", token)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, body["data"], 1)
	status, body = c.do("GET", "/v1/subscriptions/"+id, "", token)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "https://app.example/hooks", body["url"])

	status, body = c.do("PATCH", "/v1/subscriptions/"+id, `{"event_types": [], "integration_id": "personio:1"}`, token)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []any{}, body["event_types"])
	require.Equal(t, "personio:1", body["integration_id"])

	status, body = c.do("POST", "/v1/subscriptions/"+id+"/pause", `{"reason": "receiver maintenance"}`, token)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "paused", body["state"])
	require.Equal(t, "receiver maintenance", body["state_reason"])
	status, body = c.do("POST", "/v1/subscriptions/"+id+"/resume", "", token)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "active", body["state"])

	status, body = c.do("POST", "/v1/subscriptions/"+id+"/rotate-secret", `{"keep_old": true}`, token)
	require.Equal(t, http.StatusOK, status)
	require.NotEqual(t, secret, body["secret"])
	require.EqualValues(t, 2, body["subscription"].(map[string]any)["secrets"], "old and new sign while the receiver switches")

	status, body = c.do("POST", "/v1/subscriptions/"+id+"/replay", `{"since": "2026-01-01T00:00:00Z"}`, token)
	require.Equal(t, http.StatusOK, status)
	require.EqualValues(t, 0, body["replayed"])
	status, _ = c.do("POST", "/v1/subscriptions/"+id+"/replay", `{"after": {"txid": "10", "seq": 5}}`, token)
	require.Equal(t, http.StatusOK, status)

	status, body = c.do("GET", "/v1/subscriptions/"+id+"/deliveries?limit=10", "", token)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []any{}, body["data"])
	require.Equal(t, "", body["next_cursor"])

	require.Equal(t, []string{id + " later pause", id + " now resume", id + " now replay", id + " now replay"}, c.woken,
		"the delivery workflow is told of each change it acts on")

	status, _ = c.do("DELETE", "/v1/subscriptions/"+id, "", token)
	require.Equal(t, http.StatusNoContent, status)
	status, body = c.do("GET", "/v1/subscriptions/"+id, "", token)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "not_found", errCode(body))
}

func TestTheAPIRefusesBadRequestsAndChangesNothing(t *testing.T) {
	t.Parallel()
	c := newAPI(t)
	status, body := c.do("POST", "/v1/subscriptions", `{"url": "https://app.example/hooks"}`, token)
	require.Equal(t, http.StatusCreated, status)
	id := body["subscription"].(map[string]any)["id"].(string)
	before := c.count("kombo.subscriptions")

	for _, tc := range []struct {
		method, path, body, token string
		status                    int
		code, message             string
	}{
		{"GET", "/v1/subscriptions", "", "", 401, "unauthorized", "bearer token"},
		{"GET", "/v1/subscriptions", "", "wrong-token-0123456789abcdef0123456789", 401, "unauthorized", ""},
		{"POST", "/v1/subscriptions", `{"url": "https://x.example"}`, token[:len(token)-1], 401, "unauthorized", ""},
		{"POST", "/v1/subscriptions", `{"url": "http://app.example/hooks"}`, token, 400, "invalid", "must be https"},
		{"POST", "/v1/subscriptions", `{"url": "https://127.0.0.1/hooks"}`, token, 400, "invalid", "not a public address"},
		{"POST", "/v1/subscriptions", `{"url": "https://10.1.2.3/hooks"}`, token, 400, "invalid", "not a public address"},
		{"POST", "/v1/subscriptions", `{"url": "https://user:pw@app.example/"}`, token, 400, "invalid", "user or password"},
		{"POST", "/v1/subscriptions", `{"url": "https://app.example", "event_types": ["records.updated"]}`, token, 400, "invalid", "unknown event type"},
		{"POST", "/v1/subscriptions", `{"url": "https://app.example", "secret": "hunter2"}`, token, 400, "invalid", "whsec_"},
		{"POST", "/v1/subscriptions", `{"url": "https://app.example", "colour": "red"}`, token, 400, "invalid_json", "unknown field"},
		{"POST", "/v1/subscriptions", `{"url": `, token, 400, "invalid_json", ""},
		{"POST", "/v1/subscriptions", `{}`, token, 400, "invalid", "url is required"},
		{"POST", "/v1/subscriptions", `{"url": "https://a.example"} {}`, token, 400, "invalid_json", "more than one"},
		{"PATCH", "/v1/subscriptions/" + id, `{"url": "ftp://app.example"}`, token, 400, "invalid", "must be https"},
		{"PATCH", "/v1/subscriptions/sub_nope", `{"description": "x"}`, token, 404, "not_found", ""},
		{"POST", "/v1/subscriptions/" + id + "/replay", `{}`, token, 400, "invalid", "one of the two"},
		{"POST", "/v1/subscriptions/" + id + "/replay", `{"since": "2026-01-01T00:00:00Z", "after": {"txid": "1", "seq": 1}}`, token, 400, "invalid", "one of the two"},
		{"POST", "/v1/subscriptions/" + id + "/replay", `{"after": {"txid": "x", "seq": 1}}`, token, 400, "invalid", "txid"},
		{"POST", "/v1/subscriptions/" + id + "/pause", `{"reason": "` + strings.Repeat("r", 501) + `"}`, token, 400, "invalid", "500"},
		{"POST", "/v1/subscriptions/sub_nope/resume", "", token, 404, "not_found", ""},
		{"POST", "/v1/subscriptions/sub_nope/replay", `{"since": "2026-01-01T00:00:00Z"}`, token, 404, "not_found", ""},
		{"POST", "/v1/subscriptions/sub_nope/rotate-secret", "", token, 404, "not_found", ""},
		{"DELETE", "/v1/subscriptions/sub_nope", "", token, 404, "not_found", ""},
		{"GET", "/v1/subscriptions/sub_nope/deliveries", "", token, 404, "not_found", ""},
		{"GET", "/v1/subscriptions/" + id + "/deliveries?limit=0", "", token, 400, "invalid", "limit"},
		{"GET", "/v1/subscriptions/" + id + "/deliveries?cursor=abc", "", token, 400, "invalid", "cursor"},
	} {
		status, body := c.do(tc.method, tc.path, tc.body, tc.token)
		require.Equal(t, tc.status, status, "%s %s %s", tc.method, tc.path, tc.body)
		require.Equal(t, tc.code, errCode(body), "%s %s %s", tc.method, tc.path, tc.body)
		msg := body["error"].(map[string]any)["message"].(string)
		require.Contains(t, msg, tc.message, "%s %s %s", tc.method, tc.path, tc.body)
	}
	require.Equal(t, before, c.count("kombo.subscriptions"), "no rejected request wrote anything")
	status, body = c.do("GET", "/v1/subscriptions/"+id, "", token)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "active", body["state"])
	require.Equal(t, "https://app.example/hooks", body["url"])
	require.Empty(t, c.woken)
}

// Every /v1 route of the router is in the OpenAPI document, and every operation of the document
// is routed.
func TestTheOpenAPIDocumentNamesEveryRoute(t *testing.T) {
	api, err := backoffice.New(backoffice.Options{Tokens: []string{token}})
	require.NoError(t, err)
	doc, err := openapi3.NewLoader().LoadFromData(backoffice.OpenAPI)
	require.NoError(t, err)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	routed := map[string]bool{}
	require.NoError(t, api.Router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil || !strings.HasPrefix(tpl, "/v1/") {
			return nil //nolint:nilerr // prefixes and probes are not API routes
		}
		methods, err := route.GetMethods()
		if err != nil {
			return nil //nolint:nilerr // a subrouter's prefix, not a route
		}
		for _, m := range methods {
			routed[m+" "+tpl] = true
		}
		return nil
	}))
	require.Equal(t, documented, routed)

	srv := httptest.NewServer(api)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	served, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, backoffice.OpenAPI, served)
}
