package service

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/migrations"
)

// Backends are what the worker and the gateway connect to as they start: Postgres, with its
// schema checked to be the one this build expects, and Temporal, whose SDK metrics go into
// Registry beside the program's own.
type Backends struct {
	Pool     *pgxpool.Pool
	Temporal client.Client
	Registry *prometheus.Registry
	mode     string // how Temporal is reached (config.TemporalMode), for the readiness check's words
}

// Connect opens the backends, or returns why it could not; Close releases them.
func Connect(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*Backends, error) {
	pool, err := OpenPostgres(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	reg := NewRegistry()
	tc, err := DialTemporal(ctx, cfg, logger, reg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &Backends{Pool: pool, Temporal: tc, Registry: reg, mode: config.TemporalMode(cfg.TemporalProfile())}, nil
}

// Close closes the Temporal client and the pool.
func (b *Backends) Close() {
	b.Temporal.Close()
	b.Pool.Close()
}

// Probes are /healthz, /readyz (Postgres and Temporal reachable) and /metrics over the backends.
func (b *Backends) Probes(logger *slog.Logger) Probes {
	return NewProbes(b.Registry, logger, PostgresCheck(b.Pool), TemporalCheck(b.Temporal, b.mode))
}
