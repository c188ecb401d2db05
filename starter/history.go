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

func historyCommand(stdout io.Writer) *ffcli.Command {
	var runID string
	export := commandWith("export", "history export <workflow-id> <file|-> [--run-id …]",
		"write a workflow's history as JSON (what the replay tests read; - for stdout)", config.PartTemporal,
		func(fs *flag.FlagSet) {
			fs.StringVar(&runID, "run-id", "", "the run to export; the latest when empty")
		},
		func(ctx context.Context, cfg *config.Config, args []string) error {
			if len(args) != 2 {
				return config.UsageError{Err: fmt.Errorf("history export takes a workflow id and a file, got %d arguments", len(args))}
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return err
			}
			defer tc.Close()
			b, n, err := history.Export(ctx, tc, args[0], runID)
			if err != nil {
				return err
			}
			if args[1] == "-" {
				_, err = stdout.Write(b)
				return err
			}
			if err := history.WriteFile(args[1], b); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %d events written to %s\n", args[0], n, args[1])
			return nil
		})
	return group("history", "export workflow histories", export)
}
