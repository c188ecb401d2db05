// Command devstack runs kombosync's local stack without Docker: a PostgreSQL cluster and the
// Temporal dev server (SQLite file, Web UI on :8233) with state under .data/, then the project's
// Kombo emulator, worker and gateway. `make dev` runs `devstack up`, `make dev-stop` runs `devstack down`.
//
// Re-running up is safe: Postgres and Temporal are started only if they are not running; the
// project's own programs are restarted so they run the binaries just built.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/migrations"
	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// Ports of the local stack. Postgres avoids 5432 so it never collides with a system cluster.
const (
	postgresPort    = 55432
	temporalPort    = 7233
	temporalUIPort  = 8233
	gatewayPort     = 8080
	workerPort      = 9090
	emulatorPort    = 8090
	apiPort         = 8088
	receiverPort    = 8099
	postgresDB      = "kombo"
	temporalAddress = "127.0.0.1:7233"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: devstack up|down|status")
	}
	root, err := localstack.RepoRoot()
	if err != nil {
		return err
	}
	s := newStack(root)
	switch args[0] {
	case "up":
		return s.up(ctx, stdout)
	case "down":
		return s.down(ctx, stdout)
	case "status":
		s.status(ctx, stdout)
		return nil
	default:
		return fmt.Errorf("unknown command %q: usage: devstack up|down|status", args[0])
	}
}

type stack struct {
	root, data string
	postgres   *localstack.Postgres
	temporal   *localstack.Process
	programs   []*localstack.Process // the project's own, in start order
}

func newStack(root string) *stack {
	data := filepath.Join(root, ".data")
	s := &stack{
		root:     root,
		data:     data,
		postgres: &localstack.Postgres{Root: filepath.Join(data, "postgres"), Port: postgresPort},
	}
	args := []string{"server", "start-dev",
		"--db-filename", filepath.Join(data, "temporal", "temporal.db"),
		"--ip", "127.0.0.1", "--port", strconv.Itoa(temporalPort), "--ui-port", strconv.Itoa(temporalUIPort),
		"--log-level", "warn"}
	for _, sa := range workflows.SearchAttributeDefinitions() {
		args = append(args, "--search-attribute", sa)
	}
	s.temporal = &localstack.Process{Name: "temporal", Path: filepath.Join(root, "bin", "temporal"),
		Args: args, StateDir: filepath.Join(data, "temporal")}
	logs := filepath.Join(data, "run")
	s.programs = []*localstack.Process{
		{Name: "komboemu", Path: filepath.Join(root, "bin", "komboemu"), StateDir: logs},
		{Name: "worker", Path: filepath.Join(root, "bin", "worker"), StateDir: logs},
		{Name: "webhookgw", Path: filepath.Join(root, "bin", "webhookgw"), StateDir: logs},
		{Name: "backoffice", Path: filepath.Join(root, "bin", "backoffice"), StateDir: logs},
		{Name: "webhookrecv", Path: filepath.Join(root, "bin", "webhookrecv"), StateDir: logs},
	}
	return s
}

