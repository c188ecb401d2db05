package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/workflows"
)

// stack is the whole product on real parts: the emulator (in this process, over HTTP), the built
// worker and gateway, a fresh database and the test dev server, on a task queue of its own.
type stack struct {
	emu             *komboemu.Emulator
	gatewayURL      string // base, e.g. http://127.0.0.1:1234
	pool            *pgxpool.Pool
	tc              client.Client
	taskQueue       string
	temporalAddress string
	databaseURL     string
	worker          *program
	gateway         *program
	env             []string // the worker's environment, to restart it
}

const (
	stackAPIKey = "e2e-api-key-never-logged"
	stackSecret = "e2e-webhook-secret-never-logged"
)

type stackOptions struct {
	Quiet, Max time.Duration // debounce windows; 300 ms and 3 s when zero
	Window     time.Duration // the emulator's data-changed coalescing; 100 ms when zero
	Clock      *komboemu.ManualClock
	Env        []string // extra worker settings
	// DatabaseURL and TemporalAddress put the stack on servers of the test's own (to crash and
	// restart them); the shared test servers when empty.
	DatabaseURL, TemporalAddress string
	Webhooks                     komboemu.WebhookOptions // Retries and Client; URL, Secret and Window are set here
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.Quiet == 0 {
		o.Quiet = 300 * time.Millisecond
	}
	if o.Max == 0 {
		o.Max = 3 * time.Second
	}
	if o.Window == 0 {
		o.Window = 100 * time.Millisecond
	}
	gwPort, err := localstack.FreePort()
	require.NoError(t, err)
	if o.TemporalAddress == "" {
		o.TemporalAddress = testenv.TemporalAddress(t)
	}
	if o.Webhooks.Retries == 0 {
		o.Webhooks.Retries = 5
	}
	s := &stack{gatewayURL: fmt.Sprintf("http://127.0.0.1:%d", gwPort), taskQueue: testenv.TaskQueue(t),
		tc: testenv.TemporalClientAt(t, o.TemporalAddress), temporalAddress: o.TemporalAddress}
	var now func() time.Time
	if o.Clock != nil {
		now = o.Clock.Now
	}
	o.Webhooks.URL, o.Webhooks.Secret, o.Webhooks.Window = s.gatewayURL+"/webhooks/kombo", stackSecret, o.Window
	s.emu = komboemu.New(komboemu.Options{APIKey: stackAPIKey, Seed: 7, Now: now, Webhooks: o.Webhooks})
	emuSrv := httptest.NewServer(s.emu.Handler())
	t.Cleanup(func() { emuSrv.Close(); s.emu.Close() })

	db := o.DatabaseURL
	if db == "" {
		db = testenv.Database(t)
	}
	s.databaseURL = db
	s.pool, err = pgxpool.New(t.Context(), db)
	require.NoError(t, err)
	t.Cleanup(s.pool.Close)
	common := envOf("DATABASE_URL", db, "TEMPORAL_ADDRESS", o.TemporalAddress, "TEMPORAL_TASK_QUEUE", s.taskQueue,
		"LOG_LEVEL", "debug")
	s.env = slices.Concat(common, envOf("KOMBO_API_KEY", stackAPIKey, "KOMBO_BASE_URL", emuSrv.URL+"/v1",
		"DEBOUNCE_QUIET", o.Quiet.String(), "DEBOUNCE_MAX", o.Max.String(), "METRICS_LISTEN_ADDR", "off"), o.Env)
	s.worker = start(t, "worker", s.env)
	s.gateway = start(t, "webhookgw", slices.Concat(common, envOf("KOMBO_WEBHOOK_SECRET", stackSecret,
		"WEBHOOK_LISTEN_ADDR", fmt.Sprintf("127.0.0.1:%d", gwPort))))
	waitHTTP(t, s.gateway, s.gatewayURL+"/readyz", http.StatusOK)
	t.Cleanup(func() {
		for _, p := range []*program{s.worker, s.gateway} {
			for _, secret := range []string{stackAPIKey, stackSecret} {
				if strings.Contains(p.output.String(), secret) {
					t.Errorf("a secret was logged")
				}
			}
		}
	})
	return s
}

