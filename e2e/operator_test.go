package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// What starter --json prints, decoded the way a script would.
type (
	listJSON struct {
		Integrations []struct {
			IntegrationID     string  `json:"integration_id"`
			Tool              string  `json:"tool"`
			State             string  `json:"state"`
			KomboState        string  `json:"kombo_state"`
			FirstSyncFinished bool    `json:"first_sync_finished"`
			LastSyncedAt      *string `json:"last_synced_at"`
		} `json:"integrations"`
	}
	statusJSON struct {
		Source            string   `json:"source"`
		Note              string   `json:"note"`
		State             string   `json:"state"`
		PauseReason       string   `json:"pause_reason"`
		FirstSyncFinished bool     `json:"first_sync_finished"`
		Pending           []string `json:"pending"`
		NextWake          string   `json:"next_wake"`
		LastSyncedAt      *string  `json:"last_synced_at"`
		Endpoints         []struct {
			Endpoint   string   `json:"endpoint"`
			Watermark  *string  `json:"watermark"`
			LagSeconds *float64 `json:"lag_seconds"`
			LastRun    *struct {
				Kind    string `json:"kind"`
				Outcome string `json:"outcome"`
				Fetched int    `json:"fetched"`
			} `json:"last_run"`
		} `json:"endpoints"`
		WebhooksUnsignaled *int `json:"webhooks_unsignaled"`
	}
	doneJSON struct {
		Subject string `json:"subject"`
		Outcome string `json:"outcome"`
	}
)

