package backoffice_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
)

// syncJobs writes ats/jobs rows of an integration as a fetch would.
func (c *apiClient) syncJobs(integrationID string, jobs ...map[string]any) {
	c.t.Helper()
	c.syncRecords(integrationID, "jobs", jobs...)
}

// syncRecords writes rows of an ATS endpoint of an integration as a fetch would.
func (c *apiClient) syncRecords(integrationID, endpoint string, jobs ...map[string]any) {
	c.t.Helper()
	st := store.New(c.pool)
	ctx := c.t.Context()
	require.NoError(c.t, st.SaveIntegration(ctx, store.Integration{ID: integrationID, Tool: "greenhouse", Category: "ATS"}))
	run := store.Run{ID: integrationID + "-" + time.Now().Format(time.RFC3339Nano), IntegrationID: integrationID,
		Endpoint: kombo.Endpoint{Category: kombo.CategoryATS, Name: endpoint}, Kind: store.KindDelta}
	_, err := st.StartRun(ctx, run)
	require.NoError(c.t, err)
	page := &kombo.Page{}
	now := time.Now()
	for _, j := range jobs {
		obj := map[string]any{"remote_id": "r-" + j["id"].(string), "changed_at": kombo.FormatTime(now), "remote_deleted_at": nil, "status": "OPEN"}
		for k, v := range j {
			obj[k] = v
		}
		raw, err := json.Marshal(obj)
		require.NoError(c.t, err)
		page.Records = append(page.Records, kombo.Record{ID: j["id"].(string), RemoteID: obj["remote_id"].(string), ChangedAt: now, Raw: raw})
	}
	_, err = st.ApplyPage(ctx, run, page, now)
	require.NoError(c.t, err)
}

func TestJobLinksThroughTheAPI(t *testing.T) {
	t.Parallel()
	c := newAPI(t)
	c.syncJobs("greenhouse:1",
		map[string]any{"id": "j1", "name": "Senior Backend Engineer", "job_code": "ENG-42", "post_url": "https://careers.acme.example/42"},
		map[string]any{"id": "j2", "name": "Backend Engineer", "job_code": "ENG-43"},
		map[string]any{"id": "j3", "name": "Head of Sales", "job_code": "SAL-1", "status": "CLOSED"})
	c.syncJobs("greenhouse:2", map[string]any{"id": "x1", "name": "Senior Backend Engineer", "job_code": "ENG-42"})
	base := "/v1/integrations/" + url.PathEscape("greenhouse:1")

	status, body := c.do("GET", base+"/jobs?status=OPEN&q=backend&limit=1", "", token)
	require.Equal(t, 200, status)
	require.Len(t, body["data"], 1)
	require.Equal(t, "j1", body["data"].([]any)[0].(map[string]any)["id"])
	status, body = c.do("GET", base+"/jobs?status=OPEN&q=backend&limit=1&cursor="+body["next_cursor"].(string), "", token)
	require.Equal(t, 200, status)
	require.Equal(t, "j2", body["data"].([]any)[0].(map[string]any)["id"], "the next page")
	status, body = c.do("GET", base+"/jobs", "", token)
	require.Equal(t, 200, status)
	require.Len(t, body["data"], 3, "no status filter: every status")
	status, body = c.do("GET", base+"/jobs?status=closed", "", token)
	require.Equal(t, 200, status)
	require.Len(t, body["data"], 1)

	status, body = c.do("POST", base+"/jobs/lookup", `{"hints": [{"job_code": "eng-42"}, {"url": "careers.acme.example/42/?utm_source=mail"}, {"title": "backend engineer senior"}, {"id": "x1"}]}`, token)
	require.Equal(t, 200, status)
	results := body["results"].([]any)
	require.Len(t, results, 4)
	for i, want := range []string{"j1", "j1"} {
		exact := results[i].(map[string]any)["exact"].([]any)
		require.Len(t, exact, 1)
		require.Equal(t, want, exact[0].(map[string]any)["job_id"])
	}
	require.NotEmpty(t, results[2].(map[string]any)["titles"])
	require.Empty(t, results[3].(map[string]any)["exact"], "another integration's job is never found")

	status, body = c.do("PUT", base+"/job-links/app-1", `{"hints": {"job_code": "ENG-42"}}`, token)
	require.Equal(t, 201, status)
	require.Equal(t, "confirmed", body["state"])
	status, _ = c.do("PUT", base+"/job-links/app-1", `{"hints": {"job_code": "ENG-42"}}`, token)
	require.Equal(t, 200, status, "the same link again: idempotent")
	status, body = c.do("PUT", base+"/job-links/app-1", `{"hints": {"job_code": "ENG-43"}}`, token)
	require.Equal(t, 409, status)
	require.Equal(t, "conflict", errCode(body))

	status, body = c.do("PUT", base+"/job-links/app-2", `{"hints": {"title": "Backend Engineer Senior"}}`, token)
	require.Equal(t, 201, status)
	require.Equal(t, "proposed", body["state"], "a title is only proposed")
	status, body = c.do("GET", base+"/job-links?needs_person=true", "", token)
	require.Equal(t, 200, status)
	require.Len(t, body["data"], 1)
	require.Equal(t, "app-2", body["data"].([]any)[0].(map[string]any)["app_job_id"])
	status, body = c.do("POST", base+"/job-links/app-2/confirm", `{"kombo_job_id": "j2", "decided_by": "ada"}`, token)
	require.Equal(t, 200, status)
	require.Equal(t, "confirmed", body["state"])
	require.Equal(t, "ada", body["decided_by"])

	c.syncJobs("greenhouse:1", map[string]any{"id": "j2", "name": "Backend Engineer", "job_code": "ENG-43", "status": "CLOSED"})
	status, body = c.do("GET", base+"/job-links?needs_person=true", "", token)
	require.Equal(t, 200, status)
	closed := body["data"].([]any)[0].(map[string]any)
	require.Equal(t, false, closed["active"])
	require.Equal(t, "closed", closed["reason"], "a linked job that closed needs a person")

	status, body = c.do("POST", base+"/job-links/app-2/reject", `{"decided_by": "ada"}`, token)
	require.Equal(t, 200, status)
	require.Equal(t, "rejected", body["state"])
	status, _ = c.do("DELETE", base+"/job-links/app-2", "", token)
	require.Equal(t, 204, status)
	status, _ = c.do("GET", base+"/job-links/app-2", "", token)
	require.Equal(t, 404, status)
}

