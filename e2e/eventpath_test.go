package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/workflows"
)

// The event path end to end: the emulator's data changes → signed webhooks → gateway →
// IntegrationSync → FetchEndpoint → rows in Postgres equal to the emulator's truth. Duplicate
// webhooks add no rows and no change rows.
func TestEventPathKeepsPostgresEqualToKombo(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{})
	const id = "personio:e2e-event-path"
	// integration-created starts the workflow, which backfills every HRIS endpoint.
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 150, Seed: 3, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)

	// Every webhook arrives twice from here on.
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{DuplicateRate: 1}})
	for range 5 {
		_, err := s.Emu.MutateRandom(id, 20)
		require.NoError(t, err)
		time.Sleep(150 * time.Millisecond) // spread over several data-changed windows, on purpose
	}
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	s.WaitState(t, id, workflows.StateIdle, time.Minute)

	changes := s.Count(t, `select count(*) from kombo.changes where integration_id = $1`, id)
	versions := s.Count(t, `select count(*) from kombo.records where integration_id = $1 and xmin::text::bigint > 0`, id)
	require.Positive(t, changes)
	var dupes int
	for _, d := range s.Emu.Deliveries() {
		if d.Duplicate {
			dupes++
			require.Equal(t, http.StatusOK, d.Status, "a duplicate is answered 200")
		}
	}
	require.Positive(t, dupes)
	require.Zero(t, s.Count(t, `select count(*) from kombo.changes where integration_id = $1
		and op = 'updated' and (diff = '{}' or diff is null)`, id), "every change row is a real change")

	// Replaying every delivery once more changes nothing.
	for _, d := range s.Emu.Deliveries() {
		code, _ := s.PostWebhook(t, d.Body)
		require.Equal(t, http.StatusOK, code)
	}
	// A forced round re-fetches everything that changed in the last minutes: it writes nothing.
	before, err := s.Status(t, id)
	require.NoError(t, err)
	require.NoError(t, s.Temporal.SignalWorkflow(t.Context(), workflows.IntegrationWorkflowID(id), "", workflows.SignalSyncNow,
		workflows.SyncNowRequest{Reason: "e2e"}))
	teststack.Eventually(t, time.Minute, func() string {
		st, err := s.Status(t, id)
		if err != nil {
			return err.Error()
		}
		for ep, r := range st.LastRuns {
			if r.RunID == before.LastRuns[ep].RunID {
				return ep + " not fetched again yet"
			}
		}
		if st.State != workflows.StateIdle {
			return "state " + st.State
		}
		return ""
	})
	require.Equal(t, changes, s.Count(t, `select count(*) from kombo.changes where integration_id = $1`, id),
		"duplicates and re-fetches add no change rows")
	require.Equal(t, versions, s.Count(t, `select count(*) from kombo.records where integration_id = $1 and xmin::text::bigint > 0`, id))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Second)

	var inbox, signaled int
	require.NoError(t, s.Pool.QueryRow(t.Context(), `select count(*), count(signaled_at) from kombo.webhook_events
		where integration_id = $1`, id).Scan(&inbox, &signaled))
	require.Equal(t, inbox, signaled, "every stored event was signaled")
	s.finish(t, id, "integration_sync_delta")
}

