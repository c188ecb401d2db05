package teststack

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

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/privacy"
	"github.com/kombosync/kombosync/workflows"
)

// The stack's Kombo API key and webhook secret. No program may log them: a stack fails its test
// when one does.
const (
	APIKey        = "teststack-api-key-never-logged"
	WebhookSecret = "teststack-webhook-secret-never-logged"
)

// Stack is the whole product on real parts: the emulator (in this process, over HTTP), the
// built worker and gateway, a fresh database and a Temporal dev server, on a task queue of its
// own.
type Stack struct {
	Emu             *komboemu.Emulator
	GatewayURL      string // base, e.g. http://127.0.0.1:1234
	MetricsURL      string // the worker's probes and metrics; "" unless Options.WorkerMetrics
	Pool            *pgxpool.Pool
	Temporal        client.Client
	TaskQueue       string
	TemporalAddress string
	DatabaseURL     string
	Worker          *Program // nil with Options.NoWorker
	Gateway         *Program
	// WorkerEnv is the worker's environment, to start it again: Start(t, "worker", s.WorkerEnv).
	WorkerEnv []string
	// ProgramEnv is Options.ProgramEnv; the starter runs with it too.
	ProgramEnv []string
	// KomboBaseURL is the emulator's API (…/v1); the worker and the starter call it.
	KomboBaseURL string
	// Policy is the field policy the worker applies (FIELD_POLICY_FILE): Diff applies it to the
	// emulator's truth before comparing.
	Policy *privacy.Policy

	gatewayEnv []string   // the gateway's environment but its listen address
	programs   []*Program // every program started, checked for logged secrets at the end
	forbidden  []string   // more values no program may log (ForbidInLogs)
}

// ForbidInLogs adds values (a record's contents, say) that no program of the stack may have
// logged by the end of the test.
func (s *Stack) ForbidInLogs(values ...string) { s.forbidden = append(s.forbidden, values...) }

// Options shape a Stack. Zero values leave the programs' and the emulator's defaults.
type Options struct {
	Quiet, Max time.Duration // the worker's DEBOUNCE_QUIET and DEBOUNCE_MAX
	Clock      *komboemu.ManualClock
	Seed       uint64 // the emulator's
	LogLevel   string // the programs' LOG_LEVEL
	// WorkerEnv adds to (and overrides) the worker's settings.
	WorkerEnv []string
	// NoWorker starts the gateway alone.
	NoWorker bool
	// WorkerMetrics serves the worker's metrics and probes on a free port (MetricsURL) and waits
	// until it is ready; otherwise METRICS_LISTEN_ADDR is off unless WorkerEnv sets it.
	WorkerMetrics bool
	// DatabaseURL and TemporalAddress put the stack on servers of the test's own (to crash and
	// restart them); testenv's when empty (a fresh database of its cluster).
	DatabaseURL, TemporalAddress string
	// Webhooks are the emulator's; URL and Secret are set here.
	Webhooks komboemu.WebhookOptions
	// ProgramEnv adds to (and overrides) the settings of the worker and the gateway both, e.g. a
	// TEMPORAL_ADDRESS through a proxy while the test's own client dials TemporalAddress.
	ProgramEnv []string
	// Secrets are more values no program may log, besides the API key and webhook secret.
	Secrets []string
}

