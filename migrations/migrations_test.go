package migrations_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/migrations"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Postgres) }

func TestApplyCreatesSchemaAndIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, time.Minute)
	url := testenv.EmptyDatabase(t)
	latest, err := migrations.Latest()
	require.NoError(t, err)

	res, err := migrations.Apply(ctx, url)
	require.NoError(t, err)
	require.Equal(t, migrations.Result{From: 0, To: latest}, res)

	res, err = migrations.Apply(ctx, url)
	require.NoError(t, err)
	require.Equal(t, migrations.Result{From: latest, To: latest}, res, "a second run changes nothing")

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var schema string
	require.NoError(t, conn.QueryRow(ctx, "select nspname from pg_namespace where nspname = 'kombo'").Scan(&schema))
	require.NoError(t, migrations.Check(ctx, conn))
}

func TestConcurrentApplyIsSafe(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, time.Minute)
	url := testenv.EmptyDatabase(t)
	var g errgroup.Group
	for range 4 {
		g.Go(func() error { _, err := migrations.Apply(ctx, url); return err })
	}
	require.NoError(t, g.Wait())
}

func TestCheckNamesTheFix(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, time.Minute)
	conn, err := pgx.Connect(ctx, testenv.EmptyDatabase(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.ErrorContains(t, migrations.Check(ctx, conn), "run `starter migrate`")

	_, err = migrations.ApplyConn(ctx, conn)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "update "+migrations.VersionTable+" set version = 0")
	require.NoError(t, err)
	require.ErrorContains(t, migrations.Check(ctx, conn), "schema is at version 0")
}

func TestDatabaseHelperGivesAMigratedDatabase(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, time.Minute)
	conn, err := pgx.Connect(ctx, testenv.Database(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, migrations.Check(ctx, conn))
}
