package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/workflows"
)

// The weekly schedule is applied idempotently, and triggering it reconciles every integration:
// with webhooks lost, the database differs from Kombo before and equals it after, records
// Kombo removed for good included.
func TestWeeklyReconciliationRepairsLostWebhooks(t *testing.T) {
	t.Parallel()
	clk := komboemu.NewManualClock(time.Now())
	s := newStack(t, teststack.Options{Clock: clk})
	ids := []struct {
		id  string
		cat kombo.Category
	}{{"personio:e2e-reconcile", kombo.CategoryHRIS}, {"greenhouse:e2e-reconcile", kombo.CategoryATS}}
	for _, in := range ids {
		require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: in.id, Category: in.cat, Records: 60, Seed: 21, Notify: true}))
	}
	for _, in := range ids {
		s.WaitInSync(t, in.id, in.cat, time.Minute)
	}

	out := s.Starter(t, "schedule", "apply")
	require.Contains(t, out, "schedule kombo-weekly-reconcile: created")
	out = s.Starter(t, "schedule", "apply", "--jitter", "1s")
	require.Contains(t, out, "schedule kombo-weekly-reconcile: updated", "a second apply updates, not fails")
	d, err := s.Temporal.ScheduleClient().GetHandle(t.Context(), workflows.WeeklyReconcileScheduleID).Describe(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, d.Info.NextActionTimes)
	next := d.Info.NextActionTimes[0].UTC()
	require.Equal(t, time.Sunday, next.Weekday(), "Sunday 03:00 UTC by default")
	require.Equal(t, 3, next.Hour())
	require.Equal(t, time.Second, d.Schedule.Spec.Jitter)
	require.Equal(t, enums.SCHEDULE_OVERLAP_POLICY_SKIP, d.Schedule.Policy.Overlap)

	// 30% of the webhooks are lost while data changes; then every webhook is lost while records
	// are deleted and, after Kombo's retention, removed for good.
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 0.3}})
	for range 4 {
		for _, in := range ids {
			_, err := s.Emu.MutateRandom(in.id, 15)
			require.NoError(t, err)
		}
		require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	}
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
	for _, in := range ids {
		var ms []komboemu.Mutation
		for range 5 {
			ms = append(ms, komboemu.Mutation{Endpoint: mainEndpoint(in.cat), Op: komboemu.OpDelete}, komboemu.Mutation{Endpoint: mainEndpoint(in.cat), Op: komboemu.OpUpdate})
		}
		_, err := s.Emu.Mutate(in.id, ms...)
		require.NoError(t, err)
	}
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	clk.Advance(15 * 24 * time.Hour) // past Kombo's 14-day retention: the deleted records are gone
	for _, in := range ids {
		s.WaitState(t, in.id, workflows.StateIdle, time.Minute)
		require.NotEmpty(t, s.FirstDiff(t, in.id, in.cat), "%s: lost webhooks leave the database behind", in.id)
	}

	out = s.Starter(t, "schedule", "trigger")
	require.Contains(t, out, "reconciliation triggered")
	for _, in := range ids {
		s.WaitInSync(t, in.id, in.cat, 2*time.Minute)
		st := s.WaitState(t, in.id, workflows.StateIdle, time.Minute)
		require.NotNil(t, st.LastFullSyncAt)
		require.Empty(t, st.Attention)
		run := st.LastRuns[mainEndpoint(in.cat).String()]
		require.Equal(t, "full", run.Kind)
		require.GreaterOrEqual(t, run.Swept, 5, "%s: the records removed for good were swept", in.id)
	}
	// The scheduled run reports how many integrations it reached.
	teststack.Eventually(t, time.Minute, func() string {
		d, err := s.Temporal.ScheduleClient().GetHandle(t.Context(), workflows.WeeklyReconcileScheduleID).Describe(t.Context())
		if err != nil || len(d.Info.RecentActions) == 0 {
			return "no run yet"
		}
		var res workflows.ReconcileResult
		wf := d.Info.RecentActions[0].StartWorkflowResult
		if err := s.Temporal.GetWorkflow(t.Context(), wf.WorkflowID, wf.FirstExecutionRunID).Get(t.Context(), &res); err != nil {
			return err.Error()
		}
		require.Equal(t, workflows.ReconcileResult{Integrations: 2, Reached: 2}, res)
		s.recordHistory(t, wf.WorkflowID, wf.FirstExecutionRunID, "reconcile_weekly")
		return ""
	})
	// describe, pause and unpause, as an operator sees them.
	var desc struct {
		ID     string `json:"schedule_id"`
		Paused bool   `json:"paused"`
		Note   string `json:"note"`
		Next   []time.Time
		Recent []struct {
			WorkflowID string `json:"workflow_id"`
		}
		Runs int
	}
	s.StarterJSON(t, &desc, "schedule", "describe")
	require.Equal(t, workflows.WeeklyReconcileScheduleID, desc.ID)
	require.False(t, desc.Paused)
	require.NotEmpty(t, desc.Next)
	require.Equal(t, 1, desc.Runs)
	require.Len(t, desc.Recent, 1)
	require.Contains(t, s.Starter(t, "schedule", "describe"), "ran:     ")
	require.Equal(t, "schedule kombo-weekly-reconcile: paused\n", s.Starter(t, "schedule", "pause"))
	s.StarterJSON(t, &desc, "schedule", "describe")
	require.True(t, desc.Paused)
	require.Equal(t, "paused with starter", desc.Note)
	require.Contains(t, s.Starter(t, "schedule", "describe"), "paused:  paused with starter")
	require.Equal(t, "schedule kombo-weekly-reconcile: unpaused\n", s.Starter(t, "schedule", "unpause"))
	s.StarterJSON(t, &desc, "schedule", "describe")
	require.False(t, desc.Paused)

	require.NoError(t, s.Temporal.ScheduleClient().GetHandle(t.Context(), workflows.WeeklyReconcileScheduleID).Delete(t.Context()))
	code, _, stderr := s.RunStarter(t, "schedule", "describe")
	require.Equal(t, 3, code, "not found")
	require.Contains(t, stderr, "does not exist; create it with starter schedule apply")
}