// New starts a stack; everything stops when the test ends.
func New(t testing.TB, o Options) *Stack {
	t.Helper()
	if o.TemporalAddress == "" {
		o.TemporalAddress = testenv.TemporalAddress(t)
	}
	if o.DatabaseURL == "" {
		o.DatabaseURL = testenv.Database(t)
	}
	gwPort, err := localstack.FreePort()
	require.NoError(t, err)
	s := &Stack{GatewayURL: fmt.Sprintf("http://127.0.0.1:%d", gwPort), TaskQueue: testenv.TaskQueue(t),
		Temporal: testenv.TemporalClientAt(t, o.TemporalAddress), TemporalAddress: o.TemporalAddress,
		DatabaseURL: o.DatabaseURL, ProgramEnv: o.ProgramEnv}

	var now func() time.Time
	if o.Clock != nil {
		now = o.Clock.Now
	}
	if o.Webhooks.URL == "" { // a test may put its own load balancer in front of the gateways
		o.Webhooks.URL = s.GatewayURL + "/webhooks/kombo"
	}
	o.Webhooks.Secret = WebhookSecret
	s.Emu = komboemu.New(komboemu.Options{APIKey: APIKey, Seed: o.Seed, Now: now, Webhooks: o.Webhooks})
	emuSrv := httptest.NewServer(s.Emu.Handler())
	t.Cleanup(func() { emuSrv.Close(); s.Emu.Close() })
	s.KomboBaseURL = emuSrv.URL + "/v1"

	s.Pool, err = pgxpool.New(t.Context(), s.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(s.Pool.Close)

	common := Env("DATABASE_URL", s.DatabaseURL, "TEMPORAL_ADDRESS", s.TemporalAddress, "TEMPORAL_TASK_QUEUE", s.TaskQueue)
	if o.LogLevel != "" {
		common = append(common, Env("LOG_LEVEL", o.LogLevel)...)
	}
	common = append(common, o.ProgramEnv...)
	s.gatewayEnv = slices.Concat(common, Env("KOMBO_WEBHOOK_SECRET", WebhookSecret))
	s.Gateway = Start(t, "webhookgw", slices.Concat(s.gatewayEnv, Env("WEBHOOK_LISTEN_ADDR", fmt.Sprintf("127.0.0.1:%d", gwPort))))
	s.programs = []*Program{s.Gateway}

	metrics := "off"
	if o.WorkerMetrics {
		port, err := localstack.FreePort()
		require.NoError(t, err)
		metrics = fmt.Sprintf("127.0.0.1:%d", port)
		s.MetricsURL = "http://" + metrics
	}
	s.WorkerEnv = slices.Concat(common, Env("KOMBO_API_KEY", APIKey, "KOMBO_BASE_URL", s.KomboBaseURL,
		"METRICS_LISTEN_ADDR", metrics))
	if o.Quiet > 0 {
		s.WorkerEnv = append(s.WorkerEnv, Env("DEBOUNCE_QUIET", o.Quiet.String())...)
	}
	if o.Max > 0 {
		s.WorkerEnv = append(s.WorkerEnv, Env("DEBOUNCE_MAX", o.Max.String())...)
	}
	s.WorkerEnv = append(s.WorkerEnv, o.WorkerEnv...)
	if !o.NoWorker {
		s.Worker = Start(t, "worker", s.WorkerEnv)
		s.programs = append(s.programs, s.Worker)
	}
	WaitHTTP(t, s.Gateway, s.GatewayURL+"/readyz", http.StatusOK)
	if s.MetricsURL != "" && s.Worker != nil {
		WaitHTTP(t, s.Worker, s.MetricsURL+"/readyz", http.StatusOK)
	}
	t.Cleanup(func() { requireNoSecretLogged(t, s.programs, append(o.Secrets, s.forbidden...)) })
	return s
}

// StartGateway starts one more gateway of the stack, as a fleet runs several behind a load
// balancer, and returns it and its base URL once it is ready.
func (s *Stack) StartGateway(t testing.TB) (*Program, string) {
	t.Helper()
	port, err := localstack.FreePort()
	require.NoError(t, err)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	gw := Start(t, "webhookgw", slices.Concat(s.gatewayEnv, Env("WEBHOOK_LISTEN_ADDR", fmt.Sprintf("127.0.0.1:%d", port))))
	s.programs = append(s.programs, gw)
	WaitHTTP(t, gw, base+"/readyz", http.StatusOK)
	return gw, base
}

// StartWorker starts one more worker of the stack on its task queue (without metrics).
func (s *Stack) StartWorker(t testing.TB) *Program {
	t.Helper()
	w := Start(t, "worker", slices.Concat(s.WorkerEnv, Env("METRICS_LISTEN_ADDR", "off")))
	s.programs = append(s.programs, w)
	return w
}

func requireNoSecretLogged(t testing.TB, programs []*Program, more []string) {
	for _, p := range programs {
		out := p.Output()
		for _, secret := range append([]string{APIKey, WebhookSecret, APIToken}, more...) {
			if strings.Contains(out, secret) {
				t.Errorf("%s logged a secret", p.Name)
			}
		}
		if p.OutputTruncated() {
			t.Logf("%s wrote more than %d bytes: only the last were checked for secrets", p.Name, DefaultTailBytes)
		}
	}
}

// Diff compares the stored records of an endpoint with the emulator's truth; "" when equal.
func (s *Stack) Diff(t testing.TB, integrationID string, ep kombo.Endpoint) string {
	t.Helper()
	truth, err := s.Emu.Truth(integrationID, ep)
	require.NoError(t, err)
	rows, err := s.Pool.Query(t.Context(), `select id, data, deleted_at is not null, content_removed_at is not null
		from kombo.records where integration_id = $1 and endpoint = $2`, integrationID, ep.String())
	require.NoError(t, err)
	type row struct {
		data      json.RawMessage
		deleted   bool
		tombstone bool // a deleted record's content removed after DELETED_RECORD_RETENTION
	}
	stored := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		require.NoError(t, rows.Scan(&id, &r.data, &r.deleted, &r.tombstone))
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
		if tr.Broken {
			continue // not a record kombosync can take: in kombo.rejected_records, not here
		}
		r, ok := stored[tr.ID]
		if !ok {
			return fmt.Sprintf("%s: record %s missing", ep, tr.ID)
		}
		want, _, err := s.Policy.Apply(ep.String(), kombo.Sanitize(tr.Data)) // stored as kombosync's sanitising rule and the policy make it
		require.NoError(t, err)
		if !(r.tombstone && r.deleted) && !JSONEqual(r.data, want) {
			return fmt.Sprintf("%s: record %s differs", ep, tr.ID)
		}
		if r.deleted != (tr.RemoteDeletedAt != nil) {
			return fmt.Sprintf("%s: record %s deleted_at is wrong", ep, tr.ID)
		}
	}
	return ""
}

