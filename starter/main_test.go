package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/stretchr/testify/require"
)

// Every command answers -h with its usage, its one-line help and its flags, exit code 0; every
// command that does something takes --json.
func TestEveryCommandHasHelpAndJSON(t *testing.T) {
	c := &cli{stdout: new(bytes.Buffer)}
	var leaves [][]string
	var walk func(path []string, cmds []*ffcli.Command)
	walk = func(path []string, cmds []*ffcli.Command) {
		for _, cmd := range cmds {
			p := append(append([]string{}, path...), cmd.Name)
			require.NotEmpty(t, cmd.ShortHelp, "%v has no help", p)
			if len(cmd.Subcommands) > 0 {
				walk(p, cmd.Subcommands)
				continue
			}
			leaves = append(leaves, p)
		}
	}
	walk(nil, []*ffcli.Command{c.migrateCommand(), c.scheduleCommand(), c.integrationCommand(), c.historyCommand(), c.webhookCommand(),
		c.retentionCommand(), c.eraseCommand(), c.suppressionCommand(), c.subscriptionCommand(), c.jobsCommand(), c.actionsCommand()})
	require.Len(t, leaves, 40, "migrate, 5 schedule, 6 integration, history export, webhook replay, 2 retention, erase, 2 suppression, 10 subscription, 7 jobs, 4 actions")

	groups := [][]string{{}, {"integration"}, {"schedule"}, {"retention"}, {"suppression"}, {"subscription"}, {"jobs"}, {"actions"}}
	for i, p := range append(leaves, groups...) {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), append(p, "-h"), &stdout, &stderr)
		require.ErrorIs(t, err, flag.ErrHelp, "%v -h", p)
		require.Equal(t, 0, exitCode(err, &stderr))
		help := stderr.String()
		require.Contains(t, help, "USAGE", "%v -h", p)
		require.Contains(t, help, "starter "+strings.Join(p, " "), "%v -h shows its usage line", p)
		if i < len(leaves) {
			require.Contains(t, help, "-json", "%v takes --json", p)
		}
		require.Empty(t, stdout.String(), "help goes to stderr")
	}
}

// A wrong invocation is a usage error, exit code 2, with a message that says what is wrong.
func TestWrongInvocationsExitWithTwo(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none") // never reached
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "a subcommand is required"},
		{[]string{"integration"}, "integration needs a subcommand"},
		{[]string{"integration", "sync"}, "integration sync takes one integration id, got 0 arguments"},
		{[]string{"integration", "sync", "a", "b"}, "integration sync takes one integration id, got 2 arguments"},
		{[]string{"integration", "sync", "a", "--endpoints", "hris/nothing"}, "hris/nothing"},
		{[]string{"integration", "status", "a", "--query-timeout", "-1s"}, "--query-timeout must be positive"},
		{[]string{"webhook", "replay"}, "webhook replay takes one webhook event id"},
		{[]string{"history", "export", "wf"}, "history export takes a workflow id and a file"},
		{[]string{"schedule", "apply", "--batch-size", "0"}, "--batch-size must be positive"},
		{[]string{"migrate", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"integration", "sync", "a", "--type", "FULL"}, "--type goes with --upstream"},
		{[]string{"integration", "sync", "a", "--upstream", "--type", "weekly"}, "--type must be FULL or DELTA"},
		{[]string{"erase"}, "erase takes one integration id"},
		{[]string{"erase", "a"}, "say whom to erase"},
		{[]string{"erase", "a", "--email", "x@y", "--id", "1"}, "not both"},
		{[]string{"erase", "a", "--id", "1"}, "--endpoint and --id go together"},
		{[]string{"erase", "a", "--endpoint", "hris/nothing", "--id", "1"}, "not a Kombo endpoint"},
		{[]string{"erase", "a", "--email", "x@y", "--suppress"}, "--suppress needs a --reason"},
		{[]string{"suppression", "lift", "a", "hris/employees"}, "suppression lift takes an integration id, an endpoint and a record id"},
		{[]string{"retention", "run", "extra"}, "retention run takes no arguments"},
		{[]string{"subscription", "create"}, "subscription create takes a URL"},
		{[]string{"jobs", "lookup", "greenhouse:1"}, "give at least one of --id"},
		{[]string{"jobs", "confirm", "greenhouse:1", "app-1"}, "jobs confirm takes an integration id, the application's job id and Kombo's job id"},
		{[]string{"subscription", "replay", "sub_1"}, "one of the two"},
		{[]string{"subscription", "replay", "sub_1", "--since", "yesterday"}, "an RFC 3339 time"},
		{[]string{"subscription", "replay", "sub_1", "--after", "12"}, "a feed position txid:seq"},
		{[]string{"subscription", "deliveries", "sub_1", "--limit", "0"}, "--limit must be from 1 to 1000"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), c.args, &stdout, &stderr)
		require.Error(t, err, "%v", c.args)
		require.Equal(t, 2, exitCode(err, &stderr), "%v: %v", c.args, err)
		require.Contains(t, stderr.String(), c.want, "%v", c.args)
		require.Empty(t, stdout.String())
	}
}
