// Command starter is kombosync's operator CLI: database migrations, the weekly reconciliation
// schedule, and integration controls (sync, reconcile, pause, resume).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"go.temporal.io/sdk/client"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(service.ExitCode("starter", run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := &ffcli.Command{
		Name:       "starter",
		ShortUsage: "starter <subcommand> [flags]",
		ShortHelp:  "operate kombosync",
		LongHelp: "starter operates kombosync. Settings come from the environment variables of the\n" +
			"README's configuration table; flags of the same name override them.",
		FlagSet: flag.NewFlagSet("starter", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{migrateCommand(stdout), scheduleCommand(stdout), integrationCommand(stdout),
			historyCommand(stdout)},
		Exec: func(context.Context, []string) error {
			return config.UsageError{Err: errors.New("a subcommand is required (see starter -h)")}
		},
	}
	setOutput(root, stderr)
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return config.UsageError{Err: err}
	}
	return root.Run(ctx)
}

func setOutput(c *ffcli.Command, w io.Writer) {
	c.FlagSet.SetOutput(w)
	for _, sub := range c.Subcommands {
		setOutput(sub, w)
	}
}

// command builds a subcommand whose flags are the given config parts (plus any extra ones),
// validated before exec.
func command(name, usage, help string, parts config.Part, exec func(context.Context, *config.Config, []string) error) *ffcli.Command {
	return commandWith(name, usage, help, parts, nil, exec)
}

func commandWith(name, usage, help string, parts config.Part, extra func(*flag.FlagSet),
	exec func(context.Context, *config.Config, []string) error) *ffcli.Command {
	fs := flag.NewFlagSet("starter "+name, flag.ContinueOnError)
	cfg := config.Register(fs, parts)
	if extra != nil {
		extra(fs)
	}
	return &ffcli.Command{
		Name:       name,
		ShortUsage: "starter " + usage,
		ShortHelp:  help,
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, args []string) error {
			// Flags may follow the arguments too (integration reconcile ID --confirm-sweep).
			var positional []string
			for len(args) > 0 {
				positional = append(positional, args[0])
				if err := fs.Parse(args[1:]); err != nil {
					return config.UsageError{Err: err}
				}
				args = fs.Args()
			}
			if err := cfg.Validate(); err != nil {
				return config.UsageError{Err: err}
			}
			return exec(ctx, cfg, positional)
		},
	}
}

// group is a command that only holds subcommands.
func group(name, help string, subs ...*ffcli.Command) *ffcli.Command {
	return &ffcli.Command{
		Name:        name,
		ShortUsage:  "starter " + name + " <subcommand> [flags]",
		ShortHelp:   help,
		FlagSet:     flag.NewFlagSet("starter "+name, flag.ContinueOnError),
		Subcommands: subs,
		Exec: func(context.Context, []string) error {
			return config.UsageError{Err: fmt.Errorf("%s needs a subcommand (see starter %s -h)", name, name)}
		},
	}
}

// dial connects to Temporal with a logger that stays quiet unless something is wrong.
func dial(ctx context.Context, cfg *config.Config) (client.Client, error) {
	return service.DialTemporal(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

func migrateCommand(stdout io.Writer) *ffcli.Command {
	c := command("migrate", "migrate [flags]", "apply the database migrations (idempotent)", config.PartDatabase,
		func(ctx context.Context, cfg *config.Config, args []string) error {
			if len(args) > 0 {
				return config.UsageError{Err: fmt.Errorf("migrate takes no arguments, got %q", args)}
			}
			res, err := migrations.Apply(ctx, cfg.DatabaseURL)
			if err != nil {
				return err
			}
			if res.From == res.To {
				fmt.Fprintf(stdout, "schema kombo is up to date (version %d)\n", res.To)
				return nil
			}
			fmt.Fprintf(stdout, "schema kombo migrated from version %d to %d\n", res.From, res.To)
			return nil
		})
	c.LongHelp = "Creates schema kombo and applies every embedded migration not yet applied, under a\n" +
		"Postgres advisory lock so concurrent runs are safe. Running it again changes nothing."
	return c
}