func TestJobRoutesRefuseBadInputAndWriteNothing(t *testing.T) {
	t.Parallel()
	c := newAPI(t)
	c.syncJobs("greenhouse:1", map[string]any{"id": "j1", "name": "Engineer", "job_code": "ENG-1"})
	base := "/v1/integrations/greenhouse:1"
	hundredOne := `{"hints": [` + repeatJoin(`{"id": "j1"}`, 101) + `]}`
	for _, tc := range []struct {
		method, path, body, token string
		status                    int
		code                      string
	}{
		{"GET", base + "/jobs", "", "", 401, "unauthorized"},
		{"GET", "/v1/integrations/greenhouse:nope/jobs", "", token, 404, "not_found"},
		{"PUT", "/v1/integrations/greenhouse:nope/job-links/a", `{"hints": {"id": "j1"}}`, token, 404, "not_found"},
		{"GET", base + "/jobs?status=OPENED", "", token, 400, "invalid"},
		{"GET", base + "/jobs?limit=501", "", token, 400, "invalid"},
		{"POST", base + "/jobs/lookup", `{"hints": []}`, token, 400, "invalid"},
		{"POST", base + "/jobs/lookup", hundredOne, token, 400, "invalid"},
		{"POST", base + "/jobs/lookup", `{"hints": [{}]}`, token, 400, "invalid"},
		{"POST", base + "/jobs/lookup", `{"hints": [{"colour": "red"}]}`, token, 400, "invalid_json"},
		{"PUT", base + "/job-links/a", `{"hints": {}}`, token, 400, "invalid"},
		{"PUT", base + "/job-links/a", `{"hint": {"id": "j1"}}`, token, 400, "invalid_json"},
		{"POST", base + "/job-links/missing/confirm", `{"kombo_job_id": "j1", "decided_by": "ada"}`, token, 404, "not_found"},
		{"POST", base + "/job-links/missing/reject", `{"decided_by": "ada"}`, token, 404, "not_found"},
		{"DELETE", base + "/job-links/missing", "", token, 404, "not_found"},
		// Text PostgreSQL cannot hold (a NUL byte) is bad input, not a server failure.
		{"PUT", base + "/job-links/a", `{"hints": {"job_code": "ENG\u0000-1"}}`, token, 400, "invalid"},
		{"PUT", base + "/job-links/a%00b", `{"hints": {"id": "j1"}}`, token, 400, "invalid"},
		{"PUT", base + "/job-links/" + strings.Repeat("a", 201), `{"hints": {"id": "j1"}}`, token, 400, "invalid"},
		{"POST", base + "/jobs/lookup", `{"hints": [{"title": "Engineer\u0000"}]}`, token, 400, "invalid"},
		{"GET", base + "/jobs?q=%00", "", token, 400, "invalid"},
		{"GET", base + "/job-links?cursor=%00", "", token, 400, "invalid"},
		{"GET", "/v1/integrations/greenhouse%001/jobs", "", token, 400, "invalid"},
	} {
		status, body := c.do(tc.method, tc.path, tc.body, tc.token)
		require.Equal(t, tc.status, status, "%s %s %s", tc.method, tc.path, tc.body)
		require.Equal(t, tc.code, errCode(body), "%s %s %s", tc.method, tc.path, tc.body)
	}
	status, _ := c.do("PUT", base+"/job-links/a", `{"hints": {"id": "j1"}}`, token)
	require.Equal(t, 201, status)
	for _, tc := range []struct{ path, body, code string }{
		{"/confirm", `{"decided_by": "ada"}`, "invalid"},
		{"/confirm", `{"kombo_job_id": "j1"}`, "invalid"},
		{"/confirm", `{"kombo_job_id": "nope", "decided_by": "ada"}`, "not_found"},
		{"/reject", `{}`, "invalid"},
		{"/reject", `{"decided_by": "ada", "kombo_job_id": "j1"}`, "invalid"},
		{"/confirm", `{"kombo_job_id": "j1", "decided_by": "ada\u0000"}`, "invalid"},
		{"/reject", `{"decided_by": "\u0000"}`, "invalid"},
	} {
		_, body := c.do("POST", base+"/job-links/a"+tc.path, tc.body, token)
		require.Equal(t, tc.code, errCode(body), "%s %s", tc.path, tc.body)
	}
	require.Equal(t, 1, c.count("kombo.job_links"), "only the one good request wrote")
	status, body := c.do("GET", base+"/job-links/a", "", token)
	require.Equal(t, 200, status)
	require.Equal(t, "kombosync", body["decided_by"], "the refused decisions changed nothing")
	require.NotEmpty(t, body["decided_at"], "when kombosync decided")
}

