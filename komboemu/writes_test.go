package komboemu_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

const atsID = "greenhouse:writes"

// jobsByStatus returns the emulated ATS's jobs with their status and stage ids.
func jobsByStatus(t *testing.T, emu *komboemu.Emulator, id string) map[string][]struct {
	ID     string
	Stages []string
} {
	t.Helper()
	truth, err := emu.Truth(id, kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"})
	require.NoError(t, err)
	out := map[string][]struct {
		ID     string
		Stages []string
	}{}
	for _, r := range truth {
		var j struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Stages []struct {
				ID string `json:"id"`
			} `json:"stages"`
		}
		require.NoError(t, json.Unmarshal(r.Data, &j))
		if r.RemoteDeletedAt != nil {
			continue
		}
		var stages []string
		for _, s := range j.Stages {
			stages = append(stages, s.ID)
		}
		out[j.Status] = append(out[j.Status], struct {
			ID     string
			Stages []string
		}{j.ID, stages})
	}
	return out
}

func firstRecordID(t *testing.T, emu *komboemu.Emulator, id, endpoint string) string {
	t.Helper()
	truth, err := emu.Truth(id, kombo.Endpoint{Category: kombo.CategoryATS, Name: endpoint})
	require.NoError(t, err)
	for _, r := range truth {
		if r.RemoteDeletedAt == nil {
			return r.ID
		}
	}
	t.Fatalf("no live %s", endpoint)
	return ""
}

func application(email string) string {
	return `{"candidate": {"first_name": "Frank", "last_name": "Doe", "email_address": "` + email + `"},
		"attachments": [{"name": "cv.txt", "type": "CV", "content_type": "text/plain", "data": "SGkgdGhlcmU="}]}`
}

