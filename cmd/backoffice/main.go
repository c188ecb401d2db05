// Command backoffice runs kombosync's back-office API (package backoffice) on its own listener,
// API_LISTEN_ADDR: the application's back office manages webhook subscriptions, job links and
// actions (applications created and moved in the ATS) through it.
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kombosync/kombosync/backoffice"
	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(service.ExitCode("backoffice", run(ctx, os.Args[1:], os.Stderr), os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("backoffice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config.Register(fs, config.PartDatabase|config.PartTemporal|config.PartOutbound|config.PartAPI|config.PartKomboAPI|config.PartLog)
	if err := cfg.Parse(fs, args); err != nil {
		return err
	}
	logger := cfg.Logger(stderr).With("service", "backoffice")
	b, err := service.Connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	tokens := make([]string, len(cfg.API.Tokens))
	for i, t := range cfg.API.Tokens {
		tokens[i] = t.Reveal()
	}
	kc, err := kombo.New(kombo.Options{BaseURL: cfg.KomboBaseURL, APIKey: cfg.KomboAPIKey.Reveal(), UserAgent: "kombosync-backoffice"})
	if err != nil {
		return err
	}
	probes := b.Probes(logger)
	api, err := backoffice.New(backoffice.Options{
		Logger: logger,
		Tokens: tokens,
		Subscriptions: &outbound.Manager{
			Store:  store.New(b.Pool),
			Client: outbound.NewClient(outbound.Options{AllowHTTP: cfg.Outbound.AllowHTTP, AllowPrivate: cfg.Outbound.AllowPrivate}),
			Wake: func(ctx context.Context, id string, now bool, reason string) error {
				return workflows.WakeSubscription(ctx, b.Temporal, cfg.TaskQueue, id, workflows.DeliverSignal{Reason: reason, Now: now})
			},
		},
		Kombo: kc,
		SyncJobs: func(ctx context.Context, integrationID string) error {
			return workflows.SignalWithStart(ctx, b.Temporal, cfg.TaskQueue, integrationID, "", "", workflows.SignalSyncNow,
				workflows.SyncNowRequest{Endpoints: []string{"ats/jobs"}, Reason: "live job lookup"})
		},
		StartAction: func(ctx context.Context, actionID, kind, integrationID string) error {
			return workflows.StartAction(ctx, b.Temporal, cfg.TaskQueue, actionID, kind, integrationID)
		},
		Healthz: probes.Healthz, Readyz: probes.Readyz, Metrics: probes.Metrics,
	})
	if err != nil {
		return err
	}
	// Actions stored while Temporal was unreachable are started by this relay (every instance
	// may run it: a start is idempotent).
	go api.RunActionRelay(ctx, 5*time.Second)
	logger.InfoContext(ctx, "back-office API starting", "listen", cfg.API.ListenAddr, "tokens", len(tokens))
	return service.Serve(ctx, cfg.API.ListenAddr, api, logger)
}
