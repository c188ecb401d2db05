package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/workflows"
)

func TestStarterMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	env := teststack.Env("DATABASE_URL", testenv.EmptyDatabase(t))

	code, out := teststack.RunToEnd(t, "starter", env, "migrate")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "schema kombo migrated from version 0 to")

	code, out = teststack.RunToEnd(t, "starter", env, "migrate")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "schema kombo is up to date")
}

func TestProgramsRejectBadConfigurationWithExitCode2(t *testing.T) {
	t.Parallel()
	db := testenv.Database(t)
	cases := []struct {
		program string
		env     []string
		want    string
	}{
		{"worker", teststack.Env("KOMBO_API_KEY", "k"), "DATABASE_URL is required"},
		{"worker", teststack.Env("DATABASE_URL", db), "KOMBO_API_KEY is required"},
		{"webhookgw", teststack.Env("DATABASE_URL", db), "KOMBO_WEBHOOK_SECRET is required"},
		{"starter", nil, "a subcommand is required"},
		{"starter", teststack.Env("DATABASE_URL", "postgres://u:topsecret@h/db"), "migrate takes no arguments"},
	}
	for _, c := range cases {
		args := []string{}
		if c.program == "starter" && c.env != nil {
			args = []string{"migrate", "extra"}
		}
		code, out := teststack.RunToEnd(t, c.program, c.env, args...)
		require.Equal(t, 2, code, "%s: %s", c.program, out)
		require.Contains(t, out, c.want)
		require.NotContains(t, out, "topsecret")
	}
}

func TestWorkerRefusesAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	code, out := teststack.RunToEnd(t, "worker", teststack.Env(
		"DATABASE_URL", testenv.EmptyDatabase(t),
		"KOMBO_API_KEY", "k",
		"TEMPORAL_ADDRESS", testenv.TemporalAddress(t),
		"METRICS_LISTEN_ADDR", "off"))
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "run `starter migrate`")
}

func TestWorkerAndGatewayBecomeReadyAndStopCleanly(t *testing.T) {
	t.Parallel()
	db := testenv.Database(t)
	workerPort, err := localstack.FreePort()
	require.NoError(t, err)
	gatewayPort, err := localstack.FreePort()
	require.NoError(t, err)
	common := teststack.Env("DATABASE_URL", db, "TEMPORAL_ADDRESS", testenv.TemporalAddress(t), "LOG_LEVEL", "debug")

	worker := teststack.Start(t, "worker", slices.Concat(common, []string{
		"KOMBO_API_KEY=secret-api-key-value",
		"TEMPORAL_TASK_QUEUE=" + testenv.TaskQueue(t),
		fmt.Sprintf("METRICS_LISTEN_ADDR=127.0.0.1:%d", workerPort)}))
	gateway := teststack.Start(t, "webhookgw", slices.Concat(common, []string{
		"KOMBO_WEBHOOK_SECRET=secret-webhook-value",
		fmt.Sprintf("WEBHOOK_LISTEN_ADDR=127.0.0.1:%d", gatewayPort)}))

	for _, c := range []struct {
		p    *teststack.Program
		port int
	}{{worker, workerPort}, {gateway, gatewayPort}} {
		base := fmt.Sprintf("http://127.0.0.1:%d", c.port)
		teststack.WaitHTTP(t, c.p, base+"/readyz", http.StatusOK)
		teststack.WaitHTTP(t, c.p, base+"/healthz", http.StatusOK)
		teststack.WaitHTTP(t, c.p, base+"/metrics", http.StatusOK)
	}
	worker.Stop(t)
	gateway.Stop(t)
	for _, out := range []string{worker.Output(), gateway.Output()} {
		require.NotContains(t, out, "secret-api-key-value")
		require.NotContains(t, out, "secret-webhook-value")
	}
}

func TestDevServerHasTheSearchAttributes(t *testing.T) {
	t.Parallel()
	c := testenv.TemporalClient(t)
	resp, err := c.OperatorService().ListSearchAttributes(t.Context(),
		&operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	require.NoError(t, err)
	want := map[string]enums.IndexedValueType{
		workflows.SAIntegrationID.GetName(): enums.INDEXED_VALUE_TYPE_KEYWORD,
		workflows.SATool.GetName():          enums.INDEXED_VALUE_TYPE_KEYWORD,
		workflows.SACategory.GetName():      enums.INDEXED_VALUE_TYPE_KEYWORD,
		workflows.SASyncState.GetName():     enums.INDEXED_VALUE_TYPE_KEYWORD,
		workflows.SALastSyncAt.GetName():    enums.INDEXED_VALUE_TYPE_DATETIME,
	}
	for name, typ := range want {
		require.Equal(t, typ, resp.CustomAttributes[name], name)
	}
}
