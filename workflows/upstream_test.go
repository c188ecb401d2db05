package workflows_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/workflows"
)

func (h *harness) kombosSyncFinished(d time.Duration, eventID, syncID, state string) {
	h.signal(d, workflows.SignalKomboEvent, workflows.KomboEvent{ID: eventID, Type: kombo.EventSyncFinished,
		IntegrationID: integrationID, Tool: "personio", Category: "HRIS", SyncState: state, SyncID: syncID})
}

// sync --upstream: nothing is fetched when asked, nor when another of Kombo's syncs ends (KOMBO_TRIGGERS
// is data-changed only), but at once when the asked-for sync's sync-finished arrives.
func TestUpstreamSyncFetchesWhenKombosSyncFinishes(t *testing.T) {
	h := newHarness(t)
	h.signal(time.Second, workflows.SignalSyncNow, workflows.SyncNowRequest{AfterKomboSync: "S1", KomboSyncType: kombo.SyncFull,
		Endpoints: []string{"hris/employees", "hris/absences"}})
	h.status(2*time.Second, func(st workflows.Status) {
		require.NotNil(t, st.Upstream)
		require.Equal(t, "S1", st.Upstream.SyncID)
		require.Equal(t, kombo.SyncFull, st.Upstream.Type)
		require.Empty(t, st.Pending, "nothing is fetched before Kombo's sync ends")
	})
	h.kombosSyncFinished(time.Minute, "e1", "S0", kombo.SyncSucceeded)
	h.kombosSyncFinished(3*time.Minute, "e2", "S1", kombo.SyncSucceeded)
	h.status(4*time.Minute, func(st workflows.Status) { require.Nil(t, st.Upstream, "the wait ended") })
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Equal(t, []string{"hris/absences", "hris/employees"}, endpointsOf(fs))
	for _, f := range fs {
		require.Equal(t, 3*time.Minute, f.at, "fetched as the asked-for sync-finished arrived, without a quiet window")
	}
}

// The asked-for sync ended before the signal came (Kombo was quick): fetched at once. A failed
// upstream sync ends the wait without a fetch.
func TestUpstreamSyncThatFinishedFirstOrFailed(t *testing.T) {
	h := newHarness(t)
	h.kombosSyncFinished(time.Second, "e1", "S1", kombo.SyncSucceeded)
	h.signal(time.Minute, workflows.SignalSyncNow, workflows.SyncNowRequest{AfterKomboSync: "S1", Endpoints: []string{"hris/employees"}})
	h.signal(2*time.Minute, workflows.SignalSyncNow, workflows.SyncNowRequest{AfterKomboSync: "S2", Endpoints: []string{"hris/absences"}})
	h.kombosSyncFinished(3*time.Minute, "e2", "S2", "FAILED")
	h.status(4*time.Minute, func(st workflows.Status) {
		require.Nil(t, st.Upstream, "a failed sync ends the wait")
		require.Equal(t, "FAILED", st.LastSyncState)
	})
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Len(t, fs, 1, "only S1's fetch: S2 failed at Kombo")
	require.Equal(t, "hris/employees", fs[0].in.Endpoint.String())
	require.Equal(t, time.Minute, fs[0].at)
}

// A round notifies once, when its last fetch finished, with the endpoints that committed; a burst
// makes two rounds and two notifications.
func TestEachFinishedRoundNotifiesOnce(t *testing.T) {
	h := newHarness(t)
	for i := range 10 {
		h.dataChanged(time.Second+time.Duration(i)*100*time.Millisecond, fmt.Sprintf("ev%d", i), "hris_employees", "hris_absences")
	}
	h.requireCancelled(5 * time.Minute)
	require.Len(t, h.fetched(), 4, "two endpoints, a leading and a trailing round")
	require.Len(t, h.notices, 2)
	for k, n := range h.notices {
		require.Equal(t, k+1, n.Round)
		require.Equal(t, []string{"hris/absences", "hris/employees"}, n.Endpoints)
		require.Equal(t, integrationID, n.IntegrationID)
	}
}
