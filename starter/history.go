package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/history"
)

func (c *cli) historyCommand() *ffcli.Command {
	var runID string
	export := c.commandWith("export", "history export <workflow-id> <file|-> [--run-id …]",
		"write a workflow's history as JSON (what the replay tests read; - for stdout)", config.PartTemporal,
		func(fs *flag.FlagSet) {
			fs.StringVar(&runID, "run-id", "", "the run to export; the latest when empty")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("history export", args, 2, "a workflow id and a file"); err != nil {
				return nil, err
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer tc.Close()
			b, n, err := history.Export(ctx, tc, args[0], runID)
			if err != nil {
				return nil, err
			}
			if args[1] == "-" {
				_, err = c.stdout.Write(b) // the history is the output, JSON already
				return nil, err
			}
			if err := history.WriteFile(args[1], b); err != nil {
				return nil, err
			}
			return exported{WorkflowID: args[0], RunID: runID, Events: n, File: args[1]}, nil
		})
	return group("history", "export workflow histories", export)
}

type exported struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id,omitempty"`
	Events     int    `json:"events"`
	File       string `json:"file"`
}

func (e exported) text(w io.Writer) {
	fmt.Fprintf(w, "%s: %d events written to %s\n", e.WorkflowID, e.Events, e.File)
}