func repeatJoin(s string, n int) string {
	out := s
	for range n - 1 {
		out += ", " + s
	}
	return out
}

// A live lookup asks Kombo (the emulator) for the keys no synced job has, in one request per key
// kind, and asks for a sync of ats/jobs when it found some.
func TestLiveLookupAsksKomboForWhatIsNotSynced(t *testing.T) {
	t.Parallel()
	emu := komboemu.New(komboemu.Options{APIKey: "k"})
	t.Cleanup(emu.Close)
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "greenhouse:1", Category: kombo.CategoryATS, Records: 100, Seed: 2}))
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	kc, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1", APIKey: "k"})
	require.NoError(t, err)
	var synced []string
	c := newAPIWith(t, kc, func(_ context.Context, id string) error { synced = append(synced, id); return nil })
	c.syncJobs("greenhouse:1", map[string]any{"id": "local", "name": "Synced job", "job_code": "LOCAL-1"})
	// The emulator's jobs: codes JOB-0001…, unknown to the database.
	page, err := kc.ListPage(t.Context(), "greenhouse:1", kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}, kombo.ListParams{})
	require.NoError(t, err)
	require.NotEmpty(t, page.Records)
	var first struct {
		JobCode string `json:"job_code"`
		PostURL string `json:"post_url"`
	}
	require.NoError(t, json.Unmarshal(page.Records[0].Raw, &first))
	before := len(emu.RequestTimes())

	status, body := c.do("POST", "/v1/integrations/greenhouse:1/jobs/lookup", `{"live": true, "hints": [{"job_code": "local-1"},
		{"job_code": "`+strings.ToLower(first.JobCode)+`"}, {"url": "`+first.PostURL+`?utm_source=mail"}, {"job_code": "NOPE-9"}, {"title": "x"}]}`, token)
	require.Equal(t, 200, status)
	results := body["results"].([]any)
	require.Len(t, results[0].(map[string]any)["exact"], 1, "synced: found locally")
	require.NotContains(t, results[0].(map[string]any), "at_kombo")
	for _, k := range []int{1, 2} {
		at := results[k].(map[string]any)["at_kombo"].([]any)
		require.Len(t, at, 1, "hint %d found at Kombo", k)
		require.Equal(t, page.Records[0].ID, at[0].(map[string]any)["job_id"])
	}
	require.Empty(t, results[3].(map[string]any)["at_kombo"])
	require.Equal(t, true, body["sync_requested"])
	require.Equal(t, []string{"greenhouse:1"}, synced)
	require.Equal(t, 4, len(emu.RequestTimes())-before, "job_codes once for every code, post_url once per form of the URL (as given, cleaned, cleaned with its slash)")

	c2 := newAPI(t)
	c2.syncJobs("greenhouse:1", map[string]any{"id": "local", "name": "Synced job"})
	status, body = c2.do("POST", "/v1/integrations/greenhouse:1/jobs/lookup", `{"live": true, "hints": [{"job_code": "X"}]}`, token)
	require.Equal(t, 400, status, "no Kombo client: said so")
	require.Equal(t, "invalid", errCode(body))
}