func (s *stack) up(ctx context.Context, stdout io.Writer) error {
	if _, err := localstack.TemporalCLI(s.root); err != nil {
		return err
	}
	for _, p := range s.programs {
		if _, err := os.Stat(p.Path); err != nil {
			return fmt.Errorf("%s is missing: run `make build` first (make dev does)", p.Path)
		}
	}
	env, err := s.devEnv()
	if err != nil {
		return err
	}

	fmt.Fprintln(stdout, "postgres: starting cluster in .data/postgres …")
	if err := s.postgres.Start(ctx); err != nil {
		return err
	}
	if err := s.postgres.CreateDatabase(ctx, postgresDB); err != nil {
		return fmt.Errorf("create database %s: %w", postgresDB, err)
	}
	res, err := migrations.Apply(ctx, s.postgres.URL(postgresDB))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "postgres: schema kombo at version %d\n", res.To)

	fmt.Fprintln(stdout, "temporal: starting dev server (state in .data/temporal/temporal.db) …")
	if _, err := s.temporal.Start(); err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := localstack.WaitTCP(waitCtx, temporalAddress, s.temporal); err != nil {
		return err
	}
	if err := localstack.WaitTCP(waitCtx, fmt.Sprintf("127.0.0.1:%d", temporalUIPort), s.temporal); err != nil {
		return err
	}

	listen := map[string]string{
		"komboemu":    fmt.Sprintf("127.0.0.1:%d", emulatorPort),
		"worker":      fmt.Sprintf("127.0.0.1:%d", workerPort),
		"webhookgw":   fmt.Sprintf("127.0.0.1:%d", gatewayPort),
		"backoffice":  fmt.Sprintf("127.0.0.1:%d", apiPort),
		"webhookrecv": fmt.Sprintf("127.0.0.1:%d", receiverPort),
	}
	if err := s.subscribeReceiver(ctx, env, stdout); err != nil {
		return err
	}
	// The emulator starts last: it announces its integrations (integration-created) to a
	// gateway that must already listen.
	for _, p := range slices.Concat(s.programs[1:], s.programs[:1]) {
		if err := p.Stop(10 * time.Second); err != nil {
			return fmt.Errorf("stop old %s: %w", p.Name, err)
		}
		p.Env = env
		if _, err := p.Start(); err != nil {
			return err
		}
		if err := localstack.WaitTCP(waitCtx, listen[p.Name], p); err != nil {
			return err
		}
	}
	s.status(ctx, stdout)
	fmt.Fprintf(stdout, "\nsettings for starter and psql: set -a; . %s; set +a\n", s.envFile())
	fmt.Fprintln(stdout, "stop everything with: make dev-stop")
	return nil
}

func (s *stack) down(ctx context.Context, stdout io.Writer) error {
	var errs []error
	for _, p := range slices.Backward(s.programs) {
		if err := p.Stop(10 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", p.Name, err))
		}
	}
	if err := s.temporal.Stop(20 * time.Second); err != nil {
		errs = append(errs, fmt.Errorf("stop temporal: %w", err))
	}
	if err := s.postgres.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		fmt.Fprintln(stdout, "local stack stopped (state kept in .data/; `make dev-reset` deletes it)")
	}
	return errors.Join(errs...)
}

func (s *stack) status(ctx context.Context, stdout io.Writer) {
	state := func(running bool) string {
		if running {
			return "running"
		}
		return "stopped"
	}
	fmt.Fprintf(stdout, "\n%-10s %-8s %s\n", "component", "state", "where")
	fmt.Fprintf(stdout, "%-10s %-8s %s  (log .data/postgres/postgres.log)\n", "postgres", state(s.postgres.Running(ctx)), s.postgres.URL(postgresDB))
	fmt.Fprintf(stdout, "%-10s %-8s %s  Web UI http://localhost:%d  (log .data/temporal/temporal.log)\n", "temporal",
		state(s.temporal.Pid() != 0), temporalAddress, temporalUIPort)
	fmt.Fprintf(stdout, "%-10s %-8s http://127.0.0.1:%d/v1 (Kombo API), /_emulator (control)  (log .data/run/komboemu.log)\n", "komboemu",
		state(s.programs[0].Pid() != 0), emulatorPort)
	fmt.Fprintf(stdout, "%-10s %-8s http://127.0.0.1:%d/metrics  (log .data/run/worker.log)\n", "worker",
		state(s.programs[1].Pid() != 0), workerPort)
	fmt.Fprintf(stdout, "%-10s %-8s http://127.0.0.1:%d/healthz  (log .data/run/webhookgw.log)\n", "webhookgw",
		state(s.programs[2].Pid() != 0), gatewayPort)
	fmt.Fprintf(stdout, "%-10s %-8s http://127.0.0.1:%d/v1 (back-office API, bearer $API_TOKENS), /openapi.json, /ui/ (job links page)  (log .data/run/backoffice.log)\n", "backoffice",
		state(s.programs[3].Pid() != 0), apiPort)
	fmt.Fprintf(stdout, "%-10s %-8s http://127.0.0.1:%d/hooks (verifies and logs kombosync's webhooks)  (log .data/run/webhookrecv.log)\n", "webhookrecv",
		state(s.programs[4].Pid() != 0), receiverPort)
}

