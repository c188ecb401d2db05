// Command worker runs kombosync's Temporal worker: it polls the kombo-sync task queue and
// executes the sync workflows and activities, and serves /metrics, /healthz and /readyz.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/worker"
	"golang.org/x/sync/errgroup"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/privacy"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(service.ExitCode("worker", run(ctx, os.Args[1:], os.Stderr), os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config.Register(fs, config.PartDatabase|config.PartTemporal|config.PartKomboAPI|
		config.PartSync|config.PartMetrics|config.PartLog|config.PartPrivacy|config.PartOutbound|config.PartActions)
	if err := cfg.Parse(fs, args); err != nil {
		return err
	}
	logger := cfg.Logger(stderr).With("service", "worker")
	policy, err := privacy.Load(cfg.Privacy.FieldPolicyFile, []byte(cfg.Privacy.FieldPolicyHashKey.Reveal()))
	if err != nil {
		return config.UsageError{Err: err}
	}
	if !policy.Empty() {
		logger.InfoContext(ctx, "field policy", "file", cfg.Privacy.FieldPolicyFile, "endpoints", policy.Endpoints())
	}

	b, err := service.Connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	tc := b.Temporal

	metrics := activities.NewMetrics(b.Registry)
	st := store.New(b.Pool).WithPolicy(policy)
	b.Registry.MustRegister(st.IntegrationGauges())
	var pace func(context.Context) error
	if cfg.KomboMaxRPS > 0 {
		// Every worker on the database reserves its requests' slots in one row: the cap is the
		// fleet's, as Kombo's limit is the API key's.
		interval := time.Duration(float64(time.Second) / cfg.KomboMaxRPS)
		pace = func(ctx context.Context) error { return st.Pace(ctx, store.PaceBudget, interval) }
	}
	kc, err := kombo.New(kombo.Options{BaseURL: cfg.KomboBaseURL, APIKey: cfg.KomboAPIKey.Reveal(), UserAgent: "kombosync-worker",
		HTTPClient: &http.Client{Timeout: max(time.Minute, cfg.Actions.Timeout), Transport: metrics.Transport(nil)}, Pace: pace})
	if err != nil {
		return err
	}
	w := worker.New(tc, cfg.TaskQueue, worker.Options{MaxConcurrentActivityExecutionSize: cfg.MaxConcurrentFetches})
	register(w, &activities.Activities{Kombo: kc, Store: st, Settings: activities.Settings{
		Endpoints: cfg.Endpoints, Triggers: cfg.Triggers, DebounceQuiet: cfg.DebounceQuiet, DebounceMax: cfg.DebounceMax,
		FetchOverlap: cfg.FetchOverlap, MaxParallelFetches: cfg.FetchParallelism, FetchHeartbeatTimeout: cfg.FetchHeartbeatTimeout,
		SweepMaxShare: cfg.SweepMaxShare, DeletedRetention: cfg.DeletedRetention, StateProbeInterval: cfg.StateProbeInterval,
	}, Retention: activities.Retention{DeletedRecords: cfg.Privacy.DeletedRecordRetention, ChangeValues: cfg.Privacy.ChangeValuesRetention,
		WebhookEvents: cfg.Privacy.WebhookEventsRetention, BatchSize: cfg.Privacy.RetentionBatchSize,
		BatchPause: cfg.Privacy.RetentionBatchPause, ActionPayloads: cfg.Actions.PayloadRetention,
	}, Actions: activities.Actions{
		MaxInFlight: cfg.Actions.MaxInFlight, Timeout: cfg.Actions.Timeout, LookupWindow: cfg.Actions.LookupWindow,
		RequestSync: func(ctx context.Context, integrationID string, endpoints []string, reason string) error {
			return workflows.SignalWithStart(ctx, tc, cfg.TaskQueue, integrationID, "", "", workflows.SignalSyncNow,
				workflows.SyncNowRequest{Endpoints: endpoints, Reason: reason})
		},
	}, Outbound: activities.Outbound{
		Client: outbound.NewClient(outbound.Options{AllowHTTP: cfg.Outbound.AllowHTTP, AllowPrivate: cfg.Outbound.AllowPrivate,
			Timeout: cfg.Outbound.Timeout}),
		Wake: func(ctx context.Context, subscriptionID, reason string) error {
			return workflows.WakeSubscription(ctx, tc, cfg.TaskQueue, subscriptionID, workflows.DeliverSignal{Reason: reason})
		},
		GiveUpAfter: cfg.Outbound.GiveUpAfter, MaxBackoff: cfg.Outbound.MaxBackoff,
		Metrics: activities.NewOutboundMetrics(b.Registry),
	}, Metrics: metrics, Reconciler: func(ctx context.Context, ref store.IntegrationRef, reason string, state activities.KomboState) error {
		return workflows.ReconcileIntegration(ctx, tc, cfg.TaskQueue, ref, reason, state)
	}})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	logger.InfoContext(ctx, "worker polling", "task_queue", cfg.TaskQueue, "namespace", cfg.TemporalNamespace,
		"endpoints", len(cfg.Endpoints), "triggers", cfg.Triggers, "kombo_max_rps", cfg.KomboMaxRPS,
		"max_concurrent_fetches", cfg.MaxConcurrentFetches)

	g, ctx := errgroup.WithContext(ctx)
	if cfg.MetricsListenAddr != "" {
		mux := http.NewServeMux()
		b.Probes(logger).Mount(mux)
		g.Go(func() error { return service.Serve(ctx, cfg.MetricsListenAddr, mux, logger) })
	}
	g.Go(func() error { <-ctx.Done(); return nil })
	err = g.Wait()
	logger.Info("worker stopping")
	return err
}

// register adds every workflow and activity this worker runs.
func register(w worker.Registry, acts *activities.Activities) {
	workflows.Register(w)
	w.RegisterActivity(acts)
}
