package localstack_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/localstack"
)

func TestProcessStartsOnceAndStops(t *testing.T) {
	t.Parallel()
	sleep, err := filepathLook("sleep")
	require.NoError(t, err)
	p := &localstack.Process{Name: "sleeper", Path: sleep, Args: []string{"300"}, StateDir: t.TempDir()}

	started, err := p.Start()
	require.NoError(t, err)
	require.True(t, started)
	pid := p.Pid()
	require.NotZero(t, pid)

	started, err = p.Start()
	require.NoError(t, err)
	require.False(t, started, "a running process is not started twice")
	require.Equal(t, pid, p.Pid())

	require.NoError(t, p.Stop(5*time.Second))
	require.Zero(t, p.Pid())
	require.NoError(t, p.Stop(time.Second), "stopping a stopped process is fine")
}

func TestProcessIgnoresAStalePidFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// pid 1 runs, but it is not our program.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sleeper.pid"), []byte("1\n"), 0o644))
	p := &localstack.Process{Name: "sleeper", Path: "/bin/sleep", StateDir: dir}
	require.Zero(t, p.Pid())
}

// A cluster survives a stop and a start with its data, and starting a running one is a no-op:
// the guarantees `make dev` relies on when it is run again.
func TestPostgresKeepsDataAcrossRestarts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "kombosync-localstack-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	port, err := localstack.FreePort()
	require.NoError(t, err)
	pg := &localstack.Postgres{Root: filepath.Join(dir, "pg"), Port: port, Ephemeral: true}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })

	require.NoError(t, pg.Start(ctx))
	require.NoError(t, pg.Start(ctx), "starting a running cluster is a no-op")
	require.NoError(t, pg.CreateDatabase(ctx, "kombo"))
	require.NoError(t, pg.CreateDatabase(ctx, "kombo"), "creating an existing database is a no-op")
	exec(t, ctx, pg.URL("kombo"), "create table t(x int); insert into t values (42)")

	require.NoError(t, pg.Stop(ctx))
	require.False(t, pg.Running(ctx))
	require.NoError(t, pg.Start(ctx))

	conn, err := pgx.Connect(ctx, pg.URL("kombo"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var x int
	require.NoError(t, conn.QueryRow(ctx, "select x from t").Scan(&x))
	require.Equal(t, 42, x)
}

func exec(t *testing.T, ctx context.Context, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func filepathLook(name string) (string, error) {
	for _, dir := range []string{"/bin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}