// Every starter command an operator uses on an integration works against the running stack, as
// text and as JSON, with its exit code: list, status (from the workflow, and from Postgres while
// the worker is down), pause, resume, sync, webhook replay, history export and migrate.
func TestStarterOperatesTheRunningStack(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{})
	const id = "personio:e2e-operator"
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 40, Seed: 5, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	s.WaitState(t, id, workflows.StateIdle, time.Minute)

	// list: text for people, JSON for scripts, a filter by state.
	out := s.Starter(t, "integration", "list")
	require.Regexp(t, `(?m)^INTEGRATION\s+TOOL\s+CATEGORY\s+STATE`, out)
	require.Regexp(t, `(?m)^personio:e2e-operator\s+personio\s+HRIS\s+idle\s+ACTIVE\s+\d+s ago`, out)
	var list listJSON
	s.StarterJSON(t, &list, "integration", "list")
	require.Len(t, list.Integrations, 1)
	require.Equal(t, id, list.Integrations[0].IntegrationID)
	require.Equal(t, "idle", list.Integrations[0].State)
	require.True(t, list.Integrations[0].FirstSyncFinished)
	require.NotNil(t, list.Integrations[0].LastSyncedAt)
	s.StarterJSON(t, &list, "integration", "list", "--state", "auth_failed")
	require.Empty(t, list.Integrations)
	require.Contains(t, s.Starter(t, "integration", "list", "--state", "auth_failed"), "no integrations")

	// status from the workflow: state, watermarks and lag, last runs.
	out = s.Starter(t, "integration", "status", id)
	require.Contains(t, out, "the workflow kombo-integration:personio:e2e-operator (live)")
	require.Regexp(t, `state:\s+idle \(Kombo: ACTIVE, first sync finished\)`, out)
	require.Regexp(t, `(?m)^\s+hris/employees\s+\S+\s+\d{4}-\d\d-\d\dT\S+\s+(delta|full) succeeded`, out)
	var st statusJSON
	s.StarterJSON(t, &st, "integration", "status", id)
	require.Equal(t, "workflow", st.Source)
	require.Equal(t, "idle", st.State)
	require.True(t, st.FirstSyncFinished)
	requireEndpointSynced(t, st, employees.String(), 40)

	// pause, resume and sync say what they did and the workflow does it.
	var did doneJSON
	s.StarterJSON(t, &did, "integration", "pause", id, "--reason", "maintenance window")
	require.Equal(t, doneJSON{Subject: id, Outcome: "paused"}, did)
	s.WaitState(t, id, workflows.StatePaused, 30*time.Second)
	s.StarterJSON(t, &st, "integration", "status", id)
	require.Equal(t, "paused", st.State)
	require.Equal(t, "maintenance window", st.PauseReason)
	require.Contains(t, s.Starter(t, "integration", "list", "--state", "paused"), id)
	require.Equal(t, id+": resumed\n", s.Starter(t, "integration", "resume", id))
	s.WaitState(t, id, workflows.StateIdle, 30*time.Second)

	// A change whose webhook was lost lands on sync.
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
	_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	require.NotEmpty(t, s.Diff(t, id, employees), "the lost webhook leaves the table behind")
	require.Equal(t, id+": sync requested\n", s.Starter(t, "integration", "sync", id, "--endpoints", "hris/employees"))
	s.WaitInSync(t, id, kombo.CategoryHRIS, 30*time.Second)

	// webhook replay: an event the inbox holds but the workflow never acted on (stored as handled,
	// so the relay leaves it alone) is signaled again, and its change lands.
	_, err = s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	lost := lastDelivery(t, s.Emu, kombo.EventDataChanged)
	ev, err := kombo.ParseEvent(lost.Body)
	require.NoError(t, err)
	_, err = store.New(s.Pool).InsertWebhookEvent(t.Context(), store.InboxEvent{ID: ev.ID, Type: ev.Type, IntegrationID: id,
		Payload: lost.Body, ReceivedAt: time.Now()}, false)
	require.NoError(t, err)
	require.NotEmpty(t, s.Diff(t, id, employees))
	var replayed struct {
		EventID    string `json:"event_id"`
		Signaled   bool   `json:"signaled"`
		WorkflowID string `json:"workflow_id"`
	}
	s.StarterJSON(t, &replayed, "webhook", "replay", ev.ID)
	require.Equal(t, ev.ID, replayed.EventID)
	require.True(t, replayed.Signaled)
	require.Equal(t, workflows.IntegrationWorkflowID(id), replayed.WorkflowID)
	s.WaitInSync(t, id, kombo.CategoryHRIS, 30*time.Second)
	require.Contains(t, s.Starter(t, "webhook", "replay", ev.ID), "signaled to kombo-integration:personio:e2e-operator",
		"replaying again is safe: the workflow drops the duplicate id")

	// Unknown subjects: exit code 3 and a clear message; wrong invocations: 2.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"webhook", "replay", "no-such-event"}, 3, "webhook event no-such-event: not found"},
		{[]string{"integration", "status", "personio:nobody"}, 3, "no workflow runs for it and Postgres has no row for it"},
		{[]string{"integration", "status"}, 2, "integration status takes one integration id, got 0 arguments"},
		{[]string{"integration", "list", "extra"}, 2, "integration list takes no arguments"},
		{[]string{"integration", "status", id, "--query-timeout", "0s"}, 2, "--query-timeout must be positive"},
		{[]string{"integration", "frobnicate"}, 2, ""},
		{[]string{"history", "export", "kombo-integration:personio:nobody", "-"}, 3, "not found"},
	} {
		code, stdout, stderr := s.RunStarter(t, c.args...)
		require.Equal(t, c.code, code, "starter %v: %s%s", c.args, stdout, stderr)
		require.Contains(t, stderr, c.want, "starter %v", c.args)
		require.Empty(t, stdout, "starter %v: errors go to stderr", c.args)
	}

	// history export, as a file report and as JSON.
	var exported struct {
		WorkflowID string `json:"workflow_id"`
		Events     int    `json:"events"`
	}
	s.StarterJSON(t, &exported, "history", "export", workflows.IntegrationWorkflowID(id), t.TempDir()+"/h.json")
	require.Equal(t, workflows.IntegrationWorkflowID(id), exported.WorkflowID)
	require.Greater(t, exported.Events, 10)

	// migrate on a migrated database changes nothing and says so.
	var m struct {
		From int32 `json:"from_version"`
		To   int32 `json:"to_version"`
	}
	s.StarterJSON(t, &m, "migrate")
	require.Equal(t, m.From, m.To)
	require.Positive(t, m.To)

	// With the worker down, status says so and shows what Postgres recorded.
	s.Worker.Stop(t)
	out = s.Starter(t, "integration", "status", id, "--query-timeout", "1s")
	// The server either waits out the timeout or knows at once that no worker polls.
	require.Regexp(t, `source:       Postgres \(no worker (answered the status query within 1s|polls the task queue \(is the worker down\?\)); showing what Postgres recorded\)`, out)
	require.Contains(t, out, "next wake-up: unknown")
	s.StarterJSON(t, &st, "integration", "status", id, "--query-timeout", "1s")
	require.Equal(t, "postgres", st.Source)
	require.Equal(t, "idle", st.State)
	require.NotNil(t, st.WebhooksUnsignaled)
	requireEndpointSynced(t, st, employees.String(), 1)
}

