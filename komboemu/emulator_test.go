package komboemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

var employees = kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func events(t *testing.T, bodies [][]byte) []kombo.Event {
	t.Helper()
	out := make([]kombo.Event, len(bodies))
	for i, b := range bodies {
		e, err := kombo.ParseEvent(b)
		require.NoError(t, err)
		out[i] = e
	}
	return out
}

func changedModels(t *testing.T, e kombo.Event) []string {
	t.Helper()
	p, err := e.Payload()
	require.NoError(t, err)
	var names []string
	for _, m := range p.(*kombo.DataChanged).ChangedModels {
		names = append(names, m.Name)
	}
	return names
}

func TestDataChangedIsSignedAndCoalescedPerWindow(t *testing.T) {
	var (
		mu   sync.Mutex
		got  [][]byte
		sigs []string
	)
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, b)
		sigs = append(sigs, r.Header.Get(kombo.SignatureHeader))
	}))
	defer hooks.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	emu := komboemu.New(komboemu.Options{APIKey: apiKey, Webhooks: komboemu.WebhookOptions{URL: hooks.URL, Secret: webhookSecret, Window: 300 * time.Millisecond}})
	defer emu.Close()
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:c", Category: kombo.CategoryHRIS, Records: 10}))

	start := time.Now()
	_, err := emu.Mutate("p:c", komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
	require.NoError(t, err)
	waitFor(t, "the first data-changed", func() bool { return count() == 1 })
	require.Less(t, time.Since(start), 250*time.Millisecond, "the first change passes at once")

	// A burst inside the window becomes one event carrying every model.
	_, err = emu.Mutate("p:c", komboemu.Mutation{Endpoint: kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "groups"}, Op: komboemu.OpUpdate})
	require.NoError(t, err)
	_, err = emu.Mutate("p:c", komboemu.Mutation{Endpoint: kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "absences"}, Op: komboemu.OpCreate})
	require.NoError(t, err)
	_, err = emu.Mutate("p:c", komboemu.Mutation{Endpoint: employees, Op: komboemu.OpDelete})
	require.NoError(t, err)
	waitFor(t, "the coalesced data-changed", func() bool { return count() == 2 })
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "not before the window ends")

	mu.Lock()
	evs := events(t, got)
	for i, b := range got {
		require.True(t, kombo.Verify(b, sigs[i], webhookSecret), "signature of webhook %d", i)
	}
	mu.Unlock()
	require.Equal(t, []string{"hris_employees"}, changedModels(t, evs[0]))
	require.Equal(t, []string{"hris_absences", "hris_employees", "hris_teams"}, changedModels(t, evs[1]))
	require.NotEqual(t, evs[0].ID, evs[1].ID)
	require.Equal(t, "p:c", evs[1].IntegrationID())
}

// Two emulators with the same seed hold the same data but never reuse an event id: a restarted
// demo's webhooks must not be taken for duplicates of the last run's.
func TestEventIDsAreUniqueAcrossRunsWithTheSameSeed(t *testing.T) {
	var ids []string
	for range 2 {
		emu, _, sink := start(t, komboemu.Options{Seed: 9})
		require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:u", Category: kombo.CategoryHRIS, Records: 2}))
		require.NoError(t, emu.SendSyncFinished("p:u", kombo.SyncSucceeded))
		require.NoError(t, emu.WaitWebhooks(t.Context()))
		evs := events(t, sink.all())
		require.Len(t, evs, 1)
		ids = append(ids, evs[0].ID)
	}
	require.NotEqual(t, ids[0], ids[1])
}

func TestWebhookFaults(t *testing.T) {
	t.Run("loss", func(t *testing.T) {
		emu, _, sink := start(t, komboemu.Options{})
		emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
		require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:l", Category: kombo.CategoryHRIS, Records: 2}))
		require.NoError(t, emu.SendSyncFinished("p:l", kombo.SyncSucceeded))
		require.NoError(t, emu.WaitWebhooks(t.Context()))
		require.Empty(t, sink.all())
		d := emu.Deliveries()
		require.Len(t, d, 1)
		require.True(t, d[0].Lost)
	})
	t.Run("duplication", func(t *testing.T) {
		emu, _, sink := start(t, komboemu.Options{})
		emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{DuplicateRate: 1}})
		require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:d", Category: kombo.CategoryHRIS, Records: 2}))
		require.NoError(t, emu.SendSyncFinished("p:d", kombo.SyncSucceeded))
		require.NoError(t, emu.WaitWebhooks(t.Context()))
		evs := events(t, sink.all())
		require.Len(t, evs, 2)
		require.Equal(t, evs[0].ID, evs[1].ID, "a duplicate carries the same event id")
	})
	t.Run("reordering", func(t *testing.T) {
		emu, _, sink := start(t, komboemu.Options{})
		emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{MaxReorder: 200 * time.Millisecond}})
		require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:r", Category: kombo.CategoryHRIS, Records: 2}))
		var states []string
		for i := range 30 {
			state := "STATE_" + string(rune('A'+i))
			states = append(states, state)
			require.NoError(t, emu.SendSyncFinished("p:r", state))
		}
		require.NoError(t, emu.WaitWebhooks(t.Context()))
		var got []string
		for _, e := range events(t, sink.all()) {
			p, err := e.Payload()
			require.NoError(t, err)
			got = append(got, p.(*kombo.SyncFinished).SyncState)
		}
		require.ElementsMatch(t, states, got, "every event arrives")
		require.NotEqual(t, states, got, "in another order")
	})
}