// subscribeReceiver subscribes the dev receiver to every event, once: a subscription to its URL
// is created with the receiver's secret unless one exists.
func (s *stack) subscribeReceiver(ctx context.Context, env []string, stdout io.Writer) error {
	secret := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "RECEIVER_SECRET="); ok {
			secret = v
		}
	}
	pool, err := pgxpool.New(ctx, s.postgres.URL(postgresDB))
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	url := fmt.Sprintf("http://127.0.0.1:%d/hooks", receiverPort)
	subs, err := st.ListSubscriptions(ctx)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if sub.URL == url {
			return nil
		}
	}
	m := &outbound.Manager{Store: st, Client: outbound.NewClient(outbound.Options{AllowHTTP: true, AllowPrivate: true})}
	sub, _, err := m.Create(ctx, store.SubscriptionSpec{URL: url, Secret: secret, Description: "make dev: the local receiver"})
	if err != nil {
		return fmt.Errorf("subscribe the dev receiver: %w", err)
	}
	fmt.Fprintf(stdout, "outbound webhooks: subscription %s delivers every event to %s\n", sub.ID, url)
	return nil
}

func (s *stack) envFile() string { return filepath.Join(s.data, "dev.env") }

// devEnv returns the programs' environment, kept in .data/dev.env (mode 0600). The webhook secret
// is generated on first use and kept, so a restarted gateway accepts what the emulator signs.
func (s *stack) devEnv() ([]string, error) {
	if err := os.MkdirAll(s.data, 0o755); err != nil {
		return nil, err
	}
	kept := map[string]string{}
	if b, err := os.ReadFile(s.envFile()); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				kept[k] = v
			}
		}
	}
	secret := kept["KOMBO_WEBHOOK_SECRET"]
	if secret == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		secret = "whsec_dev_" + hex.EncodeToString(b)
	}
	// The back-office API's token and the dev receiver's signing secret, made once and kept.
	apiToken, receiverSecret := kept["API_TOKENS"], kept["RECEIVER_SECRET"]
	if apiToken == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		apiToken = "dev_" + hex.EncodeToString(b)
	}
	if receiverSecret == "" {
		receiverSecret = outbound.NewSecret()
	}
	env := []string{
		"DATABASE_URL=" + s.postgres.URL(postgresDB),
		"TEMPORAL_ADDRESS=" + temporalAddress,
		"TEMPORAL_NAMESPACE=default",
		"KOMBO_API_KEY=dev-api-key",
		fmt.Sprintf("KOMBO_BASE_URL=http://127.0.0.1:%d/v1", emulatorPort),
		"KOMBO_WEBHOOK_SECRET=" + secret,
		fmt.Sprintf("WEBHOOK_LISTEN_ADDR=127.0.0.1:%d", gatewayPort),
		fmt.Sprintf("METRICS_LISTEN_ADDR=127.0.0.1:%d", workerPort),
		"LOG_FORMAT=json",
		// The emulator: two demo integrations, webhooks signed for the gateway.
		fmt.Sprintf("KOMBOEMU_LISTEN_ADDR=127.0.0.1:%d", emulatorPort),
		"KOMBOEMU_API_KEY=dev-api-key",
		fmt.Sprintf("KOMBOEMU_WEBHOOK_URL=http://127.0.0.1:%d/webhooks/kombo", gatewayPort),
		"KOMBOEMU_WEBHOOK_SECRET=" + secret,
		"KOMBOEMU_INTEGRATIONS=personio:demo-hris=hris:200,greenhouse:demo-ats=ats:100",
		"KOMBOEMU_CHURN=0.2", // a change every five seconds or so, to watch data flow
		// The back-office API, and outbound webhooks to the dev receiver on loopback over http.
		fmt.Sprintf("API_LISTEN_ADDR=127.0.0.1:%d", apiPort),
		"API_TOKENS=" + apiToken,
		"OUTBOUND_ALLOW_HTTP=true",
		"OUTBOUND_ALLOW_PRIVATE=true",
		fmt.Sprintf("RECEIVER_LISTEN_ADDR=127.0.0.1:%d", receiverPort),
		"RECEIVER_SECRET=" + receiverSecret,
	}
	content := "# Written by devstack: the local stack's settings. Secrets are for local use only.\n" +
		strings.Join(env, "\n") + "\n"
	if err := os.WriteFile(s.envFile(), []byte(content), 0o600); err != nil {
		return nil, err
	}
	return env, nil
}
