// Command webhookgw runs kombosync's webhook gateway (package webhookgw).
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/webhookgw"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(service.ExitCode("webhookgw", run(ctx, os.Args[1:], os.Stderr), os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("webhookgw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config.Register(fs, config.PartDatabase|config.PartTemporal|config.PartWebhook|config.PartLog)
	if err := cfg.Parse(fs, args); err != nil {
		return err
	}
	logger := cfg.Logger(stderr).With("service", "webhookgw")

	b, err := service.Connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	st := store.New(b.Pool)
	b.Registry.MustRegister(st.WebhookGauges())
	gw, err := webhookgw.New(webhookgw.Options{
		Logger:    logger,
		Probes:    b.Probes(logger),
		Registry:  b.Registry,
		Secrets:   secrets(cfg.WebhookSecrets),
		Store:     st,
		Temporal:  b.Temporal,
		TaskQueue: cfg.TaskQueue,
	})
	if err != nil {
		return err
	}
	logger.InfoContext(ctx, "gateway starting", "secrets", len(cfg.WebhookSecrets), "task_queue", cfg.TaskQueue)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return service.Serve(ctx, cfg.WebhookListenAddr, gw, logger) })
	g.Go(func() error { return gw.RunRelay(ctx) })
	return g.Wait()
}

func secrets(ss []config.Secret) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Reveal()
	}
	return out
}