func TestRandomAPIFaults(t *testing.T) {
	emu, srv, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:f", Category: kombo.CategoryHRIS, Records: 2}))
	emu.SetFaults(komboemu.Faults{RateLimitRate: 1, RetryAfter: 3 * time.Second})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/hris/employees", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("X-Integration-Id", "p:f")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "3", resp.Header.Get("Retry-After"))

	emu.SetFaults(komboemu.Faults{ErrorRate: 1})
	status, _ := get(t, srv, "/v1/hris/employees", "p:f")
	require.Equal(t, http.StatusInternalServerError, status)

	emu.SetFaults(komboemu.Faults{})
	status, _ = get(t, srv, "/v1/hris/employees", "p:f")
	require.Equal(t, http.StatusOK, status)
}

func TestFirstSyncLifecycle(t *testing.T) {
	emu, srv, sink := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:first", Category: kombo.CategoryHRIS, Records: 3, FirstSyncPending: true, Notify: true}))
	status, body := get(t, srv, "/v1/hris/employees", "p:first")
	require.Equal(t, http.StatusConflict, status)
	require.Contains(t, string(body), kombo.CodeSetupSyncPending)

	require.NoError(t, emu.FinishFirstSync("p:first"))
	status, _ = get(t, srv, "/v1/hris/employees", "p:first")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, emu.WaitWebhooks(t.Context()))
	evs := events(t, sink.all())
	require.Len(t, evs, 2)
	require.Equal(t, kombo.EventIntegrationCreated, evs[0].Type)
	require.Equal(t, kombo.EventSyncFinished, evs[1].Type)

	require.NoError(t, emu.DeleteIntegration("p:first"))
	status, body = get(t, srv, "/v1/hris/employees", "p:first")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, string(body), kombo.CodeIntegrationNotFound)
	require.NoError(t, emu.WaitWebhooks(t.Context()))
	require.Equal(t, kombo.EventIntegrationDeleted, events(t, sink.all())[2].Type)
}