// diff compares the stored records of an endpoint with the emulator's truth; "" when equal.
func (s *stack) diff(t *testing.T, integrationID string, ep kombo.Endpoint) string {
	t.Helper()
	truth, err := s.emu.Truth(integrationID, ep)
	require.NoError(t, err)
	rows, err := s.pool.Query(t.Context(), `select id, data, remote_deleted_at is not null, deleted_at is not null
		from kombo.records where integration_id = $1 and endpoint = $2`, integrationID, ep.String())
	require.NoError(t, err)
	type row struct {
		data                   json.RawMessage
		remoteDeleted, deleted bool
	}
	stored := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		require.NoError(t, rows.Scan(&id, &r.data, &r.remoteDeleted, &r.deleted))
		stored[id] = r
	}
	require.NoError(t, rows.Err())
	inTruth := make(map[string]bool, len(truth))
	for _, tr := range truth {
		inTruth[tr.ID] = true
	}
	for id, r := range stored {
		// Kombo removed it for good after its retention period: kept here, marked deleted.
		if !inTruth[id] && !r.deleted {
			return fmt.Sprintf("%s: record %s is gone from Kombo but not marked deleted", ep, id)
		}
	}
	for _, tr := range truth {
		r, ok := stored[tr.ID]
		if !ok {
			return fmt.Sprintf("%s: record %s missing", ep, tr.ID)
		}
		if !jsonEqual(r.data, tr.Data) {
			return fmt.Sprintf("%s: record %s differs", ep, tr.ID)
		}
		if r.deleted != (tr.RemoteDeletedAt != nil) {
			return fmt.Sprintf("%s: record %s deleted_at is wrong", ep, tr.ID)
		}
	}
	return ""
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// firstDiff compares every endpoint of the category with the emulator's truth: "" when all
// are equal, else the first difference.
func (s *stack) firstDiff(t *testing.T, integrationID string, cat kombo.Category) string {
	t.Helper()
	for _, e := range kombo.DefaultEndpoints() {
		if e.Category != cat {
			continue
		}
		if d := s.diff(t, integrationID, e); d != "" {
			return d
		}
	}
	return ""
}

// waitInSync waits until every endpoint of the category equals the emulator's truth.
func (s *stack) waitInSync(t *testing.T, integrationID string, cat kombo.Category, within time.Duration) {
	t.Helper()
	eventually(t, within, func() string { return s.firstDiff(t, integrationID, cat) })
}

// postWebhook posts a body signed with the stack's secret to the gateway, as Kombo would, and
// returns the status and the JSON answer.
func (s *stack) postWebhook(t *testing.T, body []byte) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.gatewayURL+"/webhooks/kombo", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set(kombo.SignatureHeader, kombo.Sign(stackSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var answer map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
	return resp.StatusCode, answer
}

// eventually polls cond until it returns "" or within passes; the last answer explains a failure.
func eventually(t *testing.T, within time.Duration, cond func() string) {
	t.Helper()
	if why := poll(t, within, cond); why != "" {
		t.Fatalf("condition not met within %s: %s", within, why)
	}
}

// poll calls cond every 100 ms until it returns "" or within passes, and returns its last answer.
func poll(t *testing.T, within time.Duration, cond func() string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := cond()
		if why == "" || time.Now().After(deadline) {
			return why
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// status queries the integration's workflow.
func (s *stack) status(t *testing.T, integrationID string) (workflows.Status, error) {
	t.Helper()
	v, err := s.tc.QueryWorkflow(t.Context(), workflows.IntegrationWorkflowID(integrationID), "", workflows.QueryStatus)
	if err != nil {
		return workflows.Status{}, err
	}
	var st workflows.Status
	return st, v.Get(&st)
}

func (s *stack) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.pool.QueryRow(t.Context(), sql, args...).Scan(&n))
	return n
}

// waitState waits until the integration's workflow reports the state.
func (s *stack) waitState(t *testing.T, integrationID, state string, within time.Duration) workflows.Status {
	t.Helper()
	var st workflows.Status
	eventually(t, within, func() string {
		var err error
		if st, err = s.status(t, integrationID); err != nil {
			return err.Error()
		}
		if st.State != state {
			return "state " + st.State + ", last error: " + st.LastError
		}
		return ""
	})
	return st
}

// signal sends a signal to the integration's workflow.
func (s *stack) signal(t *testing.T, integrationID, name string, arg any) {
	t.Helper()
	require.NoError(t, s.tc.SignalWorkflow(t.Context(), workflows.IntegrationWorkflowID(integrationID), "", name, arg))
}

// finish cancels the integration's workflow, waits for it to close and records its history
// under name (see recordHistory).
func (s *stack) finish(t *testing.T, integrationID, name string) {
	t.Helper()
	id := workflows.IntegrationWorkflowID(integrationID)
	require.NoError(t, s.tc.CancelWorkflow(t.Context(), id, ""))
	err := s.tc.GetWorkflow(t.Context(), id, "").Get(t.Context(), nil)
	require.ErrorAs(t, err, new(*temporal.CanceledError))
	s.recordHistory(t, id, "", name)
}

// starter runs the built starter against the stack and returns its output; it must succeed.
func (s *stack) starter(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := s.runStarter(t, args...)
	require.Equal(t, 0, code, "starter %v: %s%s", args, stdout, stderr)
	return stdout + stderr
}

// starterJSON runs the starter with --json; it must succeed, and its output is decoded into v.
func (s *stack) starterJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	code, stdout, stderr := s.runStarter(t, append(args, "--json")...)
	require.Equal(t, 0, code, "starter %v: %s%s", args, stdout, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), v), "starter %v printed no JSON: %s", args, stdout)
}

// runStarter runs the built starter against the stack to its end, whatever its exit code.
func (s *stack) runStarter(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, "starter"), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, envOf("DATABASE_URL", s.databaseURL,
		"TEMPORAL_ADDRESS", s.temporalAddress, "TEMPORAL_TASK_QUEUE", s.taskQueue)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		require.NoError(t, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}