// JSONEqual says whether two JSON documents hold the same value.
func JSONEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// FirstDiff compares every endpoint of the category with the emulator's truth: "" when all
// are equal, else the first difference.
func (s *Stack) FirstDiff(t testing.TB, integrationID string, cat kombo.Category) string {
	t.Helper()
	for _, e := range kombo.DefaultEndpoints() {
		if e.Category != cat {
			continue
		}
		if d := s.Diff(t, integrationID, e); d != "" {
			return d
		}
	}
	return ""
}

// WaitInSync waits until every endpoint of the category equals the emulator's truth.
func (s *Stack) WaitInSync(t testing.TB, integrationID string, cat kombo.Category, within time.Duration) {
	t.Helper()
	Eventually(t, within, func() string { return s.FirstDiff(t, integrationID, cat) })
}

// PostWebhook posts a body signed with the stack's secret to the gateway, as Kombo would, and
// returns the status and the JSON answer.
func (s *Stack) PostWebhook(t testing.TB, body []byte) (int, map[string]string) {
	t.Helper()
	return PostWebhookTo(t, s.GatewayURL, body)
}

// PostWebhookTo posts a body signed with the stack's secret to the gateway at base (one of a
// fleet's) and returns its status and JSON answer.
func PostWebhookTo(t testing.TB, base string, body []byte) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/webhooks/kombo", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set(kombo.SignatureHeader, kombo.Sign(WebhookSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var answer map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
	return resp.StatusCode, answer
}

// Status queries the integration's workflow.
func (s *Stack) Status(t testing.TB, integrationID string) (workflows.Status, error) {
	t.Helper()
	v, err := s.Temporal.QueryWorkflow(t.Context(), workflows.IntegrationWorkflowID(integrationID), "", workflows.QueryStatus)
	if err != nil {
		return workflows.Status{}, err
	}
	var st workflows.Status
	return st, v.Get(&st)
}

// WaitState waits until the integration's workflow reports the state.
func (s *Stack) WaitState(t testing.TB, integrationID, state string, within time.Duration) workflows.Status {
	t.Helper()
	var st workflows.Status
	Eventually(t, within, func() string {
		var err error
		if st, err = s.Status(t, integrationID); err != nil {
			return err.Error()
		}
		if st.State != state {
			return "state " + st.State + ", last error: " + st.LastError
		}
		return ""
	})
	return st
}

// Count runs a query returning one number.
func (s *Stack) Count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.Pool.QueryRow(t.Context(), sql, args...).Scan(&n))
	return n
}

// Signal sends a signal to the integration's workflow.
func (s *Stack) Signal(t testing.TB, integrationID, name string, arg any) {
	t.Helper()
	require.NoError(t, s.Temporal.SignalWorkflow(t.Context(), workflows.IntegrationWorkflowID(integrationID), "", name, arg))
}

// Starter runs the built starter against the stack and returns its output; it must succeed.
func (s *Stack) Starter(t testing.TB, args ...string) string {
	t.Helper()
	code, stdout, stderr := s.RunStarter(t, args...)
	require.Equal(t, 0, code, "starter %v: %s%s", args, stdout, stderr)
	return stdout + stderr
}

// StarterJSON runs the starter with --json; it must succeed, and its output is decoded into v.
func (s *Stack) StarterJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	code, stdout, stderr := s.RunStarter(t, append(args, "--json")...)
	require.Equal(t, 0, code, "starter %v: %s%s", args, stdout, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), v), "starter %v printed no JSON: %s", args, stdout)
}

// RunStarter runs the built starter against the stack to its end, whatever its exit code.
func (s *Stack) RunStarter(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, "starter"), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, Env("DATABASE_URL", s.DatabaseURL,
		"TEMPORAL_ADDRESS", s.TemporalAddress, "TEMPORAL_TASK_QUEUE", s.TaskQueue,
		"KOMBO_API_KEY", APIKey, "KOMBO_BASE_URL", s.KomboBaseURL)...) // for sync --upstream
	cmd.Env = append(cmd.Env, s.ProgramEnv...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		require.NoError(t, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// APIToken is the back-office API's bearer token in tests.
const APIToken = "e2e-api-token-0123456789abcdef0123456789"

// StartBackoffice starts the back-office API program on the stack's database and Temporal and
// returns its base URL once it is ready; requests need "Authorization: Bearer " + APIToken.
func (s *Stack) StartBackoffice(t testing.TB) string {
	t.Helper()
	port, err := localstack.FreePort()
	require.NoError(t, err)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := slices.Concat(Env("DATABASE_URL", s.DatabaseURL, "TEMPORAL_ADDRESS", s.TemporalAddress, "TEMPORAL_TASK_QUEUE", s.TaskQueue),
		s.ProgramEnv, Env("API_LISTEN_ADDR", fmt.Sprintf("127.0.0.1:%d", port), "API_TOKENS", APIToken,
			"KOMBO_API_KEY", APIKey, "KOMBO_BASE_URL", s.KomboBaseURL))
	p := Start(t, "backoffice", env)
	s.programs = append(s.programs, p)
	WaitHTTP(t, p, base+"/readyz", http.StatusOK)
	return base
}
