package backoffice_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/store"
)

// starts records the action workflows the API starts; failing makes the next starts fail.
type starts struct {
	mu      sync.Mutex
	ids     []string
	failing bool
}

func (s *starts) start(_ context.Context, id, kind, integrationID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errors.New("temporal unreachable")
	}
	s.ids = append(s.ids, id+" "+kind+" "+integrationID)
	return nil
}

func (s *starts) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

const ats = "greenhouse:acts"

// setupATS syncs an ATS integration with an open job (two stages), a closed one, an application
// of the open one and a rejection reason, links app-1 to the open job, and an HRIS integration.
func setupATS(t *testing.T) (*apiClient, *starts, string) {
	t.Helper()
	st := &starts{}
	c := newAPIFull(t, nil, nil, st.start)
	c.syncJobs(ats,
		map[string]any{"id": "j1", "name": "Backend Engineer", "stages": []any{map[string]any{"id": "s1"}, map[string]any{"id": "s2"}}},
		map[string]any{"id": "j3", "name": "Head of Sales", "status": "CLOSED"})
	c.syncRecords(ats, "applications", map[string]any{"id": "app_1", "job_id": "j1", "candidate_id": "c1"})
	c.syncRecords(ats, "rejection-reasons", map[string]any{"id": "rr_1", "name": "Not qualified"})
	require.NoError(t, store.New(c.pool).SaveIntegration(t.Context(), store.Integration{ID: "personio:hris", Tool: "personio", Category: "HRIS"}))
	base := "/v1/integrations/" + url.PathEscape(ats)
	status, body := c.do("PUT", base+"/job-links/app-1", `{"hints": {"id": "j1"}}`, token)
	require.Equal(t, http.StatusCreated, status, "%v", body)
	require.Equal(t, "confirmed", body["state"])
	return c, st, base
}

func key(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

const application = `{"app_job_id": "app-1", "candidate": {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@example.com",
	"phone_number": "+44 20 0000"}, "attachments": [{"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": "JVBERi0="}]}`

// The contract: 202 with the action on the first request, 200 with the same action on every
// replay of the key and body (key order and white space aside), 422 for the key with another
// body; the workflow is started once.
func TestCreateApplicationIsIdempotentByKey(t *testing.T) {
	t.Parallel()
	c, st, base := setupATS(t)
	status, act := c.doWith("POST", base+"/applications", application, token, key("order-1"))
	require.Equal(t, http.StatusAccepted, status, "%v", act)
	for _, f := range []string{"id", "kind", "integration_id", "idempotency_key", "state", "attempts", "result", "error", "created_at", "updated_at", "finished_at"} {
		require.Contains(t, act, f)
	}
	require.Equal(t, "create_application", act["kind"])
	require.Equal(t, "pending", act["state"])
	require.Equal(t, "order-1", act["idempotency_key"])
	require.Equal(t, "j1", act["job_id"], "resolved through the confirmed link")
	require.Equal(t, "app-1", act["app_job_id"])
	require.Nil(t, act["result"])
	id := act["id"].(string)
	require.Equal(t, []string{id + " create_application " + ats}, st.list())

	reordered := `{"candidate": {"phone_number": "+44 20 0000", "email_address": "ada@example.com", "last_name": "Lovelace", "first_name": "Ada"},
		"attachments": [{"data": "JVBERi0=", "content_type": "application/pdf", "type": "CV", "name": "cv.pdf"}], "app_job_id": "app-1"}`
	status, again := c.doWith("POST", base+"/applications", reordered, token, key("order-1"))
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, id, again["id"])
	require.Len(t, st.list(), 1, "a replay starts nothing")

	status, body := c.doWith("POST", base+"/applications", strings.Replace(application, "Ada", "Grace", 1), token, key("order-1"))
	require.Equal(t, http.StatusUnprocessableEntity, status)
	require.Equal(t, "idempotency_key_reused", errCode(body))

	// The same key on another route is another request.
	status, body = c.doWith("POST", base+"/applications/app_1/notes", `{"content": "x"}`, token, key("order-1"))
	require.Equal(t, http.StatusUnprocessableEntity, status, "%v", body)

	// A replay after the job closed still answers the action: the key was accepted.
	c.syncJobs(ats, map[string]any{"id": "j1", "name": "Backend Engineer", "status": "CLOSED"})
	status, again = c.doWith("POST", base+"/applications", application, token, key("order-1"))
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, id, again["id"])

	status, got := c.do("GET", base+"/actions/"+id, "", token)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, act["created_at"], got["created_at"])
	require.Equal(t, 1, c.count("kombo.actions"))
}