func mainEndpoint(cat kombo.Category) kombo.Endpoint {
	if cat == kombo.CategoryATS {
		return kombo.Endpoint{Category: cat, Name: "candidates"}
	}
	return kombo.Endpoint{Category: cat, Name: "employees"}
}

// A sweep that would delete more than SWEEP_MAX_SHARE of an endpoint's rows waits for an
// operator, who confirms it with starter integration reconcile --confirm-sweep.
func TestSweepAboveTheGuardWaitsForConfirmation(t *testing.T) {
	t.Parallel()
	clk := komboemu.NewManualClock(time.Now())
	s := newStack(t, teststack.Options{Clock: clk})
	const id = "personio:e2e-guard"
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 40, Seed: 4, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)

	// 30% of the employees vanish for good, their webhooks lost.
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
	var ms []komboemu.Mutation
	for range 12 {
		ms = append(ms, komboemu.Mutation{Endpoint: mainEndpoint(kombo.CategoryHRIS), Op: komboemu.OpDelete})
	}
	_, err := s.Emu.Mutate(id, ms...)
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	clk.Advance(15 * 24 * time.Hour)
	alive := `select count(*) from kombo.hris_employees where integration_id = $1 and deleted_at is null`
	require.Equal(t, 40, s.Count(t, alive, id))

	s.Starter(t, "integration", "reconcile", id)
	st := s.waitAttention(t, id)
	require.Contains(t, st.Attention, "hris/employees would mark 12 of 40 rows deleted")
	require.Equal(t, 40, s.Count(t, alive, id), "nothing swept above the guard")
	teststack.Eventually(t, 30*time.Second, func() string { // Postgres's copy follows the workflow's decision
		if s.Count(t, `select count(*) from kombo.integrations where id = $1 and attention like '%confirm-sweep%'`, id) != 1 {
			return "not flagged for an operator in Postgres yet"
		}
		return ""
	})
	require.Equal(t, 1, s.Count(t, `select count(*) from kombo.fetch_runs where integration_id = $1 and endpoint = 'hris/employees'
		and kind = 'full' and sweep = 'refused'`, id))
	refused := s.fullSyncs(t, id)
	require.Len(t, refused, 1)
	s.recordHistory(t, refused[0], "", "full_sync_refused")

	s.Starter(t, "integration", "reconcile", id, "--confirm-sweep")
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	teststack.Eventually(t, time.Minute, func() string {
		st, err := s.Status(t, id)
		if err != nil || st.Attention != "" || st.State != workflows.StateIdle {
			return "still flagged"
		}
		return ""
	})
	require.Equal(t, 28, s.Count(t, alive, id))
	require.Equal(t, 12, s.Count(t, `select count(*) from kombo.changes where integration_id = $1 and endpoint = 'hris/employees'
		and op = 'deleted' and diff is null`, id), "one deleted change row per swept record")
	// Postgres's copy follows the workflow's state (a local activity after the decision).
	teststack.Eventually(t, 30*time.Second, func() string {
		if s.Count(t, `select count(*) from kombo.integrations where id = $1 and attention is not null`, id) > 0 {
			return "attention still recorded in kombo.integrations"
		}
		return ""
	})
	passes := s.fullSyncs(t, id)
	require.Len(t, passes, 2)
	s.recordHistory(t, passes[0], "", "full_sync_sweep")
}