// An integration's life: its first sync is pending, then finishes; Kombo marks it INVALID (paused);
// a fetch finds its credentials invalid (auth_failed) until it is ACTIVE again; an operator
// pauses and resumes it. Nothing is fetched while it waits, nothing is missed after.
func TestIntegrationWaitsOutFirstSyncAuthFailureAndPause(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{})
	const id = "greenhouse:e2e-lifecycle"
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryATS, Records: 30, Seed: 5,
		FirstSyncPending: true, Notify: true}))
	st := s.WaitState(t, id, workflows.StateWaitingFirstSync, time.Minute)
	require.Equal(t, "waiting for first sync", st.NextWake)
	require.Zero(t, s.Count(t, `select count(*) from kombo.records where integration_id = $1`, id))

	require.NoError(t, s.Emu.FinishFirstSync(id)) // sync-finished SUCCEEDED ends the wait at once
	s.WaitInSync(t, id, kombo.CategoryATS, time.Minute)
	s.WaitState(t, id, workflows.StateIdle, time.Minute)

	// Kombo says the integration is INVALID: fetching pauses.
	require.NoError(t, s.Emu.SetState(id, kombo.IntegrationInvalid))
	s.WaitState(t, id, workflows.StatePaused, time.Minute)
	_, err := s.Emu.MutateRandom(id, 5)
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	st = s.WaitState(t, id, workflows.StatePaused, time.Minute)
	require.NotEmpty(t, st.Pending, "events keep accumulating while paused")
	require.NoError(t, s.Emu.SetState(id, kombo.IntegrationActive))
	s.WaitInSync(t, id, kombo.CategoryATS, time.Minute)

	// The INVALID event is lost: the next fetch itself finds the credentials invalid.
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
	require.NoError(t, s.Emu.SetState(id, kombo.IntegrationInvalid))
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.Emu.SetFaults(komboemu.Faults{})
	_, err = s.Emu.MutateRandom(id, 5)
	require.NoError(t, err)
	st = s.WaitState(t, id, workflows.StateAuthFailed, time.Minute)
	require.Contains(t, st.LastError, "AUTHENTICATION_INVALID")
	require.NoError(t, s.Emu.SetState(id, kombo.IntegrationActive)) // ACTIVE ends auth_failed
	s.WaitInSync(t, id, kombo.CategoryATS, time.Minute)

	// An operator pauses: changes wait until resume.
	s.Signal(t, id, workflows.SignalPause, workflows.PauseRequest{Reason: "e2e maintenance"})
	st = s.WaitState(t, id, workflows.StatePaused, time.Minute)
	require.Equal(t, "e2e maintenance", st.PauseReason)
	_, err = s.Emu.MutateRandom(id, 5)
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	teststack.Eventually(t, time.Minute, func() string {
		if st, err := s.Status(t, id); err != nil || len(st.Pending) == 0 {
			return "the change is not pending yet"
		}
		return ""
	})
	require.NotEmpty(t, s.FirstDiff(t, id, kombo.CategoryATS), "nothing is fetched while paused")
	s.Signal(t, id, workflows.SignalResume, workflows.ResumeRequest{})
	s.WaitInSync(t, id, kombo.CategoryATS, time.Minute)
	s.finish(t, id, "integration_sync_lifecycle")
}

// When the sync-finished that ends the first sync is lost, the durable timer ends the wait: the
// next attempt finds the data ready.
func TestFirstSyncWaitEndsByTimerWhenTheWebhookIsLost(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{})
	const id = "personio:e2e-first-sync-timer"
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 10, Seed: 8,
		FirstSyncPending: true, Notify: true}))
	st := s.WaitState(t, id, workflows.StateWaitingFirstSync, time.Minute)
	require.NotNil(t, st.NextWakeAt)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
	require.NoError(t, s.Emu.FinishFirstSync(id)) // its sync-finished is lost
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.Emu.SetFaults(komboemu.Faults{})

	s.WaitInSync(t, id, kombo.CategoryHRIS, 2*time.Minute)
	require.False(t, time.Now().Before(*st.NextWakeAt), "synced by the timer, not before it")
	require.Zero(t, s.Count(t, `select count(*) from kombo.webhook_events where integration_id = $1 and type = 'sync-finished'`, id),
		"no sync-finished reached the gateway")
	s.finish(t, id, "integration_sync_first_sync_timer")
}

// A long-lived workflow continues as new after a bounded number of rounds, keeping its state.
func TestIntegrationContinuesAsNewAndKeepsSyncing(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{})
	const id = "personio:e2e-continue-as-new"
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 5, Seed: 9, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	wfID := workflows.IntegrationWorkflowID(id)
	first, err := s.Temporal.DescribeWorkflowExecution(t.Context(), wfID, "")
	require.NoError(t, err)
	firstRun := first.WorkflowExecutionInfo.Execution.RunId

	// Rounds forced one after the other until the run hands over to a new one.
	teststack.Eventually(t, 2*time.Minute, func() string {
		d, err := s.Temporal.DescribeWorkflowExecution(t.Context(), wfID, "")
		if err != nil {
			return err.Error()
		}
		if d.WorkflowExecutionInfo.Execution.RunId != firstRun {
			return ""
		}
		st, err := s.Status(t, id)
		if err == nil && st.State == workflows.StateIdle {
			s.Signal(t, id, workflows.SignalSyncNow, workflows.SyncNowRequest{Endpoints: []string{"hris/locations"}, Reason: "e2e"})
		}
		return "still the first run"
	})
	// The new run carries the integration on: changes keep flowing.
	_, err = s.Emu.MutateRandom(id, 10)
	require.NoError(t, err)
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	st, err := s.Status(t, id)
	require.NoError(t, err)
	require.True(t, st.FirstSyncFinished)
	require.Len(t, st.Watermarks, len(kombo.DefaultEndpoints())-10, "every HRIS endpoint has its watermark")
	s.recordHistory(t, wfID, firstRun, "integration_sync_continue_as_new")
	s.finish(t, id, "integration_sync_after_continue_as_new")
}
