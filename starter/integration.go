package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/workflows"
)

func (c *cli) integrationCommand() *ffcli.Command {
	// signalCmd sends one signal to an integration's workflow, starting it when none runs.
	signalCmd := func(name, usage, help string, extra func(*flag.FlagSet), signal string, arg func() (any, error), outcome string) *ffcli.Command {
		return c.commandWith(name, "integration "+usage, help, config.PartTemporal, extra,
			func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
				if err := wantArgs("integration "+name, args, 1, "one integration id"); err != nil {
					return nil, err
				}
				a, err := arg()
				if err != nil {
					return nil, config.UsageError{Err: err}
				}
				tc, err := dial(ctx, cfg)
				if err != nil {
					return nil, err
				}
				defer tc.Close()
				if err := workflows.SignalWithStart(ctx, tc, cfg.TaskQueue, args[0], "", "", signal, a); err != nil {
					return nil, err
				}
				return done{Subject: args[0], Outcome: outcome}, nil
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
	return group("integration", "list integrations, show one's status, steer one: sync, reconcile, pause, resume",
		c.listCommand(), c.statusCommand(), sync, reconcile, pause, resume)
}

func (c *cli) listCommand() *ffcli.Command {
	var state string
	cmd := c.commandWith("list", "integration list [--state auth_failed]", "list the integrations kombosync knows, from Postgres",
		config.PartDatabase,
		func(fs *flag.FlagSet) {
			fs.StringVar(&state, "state", "", "only integrations in this sync state (idle, syncing, auth_failed, paused, …)")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("integration list", args, 0, "no arguments"); err != nil {
				return nil, err
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			rows, err := st.IntegrationStatuses(ctx, state)
			if err != nil {
				return nil, err
			}
			return newIntegrationList(rows, time.Now()), nil
		})
	cmd.LongHelp = "Lists every integration of kombo.integration_status (or those in one sync state) with\n" +
		"its states, when it last synced, its running and failed fetches and whether it needs an\n" +
		"operator. It reads Postgres only, so it works while no worker runs."
	return cmd
}

func (c *cli) statusCommand() *ffcli.Command {
	var timeout time.Duration
	cmd := c.commandWith("status", "integration status <integration-id> [--query-timeout 5s]",
		"show one integration's state, pending endpoints, watermarks, last runs, last error and next wake-up",
		config.PartDatabase|config.PartTemporal,
		func(fs *flag.FlagSet) {
			fs.DurationVar(&timeout, "query-timeout", 5*time.Second, "how long to wait for the workflow's answer before reading Postgres")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("integration status", args, 1, "one integration id"); err != nil {
				return nil, err
			}
			if timeout <= 0 {
				return nil, config.UsageError{Err: fmt.Errorf("--query-timeout must be positive, got %s", timeout)}
			}
			return integrationStatus(ctx, cfg, args[0], timeout)
		})
	cmd.LongHelp = "Asks the integration's workflow (status query) for its live state. When no worker answers\n" +
		"within --query-timeout, or no workflow runs, it shows what Postgres recorded instead\n" +
		"(kombo.integration_status, watermarks and the last fetch runs) and says so."
	return cmd
}
