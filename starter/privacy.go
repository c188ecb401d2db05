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
	"go.temporal.io/sdk/client"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// retentionCommand: run the retention now, and show what the last runs did.
func (c *cli) retentionCommand() *ffcli.Command {
	var wait bool
	run := c.commandWith("run", "retention run [--wait]", "run the retention now (the daily schedule's work)", config.PartTemporal,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&wait, "wait", false, "wait for the run to end and print what it did")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("retention run", args, 0, "no arguments"); err != nil {
				return nil, err
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer tc.Close()
			id := "kombo-retention-" + time.Now().UTC().Format("20060102T150405Z")
			wf, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: cfg.TaskQueue,
				StaticSummary: "retention run (starter)"}, workflows.RetentionType, workflows.RetentionInput{Reason: "starter"})
			if err != nil {
				return nil, fmt.Errorf("start the retention run: %w", err)
			}
			res := retentionRunResult{WorkflowID: id}
			if wait {
				var counts store.RetentionCounts
				if err := wf.Get(ctx, &counts); err != nil {
					return nil, fmt.Errorf("retention run %s: %w", id, err)
				}
				res.Counts = &counts
			}
			return res, nil
		})
	status := c.command("status", "retention status [--runs 5]", "what the last retention runs did, from Postgres", config.PartDatabase,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("retention status", args, 0, "no arguments"); err != nil {
				return nil, err
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			runs, err := st.RetentionRuns(ctx, 5)
			if err != nil {
				return nil, err
			}
			return retentionRuns{Runs: runs}, nil
		})
	return group("retention", "personal-data retention: run it now, see what the last runs did", run, status)
}

type retentionRunResult struct {
	WorkflowID string                 `json:"workflow_id"`
	Counts     *store.RetentionCounts `json:"counts,omitempty"`
}

func (r retentionRunResult) text(w io.Writer) {
	if r.Counts == nil {
		fmt.Fprintf(w, "retention run %s started\n", r.WorkflowID)
		return
	}
	fmt.Fprintf(w, "retention run %s finished: %s\n", r.WorkflowID, countsText(*r.Counts))
}

func countsText(c store.RetentionCounts) string {
	return fmt.Sprintf("%d deleted records made tombstones, %d change rows' values redacted, %d webhooks and %d delivered outbound webhooks deleted, "+
		"%d rows and %d change rows brought to the field policy", c.Tombstoned, c.ChangesRedacted, c.WebhooksDeleted, c.DeliveriesDeleted, c.PolicyRows, c.PolicyChanges)
}

type retentionRuns struct {
	Runs []store.RetentionRun `json:"runs"`
}