// Concurrent requests with one new key store one action: one 202, the rest 200 with its id.
func TestConcurrentReplaysStoreOneAction(t *testing.T) {
	t.Parallel()
	c, st, base := setupATS(t)
	type answer struct {
		status int
		id     string
		err    error
	}
	answers := make([]answer, 12)
	var wg sync.WaitGroup
	for k := range answers {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(t.Context(), "POST", c.srv.URL+base+"/applications", strings.NewReader(application))
			if err != nil {
				answers[k].err = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Idempotency-Key", "concurrent")
			resp, err := c.srv.Client().Do(req)
			if err != nil {
				answers[k].err = err
				return
			}
			defer resp.Body.Close()
			var a store.Action
			answers[k].status, answers[k].err = resp.StatusCode, json.NewDecoder(resp.Body).Decode(&a)
			answers[k].id = a.ID
		})
	}
	wg.Wait()
	accepted, ids := 0, map[string]bool{}
	for _, a := range answers {
		require.NoError(t, a.err)
		require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, a.status)
		if a.status == http.StatusAccepted {
			accepted++
		}
		ids[a.id] = true
	}
	require.Equal(t, 1, accepted)
	require.Len(t, ids, 1)
	require.Equal(t, 1, c.count("kombo.actions"))
	require.NotEmpty(t, st.list())
}

// Refusals answer at once and store nothing.
func TestActionRoutesRefuseBadInputAndStoreNothing(t *testing.T) {
	t.Parallel()
	c, _, base := setupATS(t)
	hris := "/v1/integrations/" + url.PathEscape("personio:hris")
	for _, tc := range []struct {
		name, method, path, body string
		headers                  map[string]string
		status                   int
		code, message            string
	}{
		{"no key", "POST", base + "/applications", application, nil, 400, "idempotency_key_invalid", "required"},
		{"key too long", "POST", base + "/applications", application, key(strings.Repeat("k", 256)), 400, "idempotency_key_invalid", "255"},
		{"key not ASCII", "POST", base + "/applications", application, key("clé"), 400, "idempotency_key_invalid", "printable ASCII"},
		{"both jobs", "POST", base + "/applications", `{"app_job_id": "app-1", "job_id": "j1", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}}`, key("k1"), 400, "invalid", "exactly one"},
		{"no job", "POST", base + "/applications", `{"candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}}`, key("k1"), 400, "invalid", "exactly one"},
		{"no email", "POST", base + "/applications", `{"job_id": "j1", "candidate": {"first_name": "A", "last_name": "B"}}`, key("k1"), 400, "invalid", "email_address"},
		{"bad email", "POST", base + "/applications", `{"job_id": "j1", "candidate": {"first_name": "A", "last_name": "B", "email_address": "nobody"}}`, key("k1"), 400, "invalid", "not an email"},
		{"bad base64", "POST", base + "/applications", `{"job_id": "j1", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}, "attachments": [{"name": "cv", "type": "CV", "content_type": "text/plain", "data": "!!"}]}`, key("k1"), 400, "invalid", "base64"},
		{"attachment type", "POST", base + "/applications", `{"job_id": "j1", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}, "attachments": [{"name": "cv", "type": "PHOTO", "content_type": "text/plain", "data": "eA=="}]}`, key("k1"), 400, "invalid", "CV, COVER_LETTER"},
		{"unknown field", "POST", base + "/applications", `{"job_id": "j1", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}, "priority": 1}`, key("k1"), 400, "invalid_json", "unknown field"},
		{"NUL", "POST", base + "/applications", `{"job_id": "j1", "candidate": {"first_name": "A\u0000", "last_name": "B", "email_address": "a@b.example"}}`, key("k1"), 400, "invalid", "NUL"},
		{"not linked", "POST", base + "/applications", `{"app_job_id": "app-9", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}}`, key("k1"), 409, "job_not_linked", "app-9"},
		{"closed", "POST", base + "/applications", `{"job_id": "j3", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}}`, key("k1"), 409, "job_not_open", "closed"},
		{"bad stage", "POST", base + "/applications", `{"job_id": "j1", "stage_id": "s9", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}}`, key("k1"), 400, "invalid", "not a stage"},
		{"HRIS", "POST", hris + "/applications", application, key("k1"), 409, "action_not_available", "HRIS"},
		{"unknown integration", "POST", "/v1/integrations/nope:1/applications", application, key("k1"), 404, "not_found", ""},
		{"unknown application", "PUT", base + "/applications/app_9/stage", `{"stage_id": "s2"}`, key("k1"), 404, "not_found", "app_9"},
		{"stage of another job", "PUT", base + "/applications/app_1/stage", `{"stage_id": "s9"}`, key("k1"), 400, "invalid", "not a stage"},
		{"no stage", "PUT", base + "/applications/app_1/stage", `{}`, key("k1"), 400, "invalid", "stage_id"},
		{"unsynced reason", "POST", base + "/applications/app_1/reject", `{"rejection_reason_id": "rr_9"}`, key("k1"), 400, "invalid", "rejection reason"},
		{"empty note", "POST", base + "/applications/app_1/notes", `{"content": " "}`, key("k1"), 400, "invalid", "content"},
		{"note type", "POST", base + "/applications/app_1/notes", `{"content": "x", "content_type": "HTML"}`, key("k1"), 400, "invalid", "PLAIN_TEXT"},
		{"no attachment", "POST", base + "/applications/app_1/attachments", `{}`, key("k1"), 400, "invalid", "attachment"},
		{"attachment url", "POST", base + "/applications/app_1/attachments", `{"attachment": {"name": "cv", "type": "CV", "content_type": "text/plain", "data_url": "ftp://x"}}`, key("k1"), 400, "invalid", "data_url"},
		{"bad state filter", "GET", base + "/actions?state=done", "", nil, 400, "invalid", "state"},
		{"bad kind filter", "GET", base + "/actions?kind=hire", "", nil, 400, "invalid", "kind"},
		{"bad cursor", "GET", base + "/actions?cursor=x", "", nil, 400, "invalid", "cursor"},
		{"unknown action", "GET", base + "/actions/act_nope", "", nil, 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.doWith(tc.method, tc.path, tc.body, token, tc.headers)
			require.Equal(t, tc.status, status, "%v", body)
			require.Equal(t, tc.code, errCode(body))
			require.Contains(t, body["error"].(map[string]any)["message"], tc.message)
			if tc.code == "job_not_open" {
				require.Equal(t, "closed", body["error"].(map[string]any)["reason"])
			}
		})
	}
	require.Zero(t, c.count("kombo.actions"), "nothing stored")
	status, body := c.doWith("POST", base+"/applications", `{"job_id": "j1", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}, "attachments": [{"name": "big", "type": "CV", "content_type": "text/plain", "data": "`+strings.Repeat("A", 26<<20)+`"}]}`, token, key("big"))
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	require.Equal(t, "too_large", errCode(body))
	require.Zero(t, c.count("kombo.actions"), "nothing stored")
}

