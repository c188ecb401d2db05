package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	PurgedAt     *time.Time
	// Attention says why an operator is needed (a refused sweep). SaveIntegration keeps the
	// stored value when nil and clears it when empty.
	Attention *string
}

// Integration reads an integration; found is false when there is no row; ErrInvalid for an id
// that is not text (a NUL byte, broken UTF-8).
func (s *Store) Integration(ctx context.Context, id string) (in Integration, found bool, err error) {
	if err := checkText("the integration id", id); err != nil {
		return Integration{}, false, err
	}
	var tool, category, syncState, lastSyncState *string
	var firstSync string
	err = s.pool.QueryRow(ctx, `
		select id, tool, category, state, sync_state, last_sync_state, last_sync_state_at, first_sync_status,
			last_synced_at, deleted_at, purged_at, attention
		from kombo.integrations where id = $1`, id).
		Scan(&in.ID, &tool, &category, &in.State, &syncState, &lastSyncState, &in.LastSyncStateAt, &firstSync,
			&in.LastSyncedAt, &in.DeletedAt, &in.PurgedAt, &in.Attention)
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
	_, err := s.SaveIntegrationEvents(ctx, in)
	return err
}

// SaveIntegrationEvents is SaveIntegration, queuing in the same transaction the events the
// change tells the application of: integration.state_changed when the lasting sync state
// changes, attention when a new reason for it is recorded. It returns the active subscriptions
// to wake once committed.
func (s *Store) SaveIntegrationEvents(ctx context.Context, in Integration) ([]string, error) {
	if in.ID == "" {
		return nil, errors.New("save integration: id is required")
	}
	firstSync := "pending"
	if in.FirstSyncFinished {
		firstSync = "finished"
	}
	var wake []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var before struct{ syncState, attention *string }
		err := tx.QueryRow(ctx, `select sync_state, attention from kombo.integrations where id = $1 for update`, in.ID).
			Scan(&before.syncState, &before.attention)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		var after struct {
			tool, category, state string
			syncState, attention  *string
		}
		if err := tx.QueryRow(ctx, `
		insert into kombo.integrations as i (id, tool, category, state, sync_state, last_sync_state, last_sync_state_at,
			first_sync_status, last_synced_at, deleted_at, purged_at, attention)
		values ($1, nullif($2, ''), nullif($3, ''), coalesce(nullif($4, ''), 'ACTIVE'), nullif($5, ''), nullif($6, ''), $7,
			$8, $9, $10, $11, nullif($12, ''))
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
			purged_at = coalesce(i.purged_at, excluded.purged_at),
			attention = case when $12::text is null then i.attention else nullif($12, '') end,
			updated_at = now()
		returning coalesce(tool, ''), coalesce(category, ''), state, sync_state, attention`,
			in.ID, in.Tool, in.Category, in.State, in.SyncState, in.LastSyncState, in.LastSyncStateAt,
			firstSync, in.LastSyncedAt, in.DeletedAt, in.PurgedAt, in.Attention).
			Scan(&after.tool, &after.category, &after.state, &after.syncState, &after.attention); err != nil {
			return err
		}
		if after.syncState != nil && deref(after.syncState) != deref(before.syncState) {
			w, err := enqueue(ctx, tx, event{Type: EventStateChanged, IntegrationID: in.ID, Data: StateChanged{
				IntegrationID: in.ID, Tool: after.tool, Category: after.category, State: *after.syncState,
				PreviousState: deref(before.syncState), KomboState: after.state}})
			if err != nil {
				return err
			}
			wake = appendNew(wake, w...)
		}
		if a := deref(after.attention); a != "" && a != deref(before.attention) {
			w, err := enqueue(ctx, tx, event{Type: EventAttention, IntegrationID: in.ID, Data: Attention{
				IntegrationID: in.ID, Tool: after.tool, Category: after.category, Kind: attentionKind(a), Message: a}})
			if err != nil {
				return err
			}
			wake = appendNew(wake, w...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("save integration %s: %w", in.ID, err)
	}
	return wake, nil
}

// attentionKind names the reason an integration row records (its only one today: the sweep).
func attentionKind(text string) string {
	if strings.HasPrefix(text, "sweep refused") {
		return "sweep_refused"
	}
	return "operator_needed"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// IntegrationRef names an integration and what is known of it.
type IntegrationRef struct {
	ID       string
	Tool     string
	Category string
}

// ActiveIntegrations lists integrations that are not deleted, by id, after the given id (""
// for the first page), at most limit of them.
func (s *Store) ActiveIntegrations(ctx context.Context, after string, limit int) ([]IntegrationRef, error) {
	rows, err := s.pool.Query(ctx, `select id, coalesce(tool, ''), coalesce(category, '') from kombo.integrations
		where deleted_at is null and id > $1 order by id limit $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[IntegrationRef])
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	return out, nil
}

// IntegrationDeleted reports whether the integration was deleted (Kombo's integration-deleted).
func (s *Store) IntegrationDeleted(ctx context.Context, id string) (bool, error) {
	var deleted bool
	err := s.pool.QueryRow(ctx, `select exists(select from kombo.integrations where id = $1 and deleted_at is not null)`, id).Scan(&deleted)
	if err != nil {
		return false, fmt.Errorf("read integration %s: %w", id, err)
	}
	return deleted, nil
}

// PurgeIntegration removes a deleted integration's data: records, change feed, watermarks and
// runs. The integration's row stays, marked purged, so a late event does not bring it back.
func (s *Store) PurgeIntegration(ctx context.Context, id string) (records int64, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `delete from kombo.records where integration_id = $1`, id)
		if err != nil {
			return err
		}
		records = tag.RowsAffected()
		for _, q := range []string{
			`delete from kombo.changes where integration_id = $1`,
			`delete from kombo.watermarks where integration_id = $1`,
			`delete from kombo.rejected_records where integration_id = $1`,
			`delete from kombo.full_pass_seen where run_id in (select id from kombo.fetch_runs where integration_id = $1)`,
			`delete from kombo.fetch_runs where integration_id = $1`,
			`delete from kombo.suppressed_records where integration_id = $1`,
			// The inbox's payloads name the customer's admin (end_user); an unsignaled one
			// is still the relay's to deliver, and goes with the retention run later.
			`delete from kombo.webhook_events where integration_id = $1 and signaled_at is not null`,
			`update kombo.integrations set purged_at = coalesce(purged_at, now()), deleted_at = coalesce(deleted_at, now()),
				end_user = null, updated_at = now() where id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge integration %s: %w", id, err)
	}
	return records, nil
}
