// Command starter is kombosync's operator CLI: database migrations, the weekly reconciliation
// schedule, integration status and controls, workflow histories and stored webhooks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/migrations"
	"github.com/kombosync/kombosync/store"
)

// Exit codes, documented in the README and in starter -h.
const (
	exitOK       = 0
	exitFailed   = 1 // Temporal or Postgres unreachable, a refused operation, …
	exitUsage    = 2 // a wrong invocation or configuration
	exitNotFound = 3 // no such integration, workflow, schedule or webhook event
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitCode reports err on stderr and maps it to the process exit code.
func exitCode(err error, stderr io.Writer) int {
	var notFound *serviceerror.NotFound
	if errors.Is(err, store.ErrNotFound) || errors.As(err, &notFound) {
		fmt.Fprintf(stderr, "starter: %v\n", err)
		return exitNotFound
	}
	return service.ExitCode("starter", err, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &cli{stdout: stdout}
	root := &ffcli.Command{
		Name:       "starter",
		ShortUsage: "starter <subcommand> [flags]",
		ShortHelp:  "operate kombosync",
		LongHelp: "starter operates kombosync. Settings come from the environment variables of the\n" +
			"README's configuration table; flags of the same name override them. Every command\n" +
			"prints what it did for people, or JSON with --json.\n\n" +
			"Exit codes: 0 done, 1 failed, 2 wrong invocation or configuration, 3 not found.",
		FlagSet: flag.NewFlagSet("starter", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{c.migrateCommand(), c.scheduleCommand(), c.integrationCommand(), c.retentionCommand(), c.eraseCommand(), c.suppressionCommand(),
			c.subscriptionCommand(), c.jobsCommand(), c.actionsCommand(), c.historyCommand(), c.webhookCommand()},
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

// cli builds the commands; every command writes its result to stdout.
type cli struct {
	stdout io.Writer
}

// result is what a command reports: printed for people by default, as JSON with --json.
type result interface {
	text(w io.Writer)
}

// done is the result of a command that did one thing to one subject.
type done struct {
	Subject string `json:"subject"`
	Outcome string `json:"outcome"`
}

func (d done) text(w io.Writer) { fmt.Fprintf(w, "%s: %s\n", d.Subject, d.Outcome) }

// exec is a command's work: its result (nil when it printed its own output) or an error.
type exec func(context.Context, *config.Config, []string) (result, error)

// command builds a subcommand whose flags are the given config parts and --json, validated
// before exec.
func (c *cli) command(name, usage, help string, parts config.Part, run exec) *ffcli.Command {
	return c.commandWith(name, usage, help, parts, nil, run)
}

// commandWith is command with extra flags.
func (c *cli) commandWith(name, usage, help string, parts config.Part, extra func(*flag.FlagSet), run exec) *ffcli.Command {
	fs := flag.NewFlagSet("starter "+name, flag.ContinueOnError)
	cfg := config.Register(fs, parts)
	asJSON := fs.Bool("json", false, "print the result as JSON")
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
			res, err := run(ctx, cfg, positional)
			if err != nil || res == nil {
				return err
			}
			if !*asJSON {
				res.text(c.stdout)
				return nil
			}
			enc := json.NewEncoder(c.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
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

// wantArgs is the usage error of a command given the wrong number of arguments.
func wantArgs(command string, args []string, n int, what string) error {
	if len(args) == n {
		return nil
	}
	return config.UsageError{Err: fmt.Errorf("%s takes %s, got %d arguments", command, what, len(args))}
}

// dial connects to Temporal with a logger that stays quiet unless something is wrong.
func dial(ctx context.Context, cfg *config.Config) (client.Client, error) {
	return service.DialTemporal(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
}

// openStore connects to Postgres and checks the schema is the one this build knows.
func openStore(ctx context.Context, cfg *config.Config) (*store.Store, *pgxpool.Pool, error) {
	pool, err := service.OpenPostgres(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return store.New(pool), pool, nil
}

type migrated struct {
	From int32 `json:"from_version"`
	To   int32 `json:"to_version"`
}

func (m migrated) text(w io.Writer) {
	if m.From == m.To {
		fmt.Fprintf(w, "schema kombo is up to date (version %d)\n", m.To)
		return
	}
	fmt.Fprintf(w, "schema kombo migrated from version %d to %d\n", m.From, m.To)
}

func (c *cli) migrateCommand() *ffcli.Command {
	cmd := c.command("migrate", "migrate [flags]", "apply the database migrations (idempotent)", config.PartDatabase,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("migrate", args, 0, "no arguments"); err != nil {
				return nil, err
			}
			res, err := migrations.Apply(ctx, cfg.DatabaseURL)
			if err != nil {
				return nil, err
			}
			return migrated{From: res.From, To: res.To}, nil
		})
	cmd.LongHelp = "Creates schema kombo and applies every embedded migration not yet applied, under a\n" +
		"Postgres advisory lock so concurrent runs are safe. Running it again changes nothing."
	return cmd
}
