// Command komboemu serves the Kombo emulator (package komboemu): Kombo's list API under /v1,
// signed webhooks to a target URL, and the control API under /_emulator. Settings are flags or
// KOMBOEMU_* environment variables (-webhook-url ↔ KOMBOEMU_WEBHOOK_URL).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(service.ExitCode("komboemu", run(ctx, os.Args[1:], os.Stderr), os.Stderr))
}

type settings struct {
	listen        string
	apiKey        string
	webhookURL    string
	webhookSecret string
	window        time.Duration
	integrations  []komboemu.IntegrationSpec
	churn         float64
	seed          uint64
	cursorTTL     time.Duration
	retention     time.Duration
	forcedSync    time.Duration
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("komboemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s settings
	fs.StringVar(&s.listen, "listen-addr", ":8090", "address of the API (/v1), /healthz and the control API (/_emulator)")
	fs.StringVar(&s.apiKey, "api-key", "", "the API key the emulated API accepts (required)")
	fs.StringVar(&s.webhookURL, "webhook-url", "", "where to POST webhooks, e.g. http://127.0.0.1:8080/webhooks/kombo; none when empty")
	fs.StringVar(&s.webhookSecret, "webhook-secret", "", "the secret webhooks are signed with (required with -webhook-url)")
	fs.DurationVar(&s.window, "webhook-window", 30*time.Second, "data-changed coalescing window per integration (Kombo's is 30s)")
	fs.Func("integrations", "integrations to create at start, as id=category:records[:pending], comma-separated, e.g. personio:demo=hris:200,greenhouse:demo=ats:100", func(v string) error {
		specs, err := parseIntegrations(v)
		s.integrations = specs
		return err
	})
	fs.Float64Var(&s.churn, "churn", 0, "random changes per second per integration (0: none)")
	fs.Uint64Var(&s.seed, "seed", 1, "seed of the generated data and of fault injection")
	fs.DurationVar(&s.cursorTTL, "cursor-ttl", 0, "reject cursors older than this (0: never)")
	fs.DurationVar(&s.retention, "retention", 14*24*time.Hour, "how long deleted records stay visible before they are removed")
	fs.DurationVar(&s.forcedSync, "forced-sync-duration", 10*time.Second, "how long a sync asked for with POST /force-sync runs before its sync-finished (0: until the control API's sync-finished)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("KOMBOEMU")); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return config.UsageError{Err: err}
	}
	var problems []error
	if s.apiKey == "" {
		problems = append(problems, errors.New("KOMBOEMU_API_KEY is required"))
	}
	if s.webhookURL != "" && s.webhookSecret == "" {
		problems = append(problems, errors.New("KOMBOEMU_WEBHOOK_SECRET is required with KOMBOEMU_WEBHOOK_URL"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		problems = append(problems, fmt.Errorf("KOMBOEMU_LOG_LEVEL: %w", err))
	}
	if err := errors.Join(problems...); err != nil {
		return config.UsageError{Err: err}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})).With("service", "komboemu")

	emu := komboemu.New(komboemu.Options{
		APIKey: s.apiKey, Seed: s.seed, CursorTTL: s.cursorTTL, Retention: s.retention, Logger: logger, ForcedSyncDuration: s.forcedSync,
		Webhooks: komboemu.WebhookOptions{URL: s.webhookURL, Secret: s.webhookSecret, Window: s.window},
	})
	defer emu.Close()
	for _, spec := range s.integrations {
		spec.Seed = s.seed
		spec.Notify = true // announced with integration-created, as Kombo does when a customer connects
		if err := emu.CreateIntegration(spec); err != nil {
			return err
		}
		logger.InfoContext(ctx, "integration created", "integration_id", spec.ID, "category", spec.Category,
			"records", spec.Records, "first_sync_pending", spec.FirstSyncPending)
		emu.Churn(ctx, spec.ID, s.churn)
	}
	return service.Serve(ctx, s.listen, emu.Handler(), logger)
}

// parseIntegrations reads "id=category:records[:pending],…". Ids may contain ':'; the last '='
// separates the id.
func parseIntegrations(v string) ([]komboemu.IntegrationSpec, error) {
	var out []komboemu.IntegrationSpec
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k := strings.LastIndex(item, "=")
		if k <= 0 {
			return nil, fmt.Errorf("integration %q: want id=category:records[:pending]", item)
		}
		id, rest := item[:k], strings.Split(item[k+1:], ":")
		cat, ok := kombo.ParseCategory(rest[0])
		if !ok {
			return nil, fmt.Errorf("integration %q: category must be hris or ats", item)
		}
		spec := komboemu.IntegrationSpec{ID: id, Category: cat, Records: 100}
		if len(rest) > 1 {
			n, err := strconv.Atoi(rest[1])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("integration %q: records must be a number", item)
			}
			spec.Records = n
		}
		if len(rest) > 2 {
			if rest[2] != "pending" {
				return nil, fmt.Errorf("integration %q: the optional last part must be \"pending\"", item)
			}
			spec.FirstSyncPending = true
		}
		out = append(out, spec)
	}
	return out, nil
}
