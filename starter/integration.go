package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/workflows"
)

func integrationCommand(stdout io.Writer) *ffcli.Command {
	// signalCmd sends one signal to an integration's workflow, starting it when none runs.
	signalCmd := func(name, usage, help string, extra func(*flag.FlagSet), signal string, arg func() (any, error), done string) *ffcli.Command {
		return commandWith(name, "integration "+usage, help, config.PartTemporal, extra,
			func(ctx context.Context, cfg *config.Config, args []string) error {
				if len(args) != 1 {
					return config.UsageError{Err: fmt.Errorf("integration %s takes one integration id, got %d arguments", name, len(args))}
				}
				a, err := arg()
				if err != nil {
					return config.UsageError{Err: err}
				}
				tc, err := dial(ctx, cfg)
				if err != nil {
					return err
				}
				defer tc.Close()
				if err := workflows.SignalWithStart(ctx, tc, cfg.TaskQueue, args[0], "", "", signal, a); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s: %s\n", args[0], done)
				return nil
			})
	}
	var confirm bool
	var endpoints, reconcileReason, pauseReason string
	reconcile := signalCmd("reconcile", "reconcile <integration-id> [--confirm-sweep]", "run a full pass (and sweep) now",
		func(fs *flag.FlagSet) {
			fs.BoolVar(&confirm, "confirm-sweep", false, "let the sweep mark more than SWEEP_MAX_SHARE of an endpoint's rows deleted")
			fs.StringVar(&reconcileReason, "reason", "operator", "why, for the workflow's log")
		}, workflows.SignalReconcile,
		func() (any, error) {
			return workflows.ReconcileRequest{ConfirmSweep: confirm, Reason: reconcileReason}, nil
		},
		"full pass requested (it starts once running fetches finish)")
	sync := signalCmd("sync", "sync <integration-id> [--endpoints hris/employees,…]", "fetch now, skipping the debounce window",
		func(fs *flag.FlagSet) {
			fs.StringVar(&endpoints, "endpoints", "", "endpoints to fetch (category/endpoint, comma-separated); all configured when empty")
		}, workflows.SignalSyncNow,
		func() (any, error) {
			var names []string
			if strings.TrimSpace(endpoints) != "" {
				eps, err := kombo.ParseEndpoints(endpoints)
				if err != nil {
					return nil, err
				}
				for _, e := range eps {
					names = append(names, e.String())
				}
			}
			return workflows.SyncNowRequest{Endpoints: names, Reason: "starter"}, nil
		}, "sync requested")
	pause := signalCmd("pause", "pause <integration-id> [--reason …]", "stop fetching until resume",
		func(fs *flag.FlagSet) {
			fs.StringVar(&pauseReason, "reason", "paused with starter", "shown in the status and the UI")
		},
		workflows.SignalPause, func() (any, error) { return workflows.PauseRequest{Reason: pauseReason}, nil }, "paused")
	resume := signalCmd("resume", "resume <integration-id>", "fetch again (also ends an auth_failed or retry wait)", nil,
		workflows.SignalResume, func() (any, error) { return workflows.ResumeRequest{Reason: "starter"}, nil }, "resumed")
	return group("integration", "steer one integration: sync, reconcile, pause, resume", sync, reconcile, pause, resume)
}
