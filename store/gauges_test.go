package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/store"
)

// The database-wide gauges count what the tables hold: integrations by sync state (deleted ones
// left out), those needing an operator, and stored webhooks not yet signaled.
func TestGaugesCountTheDatabase(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	sweep, deleted := "sweep refused", time.Now()
	for _, in := range []store.Integration{
		{ID: "personio:a", Tool: "personio", Category: "HRIS", SyncState: "idle"},
		{ID: "personio:b", Tool: "personio", Category: "HRIS", SyncState: "idle", Attention: &sweep},
		{ID: "personio:c", Tool: "personio", Category: "HRIS", SyncState: "auth_failed"},
		{ID: "personio:d", Tool: "personio", Category: "HRIS", SyncState: "deleted", DeletedAt: &deleted, Attention: &sweep},
	} {
		require.NoError(t, s.SaveIntegration(ctx, in))
	}
	failing, gone := subscribe(t, s), subscribe(t, s)
	subscribe(t, s)
	_, err := s.RecordAttempt(ctx, failing.ID, 0, store.Attempt{At: time.Now(), Error: "refused"})
	require.NoError(t, err)
	_, err = s.RecordAttempt(ctx, gone.ID, 0, store.Attempt{At: time.Now(), Status: 410, Gone: true})
	require.NoError(t, err)
	require.NoError(t, testutil.CollectAndCompare(s.IntegrationGauges(), strings.NewReader(`
# HELP kombosync_outbound_subscriptions Outbound webhook subscriptions by state (active, paused, disabled).
# TYPE kombosync_outbound_subscriptions gauge
kombosync_outbound_subscriptions{state="active"} 2
kombosync_outbound_subscriptions{state="disabled"} 1
kombosync_outbound_subscriptions{state="paused"} 0
# HELP kombosync_outbound_subscriptions_failing Active outbound webhook subscriptions whose last delivery attempts failed (backing off).
# TYPE kombosync_outbound_subscriptions_failing gauge
kombosync_outbound_subscriptions_failing 1
# HELP kombosync_integrations Integrations kombosync knows, not deleted, by the sync state their workflow last recorded.
# TYPE kombosync_integrations gauge
kombosync_integrations{sync_state="auth_failed"} 1
kombosync_integrations{sync_state="idle"} 2
# HELP kombosync_integrations_needing_operator Integrations waiting for an operator (a refused sweep: starter integration reconcile --confirm-sweep).
# TYPE kombosync_integrations_needing_operator gauge
kombosync_integrations_needing_operator 1
# HELP kombosync_retention_last_finished_timestamp_seconds When the last retention run finished (Unix seconds; 0 when none has).
# TYPE kombosync_retention_last_finished_timestamp_seconds gauge
kombosync_retention_last_finished_timestamp_seconds 0
`)))
	require.NoError(t, s.StartRetentionRun(ctx, "ret-1"))
	_, err = s.FinishRetentionRun(ctx, "ret-1")
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.IntegrationGauges())
	families, err := reg.Gather()
	require.NoError(t, err)
	var last float64
	for _, f := range families {
		if f.GetName() == "kombosync_retention_last_finished_timestamp_seconds" {
			last = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	require.InDelta(t, float64(time.Now().Unix()), last, 60, "a finished run sets it to its finish time")

	for _, id := range []string{"e1", "e2"} {
		_, err := s.InsertWebhookEvent(ctx, inboxEvent(id), true)
		require.NoError(t, err)
	}
	require.NoError(t, s.MarkSignaled(ctx, "e1"))
	require.Equal(t, 1.0, testutil.ToFloat64(s.WebhookGauges()))
}
