package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// applicationRequest is one create-application request of the test, by its key.
type applicationRequest struct {
	key, email, first, body string
	closed                  bool // for a job that no longer takes applications: 409, nothing stored
	replays                 int  // sent this many more times with the same key and body
}

type answer struct {
	key    string
	status int
	id     string
	code   string
	err    error
}

// send posts one request to the back-office program; it never calls require (it runs in the
// test's client goroutines).
func send(ctx context.Context, hc *http.Client, base string, r applicationRequest) answer {
	a := answer{key: r.key}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base, strings.NewReader(r.body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Authorization", "Bearer "+teststack.APIToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", r.key)
	resp, err := hc.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.err = err
		return a
	}
	a.status = resp.StatusCode
	var body struct {
		ID    string `json:"id"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	a.err = json.Unmarshal(raw, &body)
	a.id, a.code = body.ID, body.Error.Code
	return a
}

// 200 create-application requests from many concurrent clients, a tenth replayed with the same
// key (some concurrently), some for closed jobs, with the emulator's write faults on (resets
// after the commit, answers held past the client's timeout, 500s and 503s before it, a read lag,
// a concurrency cap of 5) and the worker SIGKILLed twice: every action final, exactly one
// application per key in the ATS, none for closed jobs, every replay answered with the same
// action, the cap never exceeded where Kombo counts, and no candidate value in any history.
func TestApplicationsAreCreatedExactlyOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env(
		"KOMBO_ENDPOINTS", "ats/jobs,ats/applications,ats/candidates",
		"KOMBO_MAX_ACTIONS_IN_FLIGHT", "5", "KOMBO_ACTION_TIMEOUT", "1s", "ACTION_LOOKUP_WINDOW", "3s",
		"ACTION_PAYLOAD_RETENTION", "1s")})
	const id = "greenhouse:e2e-actions"
	jobs := kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryATS, Records: 300, Seed: 9, Notify: true}))
	s.terminateAtEnd(t, id)
	teststack.Eventually(t, 2*time.Minute, func() string { return s.Diff(t, id, jobs) })

	var open, closed struct{ Jobs []store.SyncedJob }
	s.StarterJSON(t, &open, "jobs", "list", id, "--status", "OPEN")
	s.StarterJSON(t, &closed, "jobs", "list", id, "--status", "CLOSED")
	require.GreaterOrEqual(t, len(open.Jobs), 2)
	require.NotEmpty(t, closed.Jobs)
	var link store.JobLink
	s.StarterJSON(t, &link, "jobs", "link", id, "app-open", "--id", open.Jobs[0].ID)
	require.Equal(t, store.LinkConfirmed, link.State)
	s.StarterJSON(t, &link, "jobs", "link", id, "app-closed", "--id", closed.Jobs[0].ID)
	require.Equal(t, store.LinkConfirmed, link.State)

	s.Emu.SetWriteFaults(komboemu.WriteFaults{ResetAfterCommit: 0.08, HoldAfterCommit: 0.05, FailBeforeCommit: 0.08,
		HoldFor: 5 * time.Second, ReadLag: time.Second, ConcurrencyCap: 5, Latency: 20 * time.Millisecond})
	api := s.StartBackoffice(t)
	endpoint := api + "/v1/integrations/" + url.PathEscape(id) + "/applications"

	var reqs []applicationRequest
	var personal []string
	for i := range 200 {
		r := applicationRequest{key: fmt.Sprintf("apply-%03d", i), email: fmt.Sprintf("candidate%03d@apply.example", i),
			first: fmt.Sprintf("Firstname%03d", i)}
		job := `"app_job_id": "app-open"`
		switch {
		case i%20 == 7:
			r.closed, job = true, `"app_job_id": "app-closed"`
		case i%20 == 13:
			r.closed, job = true, fmt.Sprintf(`"job_id": %q`, closed.Jobs[0].ID)
		case i%2 == 1:
			job = fmt.Sprintf(`"job_id": %q`, open.Jobs[1].ID)
		}
		if i%10 == 3 {
			r.replays = 2 // one at once with the first, one after everything
		}
		r.body = fmt.Sprintf(`{%s, "candidate": {"first_name": %q, "last_name": "Lastname%03d", "email_address": %q, "phone_number": "+49 30 %07d"},
			"attachments": [{"name": "cv-%03d.txt", "type": "CV", "content_type": "text/plain", "data": "SGVsbG8="}]}`, job, r.first, i, r.email, 1000000+i, i)
		reqs = append(reqs, r)
		personal = append(personal, r.email, r.first, fmt.Sprintf("Lastname%03d", i), fmt.Sprintf("+49 30 %07d", 1000000+i))
	}
	s.ForbidInLogs(personal...)

	hc := &http.Client{Timeout: 30 * time.Second}
	queue := make(chan applicationRequest)
	var mu sync.Mutex
	var answers []answer
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for r := range queue {
				a := send(t.Context(), hc, endpoint, r)
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		})
	}
	started := func() int { return s.Count(t, `select count(*) from kombo.actions where attempts > 0`) }
	worker := s.Worker
	kills := 0
	for i, r := range reqs {
		queue <- r
		if r.replays > 0 {
			queue <- r // concurrently with the first
		}
		if (i == 70 || i == 150) && kills < 2 {
			// SIGKILL the worker while actions are in flight, start another.
			teststack.Eventually(t, time.Minute, func() string {
				if n := started(); n < 20*(kills+1) {
					return fmt.Sprintf("%d actions sent so far", n)
				}
				return ""
			})
			worker.Kill()
			kills++
			worker = s.StartWorker(t)
		}
	}
	close(queue)
	wg.Wait()
	for _, r := range reqs {
		if r.replays > 1 {
			answers = append(answers, send(t.Context(), hc, endpoint, r))
		}
	}
	require.Equal(t, 2, kills)

	// Every answer as the contract says: one 202 per stored key, 200 with the same id for every
	// replay, 409 job_not_open for closed jobs.
	byKey := map[string][]answer{}
	for _, a := range answers {
		require.NoError(t, a.err, a.key)
		byKey[a.key] = append(byKey[a.key], a)
	}
	actionOf := map[string]string{}
	for _, r := range reqs {
		as := byKey[r.key]
		require.Len(t, as, 1+r.replays, r.key)
		if r.closed {
			for _, a := range as {
				require.Equal(t, http.StatusConflict, a.status, r.key)
				require.Equal(t, "job_not_open", a.code, r.key)
			}
			continue
		}
		accepted := 0
		for _, a := range as {
			require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, a.status, r.key)
			if a.status == http.StatusAccepted {
				accepted++
			}
			require.Equal(t, as[0].id, a.id, "%s: every replay answers the same action", r.key)
		}
		require.Equal(t, 1, accepted, r.key)
		actionOf[r.key] = as[0].id
	}
	require.Equal(t, len(actionOf), s.Count(t, `select count(*) from kombo.actions`), "one action per key; none for closed jobs")

	teststack.Eventually(t, 5*time.Minute, func() string {
		if n := s.Count(t, `select count(*) from kombo.actions where state not in ('succeeded', 'refused', 'failed')`); n > 0 {
			return fmt.Sprintf("%d actions not final", n)
		}
		return ""
	})
	rows, err := s.Pool.Query(t.Context(), `select idempotency_key, state, coalesce(error ->> 'code', ''), attempts,
		coalesce((result ->> 'found_by_lookup')::boolean, false) from kombo.actions`)
	require.NoError(t, err)
	var lookedUp, resent int
	states := map[string]int{}
	for rows.Next() {
		var key, state, code string
		var attempts int
		var found bool
		require.NoError(t, rows.Scan(&key, &state, &code, &attempts, &found))
		states[state]++
		require.Equal(t, store.ActionSucceeded, state, "%s ended %s %s after %d attempts", key, state, code, attempts)
		if found {
			lookedUp++
		}
		if attempts > 1 {
			resent++
		}
	}
	require.NoError(t, rows.Err())
	stats := s.Emu.WriteStats()
	t.Logf("actions %v; %d found by a look after a lost answer, %d sent again after one; the emulator: %d write requests, %d committed, %d concurrency refusals, at most %d in flight",
		states, lookedUp, resent, stats.Requests, stats.Committed, stats.ConcurrencyHit, stats.MaxInFlight[id])
	require.Positive(t, lookedUp, "the faults lost answers that were then found")
	require.LessOrEqual(t, stats.MaxInFlight[id], 5, "KOMBO_MAX_ACTIONS_IN_FLIGHT held where Kombo counts, through two crashes")

	// Exactly one application per key in the ATS; none for the closed jobs.
	apps, err := s.Emu.Applications(id)
	require.NoError(t, err)
	perEmail := map[string]int{}
	for _, a := range apps {
		perEmail[a.Email]++
	}
	for _, r := range reqs {
		want := 1
		if r.closed {
			want = 0
		}
		require.Equal(t, want, perEmail[r.email], "%s: applications in the ATS", r.key)
	}
	require.Equal(t, len(actionOf), stats.Committed, "every committed write is one key's application: nothing written twice")

	// The created applications reach the synced tables through the normal sync, and the
	// actions link to them.
	teststack.Eventually(t, 2*time.Minute, func() string {
		n := s.Count(t, `select count(*) from kombo.actions a where not exists (select from kombo.ats_applications x
			where x.integration_id = a.integration_id and x.id = a.result ->> 'application_id')`)
		if n > 0 {
			return fmt.Sprintf("%d created applications not synced yet", n)
		}
		return ""
	})
	var shown store.Action
	s.StarterJSON(t, &shown, "actions", "show", actionOf["apply-000"])
	require.True(t, shown.Synced)

	// No candidate value in any Temporal history: the workflows carry ids.
	for _, wf := range append(mapValues(actionOf, workflows.ActionWorkflowID), workflows.IntegrationWorkflowID(id)) {
		raw := historyOf(t, s, wf)
		require.Contains(t, raw, strings.TrimPrefix(strings.TrimPrefix(wf, "kombo-action:"), "kombo-integration:"), "the scan reads %s's payloads", wf)
		for _, v := range personal {
			require.NotContains(t, raw, v, "%s's history holds a candidate value", wf)
		}
	}

	// Recorded histories of the workflow's paths.
	pick := func(where string) string {
		var actionID string
		require.NoError(t, s.Pool.QueryRow(t.Context(), `select id from kombo.actions where `+where+` order by seq limit 1`).Scan(&actionID), where)
		return actionID
	}
	s.recordHistory(t, workflows.ActionWorkflowID(pick(`attempts = 1 and not (result ->> 'found_by_lookup')::boolean and lookups = 0`)), "", "action_sent_once")
	s.recordHistory(t, workflows.ActionWorkflowID(pick(`attempts = 1 and (result ->> 'found_by_lookup')::boolean`)), "", "action_found_by_lookup")
	if s.Count(t, `select count(*) from kombo.actions where attempts > 1 and lookups > 0 and not (result ->> 'found_by_lookup')::boolean`) > 0 {
		s.recordHistory(t, workflows.ActionWorkflowID(pick(`attempts > 1 and lookups > 0 and not (result ->> 'found_by_lookup')::boolean`)), "", "action_sent_again")
	}

	// The daily retention run removes the finished actions' requests (ACTION_PAYLOAD_RETENTION is
	// 1 s here); their outcomes stay.
	var run struct {
		WorkflowID string `json:"workflow_id"`
	}
	s.StarterJSON(t, &run, "retention", "run")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var counts store.RetentionCounts
	require.NoError(t, s.Temporal.GetWorkflow(ctx, run.WorkflowID, "").Get(ctx, &counts))
	require.EqualValues(t, len(actionOf), counts.ActionPayloadsRemoved)
	require.Zero(t, s.Count(t, `select count(*) from kombo.actions where request is not null`))
	require.Equal(t, len(actionOf), s.Count(t, `select count(*) from kombo.actions where result ->> 'application_id' is not null`))
	s.recordHistory(t, run.WorkflowID, "", "retention_action_payloads")
}

func mapValues(m map[string]string, f func(string) string) []string {
	var out []string
	for _, v := range m {
		out = append(out, f(v))
	}
	return out
}

// historyOf is a closed or running workflow's history with its payloads as sent (protobuf's wire
// form), read with the test's own client: hundreds of histories without a process each.
func historyOf(t *testing.T, s *stack, workflowID string) string {
	t.Helper()
	it := s.Temporal.GetWorkflowHistory(t.Context(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var b strings.Builder
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		wire, err := proto.Marshal(e)
		require.NoError(t, err)
		b.Write(wire)
	}
	return b.String()
}

// Through a Temporal restart: actions whose answers were held when the server stopped, and
// actions accepted while it was down (stored, started by the back office's relay once it is
// back), each end succeeded with one application.
func TestActionsSurviveATemporalRestart(t *testing.T) {
	t.Parallel()
	infra := startCrashableInfra(t)
	s := newStack(t, teststack.Options{DatabaseURL: infra.databaseURL, TemporalAddress: infra.temporalAddress,
		WorkerEnv: teststack.Env("KOMBO_ENDPOINTS", "ats/jobs", "KOMBO_ACTION_TIMEOUT", "2s", "ACTION_LOOKUP_WINDOW", "2s")})
	const id = "greenhouse:e2e-actions-restart"
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryATS, Records: 300, Seed: 11}))
	require.NoError(t, store.New(s.Pool).SaveIntegration(t.Context(), store.Integration{ID: id, Tool: "greenhouse", Category: "ATS"}))
	truth, err := s.Emu.Truth(id, kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"})
	require.NoError(t, err)
	job := ""
	for _, r := range truth {
		var j struct{ Status string }
		require.NoError(t, json.Unmarshal(r.Data, &j))
		if j.Status == "OPEN" && r.RemoteDeletedAt == nil && job == "" {
			job = r.ID
		}
	}
	require.NotEmpty(t, job)
	s.Emu.SetWriteFaults(komboemu.WriteFaults{HoldAfterCommit: 0.5, HoldFor: 10 * time.Second})
	endpoint := s.StartBackoffice(t) + "/v1/integrations/" + url.PathEscape(id) + "/applications"
	hc := &http.Client{Timeout: time.Minute}
	request := func(i int) applicationRequest {
		email := fmt.Sprintf("restart%02d@apply.example", i)
		return applicationRequest{key: fmt.Sprintf("restart-%02d", i), email: email,
			body: fmt.Sprintf(`{"job_id": %q, "candidate": {"first_name": "R", "last_name": "S", "email_address": %q}}`, job, email)}
	}
	for i := range 10 {
		a := send(t.Context(), hc, endpoint, request(i))
		require.NoError(t, a.err)
		require.Equal(t, http.StatusAccepted, a.status)
	}
	teststack.Eventually(t, time.Minute, func() string {
		if n := s.Count(t, `select count(*) from kombo.actions where attempts > 0`); n < 3 {
			return fmt.Sprintf("%d actions sent", n)
		}
		return ""
	})
	require.NoError(t, infra.temporal.Stop())
	for i := 10; i < 15; i++ { // accepted while Temporal is down: stored, their start left to the relay
		a := send(t.Context(), hc, endpoint, request(i))
		require.NoError(t, a.err)
		require.Equal(t, http.StatusAccepted, a.status)
	}
	require.Equal(t, 5, s.Count(t, `select count(*) from kombo.actions where workflow_started_at is null`))
	infra.startTemporal(t)
	teststack.Eventually(t, 4*time.Minute, func() string {
		if n := s.Count(t, `select count(*) from kombo.actions where state <> 'succeeded'`); n > 0 {
			return fmt.Sprintf("%d actions not succeeded", n)
		}
		return ""
	})
	apps, err := s.Emu.Applications(id)
	require.NoError(t, err)
	perEmail := map[string]int{}
	for _, a := range apps {
		perEmail[a.Email]++
	}
	for i := range 15 {
		require.Equal(t, 1, perEmail[request(i).email], request(i).key)
	}
}
