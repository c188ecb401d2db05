package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// actionsCommand: the writes to Kombo (README "Creating applications"): list and show them, and
// the runbook's two levers, retry (a refused or failed action back to pending, its workflow
// started again) and cancel (refused before it is sent).
func (c *cli) actionsCommand() *ffcli.Command {
	var integration, state, kind string
	var limit int
	var resend bool
	list := c.commandWith("list", "actions list [--integration <id>] [--state failed] [--kind create_application] [--limit 100]",
		"list actions, oldest first", config.PartDatabase, func(fs *flag.FlagSet) {
			fs.StringVar(&integration, "integration", "", "one integration's actions")
			fs.StringVar(&state, "state", "", "pending, running, succeeded, refused or failed")
			fs.StringVar(&kind, "kind", "", "create_application, move_stage, reject, add_note or add_attachment")
			fs.IntVar(&limit, "limit", 100, "at most this many (1-500)")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("actions list", args, 0, "no arguments"); err != nil {
				return nil, err
			}
			if limit < 1 || limit > 500 {
				return nil, config.UsageError{Err: fmt.Errorf("--limit must be from 1 to 500, not %d", limit)}
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			acts, err := st.ListActions(ctx, store.ActionFilter{IntegrationID: integration, State: state, Kind: kind, Limit: limit})
			if err != nil {
				return nil, config.UsageError{Err: err}
			}
			if acts == nil {
				acts = []store.Action{}
			}
			return actionList{Actions: acts}, nil
		})
	show := c.command("show", "actions show <action-id>", "one action: state, attempts, result or error",
		config.PartDatabase, func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("actions show", args, 1, "an action id"); err != nil {
				return nil, err
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			a, err := st.GetAction(ctx, "", args[0])
			return actionShown{a}, err
		})
	retry := c.commandWith("retry", "actions retry <action-id> [--resend]",
		"run a refused or failed action again (its workflow looks for an unknown outcome first; --resend after checking the ATS)",
		config.PartDatabase|config.PartTemporal, func(fs *flag.FlagSet) {
			fs.BoolVar(&resend, "resend", false, "an attempt's outcome was unknown and you checked the ATS: it did nothing, send it again")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("actions retry", args, 1, "an action id"); err != nil {
				return nil, err
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			a, err := st.RetryAction(ctx, args[0], resend)
			if err != nil {
				return nil, err
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer tc.Close()
			if err := workflows.StartAction(ctx, tc, cfg.TaskQueue, a.ID, a.Kind, a.IntegrationID); err != nil {
				return nil, err // pending in Postgres: the back office's relay starts it
			}
			if err := st.MarkActionStarted(ctx, a.ID); err != nil {
				return nil, err
			}
			outcome := "pending again; its workflow runs it"
			if a.InDoubt {
				outcome += " (an earlier attempt's outcome is unknown: it looks at Kombo before sending)"
			}
			return done{Subject: "action " + a.ID, Outcome: outcome}, nil
		})
	cancel := c.command("cancel", "actions cancel <action-id>",
		"do not send an action: refused (KOMBOSYNC.CANCELLED) at its next step; one whose attempt is in doubt ends as found",
		config.PartDatabase, func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("actions cancel", args, 1, "an action id"); err != nil {
				return nil, err
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			a, err := st.RequestCancel(ctx, args[0])
			if err != nil {
				return nil, err
			}
			outcome := "cancel requested: refused before its next request"
			if a.InDoubt {
				outcome = "cancel requested: an attempt's outcome is being looked for; refused only if it did nothing"
			}
			return done{Subject: "action " + a.ID, Outcome: outcome}, nil
		})
	return group("actions", "writes to Kombo (applications, stages, rejections, notes, attachments): list, show, retry, cancel",
		list, show, retry, cancel)
}

type actionList struct {
	Actions []store.Action `json:"actions"`
}

func (l actionList) text(w io.Writer) {
	if len(l.Actions) == 0 {
		fmt.Fprintln(w, "no actions")
		return
	}
	for _, a := range l.Actions {
		line := fmt.Sprintf("%s  %-18s %-9s attempts %d  %s  %s", a.ID, a.Kind, a.State, a.Attempts, a.IntegrationID,
			a.CreatedAt.UTC().Format(time.RFC3339))
		if a.Error != nil {
			line += "  " + a.Error.Code
		}
		if a.InDoubt {
			line += "  (outcome unknown)"
		}
		fmt.Fprintln(w, line)
	}
}

type actionShown struct{ store.Action }

func (s actionShown) text(w io.Writer) {
	a := s.Action
	fmt.Fprintf(w, "action %s (%s) of integration %s\n", a.ID, a.Kind, a.IntegrationID)
	fmt.Fprintf(w, "  idempotency key %s\n  state %s, %d attempts\n", a.IdempotencyKey, a.State, a.Attempts)
	if a.JobID != "" {
		fmt.Fprintf(w, "  job %s", a.JobID)
		if a.AppJobID != "" {
			fmt.Fprintf(w, " (your job %s)", a.AppJobID)
		}
		fmt.Fprintln(w)
	}
	if a.ApplicationID != "" {
		fmt.Fprintf(w, "  application %s (synced: %v)\n", a.ApplicationID, a.Synced)
	}
	if string(a.Result) != "null" {
		fmt.Fprintf(w, "  result %s\n", a.Result)
	}
	if a.Error != nil {
		fmt.Fprintf(w, "  error %s: %s\n", a.Error.Code, a.Error.Message)
		if a.Error.LogURL != "" {
			fmt.Fprintf(w, "  Kombo's log %s\n", a.Error.LogURL)
		}
	}
	if a.InDoubt {
		fmt.Fprintln(w, "  an attempt's outcome is unknown: check the ATS before `actions retry --resend`")
	}
	fmt.Fprintf(w, "  created %s, updated %s", a.CreatedAt.UTC().Format(time.RFC3339), a.UpdatedAt.UTC().Format(time.RFC3339))
	if a.FinishedAt != nil {
		fmt.Fprintf(w, ", finished %s", a.FinishedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
}
