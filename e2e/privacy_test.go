package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/privacy"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// employeeValues are what identifies each employee of the truth: the values the tests look for.
type employeeValues struct {
	id, email, number, birth, phone, street string
}

func employeesOf(t *testing.T, s *stack, integrationID string) []employeeValues {
	t.Helper()
	truth, err := s.Emu.Truth(integrationID, kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"})
	require.NoError(t, err)
	var out []employeeValues
	for _, tr := range truth {
		var e struct {
			WorkEmail      string `json:"work_email"`
			EmployeeNumber string `json:"employee_number"`
			DateOfBirth    string `json:"date_of_birth"`
			Phone          string `json:"mobile_phone_number"`
			HomeAddress    struct {
				Street string `json:"street_1"`
			} `json:"home_address"`
		}
		require.NoError(t, json.Unmarshal(tr.Data, &e))
		require.NotEmpty(t, e.WorkEmail)
		out = append(out, employeeValues{tr.ID, e.WorkEmail, e.EmployeeNumber, e.DateOfBirth, e.Phone, e.HomeAddress.Street})
	}
	return out
}

// The personal-data guarantees, end to end: a field policy keeps its fields out of every table;
// deleted records become tombstones and old change values are redacted by the retention run, which
// a killed worker leaves half done and another finishes without skipping or repeating a row;
// `starter erase` removes a person everywhere and keeps them out; and no record value is in the
// workflows' histories, the programs' logs or the metrics.
func TestPersonalDataRetentionErasureAndPolicy(t *testing.T) {
	t.Parallel()
	const doc = `{"hris/employees": {"drop": ["date_of_birth", "home_address"], "hash": ["mobile_phone_number"]}}`
	file := filepath.Join(t.TempDir(), "policy.json")
	require.NoError(t, os.WriteFile(file, []byte(doc), 0o600))
	hashKey := strings.Repeat("hash-key-", 5)
	s := newStack(t, teststack.Options{WorkerMetrics: true, Secrets: []string{hashKey}, WorkerEnv: teststack.Env(
		"FIELD_POLICY_FILE", file, "FIELD_POLICY_HASH_KEY", hashKey,
		"DELETED_RECORD_RETENTION", "1s", "CHANGE_VALUES_RETENTION", "1s",
		"RETENTION_BATCH_SIZE", "2", "RETENTION_BATCH_PAUSE", "300ms", "FETCH_HEARTBEAT_TIMEOUT", "3s")})
	policy, err := privacy.Parse([]byte(doc), []byte(hashKey))
	require.NoError(t, err)
	s.Policy = policy
	const id = "personio:e2e-privacy"
	s.terminateAtEnd(t, id)
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 40, Seed: 11, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	people := employeesOf(t, s, id)
	var everything, policyValues []string
	for _, p := range people {
		everything = append(everything, p.email, p.number, p.birth, p.phone, p.street)
		policyValues = append(policyValues, p.birth, p.phone, p.street)
	}
	s.ForbidInLogs(everything...)

	// The policy: the fields it drops or hashes are in no table, ever.
	require.Empty(t, s.FindInKombo(t, policyValues...))
	require.NotEmpty(t, s.FindInKombo(t, people[0].email), "the scan finds what is stored")

	// 12 employees are deleted at Kombo, one is renamed: change rows with values.
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	gone := people[:12]
	var deletes []komboemu.Mutation
	for _, p := range gone {
		deletes = append(deletes, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpDelete, ID: p.id})
	}
	_, err = s.Emu.Mutate(id, append(deletes, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate, ID: people[20].id,
		Fields: map[string]any{"work_email": "renamed@acme.example"}})...)
	require.NoError(t, err)
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	// A live record may embed a deleted employee (a review names its reviewee while Kombo serves
	// both): that is the live record's content, kept with it. The check is about what only the
	// deleted records held.
	var live []string
	for _, ep := range kombo.DefaultEndpoints() {
		if ep.Category != kombo.CategoryHRIS || ep == employees {
			continue
		}
		truth, err := s.Emu.Truth(id, ep)
		require.NoError(t, err)
		for _, tr := range truth {
			if tr.RemoteDeletedAt == nil {
				live = append(live, string(tr.Data))
			}
		}
	}
	var goneValues []string
	for _, p := range gone {
		for _, v := range []string{p.email, p.number} {
			if !slices.ContainsFunc(live, func(data string) bool { return strings.Contains(data, v) }) {
				goneValues = append(goneValues, v)
			}
		}
	}
	require.Greater(t, len(goneValues), len(gone), "most of the deleted employees' values are theirs alone")
	require.NotEmpty(t, s.FindInKombo(t, goneValues...), "deleted, not yet past their retention: kept whole")
	teststack.Eventually(t, 30*time.Second, func() string { // past DELETED_RECORD_RETENTION (1 s) by the database's clock
		if n := s.Count(t, `select count(*) from kombo.records where deleted_at < now() - interval '1 second'`); n != len(gone) {
			return fmt.Sprintf("%d of %d deleted a second ago", n, len(gone))
		}
		return ""
	})

	// A retention run, its worker killed after its first batches (2 rows each, 300 ms apart).
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	s.StarterJSON(t, &started, "retention", "run")
	tombstoned := func() int {
		return s.Count(t, `select coalesce(sum(tombstoned), 0)::int from kombo.retention_runs where id = $1`, started.WorkflowID)
	}
	for deadline := time.Now().Add(time.Minute); tombstoned() == 0; time.Sleep(10 * time.Millisecond) { // closer than Eventually's 100 ms
		require.True(t, time.Now().Before(deadline), "no tombstone batch committed within a minute")
	}
	requireNotInMetrics(t, s.MetricsURL, everything) // the first worker's; the second serves none
	s.Worker.Kill()
	<-s.Worker.Done()
	partial := tombstoned()
	require.Less(t, partial, len(gone), "killed mid-run")
	s.StartWorker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var counts store.RetentionCounts
	require.NoError(t, s.Temporal.GetWorkflow(ctx, started.WorkflowID, "").Get(ctx, &counts))
	t.Logf("killed after %d of %d tombstones; the run ended with %+v", partial, len(gone), counts)
	require.Equal(t, int64(len(gone)), counts.Tombstoned, "every deleted record once: nothing skipped, nothing counted twice")
	require.Equal(t, len(gone), s.Count(t, `select count(*) from kombo.records where content_removed_at is not null`))
	require.Equal(t, s.Count(t, `select count(*) from kombo.changes where values_redacted_at is not null and op <> 'erased'`),
		int(counts.ChangesRedacted), "each redacted change row counted once")
	require.Empty(t, s.FindInKombo(t, goneValues...), "tombstones hold ids and dates only")
	require.Empty(t, s.FindInKombo(t, people[20].email), "the old value of the renamed email is redacted")
	require.Empty(t, s.FindInKombo(t, policyValues...))
	require.Contains(t, s.Starter(t, "retention", "status"), fmt.Sprintf("%d deleted records made tombstones", len(gone)))
	s.recordHistory(t, started.WorkflowID, "", "retention_run")

	// Erasure of a live employee by email, suppressed: gone everywhere, and the next full pass
	// does not bring the record back.
	target := people[30]
	var erased struct {
		Records    []store.RecordRef `json:"records"`
		ChangeRows int               `json:"change_rows"`
		Suppressed []store.RecordRef `json:"suppressed"`
	}
	s.StarterJSON(t, &erased, "erase", id, "--email", strings.ToUpper(target.email), "--suppress", "--reason", "DSR-4711")
	require.Contains(t, erased.Records, store.RecordRef{Endpoint: "hris/employees", ID: target.id})
	require.Greater(t, len(erased.Records), 1, "the records embedding the employee (employments, balances, …) go too")
	require.Equal(t, erased.Records, erased.Suppressed)
	require.Empty(t, s.FindInKombo(t, target.email, target.number))
	s.Starter(t, "integration", "reconcile", id)
	teststack.Eventually(t, time.Minute, func() string {
		st, err := s.Status(t, id)
		if err != nil {
			return err.Error()
		}
		if st.LastFullSyncAt == nil || st.State != workflows.StateIdle {
			return "no full pass finished yet, state " + st.State
		}
		return ""
	})
	require.Empty(t, s.FindInKombo(t, target.email, target.number), "suppressed: the full pass does not store it again")
	require.Contains(t, s.Starter(t, "suppression", "list", id), "DSR-4711")

	// No record value in the workflows' histories, the programs' logs (checked at the end) or
	// the metrics.
	for _, wf := range []string{workflows.IntegrationWorkflowID(id), started.WorkflowID} {
		file := filepath.Join(t.TempDir(), "history.json")
		s.Starter(t, "history", "export", wf, file)
		raw := historyBytes(t, file)
		require.True(t, strings.Contains(raw, wf), "the export holds the run of %s", wf)
		if wf == workflows.IntegrationWorkflowID(id) {
			require.True(t, strings.Contains(raw, `"hris/employees"`), "the scan reads payloads decoded: an endpoint is only in them")
		}
		for _, v := range everything {
			require.False(t, strings.Contains(raw, v), "%s's history holds a record value", wf)
		}
	}
}

// historyBytes is an exported history with its payloads as they are sent, not base64 as the JSON
// export writes them: every event in protobuf's wire form, where a payload's data is raw bytes.
func historyBytes(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	var b strings.Builder
	for _, e := range h.Events {
		wire, err := proto.Marshal(e)
		require.NoError(t, err)
		b.Write(wire)
	}
	return b.String()
}

// requireNotInMetrics scrapes the worker's metrics and fails on any of the values.
func requireNotInMetrics(t *testing.T, url string, values []string) {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(b), "kombosync_records_total", "a real scrape")
	for _, v := range values {
		require.NotContains(t, string(b), v)
	}
}
