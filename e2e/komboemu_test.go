package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
)

// The emulator program, configured the way docker-compose.yml and make dev configure it, serves
// its seeded integrations to the real client.
func TestEmulatorProgramServesSeededIntegrations(t *testing.T) {
	t.Parallel()
	port, err := localstack.FreePort()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	emu := teststack.Start(t, "komboemu", teststack.Env(
		"KOMBOEMU_LISTEN_ADDR", addr,
		"KOMBOEMU_API_KEY", "emu-key",
		"KOMBOEMU_INTEGRATIONS", "personio:e2e=hris:300,greenhouse:e2e=ats:20:pending",
	))
	teststack.WaitHTTP(t, emu, "http://"+addr+"/healthz", http.StatusOK)

	c, err := kombo.New(kombo.Options{BaseURL: "http://" + addr + "/v1", APIKey: "emu-key", Timeout: 10 * time.Second})
	require.NoError(t, err)
	n := 0
	for page, err := range c.Pages(t.Context(), "personio:e2e", kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}, kombo.ListParams{}) {
		require.NoError(t, err)
		n += len(page.Records)
	}
	require.Equal(t, 300, n)

	_, err = c.ListPage(t.Context(), "greenhouse:e2e", kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}, kombo.ListParams{})
	require.Equal(t, kombo.ClassFirstSyncPending, kombo.ClassOf(err))
	emu.Stop(t)
}

func TestEmulatorProgramRejectsMissingSettings(t *testing.T) {
	t.Parallel()
	code, out := teststack.RunToEnd(t, "komboemu", teststack.Env("KOMBOEMU_WEBHOOK_URL", "http://x"))
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "KOMBOEMU_API_KEY is required")
	require.Contains(t, out, "KOMBOEMU_WEBHOOK_SECRET is required")

	code, out = teststack.RunToEnd(t, "komboemu", teststack.Env("KOMBOEMU_API_KEY", "k", "KOMBOEMU_INTEGRATIONS", "x=crm:1"))
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "category must be hris or ats")
}
