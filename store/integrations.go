package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Integration is a kombo.integrations row: what kombosync knows about one integration.
type Integration struct {
	ID       string
	Tool     string
	Category string
	// State is Kombo's: ACTIVE, INVALID or INACTIVE.
	State string
	// SyncState is IntegrationSync's (idle, syncing, auth_failed, …).
	SyncState string
	// LastSyncState is the sync_state of Kombo's last sync-finished, and when it arrived.
	LastSyncState     string
	LastSyncStateAt   *time.Time
	FirstSyncFinished bool
	// LastSyncedAt is when a fetch of ours last completed.
	LastSyncedAt *time.Time
	DeletedAt    *time.Time
}

// Integration reads an integration; found is false when there is no row.
func (s *Store) Integration(ctx context.Context, id string) (in Integration, found bool, err error) {
	var tool, category, syncState, lastSyncState *string
	var firstSync string
	err = s.pool.QueryRow(ctx, `
		select id, tool, category, state, sync_state, last_sync_state, last_sync_state_at, first_sync_status,
			last_synced_at, deleted_at
		from kombo.integrations where id = $1`, id).
		Scan(&in.ID, &tool, &category, &in.State, &syncState, &lastSyncState, &in.LastSyncStateAt, &firstSync,
			&in.LastSyncedAt, &in.DeletedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Integration{}, false, nil
	}
	if err != nil {
		return Integration{}, false, fmt.Errorf("read integration %s: %w", id, err)
	}
	in.Tool, in.Category, in.SyncState, in.LastSyncState = deref(tool), deref(category), deref(syncState), deref(lastSyncState)
	in.FirstSyncFinished = firstSync == "finished"
	return in, true, nil
}

// SaveIntegration creates or updates an integration's row. Empty fields keep what is stored, a
// finished first sync stays finished, and timestamps never move backwards, so a late or repeated
// save is harmless.
func (s *Store) SaveIntegration(ctx context.Context, in Integration) error {
	if in.ID == "" {
		return errors.New("save integration: id is required")
	}
	firstSync := "pending"
	if in.FirstSyncFinished {
		firstSync = "finished"
	}
	_, err := s.pool.Exec(ctx, `
		insert into kombo.integrations as i (id, tool, category, state, sync_state, last_sync_state, last_sync_state_at,
			first_sync_status, last_synced_at, deleted_at)
		values ($1, nullif($2, ''), nullif($3, ''), coalesce(nullif($4, ''), 'ACTIVE'), nullif($5, ''), nullif($6, ''), $7,
			$8, $9, $10)
		on conflict (id) do update set
			tool = coalesce(excluded.tool, i.tool),
			category = coalesce(excluded.category, i.category),
			state = coalesce(nullif($4, ''), i.state),
			sync_state = coalesce(excluded.sync_state, i.sync_state),
			last_sync_state = case when excluded.last_sync_state_at >= coalesce(i.last_sync_state_at, '-infinity')
				then coalesce(excluded.last_sync_state, i.last_sync_state) else i.last_sync_state end,
			last_sync_state_at = greatest(i.last_sync_state_at, excluded.last_sync_state_at),
			first_sync_status = case when i.first_sync_status = 'finished' then 'finished' else excluded.first_sync_status end,
			last_synced_at = greatest(i.last_synced_at, excluded.last_synced_at),
			deleted_at = coalesce(i.deleted_at, excluded.deleted_at),
			updated_at = now()`,
		in.ID, in.Tool, in.Category, in.State, in.SyncState, in.LastSyncState, in.LastSyncStateAt,
		firstSync, in.LastSyncedAt, in.DeletedAt)
	if err != nil {
		return fmt.Errorf("save integration %s: %w", in.ID, err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
