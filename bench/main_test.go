//go:build bench

// Package bench measures kombosync against the limits of the machine it runs on: make bench.
// It is a test binary behind the bench build tag, so go test ./... never runs it, and it reuses
// the local-stack plumbing of the tests: a PostgreSQL cluster with the durable defaults (fsync on,
// as in production; the test harness's shared cluster runs without fsync), a Temporal dev server,
// and the worker and gateway built without the race detector.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/migrations"
	"github.com/kombosync/kombosync/workflows"
)

// infra is what every figure runs on.
var infra struct {
	pg              *localstack.Postgres
	temporalAddress string
	binDir          string
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "kombosync-bench-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the cluster runs as postgres when we are root
		return 1, err
	}
	root, err := localstack.RepoRoot()
	if err != nil {
		return 1, err
	}

	infra.binDir = filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", infra.binDir+"/", "./worker", "./cmd/webhookgw")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 1, fmt.Errorf("build programs: %w", err)
	}

	pgPort, err := localstack.FreePort()
	if err != nil {
		return 1, err
	}
	infra.pg = &localstack.Postgres{Root: filepath.Join(dir, "pg"), Port: pgPort}
	if err := infra.pg.Start(ctx); err != nil {
		return 1, err
	}
	defer infra.pg.Stop(context.Background())

	cli, err := localstack.TemporalCLI(root)
	if err != nil {
		return 1, err
	}
	tPort, err := localstack.FreePort()
	if err != nil {
		return 1, err
	}
	infra.temporalAddress = "127.0.0.1:" + strconv.Itoa(tPort)
	var extra []string
	for _, sa := range workflows.SearchAttributeDefinitions() {
		extra = append(extra, "--search-attribute", sa)
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{HostPort: infra.temporalAddress, Logger: quiet()},
		LogLevel:      "error",
		ExtraArgs:     extra,
		Stdout:        io.Discard,
		Stderr:        os.Stderr,
	})
	if err != nil {
		return 1, fmt.Errorf("start temporal dev server: %w", err)
	}
	defer srv.Stop()
	return m.Run(), nil
}

// database creates a fresh, migrated database and returns its URL.
func database(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := infra.pg.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	url := infra.pg.URL(name)
	if _, err := migrations.Apply(ctx, url); err != nil {
		t.Fatal(err)
	}
	return url
}

func quiet() log.Logger { return log.NewStructuredLogger(slog.New(slog.DiscardHandler)) }
