package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/workflows"
)

// An integration Kombo made INACTIVE and then ACTIVE again, whose ACTIVE webhook was lost, syncs
// again within the probe interval: the workflow asks Kombo. And an INACTIVE delivered late, after
// a newer ACTIVE, changes nothing.
func TestALostActiveWebhookCostsAtMostTheProbeInterval(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("STATE_PROBE_INTERVAL", "3s")})
	const id = "personio:e2e-probe"
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 20, Seed: 12, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)

	require.NoError(t, s.Emu.SetState(id, kombo.IntegrationInactive))
	st := s.WaitState(t, id, workflows.StatePaused, time.Minute)
	require.Equal(t, "ask Kombo for the integration's state", st.NextWake)

	// Back to ACTIVE at Kombo, with changes, and every webhook about it lost.
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
	require.NoError(t, s.Emu.SetStateSilently(id, kombo.IntegrationActive))
	_, err := s.Emu.MutateRandom(id, 10)
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.Emu.SetFaults(komboemu.Faults{})
	resumed := time.Now()
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	st = s.WaitState(t, id, workflows.StateIdle, time.Minute)
	require.Equal(t, kombo.IntegrationActive, st.KomboState)
	require.Less(t, time.Since(resumed), 30*time.Second, "within the probe interval and a round, not the weekly pass")

	// A late INACTIVE, older than the ACTIVE the probe applied, changes nothing.
	before := st.EventsThisRun
	body, _ := json.Marshal(map[string]any{"id": "late-inactive", "type": kombo.EventIntegrationStateChanged, "data": map[string]any{
		"integration_id": id, "integration_tool": "personio", "integration_category": "HRIS",
		"end_user":  map[string]any{"organization_name": "Org", "creator_email": nil, "origin_id": nil},
		"qa_status": "PASSED", "setup_status": "COMPLETED", "state": kombo.IntegrationInactive,
		"updated_at": kombo.FormatTime(time.Now().Add(-time.Hour))}})
	code, answer := s.PostWebhook(t, body)
	require.Equal(t, http.StatusOK, code, answer)
	teststack.Eventually(t, 30*time.Second, func() string {
		st, err := s.Status(t, id)
		switch {
		case err != nil:
			return err.Error()
		case st.EventsThisRun <= before:
			return "the late event is not handled yet"
		}
		return ""
	})
	st, err = s.Status(t, id)
	require.NoError(t, err)
	require.Equal(t, workflows.StateIdle, st.State, "the stale INACTIVE was ignored")
	s.finish(t, id, "integration_sync_state_probe")
}

// A page that cannot be read fails its run once (DataError) and holds nothing else back; the
// endpoint syncs again on its next change, and messy records in between are stored sanitised.
func TestAnUnreadablePageHoldsOnlyItsEndpoint(t *testing.T) {
	t.Parallel()
	// Two endpoints: a change of employees dirties only employees.
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("KOMBO_ENDPOINTS", "hris/employees,hris/employments")})
	const id = "personio:e2e-data-error"
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 20, Seed: 13, Notify: true}))
	synced := func() string {
		return s.Diff(t, id, employees) + s.Diff(t, id, kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employments"})
	}
	teststack.Eventually(t, time.Minute, synced)
	s.WaitState(t, id, workflows.StateIdle, time.Minute)

	s.Emu.QueueFaults(komboemu.FaultGarbage)
	_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
	require.NoError(t, err)
	teststack.Eventually(t, time.Minute, func() string {
		st, err := s.Status(t, id)
		if err != nil {
			return err.Error()
		}
		if st.State != workflows.StateIdle || st.Attention == "" {
			return "state " + st.State + ", attention " + st.Attention
		}
		return ""
	})
	st, err := s.Status(t, id)
	require.NoError(t, err)
	require.Contains(t, st.Attention, "hris/employees: a page cannot be stored")
	require.Nil(t, st.NextWakeAt, "no retry loop")
	require.Equal(t, 1, s.Count(t, `select count(*) from kombo.fetch_runs where integration_id = $1 and error_type = 'DataError' and outcome = 'failed'`, id))

	// Its next change (messy, too) brings it back in step.
	for _, m := range []komboemu.Mess{komboemu.MessNUL, komboemu.MessSurrogate, komboemu.MessDuplicate} {
		_, err := s.Emu.Make(id, employees, "", m)
		require.NoError(t, err)
	}
	teststack.Eventually(t, time.Minute, synced)
	teststack.Eventually(t, time.Minute, func() string {
		st, err := s.Status(t, id)
		if err != nil {
			return err.Error()
		}
		return st.Attention
	})
	s.finish(t, id, "integration_sync_data_error")
}