// fullSyncs lists the integration's FullSync workflow ids, newest first.
func (s *stack) fullSyncs(t *testing.T, integrationID string) []string {
	t.Helper()
	resp, err := s.Temporal.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: `WorkflowType = "FullSync" AND WorkflowId STARTS_WITH "kombo-fullsync:` + integrationID + `:"`})
	require.NoError(t, err)
	var ids []string
	for _, e := range resp.Executions {
		ids = append(ids, e.Execution.WorkflowId)
	}
	return ids
}

func (s *stack) waitAttention(t *testing.T, id string) workflows.Status {
	t.Helper()
	var st workflows.Status
	teststack.Eventually(t, time.Minute, func() string {
		var err error
		if st, err = s.Status(t, id); err != nil {
			return err.Error()
		}
		if st.Attention == "" || st.State != workflows.StateIdle {
			return "not flagged yet (" + st.State + ")"
		}
		return ""
	})
	return st
}

// A reconcile and a burst of data-changed events for one integration never fetch at once: the
// deltas wait for the full pass and run after it.
func TestReconcileAndDeltasNeverOverlap(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{})
	const id = "personio:e2e-no-overlap"
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 300, Seed: 8, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	s.Emu.SetFaults(komboemu.Faults{Latency: time.Second}) // the full pass takes several seconds

	s.Starter(t, "integration", "reconcile", id)
	s.WaitState(t, id, workflows.StateReconciling, time.Minute)
	for range 5 {
		_, err := s.Emu.MutateRandom(id, 10)
		require.NoError(t, err)
	}
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	teststack.Eventually(t, time.Minute, func() string {
		st, err := s.Status(t, id)
		switch {
		case err != nil:
			return err.Error()
		case st.State != workflows.StateReconciling:
			t.Fatalf("the full pass ended before the burst arrived; state %s", st.State)
		case len(st.Pending) == 0:
			return "the burst is not pending yet"
		}
		return "" // the burst waits for the full pass
	})
	s.Emu.SetFaults(komboemu.Faults{})

	s.WaitInSync(t, id, kombo.CategoryHRIS, 2*time.Minute)
	s.WaitState(t, id, workflows.StateIdle, time.Minute)
	require.Zero(t, s.Count(t, `select count(*) from kombo.fetch_runs f join kombo.fetch_runs d using (integration_id)
		where f.integration_id = $1 and f.kind = 'full' and d.kind = 'delta'
		and d.started_at < f.finished_at and f.started_at < d.finished_at`, id), "no delta ran during the full pass")
	require.Positive(t, s.Count(t, `select count(*) from kombo.fetch_runs d where d.integration_id = $1 and d.kind = 'delta'
		and d.started_at >= (select max(finished_at) from kombo.fetch_runs where integration_id = $1 and kind = 'full')`, id),
		"the deltas ran after it")
	passes := s.fullSyncs(t, id)
	require.Len(t, passes, 1, "one full pass, as a child workflow")
	s.recordHistory(t, passes[0], "", "full_sync")
	s.finish(t, id, "integration_sync_reconcile")
}
