package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// kombo.integration_status sums up each integration from the bookkeeping tables.
func TestIntegrationStatusViewSumsUpEachIntegration(t *testing.T) {
	s, pool := newStore(t)
	ctx := t.Context()
	synced := time.Now().Add(-90 * time.Second)
	attention := "confirm the sweep"
	require.NoError(t, s.SaveIntegration(ctx, store.Integration{ID: "personio:1", Tool: "personio", Category: "HRIS", State: "ACTIVE",
		SyncState: "idle", FirstSyncFinished: true, LastSyncedAt: &synced, Attention: &attention}))
	require.NoError(t, s.SaveIntegration(ctx, store.Integration{ID: "greenhouse:2", Tool: "greenhouse", Category: "ATS", State: "ACTIVE"}))

	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	absences := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "absences"}
	older, newer := time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
	require.NoError(t, s.AdvanceWatermark(ctx, "personio:1", employees, newer, false))
	require.NoError(t, s.AdvanceWatermark(ctx, "personio:1", absences, older, false))
	// One run being retried after an error, one that gave up, one that succeeded.
	for _, id := range []string{"r-retrying", "r-failed", "r-ok"} {
		_, err := s.StartRun(ctx, store.Run{ID: id, IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindDelta})
		require.NoError(t, err)
	}
	require.NoError(t, s.FailRun(ctx, "r-failed", "AuthFailed", errors.New("403 AUTHENTICATION_INVALID"), true))
	require.NoError(t, s.FailRun(ctx, "r-retrying", "KomboUnavailable", errors.New("500 UNKNOWN_ERROR"), false))
	require.NoError(t, s.SucceedRun(ctx, store.Run{ID: "r-ok", IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindDelta}, nil))
	_, err := s.InsertWebhookEvent(ctx, inboxEvent("unsignaled"), true)
	require.NoError(t, err)

	var (
		syncState, lastError, lastErrorOutcome, attn        *string
		lag                                                 time.Duration
		oldest                                              *time.Time
		endpoints, running, retrying, failed, unsignaled, n int
	)
	require.NoError(t, pool.QueryRow(ctx, `select sync_state, sync_lag, oldest_watermark, endpoints_synced, fetches_running,
		fetches_retrying, fetches_failed_24h, last_error, last_error_outcome, webhooks_unsignaled, attention
		from kombo.integration_status where integration_id = 'personio:1'`).Scan(&syncState, &lag, &oldest, &endpoints,
		&running, &retrying, &failed, &lastError, &lastErrorOutcome, &unsignaled, &attn))
	require.Equal(t, "idle", *syncState)
	require.InDelta(t, 90, lag.Seconds(), 30)
	require.WithinDuration(t, older, *oldest, time.Millisecond, "the endpoint furthest behind")
	require.Equal(t, 2, endpoints)
	require.Equal(t, 1, running)
	require.Equal(t, 1, retrying)
	require.Equal(t, 1, failed)
	require.NotNil(t, lastError)
	require.Contains(t, []string{"500 UNKNOWN_ERROR", "403 AUTHENTICATION_INVALID"}, *lastError)
	require.Equal(t, 1, unsignaled)
	require.Equal(t, attention, *attn)

	require.NoError(t, pool.QueryRow(ctx, `select count(*) from kombo.integration_status where integration_id = 'greenhouse:2'
		and sync_lag is null and endpoints_synced = 0 and fetches_running = 0 and last_error is null and webhooks_unsignaled = 0`).Scan(&n))
	require.Equal(t, 1, n, "an integration that never synced has a row of nothing")
}

// The status reads behind starter integration list and status: one row per integration in id
// order, a filter by sync state, and each endpoint's latest run.
func TestStatusReads(t *testing.T) {
	s, pool := newStore(t)
	ctx := t.Context()
	require.NoError(t, s.SaveIntegration(ctx, store.Integration{ID: "b:2", Tool: "b", Category: "HRIS", State: "ACTIVE", SyncState: "auth_failed"}))
	require.NoError(t, s.SaveIntegration(ctx, store.Integration{ID: "a:1", Tool: "a", Category: "HRIS", State: "ACTIVE", SyncState: "idle"}))
	all, err := s.IntegrationStatuses(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, []string{"a:1", "b:2"}, []string{all[0].IntegrationID, all[1].IntegrationID})
	failed, err := s.IntegrationStatuses(ctx, "auth_failed")
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, "b:2", failed[0].IntegrationID)
	_, err = s.IntegrationStatus(ctx, "c:3")
	require.ErrorIs(t, err, store.ErrNotFound)

	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	groups := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "groups"}
	for _, r := range []store.Run{
		{ID: "old", IntegrationID: "a:1", Endpoint: employees, Kind: store.KindFull},
		{ID: "new", IntegrationID: "a:1", Endpoint: employees, Kind: store.KindDelta},
		{ID: "g", IntegrationID: "a:1", Endpoint: groups, Kind: store.KindDelta},
	} {
		_, err := s.StartRun(ctx, r)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `update kombo.fetch_runs set started_at = started_at - interval '1 hour' where id = 'old'`)
		require.NoError(t, err)
	}
	require.NoError(t, s.FailRun(ctx, "g", "RateLimited", errors.New("429 rate limited"), false))
	runs, err := s.LastRuns(ctx, "a:1")
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, "new", runs["hris/employees"].ID)
	require.Equal(t, store.KindDelta, runs["hris/employees"].Kind)
	require.Equal(t, "running", runs["hris/groups"].Outcome)
	require.Equal(t, "429 rate limited", runs["hris/groups"].Error)
	one, err := s.IntegrationStatus(ctx, "a:1")
	require.NoError(t, err)
	require.Equal(t, 3, one.FetchesRunning, "none of the three finished")
	require.Equal(t, "429 rate limited", one.LastError)
}
