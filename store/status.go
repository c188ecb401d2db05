package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StatusRow is one row of the kombo.integration_status view: what Postgres knows about an
// integration, readable while no worker runs.
type StatusRow struct {
	IntegrationID      string         `json:"integration_id"`
	Tool               string         `json:"tool,omitempty"`
	Category           string         `json:"category,omitempty"`
	KomboState         string         `json:"kombo_state"`
	SyncState          string         `json:"state,omitempty"`
	FirstSyncFinished  bool           `json:"first_sync_finished"`
	LastSyncedAt       *time.Time     `json:"last_synced_at,omitempty"`
	SyncLag            *time.Duration `json:"-"`
	OldestWatermark    *time.Time     `json:"oldest_watermark,omitempty"`
	LastFullPassAt     *time.Time     `json:"last_full_pass_at,omitempty"`
	EndpointsSynced    int            `json:"endpoints_synced"`
	FetchesRunning     int            `json:"fetches_running"`
	FetchesRetrying    int            `json:"fetches_retrying"`
	FetchesFailed24h   int            `json:"fetches_failed_24h"`
	LastErrorEndpoint  string         `json:"last_error_endpoint,omitempty"`
	LastError          string         `json:"last_error,omitempty"`
	LastErrorOutcome   string         `json:"last_error_outcome,omitempty"`
	LastErrorAt        *time.Time     `json:"last_error_run_started_at,omitempty"`
	WebhooksUnsignaled int            `json:"webhooks_unsignaled"`
	Attention          string         `json:"attention,omitempty"`
	DeletedAt          *time.Time     `json:"deleted_at,omitempty"`
	PurgedAt           *time.Time     `json:"purged_at,omitempty"`
	// RecordsRejected sit in kombo.rejected_records; EndpointsUnavailable ("hris/timesheets, …")
	// are no longer served by Kombo for the integration.
	RecordsRejected      int    `json:"records_rejected"`
	EndpointsUnavailable string `json:"endpoints_unavailable,omitempty"`
}

const statusColumns = `integration_id, coalesce(tool, ''), coalesce(category, ''), state, coalesce(sync_state, ''),
	first_sync_status = 'finished', last_synced_at, sync_lag, oldest_watermark, last_full_pass_at, endpoints_synced,
	fetches_running, fetches_retrying, fetches_failed_24h, coalesce(last_error_endpoint, ''), coalesce(last_error, ''),
	coalesce(last_error_outcome, ''), last_error_run_started_at, webhooks_unsignaled, coalesce(attention, ''),
	deleted_at, purged_at, records_rejected, coalesce(endpoints_unavailable, '')`

func scanStatus(row pgx.Row) (StatusRow, error) {
	var r StatusRow
	err := row.Scan(&r.IntegrationID, &r.Tool, &r.Category, &r.KomboState, &r.SyncState, &r.FirstSyncFinished,
		&r.LastSyncedAt, &r.SyncLag, &r.OldestWatermark, &r.LastFullPassAt, &r.EndpointsSynced, &r.FetchesRunning,
		&r.FetchesRetrying, &r.FetchesFailed24h, &r.LastErrorEndpoint, &r.LastError, &r.LastErrorOutcome, &r.LastErrorAt,
		&r.WebhooksUnsignaled, &r.Attention, &r.DeletedAt, &r.PurgedAt,
		&r.RecordsRejected, &r.EndpointsUnavailable)
	return r, err
}

// IntegrationStatus reads one integration's kombo.integration_status row; ErrNotFound when
// kombosync has never heard of it.
func (s *Store) IntegrationStatus(ctx context.Context, id string) (StatusRow, error) {
	r, err := scanStatus(s.pool.QueryRow(ctx, `select `+statusColumns+` from kombo.integration_status where integration_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return StatusRow{}, fmt.Errorf("integration %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return StatusRow{}, fmt.Errorf("read status of integration %s: %w", id, err)
	}
	return r, nil
}

// IntegrationStatuses reads the kombo.integration_status rows in id order, of every integration
// or, when state is not empty, of those in that sync state.
func (s *Store) IntegrationStatuses(ctx context.Context, state string) ([]StatusRow, error) {
	rows, err := s.pool.Query(ctx, `select `+statusColumns+` from kombo.integration_status
		where $1 = '' or sync_state = $1 order by integration_id`, state)
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StatusRow, error) { return scanStatus(row) })
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	return out, nil
}

// EndpointRun is the latest fetch run of one endpoint.
type EndpointRun struct {
	ID         string     `json:"run_id"`
	Kind       string     `json:"kind"`
	Outcome    string     `json:"outcome"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Counts
	Error string `json:"error,omitempty"`
}

// LastRuns reads the latest fetch run of each of an integration's endpoints, by endpoint.
func (s *Store) LastRuns(ctx context.Context, integrationID string) (map[string]EndpointRun, error) {
	rows, err := s.pool.Query(ctx, `
		select distinct on (endpoint) endpoint, id, kind, outcome, started_at, finished_at, pages, fetched,
			inserted, updated, unchanged, deleted, restored, sanitized, rejected, coalesce(error, '')
		from kombo.fetch_runs where integration_id = $1
		order by endpoint, started_at desc`, integrationID)
	if err != nil {
		return nil, fmt.Errorf("read last runs of %s: %w", integrationID, err)
	}
	defer rows.Close()
	out := map[string]EndpointRun{}
	for rows.Next() {
		var ep string
		var r EndpointRun
		if err := rows.Scan(&ep, &r.ID, &r.Kind, &r.Outcome, &r.StartedAt, &r.FinishedAt, &r.Pages, &r.Fetched,
			&r.Inserted, &r.Updated, &r.Unchanged, &r.Deleted, &r.Restored, &r.Sanitized, &r.Rejected, &r.Error); err != nil {
			return nil, fmt.Errorf("read last runs of %s: %w", integrationID, err)
		}
		out[ep] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read last runs of %s: %w", integrationID, err)
	}
	return out, nil
}

// LastSucceededPassStarts is when each endpoint's last successful pass began, by endpoint.
func (s *Store) LastSucceededPassStarts(ctx context.Context, integrationID string) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `
		select distinct on (endpoint) endpoint, started_at from kombo.fetch_runs
		where integration_id = $1 and outcome = 'succeeded'
		order by endpoint, started_at desc`, integrationID)
	if err != nil {
		return nil, fmt.Errorf("read last passes of %s: %w", integrationID, err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var ep string
		var at time.Time
		if err := rows.Scan(&ep, &at); err != nil {
			return nil, fmt.Errorf("read last passes of %s: %w", integrationID, err)
		}
		out[ep] = at
	}
	return out, rows.Err()
}
