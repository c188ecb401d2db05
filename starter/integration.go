package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	var reconcileReason, pauseReason string
	reconcile := signalCmd("reconcile", "reconcile <integration-id> [--confirm-sweep]", "run a full pass (and sweep) now",
		func(fs *flag.FlagSet) {
			fs.BoolVar(&confirm, "confirm-sweep", false, "let the sweep mark more than SWEEP_MAX_SHARE of an endpoint's rows deleted")
			fs.StringVar(&reconcileReason, "reason", "operator", "why, for the workflow's log")
		}, workflows.SignalReconcile,
		func() (any, error) {
			return workflows.ReconcileRequest{ConfirmSweep: confirm, Reason: reconcileReason}, nil
		},
		"full pass requested (it starts once running fetches finish)")
	sync := c.syncCommand()
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

// syncCommand is integration sync: fetch now, or (--upstream) ask Kombo to sync from the source
// tool first (POST /force-sync) and fetch when Kombo's sync-finished for that sync arrives.
func (c *cli) syncCommand() *ffcli.Command {
	var endpoints, syncType string
	var upstream bool
	var kcfg *config.Config // Kombo's API settings, checked only with --upstream
	cmd := c.commandWith("sync", "integration sync <integration-id> [--endpoints hris/employees,…] [--upstream [--type DELTA]]",
		"fetch now, skipping the debounce window; --upstream: have Kombo sync from the tool first", config.PartTemporal,
		func(fs *flag.FlagSet) {
			fs.StringVar(&endpoints, "endpoints", "", "endpoints to fetch (category/endpoint, comma-separated); all configured when empty")
			fs.BoolVar(&upstream, "upstream", false, "ask Kombo to sync from the source tool now (POST /force-sync) and fetch when that sync finishes")
			fs.StringVar(&syncType, "type", "", "with --upstream: FULL or DELTA (Kombo's default is FULL)")
			kcfg = config.Register(fs, config.PartKomboAPI)
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("integration sync", args, 1, "one integration id"); err != nil {
				return nil, err
			}
			req := workflows.SyncNowRequest{Reason: "starter"}
			if strings.TrimSpace(endpoints) != "" {
				eps, err := kombo.ParseEndpoints(endpoints)
				if err != nil {
					return nil, config.UsageError{Err: err}
				}
				for _, e := range eps {
					req.Endpoints = append(req.Endpoints, e.String())
				}
			}
			syncType = strings.ToUpper(strings.TrimSpace(syncType))
			switch {
			case syncType != "" && !upstream:
				return nil, config.UsageError{Err: errors.New("--type goes with --upstream")}
			case syncType != "" && syncType != kombo.SyncFull && syncType != kombo.SyncDelta:
				return nil, config.UsageError{Err: fmt.Errorf("--type must be FULL or DELTA, not %q", syncType)}
			}
			if upstream {
				if err := kcfg.Validate(); err != nil {
					return nil, config.UsageError{Err: fmt.Errorf("--upstream calls Kombo's API: %w", err)}
				}
			}
			tc, err := dial(ctx, cfg) // before asking Kombo: a sync nobody waits for helps no one
			if err != nil {
				return nil, err
			}
			defer tc.Close()
			res := upstreamDone{Subject: args[0], Outcome: "sync requested"}
			if upstream {
				kc, err := kombo.New(kombo.Options{BaseURL: kcfg.KomboBaseURL, APIKey: kcfg.KomboAPIKey.Reveal(), UserAgent: "kombosync-starter"})
				if err != nil {
					return nil, config.UsageError{Err: err}
				}
				fs, err := kc.ForceSync(ctx, args[0], syncType)
				if err != nil {
					return nil, err
				}
				req.AfterKomboSync, req.KomboSyncType, req.Reason = fs.SyncID, fs.Type, "starter --upstream"
				res.SyncID, res.AlreadyQueued, res.Type = fs.SyncID, &fs.AlreadyQueued, fs.Type
				res.Outcome = "Kombo syncs from the tool (" + fs.Type + " sync " + fs.SyncID + "); the fetch follows its sync-finished"
				if fs.AlreadyQueued {
					res.Outcome = "a Kombo sync was already queued or running (" + fs.Type + " sync " + fs.SyncID + "); the fetch follows its sync-finished"
				}
			}
			if err := workflows.SignalWithStart(ctx, tc, cfg.TaskQueue, args[0], "", "", workflows.SignalSyncNow, req); err != nil {
				return nil, err
			}
			return res, nil
		})
	cmd.LongHelp = "Fetches the integration's endpoints now (all configured ones, or --endpoints), skipping\n" +
		"the debounce window; it also ends an auth_failed or retry wait.\n\n" +
		"--upstream first asks Kombo to sync from the source tool (POST /force-sync, which needs\n" +
		"KOMBO_API_KEY and KOMBO_BASE_URL here too) and fetches when Kombo's sync-finished for that\n" +
		"sync arrives, whatever KOMBO_TRIGGERS says. Kombo runs one sync per integration at a time: when\n" +
		"one is queued or running, it answers that one and the fetch follows it. Kombo asks not to\n" +
		"call this periodically: it is for a person's \"sync now\". Should the sync-finished never\n" +
		"come, `integration status` shows the wait; a plain sync ends it."
	return cmd
}

// upstreamDone is what integration sync did: done, and with --upstream Kombo's answer.
type upstreamDone struct {
	Subject       string `json:"subject"`
	Outcome       string `json:"outcome"`
	SyncID        string `json:"sync_id,omitempty"`
	AlreadyQueued *bool  `json:"already_queued,omitempty"`
	Type          string `json:"type,omitempty"`
}

func (d upstreamDone) text(w io.Writer) { done{Subject: d.Subject, Outcome: d.Outcome}.text(w) }

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
