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

// integration-deleted stops syncing, purges the integration's rows after the retention period
// and completes the workflow; a later event does not bring it back.
func TestDeletedIntegrationIsPurgedAndStaysDeleted(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("DELETED_RETENTION", "3s")})
	const id = "personio:e2e-deleted"
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 20, Seed: 2, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	records := `select count(*) from kombo.records where integration_id = $1`
	require.Positive(t, s.Count(t, records, id))

	require.NoError(t, s.Emu.DeleteIntegration(id))
	st := s.WaitState(t, id, workflows.StateDeleted, time.Minute)
	require.NotNil(t, st.PurgeAt)
	require.Equal(t, "purge after retention", st.NextWake)

	wfID := workflows.IntegrationWorkflowID(id)
	require.NoError(t, s.Temporal.GetWorkflow(t.Context(), wfID, "").Get(t.Context(), nil), "the workflow completes after the purge")
	require.Zero(t, s.Count(t, records, id))
	require.Zero(t, s.Count(t, `select count(*) from kombo.changes where integration_id = $1`, id))
	require.Equal(t, 1, s.Count(t, `select count(*) from kombo.integrations where id = $1 and deleted_at is not null and purged_at is not null`, id))
	s.recordHistory(t, wfID, "", "integration_sync_deleted")
	first, err := s.Temporal.DescribeWorkflowExecution(t.Context(), wfID, "")
	require.NoError(t, err)

	// A late data-changed for it is stored and answered, but starts nothing.
	body, _ := json.Marshal(map[string]any{"id": "late-event", "type": kombo.EventDataChanged, "data": map[string]any{
		"integration_id": id, "integration_tool": "personio", "integration_category": "HRIS",
		"changed_models": []map[string]string{{"name": "hris_employees"}}}})
	code, answer := s.PostWebhook(t, body)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ignored", answer["status"])
	again, err := s.Temporal.DescribeWorkflowExecution(t.Context(), wfID, "")
	require.NoError(t, err)
	require.Equal(t, first.WorkflowExecutionInfo.Execution.RunId, again.WorkflowExecutionInfo.Execution.RunId, "not restarted")

	// Even an operator's signal-with-start only finds it deleted: the new run ends at once.
	s.Starter(t, "integration", "sync", id)
	teststack.Eventually(t, time.Minute, func() string {
		d, err := s.Temporal.DescribeWorkflowExecution(t.Context(), wfID, "")
		if err != nil {
			return err.Error()
		}
		if d.WorkflowExecutionInfo.CloseTime == nil {
			return "the new run is still open"
		}
		return ""
	})
	require.Zero(t, s.Count(t, records, id), "and fetches nothing")
}
