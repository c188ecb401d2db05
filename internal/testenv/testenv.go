// Package testenv gives tests real dependencies: a PostgreSQL cluster (a fresh, migrated
// database per test, so tests run in parallel) and a Temporal CLI dev server. A package that uses
// them calls Main from its TestMain; Main starts what the package asks for on free ports and
// stops it afterwards.
//
// KOMBOSYNC_TEST_POSTGRES_URL (a superuser URL of any database) and
// KOMBOSYNC_TEST_TEMPORAL_ADDRESS point the tests at servers that already run instead.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/migrations"
	"github.com/kombosync/kombosync/workflows"
)

// Service is a dependency a test package needs.
type Service int

const (
	Postgres Service = 1 << iota
	Temporal
	// DurablePostgres runs the cluster with the durable defaults (fsync, synchronous commit), as
	// in production: for benchmarks. Without it the cluster trades durability for speed.
	DurablePostgres
)

// env is what Main started for this test binary; it is set once before any test runs.
var env struct {
	postgresURL     string // superuser URL, database "postgres"
	temporalAddress string

	templateOnce sync.Once
	templateName string
	templateErr  error
}

// Main starts the services, runs the tests, stops the services and exits.
func Main(m *testing.M, needs Service) {
	os.Exit(Run(m, needs))
}

// Run is Main for a TestMain with cleanup of its own: it returns the exit code.
func Run(m *testing.M, needs Service) int {
	ctx := context.Background()
	if needs&(Postgres|DurablePostgres) != 0 {
		stop, err := startPostgres(ctx, needs&DurablePostgres == 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testenv: postgres:", err)
			return 1
		}
		defer stop()
	}
	if needs&Temporal != 0 {
		stop, err := startTemporal(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testenv: temporal:", err)
			return 1
		}
		defer stop()
	}
	return m.Run()
}

func startPostgres(ctx context.Context, ephemeral bool) (func(), error) {
	if u := os.Getenv("KOMBOSYNC_TEST_POSTGRES_URL"); u != "" {
		env.postgresURL = u
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "kombosync-test-pg-")
	if err != nil {
		return nil, err
	}
	// The cluster may run as the postgres user, which must reach into the folder.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := localstack.FreePort()
	if err != nil {
		return nil, err
	}
	pg := &localstack.Postgres{Root: dir, Port: port, Ephemeral: ephemeral}
	if err := pg.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	env.postgresURL = pg.URL("postgres")
	return func() {
		if err := pg.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: stop postgres:", err)
		}
		os.RemoveAll(dir)
	}, nil
}

func startTemporal(ctx context.Context) (func(), error) {
	if a := os.Getenv("KOMBOSYNC_TEST_TEMPORAL_ADDRESS"); a != "" {
		env.temporalAddress = a
		return func() {}, nil
	}
	port, err := localstack.FreePort()
	if err != nil {
		return nil, err
	}
	opts, err := DevServerOptions(fmt.Sprintf("127.0.0.1:%d", port), "", io.Discard)
	if err != nil {
		return nil, err
	}
	srv, err := testsuite.StartDevServer(ctx, opts)
	if err != nil {
		return nil, err
	}
	env.temporalAddress = srv.FrontendHostPort()
	return func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: stop temporal:", err)
		}
	}, nil
}

// DevServerOptions start the pinned Temporal CLI's dev server (never a downloaded one) on address
// with kombosync's search attributes registered. dbFile keeps its state in a SQLite file, so it
// can be stopped and started again on the same state; in memory when empty. The server's errors
// go to stderr.
func DevServerOptions(address, dbFile string, stderr io.Writer) (testsuite.DevServerOptions, error) {
	root, err := localstack.RepoRoot()
	if err != nil {
		return testsuite.DevServerOptions{}, err
	}
	cli, err := localstack.TemporalCLI(root)
	if err != nil {
		return testsuite.DevServerOptions{}, err
	}
	var extra []string
	for _, sa := range workflows.SearchAttributeDefinitions() {
		extra = append(extra, "--search-attribute", sa)
	}
	return testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{HostPort: address, Logger: QuietLogger()},
		DBFilename:    dbFile,
		LogLevel:      "error",
		ExtraArgs:     extra,
		Stdout:        io.Discard,
		Stderr:        stderr,
	}, nil
}