// requireEndpointSynced: the endpoint has a watermark, a lag and a succeeded last run that
// fetched at least minFetched records.
func requireEndpointSynced(t *testing.T, st statusJSON, endpoint string, minFetched int) {
	t.Helper()
	for _, e := range st.Endpoints {
		if e.Endpoint != endpoint {
			continue
		}
		require.NotNil(t, e.Watermark, endpoint)
		require.NotNil(t, e.LagSeconds, endpoint)
		require.Less(t, *e.LagSeconds, 60.0,
			"%s: the lag counts from the last successful pass's start, not from the watermark two minutes before it", endpoint)
		require.NotNil(t, e.LastRun, endpoint)
		require.Equal(t, "succeeded", e.LastRun.Outcome, endpoint)
		require.GreaterOrEqual(t, e.LastRun.Fetched, minFetched, endpoint)
		return
	}
	t.Fatalf("status has no endpoint %s: %+v", endpoint, st.Endpoints)
}

// lastDelivery is the latest webhook of that type the emulator sent or dropped.
func lastDelivery(t *testing.T, emu *komboemu.Emulator, typ string) komboemu.Delivery {
	t.Helper()
	ds := emu.Deliveries()
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Type == typ {
			return ds[i]
		}
	}
	t.Fatalf("no %s webhook", typ)
	return komboemu.Delivery{}
}

// sync --upstream asks Kombo (the emulator's POST /force-sync) to sync from the tool, and the
// fetch follows that sync's sync-finished, with KOMBO_TRIGGERS at its default (data-changed
// only): a change whose data-changed was lost lands then, not before.
func TestUpstreamSyncFetchesWhenKombosSyncFinishes(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{})
	const id = "personio:e2e-upstream"
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 30, Seed: 3, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	s.WaitState(t, id, workflows.StateIdle, time.Minute)

	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
	_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.Emu.SetFaults(komboemu.Faults{})
	require.NotEmpty(t, s.Diff(t, id, employees), "the lost data-changed leaves the table behind")

	var asked struct {
		doneJSON
		SyncID        string `json:"sync_id"`
		AlreadyQueued *bool  `json:"already_queued"`
		Type          string `json:"type"`
	}
	s.StarterJSON(t, &asked, "integration", "sync", id, "--upstream", "--type", "delta")
	require.NotEmpty(t, asked.SyncID)
	require.Equal(t, kombo.SyncDelta, asked.Type)
	require.Equal(t, false, *asked.AlreadyQueued)
	require.Contains(t, asked.Outcome, "the fetch follows its sync-finished")
	out := s.Starter(t, "integration", "sync", id, "--upstream")
	require.Contains(t, out, "a Kombo sync was already queued or running (DELTA sync "+asked.SyncID+")")

	// The workflow waits for that sync: nothing is pending, and the change is not here.
	var st workflows.Status
	teststack.Eventually(t, 30*time.Second, func() string {
		var err error
		if st, err = s.Status(t, id); err != nil {
			return err.Error()
		}
		if st.Upstream == nil {
			return "no upstream wait in the status"
		}
		return ""
	})
	require.Equal(t, asked.SyncID, st.Upstream.SyncID)
	require.Equal(t, workflows.StateIdle, st.State)
	require.Empty(t, st.Pending)
	require.Regexp(t, `upstream:\s+Kombo's sync `+asked.SyncID+` \(DELTA\) asked .*; fetches every endpoint when it finishes`,
		s.Starter(t, "integration", "status", id))
	require.NotEmpty(t, s.Diff(t, id, employees))

	require.NoError(t, s.Emu.SendSyncFinished(id, kombo.SyncSucceeded)) // Kombo's sync ends
	s.WaitInSync(t, id, kombo.CategoryHRIS, 30*time.Second)
	st, err = s.Status(t, id)
	require.NoError(t, err)
	require.Nil(t, st.Upstream, "the wait ended with the sync-finished")

	// Refusals: a type Kombo does not know, --type alone, an integration Kombo does not know.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"integration", "sync", id, "--upstream", "--type", "hourly"}, 2, "--type must be FULL or DELTA"},
		{[]string{"integration", "sync", id, "--type", "full"}, 2, "--type goes with --upstream"},
		{[]string{"integration", "sync", "personio:nobody", "--upstream"}, 1, "PLATFORM.INTEGRATION_NOT_FOUND"},
	} {
		code, stdout, stderr := s.RunStarter(t, c.args...)
		require.Equal(t, c.code, code, "starter %v: %s%s", c.args, stdout, stderr)
		require.Contains(t, stderr, c.want, "starter %v", c.args)
	}
	s.finish(t, id, "integration_sync_upstream")
}