// Each action route stores its kind with Kombo's body; the list filters by state and kind and
// pages; another integration's action is not found.
func TestEveryActionRouteAndTheList(t *testing.T) {
	t.Parallel()
	c, st, base := setupATS(t)
	routes := []struct{ method, path, body, kind string }{
		{"POST", base + "/applications", `{"job_id": "unsynced-job", "candidate": {"first_name": "A", "last_name": "B", "email_address": "a@b.example"}}`, "create_application"},
		{"PUT", base + "/applications/app_1/stage", `{"stage_id": "s2"}`, "move_stage"},
		{"POST", base + "/applications/app_1/reject", `{"rejection_reason_id": "rr_1", "note": "filled"}`, "reject"},
		{"POST", base + "/applications/app_1/notes", `{"content": "Strong CV"}`, "add_note"},
		{"POST", base + "/applications/app_1/attachments", `{"attachment": {"name": "l.pdf", "type": "COVER_LETTER", "content_type": "application/pdf", "data_url": "https://files.example/l.pdf"}}`, "add_attachment"},
	}
	var ids []string
	for k, r := range routes {
		status, act := c.doWith(r.method, r.path, r.body, token, key(fmt.Sprintf("route-%d", k)))
		require.Equal(t, http.StatusAccepted, status, "%s: %v", r.kind, act)
		require.Equal(t, r.kind, act["kind"])
		ids = append(ids, act["id"].(string))
	}
	var stored string
	require.NoError(t, c.pool.QueryRow(t.Context(), `select request::text from kombo.actions where kind = 'add_note'`).Scan(&stored))
	require.JSONEq(t, `{"content": "Strong CV", "content_type": "PLAIN_TEXT"}`, stored, "Kombo's body, with its default")
	require.NoError(t, c.pool.QueryRow(t.Context(), `select target from kombo.actions where kind = 'create_application'`).Scan(&stored))
	require.Equal(t, "unsynced-job", stored, "a job kombosync has not synced is Kombo's to judge")
	require.Len(t, st.list(), len(routes))

	status, page := c.do("GET", base+"/actions?limit=2", "", token)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, page["data"], 2)
	var listed []string
	for cursor := ""; ; {
		status, page = c.do("GET", base+"/actions?limit=2&cursor="+cursor, "", token)
		require.Equal(t, http.StatusOK, status)
		for _, a := range page["data"].([]any) {
			listed = append(listed, a.(map[string]any)["id"].(string))
		}
		if cursor = page["next_cursor"].(string); cursor == "" {
			break
		}
	}
	require.Equal(t, ids, listed, "every action, in creation order")
	status, page = c.do("GET", base+"/actions?state=pending&kind=reject", "", token)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, page["data"], 1)
	status, _ = c.do("GET", "/v1/integrations/"+url.PathEscape("personio:hris")+"/actions/"+ids[0], "", token)
	require.Equal(t, http.StatusNotFound, status, "another integration's action")
}

// With Temporal unreachable the action is stored and answered 202 all the same; the relay starts
// its workflow once Temporal is back.
func TestActionsStoredWhileTemporalIsDownAreStartedByTheRelay(t *testing.T) {
	t.Parallel()
	c, st, base := setupATS(t)
	st.mu.Lock()
	st.failing = true
	st.mu.Unlock()
	status, act := c.doWith("POST", base+"/applications", application, token, key("while-down"))
	require.Equal(t, http.StatusAccepted, status)
	id := act["id"].(string)
	require.Empty(t, st.list())
	st.mu.Lock()
	st.failing = false
	st.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.api.RunActionRelay(ctx, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		var started bool
		return c.pool.QueryRow(t.Context(), `select workflow_started_at is not null from kombo.actions where id = $1`, id).Scan(&started) == nil && started
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{id + " create_application " + ats}, st.list())
}