func TestUnsupportedFiltersAndUnknownIDs(t *testing.T) {
	emu, srv, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:u", Category: kombo.CategoryHRIS, Records: 5}))
	count := func(path string) int {
		status, body := get(t, srv, path, "p:u")
		require.Equal(t, http.StatusOK, status, "%s", body)
		var page struct {
			Data struct{ Results []json.RawMessage } `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &page))
		return len(page.Data.Results)
	}
	require.Equal(t, 5, count("/v1/hris/employees"))
	require.Zero(t, count("/v1/hris/employees?personal_emails=a@b.co"), "a filter the tool cannot apply returns nothing")
	require.Equal(t, 5, count("/v1/hris/employees?personal_emails=a@b.co&ignore_unsupported_filters=true"))

	status, _ := get(t, srv, "/v1/hris/employees?ids=doesnotexist", "p:u")
	require.Equal(t, http.StatusNotFound, status, "one unknown id makes the whole request 404")

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/hris/employees", nil)
	req.Header.Set("X-Integration-Id", "p:u")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestChurnKeepsChangingData(t *testing.T) {
	emu, _, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:churn", Category: kombo.CategoryHRIS, Records: 20}))
	before, err := emu.Truth("p:churn", employees)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	emu.Churn(ctx, "p:churn", 200, employees)
	waitFor(t, "churned employees", func() bool {
		now, err := emu.Truth("p:churn", employees)
		require.NoError(t, err)
		changed := 0
		for i := range min(len(before), len(now)) {
			if !bytes.Equal(before[i].Data, now[i].Data) {
				changed++
			}
		}
		return changed >= 5
	})
}

func TestControlAPI(t *testing.T) {
	_, srv, sink := start(t, komboemu.Options{})
	call := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := call("POST", "/_emulator/integrations", `{"id":"greenhouse:ctl","category":"ats","records":12,"seed":3,"first_sync_pending":true}`)
	require.Equal(t, http.StatusCreated, status, body)
	status, body = call("POST", "/_emulator/integrations", `{"id":"x","category":"crm"}`)
	require.Equal(t, http.StatusBadRequest, status, body)
	status, _ = call("GET", "/_emulator/integrations", "")
	require.Equal(t, http.StatusOK, status)

	status, _ = call("POST", "/_emulator/integrations/greenhouse:ctl/finish-first-sync", "")
	require.Equal(t, http.StatusOK, status)
	status, body = call("POST", "/_emulator/integrations/greenhouse:ctl/mutations", `{"mutations":[{"endpoint":"ats/jobs","op":"update","fields":{"status":"CLOSED"}}]}`)
	require.Equal(t, http.StatusOK, status, body)
	var changes []map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &changes))
	require.Len(t, changes, 1)

	status, body = call("GET", "/_emulator/integrations/greenhouse:ctl/truth?endpoint=ats/jobs", "")
	require.Equal(t, http.StatusOK, status)
	var jobs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &jobs))
	i := slices.IndexFunc(jobs, func(j map[string]any) bool { return j["id"] == changes[0]["id"] })
	require.Equal(t, "CLOSED", jobs[i]["status"])

	status, _ = call("PUT", "/_emulator/faults", `{"queue":["server-error"]}`)
	require.Equal(t, http.StatusOK, status)
	code, _ := get(t, srv, "/v1/ats/jobs", "greenhouse:ctl")
	require.Equal(t, http.StatusInternalServerError, code)
	status, _ = call("PUT", "/_emulator/faults", `{"latency":"soon"}`)
	require.Equal(t, http.StatusBadRequest, status)

	status, _ = call("POST", "/_emulator/integrations/nope/state", `{"state":"ACTIVE"}`)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = call("POST", "/_emulator/integrations/greenhouse:ctl/churn", `{"per_second":0}`)
	require.Equal(t, http.StatusOK, status)
	status, _ = call("DELETE", "/_emulator/integrations/greenhouse:ctl", "")
	require.Equal(t, http.StatusOK, status)
	waitFor(t, "three webhooks", func() bool { return len(sink.all()) >= 3 })
}

func TestSeededRecordsAreRelated(t *testing.T) {
	emu, _, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:rel", Category: kombo.CategoryHRIS, Records: 50}))
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "g:rel", Category: kombo.CategoryATS, Records: 50}))
	check := func(id string, ep kombo.Endpoint, nested string) {
		recs, err := emu.Truth(id, ep)
		require.NoError(t, err)
		require.Len(t, recs, 50)
		for _, r := range recs {
			var obj map[string]any
			require.NoError(t, json.Unmarshal(r.Data, &obj))
			require.NotEmpty(t, obj[nested], "%s %s has no %s", ep, r.ID, nested)
		}
	}
	check("p:rel", employees, "employments")
	check("p:rel", employees, "time_off_balances")
	check("g:rel", kombo.Endpoint{Category: kombo.CategoryATS, Name: "candidates"}, "applications")
}

// The job filters of Kombo's ATS guide behave as Kombo documents them: statuses and job_codes
// are comma-separated lists, post_url matches the field, name_contains a keyword of the name
// whatever its case. Each answer is checked against the unfiltered list.
func TestJobFiltersBehaveAsKombos(t *testing.T) {
	emu, srv, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "g:jobs", Category: kombo.CategoryATS, Records: 400, Seed: 4}))
	type job struct {
		ID      string  `json:"id"`
		Name    string  `json:"name"`
		Status  string  `json:"status"`
		JobCode *string `json:"job_code"`
		PostURL *string `json:"post_url"`
	}
	list := func(query string) []job {
		status, body := get(t, srv, "/v1/ats/jobs?page_size=250&"+query, "g:jobs")
		require.Equal(t, http.StatusOK, status, "%s", body)
		var page struct {
			Data struct{ Results []job } `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &page))
		return page.Data.Results
	}
	ids := func(jobs []job, keep func(job) bool) []string {
		out := []string{}
		for _, j := range jobs {
			if keep(j) {
				out = append(out, j.ID)
			}
		}
		return out
	}
	all := list("")
	require.GreaterOrEqual(t, len(all), 5)
	openOrClosed := ids(all, func(j job) bool { return j.Status == "OPEN" || j.Status == "CLOSED" })
	require.NotEmpty(t, openOrClosed)
	require.Equal(t, openOrClosed, ids(list("statuses=OPEN,CLOSED"), func(job) bool { return true }))
	others := ids(all, func(j job) bool { return j.Status != "OPEN" && j.Status != "CLOSED" })
	require.Equal(t, others, ids(list("statuses=DRAFT,ARCHIVED"), func(job) bool { return true }))
	var withCode []job
	for _, j := range all {
		if j.JobCode != nil && *j.JobCode != "" && j.PostURL != nil && *j.PostURL != "" {
			withCode = append(withCode, j)
		}
	}
	require.GreaterOrEqual(t, len(withCode), 2, "jobs carry codes and posting URLs")
	a, b := withCode[0], withCode[1]
	require.Equal(t, []string{a.ID, b.ID}, ids(list("job_codes="+url.QueryEscape(*a.JobCode+","+*b.JobCode)), func(job) bool { return true }))
	require.Equal(t, []string{b.ID}, ids(list("post_url="+url.QueryEscape(*b.PostURL)), func(job) bool { return true }))
	word := strings.Fields(a.Name)[0]
	require.Equal(t, ids(all, func(j job) bool { return strings.Contains(strings.ToLower(j.Name), strings.ToLower(word)) }),
		ids(list("name_contains="+url.QueryEscape(strings.ToUpper(word))), func(job) bool { return true }))
}
