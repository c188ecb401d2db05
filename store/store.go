// Package store is kombosync's Postgres access with pgx/v5: batched page upserts that write
// nothing for unchanged records, the change feed, watermarks, fetch-run bookkeeping and the
// webhook inbox, all in schema kombo (docs/ARCHITECTURE.md section 4).
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kombosync/kombosync/privacy"
)

// DBTX is what the store runs statements on: a pool, a connection or a transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store is kombosync's Postgres access.
type Store struct {
	pool   *pgxpool.Pool
	now    func() time.Time
	policy *privacy.Policy // applied to every record before it is stored (nil: none)
}

// New returns a store on the pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, now: time.Now} }

// WithPolicy returns the store applying the field policy to every record it writes.
func (s *Store) WithPolicy(p *privacy.Policy) *Store {
	c := *s
	c.policy = p
	return &c
}

// Policy is the field policy the store applies (nil: none).
func (s *Store) Policy() *privacy.Policy { return s.policy }

// Pool is the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// DatabaseTime is the database server's clock now. Fetches are ordered by it: the workers' own
// clocks may disagree by seconds, the database's is one for all of them.
func (s *Store) DatabaseTime(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.pool.QueryRow(ctx, `select clock_timestamp()`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", err)
	}
	return t, nil
}
