package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kombosync/kombosync/kombo"
)

// Watermark is the sync position of one (integration, endpoint).
type Watermark struct {
	UpdatedAfter   *time.Time // nil: no complete fetch yet
	LastFullPassAt *time.Time
}

// Watermark reads the watermark; a missing one is the zero Watermark.
func (s *Store) Watermark(ctx context.Context, integrationID string, ep kombo.Endpoint) (Watermark, error) {
	var w Watermark
	err := s.pool.QueryRow(ctx, `select updated_after, last_full_pass_at from kombo.watermarks
		where integration_id = $1 and endpoint = $2`, integrationID, ep.String()).Scan(&w.UpdatedAfter, &w.LastFullPassAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Watermark{}, nil
	}
	if err != nil {
		return Watermark{}, fmt.Errorf("read watermark %s %s: %w", integrationID, ep, err)
	}
	return w, nil
}

// AdvanceWatermark sets updated_after for the next delta (and, for a full pass, the time of the
// last complete full pass). It never moves backwards, so a late or replayed call is harmless.
func (s *Store) AdvanceWatermark(ctx context.Context, integrationID string, ep kombo.Endpoint, updatedAfter time.Time, fullPass bool) error {
	return advanceWatermark(ctx, s.pool, integrationID, ep, updatedAfter, fullPass)
}

func advanceWatermark(ctx context.Context, db DBTX, integrationID string, ep kombo.Endpoint, updatedAfter time.Time, fullPass bool) error {
	var full *time.Time
	if fullPass {
		full = &updatedAfter
	}
	_, err := db.Exec(ctx, `
		insert into kombo.watermarks as w (integration_id, endpoint, updated_after, last_full_pass_at, updated_at)
		values ($1, $2, $3, $4, now())
		on conflict (integration_id, endpoint) do update set
			updated_after = greatest(w.updated_after, excluded.updated_after),
			last_full_pass_at = greatest(w.last_full_pass_at, excluded.last_full_pass_at),
			updated_at = now()`,
		integrationID, ep.String(), updatedAfter, full)
	if err != nil {
		return fmt.Errorf("advance watermark %s %s: %w", integrationID, ep, err)
	}
	return nil
}

// Watermarks reads the watermarks of every endpoint of an integration, by endpoint ("hris/employees").
func (s *Store) Watermarks(ctx context.Context, integrationID string) (map[string]Watermark, error) {
	rows, err := s.pool.Query(ctx, `select endpoint, updated_after, last_full_pass_at from kombo.watermarks
		where integration_id = $1`, integrationID)
	if err != nil {
		return nil, fmt.Errorf("read watermarks of %s: %w", integrationID, err)
	}
	defer rows.Close()
	out := map[string]Watermark{}
	for rows.Next() {
		var ep string
		var w Watermark
		if err := rows.Scan(&ep, &w.UpdatedAfter, &w.LastFullPassAt); err != nil {
			return nil, fmt.Errorf("read watermarks of %s: %w", integrationID, err)
		}
		out[ep] = w
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read watermarks of %s: %w", integrationID, err)
	}
	return out, nil
}