// PostgresAdminURL is the superuser URL of the test cluster's postgres database.
func PostgresAdminURL(t testing.TB) string {
	t.Helper()
	if env.postgresURL == "" {
		t.Fatal("testenv: Postgres not started: call testenv.Main(m, testenv.Postgres) from TestMain")
	}
	return env.postgresURL
}

// EmptyDatabase creates a database for this test only, without the kombo schema, and drops it
// when the test ends. It returns its URL.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, "template0")
}

// Database creates a database for this test only, migrated to the latest schema, and drops it
// when the test ends. It returns its URL. Copying a migrated template makes it cheap.
func Database(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL(t)
	env.templateOnce.Do(func() { env.templateName, env.templateErr = migratedTemplate(admin) })
	if env.templateErr != nil {
		t.Fatalf("testenv: template database: %v", env.templateErr)
	}
	return createDatabase(t, env.templateName)
}

func createDatabase(t testing.TB, template string) string {
	t.Helper()
	admin := PostgresAdminURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testenv: connect: %v", err)
	}
	defer conn.Close(ctx)
	name := "test_" + randomHex(6)
	if _, err := conn.Exec(ctx, fmt.Sprintf("create database %s template %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize())); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("testenv: connect: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// migratedTemplate creates (once per cluster and migration set) a database holding the latest
// schema, for tests to copy. Other test binaries may share the cluster, so an advisory lock
// serialises its creation.
func migratedTemplate(admin string) (string, error) {
	ctx := context.Background()
	latest, err := migrations.Latest()
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "select pg_advisory_lock(4242)"); err != nil {
		return "", err
	}
	defer conn.Exec(ctx, "select pg_advisory_unlock(4242)") //nolint:errcheck // released on close too
	name := fmt.Sprintf("kombosync_template_v%d_%s", latest, migrations.Checksum()[:8])
	var exists bool
	if err := conn.QueryRow(ctx, "select exists(select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{building}.Sanitize()+" with (force)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{building}.Sanitize()+" template template0"); err != nil {
		return "", err
	}
	if _, err := migrations.Apply(ctx, withDatabase(admin, building)); err != nil {
		return "", err
	}
	// Renamed only once complete, so a crash mid-migration never leaves a usable half template.
	if _, err := conn.Exec(ctx, fmt.Sprintf("alter database %s rename to %s",
		pgx.Identifier{building}.Sanitize(), pgx.Identifier{name}.Sanitize())); err != nil {
		return "", err
	}
	return name, nil
}

// TemporalAddress is the host:port of the test dev server; tests isolate themselves by task
// queue (see TaskQueue) on its default namespace.
func TemporalAddress(t testing.TB) string {
	t.Helper()
	if env.temporalAddress == "" {
		t.Fatal("testenv: Temporal not started: call testenv.Main(m, testenv.Temporal) from TestMain")
	}
	return env.temporalAddress
}

// TemporalClient dials the test dev server and closes the client when the test ends.
func TemporalClient(t testing.TB) client.Client {
	t.Helper()
	return TemporalClientAt(t, TemporalAddress(t))
}

// TemporalClientAt dials the Temporal server at address and closes the client when the test ends.
func TemporalClientAt(t testing.TB, address string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: address, Logger: QuietLogger()})
	if err != nil {
		t.Fatalf("testenv: dial temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// TaskQueue is a task queue unique to this test.
func TaskQueue(t testing.TB) string {
	return "test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + randomHex(4)
}

// Context is a context cancelled when the test ends or after timeout, whichever comes first.
func Context(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func withDatabase(rawURL, db string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err) // the admin URL was usable a moment ago
	}
	u.Path = "/" + db
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// QuietLogger keeps the SDK's own logging out of test output; failures reach tests as errors.
func QuietLogger() log.Logger { return log.NewStructuredLogger(slog.New(slog.DiscardHandler)) }