// Every write answers as Kombo's OpenAPI document says, success and refusal alike, and what it
// wrote is read back through the list endpoints.
func TestWritesMatchTheOpenAPIDocument(t *testing.T) {
	emu, srv, sink := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: atsID, Category: kombo.CategoryATS, Records: 200, Seed: 3}))
	jobs := jobsByStatus(t, emu, atsID)
	require.NotEmpty(t, jobs["OPEN"])
	require.NotEmpty(t, jobs["CLOSED"])
	open := jobs["OPEN"][0]
	errSchema := schemaAt(t, "/components/responses/ErrorResponseATS/content/application~1json/schema")

	status, body := call(t, srv, http.MethodPost, "/v1/ats/jobs/"+open.ID+"/applications", atsID, application("frank@example.com"))
	require.Equal(t, http.StatusOK, status, "%s", body)
	validate(t, schemaAt(t, "/paths/~1ats~1jobs~1{job_id}~1applications/post/responses/200/content/application~1json/schema"), body, "create application")
	var created struct {
		Data struct {
			ID          string `json:"id"`
			CandidateID string `json:"candidate_id"`
			JobID       string `json:"job_id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &created))
	require.Equal(t, open.ID, created.Data.JobID)

	// The same email to the same job again: Kombo refuses a second application.
	status, body = call(t, srv, http.MethodPost, "/v1/ats/jobs/"+open.ID+"/applications", atsID, application("FRANK@example.com"))
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), kombo.CodeApplicationAlreadyExists)
	validate(t, errSchema, body, "already exists")
	// A closed job refuses applications.
	status, body = call(t, srv, http.MethodPost, "/v1/ats/jobs/"+jobs["CLOSED"][0].ID+"/applications", atsID, application("x@example.com"))
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), kombo.CodeJobClosed)
	validate(t, errSchema, body, "job closed")
	// Missing candidate fields are invalid input.
	status, body = call(t, srv, http.MethodPost, "/v1/ats/jobs/"+open.ID+"/applications", atsID, `{"candidate": {"first_name": "A"}}`)
	require.Equal(t, http.StatusBadRequest, status)
	validate(t, errSchema, body, "invalid input")

	// The candidate lookup of a lost answer finds it: by email and job.
	status, body = get(t, srv, "/v1/ats/candidates?email=frank@example.com&job_ids="+open.ID, atsID)
	require.Equal(t, http.StatusOK, status)
	validate(t, schemaAt(t, "/paths/~1ats~1candidates/get/responses/200/content/application~1json/schema"), body, "candidates by email")
	require.Contains(t, string(body), created.Data.ID)
	status, body = get(t, srv, "/v1/ats/candidates?email=nobody@example.com", atsID)
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, string(body), created.Data.ID)

	appPath := "/v1/ats/applications/" + created.Data.ID
	ok := func(method, path, body, pointer string) {
		t.Helper()
		status, answer := call(t, srv, method, path, atsID, body)
		require.Equal(t, http.StatusOK, status, "%s %s: %s", method, path, answer)
		validate(t, schemaAt(t, pointer), answer, method+" "+path)
	}
	stage := open.Stages[len(open.Stages)-1]
	ok(http.MethodPut, appPath+"/stage", `{"stage_id": "`+stage+`"}`, "/paths/~1ats~1applications~1{application_id}~1stage/put/responses/200/content/application~1json/schema")
	ok(http.MethodPost, appPath+"/notes", `{"content": "Strong CV", "content_type": "PLAIN_TEXT"}`, "/paths/~1ats~1applications~1{application_id}~1notes/post/responses/200/content/application~1json/schema")
	ok(http.MethodPost, appPath+"/attachments", `{"attachment": {"name": "letter.pdf", "type": "COVER_LETTER", "data_url": "https://files.example/letter.pdf"}}`,
		"/paths/~1ats~1applications~1{application_id}~1attachments/post/responses/200/content/application~1json/schema")
	ok(http.MethodGet, appPath+"/attachments", "", "/paths/~1ats~1applications~1{application_id}~1attachments/get/responses/200/content/application~1json/schema")
	reason := firstRecordID(t, emu, atsID, "rejection-reasons")
	ok(http.MethodPost, appPath+"/reject", `{"rejection_reason_id": "`+reason+`", "note": "Position filled"}`,
		"/paths/~1ats~1applications~1{application_id}~1reject/post/responses/200/content/application~1json/schema")
	status, body = call(t, srv, http.MethodPut, appPath+"/stage", atsID, `{"stage_id": "not-a-stage"}`)
	require.Equal(t, http.StatusBadRequest, status)
	validate(t, errSchema, body, "bad stage")
	status, body = call(t, srv, http.MethodPost, "/v1/ats/applications/nope/notes", atsID, `{"content": "x", "content_type": "PLAIN_TEXT"}`)
	require.Equal(t, http.StatusNotFound, status)
	validate(t, errSchema, body, "unknown application")

	apps, err := emu.Applications(atsID)
	require.NoError(t, err)
	var mine []komboemu.ApplicationOf
	for _, a := range apps {
		if a.ID == created.Data.ID {
			mine = append(mine, a)
		}
	}
	require.Equal(t, []komboemu.ApplicationOf{{ID: created.Data.ID, CandidateID: created.Data.CandidateID, JobID: open.ID,
		Email: "frank@example.com", StageID: stage, Outcome: "DECLINED", Notes: 2, Attachments: 2}}, mine)
	status, body = get(t, srv, "/v1/ats/applications?ids="+created.Data.ID, atsID)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"outcome":"DECLINED"`)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, emu.WaitWebhooks(ctx))
	var changed []string
	for _, b := range sink.all() {
		var ev struct {
			Type string `json:"type"`
			Data struct {
				ChangedModels []struct{ Name string } `json:"changed_models"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(b, &ev))
		for _, m := range ev.Data.ChangedModels {
			changed = append(changed, m.Name)
		}
	}
	require.Contains(t, changed, "ats_applications")
	require.Contains(t, changed, "ats_candidates")
	require.Equal(t, 5, emu.WriteStats().Committed)
}

// The write faults: an answer lost after the commit (reset, held past the client's timeout, a
// 504 although the write finished) still wrote; a failure before the commit wrote nothing; the
// read lag hides what was created; the concurrency cap answers 429 with Kombo's headers.
func TestWriteFaultsLoseAnswersNotWrites(t *testing.T) {
	emu, srv, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: atsID, Category: kombo.CategoryATS, Records: 200, Seed: 3}))
	open := jobsByStatus(t, emu, atsID)["OPEN"][0]
	c, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1", APIKey: apiKey, Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	ctx := t.Context()
	create := func(email string) error {
		_, err := c.Write(ctx, atsID, http.MethodPost, []byte(application(email)), "ats", "jobs", open.ID, "applications")
		return err
	}
	found := func(email string) int {
		apps, err := c.FindApplications(ctx, atsID, email, open.ID)
		require.NoError(t, err)
		return len(apps)
	}

	emu.SetWriteFaults(komboemu.WriteFaults{HoldFor: time.Minute})
	emu.QueueWriteFaults(komboemu.WriteResetAfterCommit, komboemu.WriteHoldAfterCommit, komboemu.WriteTimedOutAfterCommit,
		komboemu.WriteFailBeforeCommit, komboemu.WriteUnavailable)
	var transport *kombo.TransportError
	require.ErrorAs(t, create("reset@example.com"), &transport)
	require.Equal(t, 1, found("reset@example.com"))
	err = create("held@example.com")
	require.Error(t, err)
	require.True(t, errors.As(err, &transport) && transport.Timeout(), "%v", err)
	require.Equal(t, 1, found("held@example.com"))
	var apiErr *kombo.APIError
	require.ErrorAs(t, create("timedout@example.com"), &apiErr)
	require.Equal(t, kombo.CodeTaskTimedOut, apiErr.Code)
	require.Equal(t, 1, found("timedout@example.com"))
	require.ErrorAs(t, create("failed@example.com"), &apiErr)
	require.Equal(t, kombo.CodePlatformUnknownError, apiErr.Code)
	require.ErrorAs(t, create("unavailable@example.com"), &apiErr)
	require.Equal(t, kombo.CodeRemoteServiceUnavailable, apiErr.Code)
	require.Zero(t, found("failed@example.com")+found("unavailable@example.com"))

	// Read lag: the write is committed, reads do not show it until the lag has passed.
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	lagged, lsrv, _ := start(t, komboemu.Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	require.NoError(t, lagged.CreateIntegration(komboemu.IntegrationSpec{ID: atsID, Category: kombo.CategoryATS, Records: 200, Seed: 3}))
	lagged.SetWriteFaults(komboemu.WriteFaults{ReadLag: 5 * time.Second})
	lc, err := kombo.New(kombo.Options{BaseURL: lsrv.URL + "/v1", APIKey: apiKey})
	require.NoError(t, err)
	answer, err := lc.Write(ctx, atsID, http.MethodPost, []byte(application("lag@example.com")), "ats", "jobs", open.ID, "applications")
	require.NoError(t, err)
	require.Contains(t, string(answer.Data), `"job_id":"`+open.ID+`"`)
	apps, err := lc.FindApplications(ctx, atsID, "lag@example.com", open.ID)
	require.NoError(t, err)
	require.Empty(t, apps, "a created application is not read before the read lag passed")
	mu.Lock()
	now = now.Add(6 * time.Second)
	mu.Unlock()
	apps, err = lc.FindApplications(ctx, atsID, "lag@example.com", open.ID)
	require.NoError(t, err)
	require.Len(t, apps, 1)

	// The concurrency cap: held writes fill it, the next one is refused with Kombo's headers.
	emu.SetWriteFaults(komboemu.WriteFaults{ConcurrencyCap: 2, Latency: time.Hour})
	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, email := range []string{"a@example.com", "b@example.com"} {
		wg.Go(func() {
			_, _ = c.Write(hctx, atsID, http.MethodPost, []byte(application(email)), "ats", "jobs", open.ID, "applications")
		})
	}
	require.Eventually(t, func() bool { return emu.WriteStats().MaxInFlight[atsID] >= 2 }, 10*time.Second, 5*time.Millisecond)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/ats/jobs/"+open.ID+"/applications", strings.NewReader(application("c@example.com")))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("X-Integration-Id", atsID)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("Concurrency-Limit"))
	require.Equal(t, "0", resp.Header.Get("Concurrency-Remaining"))
	cancel()
	wg.Wait()
	stats := emu.WriteStats()
	require.Equal(t, 3, stats.MaxInFlight[atsID])
	require.Equal(t, 1, stats.ConcurrencyHit)
}

// The control API sets write faults and reports what writes did.
func TestControlAPIWriteFaults(t *testing.T) {
	emu, srv, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: atsID, Category: kombo.CategoryATS, Records: 200, Seed: 3}))
	put := func(body string) int {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/_emulator/write-faults", strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, put(`{"queue": ["fail-before-commit"]}`))
	require.Equal(t, http.StatusBadRequest, put(`{"reset_after_commit": "lots"}`))
	open := jobsByStatus(t, emu, atsID)["OPEN"][0]
	status, _ := call(t, srv, http.MethodPost, "/v1/ats/jobs/"+open.ID+"/applications", atsID, application("q@example.com"))
	require.Equal(t, http.StatusInternalServerError, status)
	status, _ = call(t, srv, http.MethodPost, "/v1/ats/jobs/"+open.ID+"/applications", atsID, application("q@example.com"))
	require.Equal(t, http.StatusOK, status)
	resp, err := http.Get(srv.URL + "/_emulator/writes")
	require.NoError(t, err)
	var stats komboemu.WriteStats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&stats))
	resp.Body.Close()
	require.Equal(t, 2, stats.Requests)
	require.Equal(t, 1, stats.Committed)
	resp, err = http.Get(srv.URL + "/_emulator/integrations/" + atsID + "/applications")
	require.NoError(t, err)
	var apps []komboemu.ApplicationOf
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&apps))
	resp.Body.Close()
	n := 0
	for _, a := range apps {
		if a.Email == "q@example.com" {
			n++
		}
	}
	require.Equal(t, 1, n)
}
