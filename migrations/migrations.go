// Package migrations holds kombosync's SQL migrations, embedded in every binary, and applies
// them with tern (github.com/jackc/tern/v2), chosen because it runs on the same pgx/v5 driver as
// the store, takes a Postgres advisory lock so concurrent starters cannot race, and keeps plain
// numbered SQL files.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable records the applied version.
const VersionTable = "kombo.schema_version"

// Result says which version the database was at before and after Apply.
type Result struct {
	From, To int32
}

// Apply brings the database at databaseURL to the latest migration. It is idempotent: a database
// already at the latest version is left untouched.
func Apply(ctx context.Context, databaseURL string) (Result, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return Result{}, fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return ApplyConn(ctx, conn)
}

// ApplyConn is Apply on an open connection.
func ApplyConn(ctx context.Context, conn *pgx.Conn) (Result, error) {
	// Serialise with other starters: two concurrent "create schema if not exists" can still
	// collide on the catalog's unique index. The lock is session-level, released on return.
	const lockKey = 0x6b6f6d626f // "kombo"
	if _, err := conn.Exec(ctx, "select pg_advisory_lock($1)", lockKey); err != nil {
		return Result{}, fmt.Errorf("lock migrations: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock($1)", lockKey) //nolint:errcheck // closing the session releases it too
	if _, err := conn.Exec(ctx, "create schema if not exists kombo"); err != nil {
		return Result{}, fmt.Errorf("create schema kombo: %w", err)
	}
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return Result{}, fmt.Errorf("prepare migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return Result{}, fmt.Errorf("load migrations: %w", err)
	}
	from, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("read schema version: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return Result{From: from}, fmt.Errorf("migrate from version %d: %w", from, err)
	}
	to, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return Result{From: from}, fmt.Errorf("read schema version: %w", err)
	}
	return Result{From: from, To: to}, nil
}

// Checksum is a hex SHA-256 over every embedded migration, so a cached migrated database can
// tell that the migrations changed.
func Checksum() string {
	h := sha256.New()
	entries, _ := fs.ReadDir(files, ".")
	for _, e := range entries {
		b, _ := files.ReadFile(e.Name())
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Latest is the number of the newest embedded migration.
func Latest() (int32, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, err
	}
	return int32(len(names)), nil
}

// Queryer is the one method Check needs; a pool, a connection and a transaction all fit.
type Queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Check fails unless the database holds the latest schema, with an error that says what to run.
func Check(ctx context.Context, q Queryer) error {
	latest, err := Latest()
	if err != nil {
		return err
	}
	var v int32
	if err := q.QueryRow(ctx, "select version from "+VersionTable).Scan(&v); err != nil {
		return fmt.Errorf("database has no kombo schema (run `starter migrate`): %w", err)
	}
	if v != latest {
		return fmt.Errorf("database schema is at version %d, this build needs %d: run `starter migrate`", v, latest)
	}
	return nil
}
