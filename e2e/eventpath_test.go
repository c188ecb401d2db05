package e2e

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/workflows"
)

// The event path end to end: the emulator's data changes → signed webhooks → gateway →
// IntegrationSync → FetchEndpoint → rows in Postgres equal to the emulator's truth. Duplicate
// webhooks add no rows and no change rows.
func TestEventPathKeepsPostgresEqualToKombo(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	const id = "personio:e2e-event-path"
	// integration-created starts the workflow, which backfills every HRIS endpoint.
	require.NoError(t, s.emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 150, Seed: 3, Notify: true}))
	s.waitInSync(t, id, kombo.CategoryHRIS, time.Minute)

	// Every webhook arrives twice from here on.
	s.emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{DuplicateRate: 1}})
	for range 5 {
		_, err := s.emu.MutateRandom(id, 20)
		require.NoError(t, err)
		time.Sleep(150 * time.Millisecond) // spread over several data-changed windows, on purpose
	}
	require.NoError(t, s.emu.WaitWebhooks(t.Context()))
	s.waitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	eventually(t, time.Minute, func() string {
		st, err := s.status(t, id)
		if err != nil {
			return err.Error()
		}
		if st.State != workflows.StateIdle {
			return "state " + st.State
		}
		return ""
	})

	changes := s.count(t, `select count(*) from kombo.changes where integration_id = $1`, id)
	versions := s.count(t, `select count(*) from kombo.records where integration_id = $1 and xmin::text::bigint > 0`, id)
	require.Positive(t, changes)
	var dupes int
	for _, d := range s.emu.Deliveries() {
		if d.Duplicate {
			dupes++
			require.Equal(t, http.StatusOK, d.Status, "a duplicate is answered 200")
		}
	}
	require.Positive(t, dupes)
	require.Zero(t, s.count(t, `select count(*) from kombo.changes where integration_id = $1
		and op = 'updated' and (diff = '{}' or diff is null)`, id), "every change row is a real change")

	// Replaying every delivery once more changes nothing.
	for _, d := range s.emu.Deliveries() {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.gatewayURL+"/webhooks/kombo", bytes.NewReader(d.Body))
		require.NoError(t, err)
		req.Header.Set(kombo.SignatureHeader, kombo.Sign(stackSecret, d.Body))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	// A forced round re-fetches everything that changed in the last minutes: it writes nothing.
	before, err := s.status(t, id)
	require.NoError(t, err)
	require.NoError(t, s.tc.SignalWorkflow(t.Context(), workflows.IntegrationWorkflowID(id), "", workflows.SignalSyncNow,
		workflows.SyncNowRequest{Reason: "e2e"}))
	eventually(t, time.Minute, func() string {
		st, err := s.status(t, id)
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
	require.Equal(t, changes, s.count(t, `select count(*) from kombo.changes where integration_id = $1`, id),
		"duplicates and re-fetches add no change rows")
	require.Equal(t, versions, s.count(t, `select count(*) from kombo.records where integration_id = $1 and xmin::text::bigint > 0`, id))
	s.waitInSync(t, id, kombo.CategoryHRIS, time.Second)

	var inbox, signaled int
	require.NoError(t, s.pool.QueryRow(t.Context(), `select count(*), count(signaled_at) from kombo.webhook_events
		where integration_id = $1`, id).Scan(&inbox, &signaled))
	require.Equal(t, inbox, signaled, "every stored event was signaled")
}
