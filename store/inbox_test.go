package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/store"
)

func inboxEvent(id string) store.InboxEvent {
	return store.InboxEvent{ID: id, Type: "data-changed", IntegrationID: "personio:1",
		Payload:    []byte(`{"id":"` + id + `","type":"data-changed","data":{"integration_id":"personio:1"}}`),
		ReceivedAt: time.Now().Add(-time.Minute)}
}

func TestInboxDetectsDuplicatesAndUnsignaledEvents(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	got, err := s.InsertWebhookEvent(ctx, inboxEvent("ev1"), true)
	require.NoError(t, err)
	require.Equal(t, store.InsertedNew, got)

	got, err = s.InsertWebhookEvent(ctx, inboxEvent("ev1"), true)
	require.NoError(t, err)
	require.Equal(t, store.InsertedUnsignaled, got, "stored before but never signaled")

	require.NoError(t, s.MarkSignaled(ctx, "ev1"))
	got, err = s.InsertWebhookEvent(ctx, inboxEvent("ev1"), true)
	require.NoError(t, err)
	require.Equal(t, store.InsertedDuplicate, got)

	got, err = s.InsertWebhookEvent(ctx, inboxEvent("ev2"), false)
	require.NoError(t, err)
	require.Equal(t, store.InsertedNew, got)
	ev, err := s.WebhookEvent(ctx, "ev2")
	require.NoError(t, err)
	require.NotNil(t, ev.SignaledAt, "an event that needs no signal is handled at once")

	_, err = s.WebhookEvent(ctx, "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestRelaySignalsOnlyOldUnsignaledEventsAndRecordsFailures(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	for _, id := range []string{"old-ok", "old-fail"} {
		_, err := s.InsertWebhookEvent(ctx, inboxEvent(id), true)
		require.NoError(t, err)
	}
	fresh := inboxEvent("fresh")
	fresh.ReceivedAt = time.Now()
	_, err := s.InsertWebhookEvent(ctx, fresh, true)
	require.NoError(t, err)
	_, err = s.InsertWebhookEvent(ctx, inboxEvent("done"), true)
	require.NoError(t, err)
	require.NoError(t, s.MarkSignaled(ctx, "done"))

	var seen []string
	signaled, failed, err := s.RelayUnsignaled(ctx, 30*time.Second, 10, func(_ context.Context, ev store.InboxEvent) error {
		seen = append(seen, ev.ID)
		if ev.ID == "old-fail" {
			return errors.New("temporal unavailable")
		}
		return nil
	})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"old-ok", "old-fail"}, seen, "fresh events are left to the request handling them")
	require.Equal(t, 1, signaled)
	require.Equal(t, 1, failed)

	ok, err := s.WebhookEvent(ctx, "old-ok")
	require.NoError(t, err)
	require.NotNil(t, ok.SignaledAt)
	bad, err := s.WebhookEvent(ctx, "old-fail")
	require.NoError(t, err)
	require.Nil(t, bad.SignaledAt)
	require.Equal(t, 1, bad.Attempts)
}

func TestSaveIntegrationKeepsWhatItIsNotGiven(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	_, found, err := s.Integration(ctx, "personio:1")
	require.NoError(t, err)
	require.False(t, found)

	t1 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, s.SaveIntegration(ctx, store.Integration{ID: "personio:1", Tool: "personio", Category: "HRIS",
		SyncState: "idle", LastSyncState: "SUCCEEDED", LastSyncStateAt: &t1, FirstSyncFinished: true, LastSyncedAt: &t1}))
	older := t1.Add(-time.Hour)
	require.NoError(t, s.SaveIntegration(ctx, store.Integration{ID: "personio:1", SyncState: "syncing",
		LastSyncState: "FAILED", LastSyncStateAt: &older, LastSyncedAt: &older}))

	got, found, err := s.Integration(ctx, "personio:1")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, store.Integration{ID: "personio:1", Tool: "personio", Category: "HRIS", State: "ACTIVE",
		SyncState: "syncing", LastSyncState: "SUCCEEDED", LastSyncStateAt: got.LastSyncStateAt,
		FirstSyncFinished: true, LastSyncedAt: got.LastSyncedAt}, got)
	require.True(t, got.LastSyncStateAt.Equal(t1), "a late sync-finished does not replace a newer one")
	require.True(t, got.LastSyncedAt.Equal(t1))
}

func TestSucceedRunAdvancesTheWatermarkWithTheRun(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	run := startRun(t, s, "run-1")
	to := t0.Add(time.Hour)
	require.NoError(t, s.SucceedRun(ctx, run, &to))
	p, err := s.RunProgress(ctx, "run-1")
	require.NoError(t, err)
	require.True(t, p.Finished)
	require.Equal(t, store.OutcomeSucceeded, p.Outcome)

	ws, err := s.Watermarks(ctx, "personio:1")
	require.NoError(t, err)
	require.True(t, ws[employees.String()].UpdatedAfter.Equal(to))
	require.Nil(t, ws[employees.String()].LastFullPassAt, "a delta is not a full pass")

	// A late success of an older run does not move it back.
	old := startRun(t, s, "run-0")
	before := t0
	require.NoError(t, s.SucceedRun(ctx, old, &before))
	ws, err = s.Watermarks(ctx, "personio:1")
	require.NoError(t, err)
	require.True(t, ws[employees.String()].UpdatedAfter.Equal(to))
}

func TestEventsForADeletedIntegrationAreStoredAsHandled(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	_, err := s.InsertWebhookEvent(ctx, inboxEvent("before"), true) // stored, never signaled
	require.NoError(t, err)
	gone := time.Now()
	require.NoError(t, s.SaveIntegration(ctx, store.Integration{ID: "personio:1", DeletedAt: &gone}))

	got, err := s.InsertWebhookEvent(ctx, inboxEvent("late"), true)
	require.NoError(t, err)
	require.Equal(t, store.InsertedForDeleted, got)
	got, err = s.InsertWebhookEvent(ctx, inboxEvent("before"), true)
	require.NoError(t, err)
	require.Equal(t, store.InsertedForDeleted, got, "a redelivery after the deletion is not signaled either")
	for _, id := range []string{"late", "before"} {
		ev, err := s.WebhookEvent(ctx, id)
		require.NoError(t, err)
		require.NotNil(t, ev.SignaledAt, "%s: handled, so the relay leaves it alone", id)
	}
}