func (r retentionRuns) text(w io.Writer) {
	if len(r.Runs) == 0 {
		fmt.Fprintln(w, "no retention run yet (starter schedule apply creates the daily one; starter retention run starts one now)")
		return
	}
	for _, run := range r.Runs {
		state := "running"
		if run.FinishedAt != nil {
			state = "finished " + run.FinishedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s  started %s, %s\n  %s\n", run.ID, run.StartedAt.UTC().Format(time.RFC3339), state, countsText(run.RetentionCounts))
	}
}

// eraseCommand erases one person's records and their history.
func (c *cli) eraseCommand() *ffcli.Command {
	var endpoint, id, email, reason string
	var suppress, dryRun, noRelated bool
	cmd := c.commandWith("erase", "erase <integration-id> (--endpoint hris/employees --id <record id> | --email <address>) [--suppress --reason DSR-123] [--dry-run]",
		"erase a person's records and their history from every table kombosync keeps", config.PartDatabase,
		func(fs *flag.FlagSet) {
			fs.StringVar(&endpoint, "endpoint", "", "the record's endpoint, e.g. hris/employees or ats/candidates (with --id)")
			fs.StringVar(&id, "id", "", "the record's Kombo id (with --endpoint)")
			fs.StringVar(&email, "email", "", "find the person by email instead: an employee's work or personal email, a candidate's, an ATS user's")
			fs.BoolVar(&suppress, "suppress", false, "keep the ids so the next sync does not store the records again while Kombo still serves them")
			fs.StringVar(&reason, "reason", "", "why, for kombo.suppressed_records (a ticket number; never the person's data); required with --suppress")
			fs.BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")
			fs.BoolVar(&noRelated, "no-related", false, "leave the records that embed the person (an employee's employments, a candidate's applications)")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("erase", args, 1, "one integration id"); err != nil {
				return nil, err
			}
			byID := endpoint != "" || id != ""
			switch {
			case byID && email != "":
				return nil, config.UsageError{Err: errors.New("give --endpoint and --id, or --email, not both")}
			case byID && (endpoint == "" || id == ""):
				return nil, config.UsageError{Err: errors.New("--endpoint and --id go together")}
			case !byID && strings.TrimSpace(email) == "":
				return nil, config.UsageError{Err: errors.New("say whom to erase: --endpoint and --id, or --email")}
			case suppress && strings.TrimSpace(reason) == "":
				return nil, config.UsageError{Err: errors.New("--suppress needs a --reason (a ticket number, not the person's data)")}
			}
			if byID {
				if _, ok := kombo.LookupEndpoint(endpoint); !ok {
					return nil, config.UsageError{Err: fmt.Errorf("--endpoint %q is not a Kombo endpoint (category/endpoint, e.g. hris/employees)", endpoint)}
				}
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			people := []store.RecordRef{{Endpoint: endpoint, ID: id}}
			if !byID {
				if people, err = st.FindByEmail(ctx, args[0], email); err != nil {
					return nil, err
				}
				if len(people) == 0 {
					// Not synced (yet), but the application's own writes may hold the person.
					n, err := eraseActions(ctx, st, args[0], email, nil, dryRun)
					if err != nil {
						return nil, err
					}
					if n == 0 {
						return nil, fmt.Errorf("integration %s: no employee, candidate or user with that email: %w", args[0], store.ErrNotFound)
					}
					return erasure{IntegrationID: args[0], ErasureResult: store.ErasureResult{DryRun: dryRun}, ActionPayloads: n}, nil
				}
			}
			refs := people
			if !noRelated {
				for _, p := range people {
					related, err := st.RelatedRecords(ctx, args[0], p)
					if err != nil {
						return nil, err
					}
					refs = append(refs, related...)
				}
			}
			res, err := st.Erase(ctx, args[0], refs, suppress, reason, dryRun)
			if err != nil {
				return nil, err
			}
			var candidates []string
			for _, r := range refs {
				if r.Endpoint == "ats/candidates" {
					candidates = append(candidates, r.ID)
				}
			}
			actions, err := eraseActions(ctx, st, args[0], email, candidates, dryRun)
			if err != nil {
				return nil, err
			}
			if len(res.Records) == 0 && !suppress {
				return nil, fmt.Errorf("integration %s: %s %s is not stored: %w", args[0], endpoint, id, store.ErrNotFound)
			}
			return erasure{IntegrationID: args[0], ErasureResult: res, ActionPayloads: actions}, nil
		})
	cmd.LongHelp = "Removes the person's record and the records that embed them (an employee's employments,\n" +
		"absences, balances, timesheets and reviews; a candidate's applications) from kombo.records, every\n" +
		"change row of theirs, and their rejected-record excerpts, in one transaction; then the requests\n" +
		"of actions about them (an application created for the email, actions on their applications). One change row\n" +
		"with op \"erased\" stays per record, so an application reading the feed erases its copy too.\n\n" +
		"While Kombo still serves the records, the next sync stores them again, unless --suppress keeps\n" +
		"their ids in kombo.suppressed_records (see starter suppression). Erase at the source first."
	return cmd
}

type erasure struct {
	IntegrationID string `json:"integration_id"`
	store.ErasureResult
	// ActionPayloads: actions whose request (the candidate's data, attachments) was removed.
	ActionPayloads int64 `json:"action_payloads"`
}

// eraseActions removes the requests of the application's writes about the person (an
// application created for the email, actions on the candidates' applications); a dry run
// removes nothing and reports nothing.
func eraseActions(ctx context.Context, st *store.Store, integrationID, email string, candidates []string, dryRun bool) (int64, error) {
	if dryRun {
		return 0, nil
	}
	return st.EraseActionPayloads(ctx, integrationID, email, candidates)
}

func (e erasure) text(w io.Writer) {
	verb := "erased"
	if e.DryRun {
		verb = "would erase (dry run)"
	}
	fmt.Fprintf(w, "integration %s: %s %d records, %d change rows, %d rejected excerpts, %d action requests\n", e.IntegrationID, verb,
		len(e.Records), e.ChangeRows, e.RejectedRows, e.ActionPayloads)
	for _, r := range e.Records {
		fmt.Fprintf(w, "  %s %s\n", r.Endpoint, r.ID)
	}
	if len(e.Suppressed) > 0 {
		fmt.Fprintf(w, "  suppressed: %d ids (starter suppression lift … ends it)\n", len(e.Suppressed))
	}
}

// suppressionCommand lists and lifts suppressions.
func (c *cli) suppressionCommand() *ffcli.Command {
	list := c.command("list", "suppression list [<integration-id>]", "records an erasure keeps out of the sync", config.PartDatabase,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if len(args) > 1 {
				return nil, config.UsageError{Err: errors.New("suppression list takes at most one integration id")}
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			sup, err := st.Suppressions(ctx, strings.Join(args, ""))
			if err != nil {
				return nil, err
			}
			return suppressions{Suppressed: sup}, nil
		})
	lift := c.command("lift", "suppression lift <integration-id> <endpoint> <record-id>", "let the sync store a suppressed record again", config.PartDatabase,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("suppression lift", args, 3, "an integration id, an endpoint and a record id"); err != nil {
				return nil, err
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			if err := st.LiftSuppression(ctx, args[0], store.RecordRef{Endpoint: args[1], ID: args[2]}); err != nil {
				return nil, err
			}
			return done{Subject: args[1] + " " + args[2], Outcome: "suppression lifted; the next pass that sees it stores it"}, nil
		})
	return group("suppression", "records erased with --suppress: list, lift", list, lift)
}

type suppressions struct {
	Suppressed []store.Suppression `json:"suppressed"`
}

func (s suppressions) text(w io.Writer) {
	if len(s.Suppressed) == 0 {
		fmt.Fprintln(w, "no suppressed records")
		return
	}
	for _, x := range s.Suppressed {
		fmt.Fprintf(w, "%s  %s %s  since %s  (%s)\n", x.IntegrationID, x.Endpoint, x.ID, x.SuppressedAt, x.Reason)
	}
}
