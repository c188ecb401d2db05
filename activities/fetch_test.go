package activities_test

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Postgres) }

var (
	employees   = kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	employments = kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employments"}
)

// harness is an emulator, a fresh database and the activities on them.
type harness struct {
	emu   *komboemu.Emulator
	clk   *komboemu.ManualClock
	pool  *pgxpool.Pool
	acts  *activities.Activities
	suite testsuite.WorkflowTestSuite
}

func newHarness(t testing.TB, emu *komboemu.Emulator, clk *komboemu.ManualClock, baseURL string) *harness {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), testenv.Database(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := kombo.New(kombo.Options{BaseURL: baseURL, APIKey: "key", Timeout: time.Minute})
	require.NoError(t, err)
	h := &harness{emu: emu, clk: clk, pool: pool, acts: &activities.Activities{Kombo: client, Store: store.New(pool)}}
	h.suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return h
}

func newEmulator(t testing.TB) (*komboemu.Emulator, *komboemu.ManualClock, string) {
	t.Helper()
	clk := komboemu.NewManualClock(time.Now().UTC().Add(-24 * time.Hour))
	emu := komboemu.New(komboemu.Options{APIKey: "key", Now: clk.Now})
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(func() { srv.Close(); emu.Close() })
	return emu, clk, srv.URL + "/v1"
}

func setup(t testing.TB, records int) *harness {
	t.Helper()
	emu, clk, base := newEmulator(t)
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "personio:t", Category: kombo.CategoryHRIS, Records: records, Seed: 11}))
	return newHarness(t, emu, clk, base)
}

func (h *harness) fetch(t testing.TB, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
	t.Helper()
	env := h.suite.NewTestActivityEnvironment()
	env.RegisterActivity(h.acts)
	val, err := env.ExecuteActivity(h.acts.FetchEndpoint, in)
	if err != nil {
		return activities.FetchEndpointResult{}, err
	}
	var res activities.FetchEndpointResult
	require.NoError(t, val.Get(&res))
	return res, nil
}

func input(ep kombo.Endpoint, runID string, updatedAfter *time.Time) activities.FetchEndpointInput {
	kind := store.KindFull
	if updatedAfter != nil {
		kind = store.KindDelta
	}
	return activities.FetchEndpointInput{IntegrationID: "personio:t", Endpoint: ep, UpdatedAfter: updatedAfter, Kind: kind, RunID: runID}
}

// requireStoreEqualsTruth compares every stored record of the endpoint with the emulator's.
func (h *harness) requireStoreEqualsTruth(t *testing.T, ep kombo.Endpoint) {
	t.Helper()
	truth, err := h.emu.Truth("personio:t", ep)
	require.NoError(t, err)
	rows, err := h.pool.Query(t.Context(), `select id, data, remote_deleted_at, deleted_at from kombo.records
		where integration_id = 'personio:t' and endpoint = $1`, ep.String())
	require.NoError(t, err)
	stored := map[string]json.RawMessage{}
	for rows.Next() {
		var id string
		var data []byte
		var remoteDeleted, deleted *time.Time
		require.NoError(t, rows.Scan(&id, &data, &remoteDeleted, &deleted))
		require.Equal(t, remoteDeleted == nil, deleted == nil, "%s: deleted_at follows remote_deleted_at", id)
		stored[id] = data
	}
	require.NoError(t, rows.Err())
	require.Len(t, stored, len(truth))
	for _, r := range truth {
		require.Contains(t, stored, r.ID)
		require.JSONEq(t, string(r.Data), string(stored[r.ID]), "record %s", r.ID)
	}
}

type changeRow struct {
	RecordID, Op string
	Diff         string
}

func (h *harness) changeLog(t *testing.T) []changeRow {
	t.Helper()
	rows, err := h.pool.Query(t.Context(), `select record_id, op, coalesce(diff::text, '') from kombo.changes order by seq`)
	require.NoError(t, err)
	defer rows.Close()
	var out []changeRow
	for rows.Next() {
		var c changeRow
		require.NoError(t, rows.Scan(&c.RecordID, &c.Op, &c.Diff))
		out = append(out, c)
	}
	return out
}

func TestFullPassStoresExactlyTheTruth(t *testing.T) {
	t.Parallel()
	h := setup(t, 620)
	res, err := h.fetch(t, input(employees, "full-1", nil))
	require.NoError(t, err)
	require.Equal(t, store.OutcomeSucceeded, res.Outcome)
	require.Equal(t, store.Counts{Pages: 3, Fetched: 620, Inserted: 620}, res.Counts)
	h.requireStoreEqualsTruth(t, employees)
	require.Len(t, h.changeLog(t), 620)

	var outcome string
	var pages, fetched int
	require.NoError(t, h.pool.QueryRow(t.Context(), `select outcome, pages, fetched from kombo.fetch_runs where id = 'full-1'`).Scan(&outcome, &pages, &fetched))
	require.Equal(t, []any{"succeeded", 3, 620}, []any{outcome, pages, fetched})
}

func TestDeltaAfterMutationsStoresTheNewTruth(t *testing.T) {
	t.Parallel()
	h := setup(t, 300)
	for _, ep := range []kombo.Endpoint{employees, employments} {
		_, err := h.fetch(t, input(ep, "full-"+ep.Name, nil))
		require.NoError(t, err)
	}
	h.clk.Advance(time.Hour)
	deltaStart := h.clk.Now().Add(-2 * time.Minute) // the fetch start minus the safety overlap
	h.clk.Advance(time.Minute)

	// Nested changes (employments under employees), deletions, creations, restores.
	_, err := h.emu.MutateRandom("personio:t", 120, employees, employments)
	require.NoError(t, err)
	_, err = h.emu.Mutate("personio:t", komboemu.Mutation{Endpoint: employees, Op: komboemu.OpDelete})
	require.NoError(t, err)

	before := len(h.changeLog(t))
	for _, ep := range []kombo.Endpoint{employees, employments} {
		res, err := h.fetch(t, input(ep, "delta-"+ep.Name, &deltaStart))
		require.NoError(t, err)
		require.NotZero(t, res.Counts.Written(), ep.String())
		h.requireStoreEqualsTruth(t, ep)
	}
	log := h.changeLog(t)[before:]
	ops := map[string]int{}
	for _, c := range log {
		ops[c.Op]++
	}
	require.NotZero(t, ops["updated"])
	require.NotZero(t, ops["deleted"])
	require.NotZero(t, ops["created"])
}

func TestASecondIdenticalPassWritesNothing(t *testing.T) {
	t.Parallel()
	h := setup(t, 400)
	_, err := h.fetch(t, input(employees, "full-1", nil))
	require.NoError(t, err)
	var xminSum, changesBefore int64
	require.NoError(t, h.pool.QueryRow(t.Context(), `select sum(xmin::text::bigint), (select count(*) from kombo.changes) from kombo.hris_employees`).Scan(&xminSum, &changesBefore))

	res, err := h.fetch(t, input(employees, "full-2", nil))
	require.NoError(t, err)
	require.Equal(t, store.Counts{Pages: 2, Fetched: 400, Unchanged: 400}, res.Counts)
	var xminSum2, changesAfter int64
	require.NoError(t, h.pool.QueryRow(t.Context(), `select sum(xmin::text::bigint), (select count(*) from kombo.changes) from kombo.hris_employees`).Scan(&xminSum2, &changesAfter))
	require.Equal(t, xminSum, xminSum2, "no record row rewritten")
	require.Equal(t, changesBefore, changesAfter, "no change row")
}

// An attempt that dies after page k (here: its next request's connection drops) leaves pages
// 1..k committed; the retry resumes at page k+1, and the end state and change log are those of a
// run that was never interrupted.
func TestAnInterruptedPassResumesAfterTheLastCommittedPage(t *testing.T) {
	t.Parallel()
	emu, clk, base := newEmulator(t)
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "personio:t", Category: kombo.CategoryHRIS, Records: 1200, Seed: 5}))
	interrupted := newHarness(t, emu, clk, base)
	clean := newHarness(t, emu, clk, base)

	const k = 2 // pages committed before the failure
	start := emu.Requests()
	emu.QueueFaults(make([]komboemu.Fault, k)...) // k requests pass (empty faults)...
	emu.QueueFaults(komboemu.FaultDrop)           // ...and the next one fails
	_, err := interrupted.fetch(t, input(employees, "run-1", nil))
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, activities.ErrKomboUnavailable, appErr.Type())
	require.False(t, appErr.NonRetryable())

	p, err := interrupted.acts.Store.RunProgress(t.Context(), "run-1")
	require.NoError(t, err)
	require.Equal(t, k, p.Counts.Pages, "pages 1..k are committed")
	require.NotEmpty(t, p.NextCursor)

	afterFailure := emu.Requests()
	res, err := interrupted.fetch(t, input(employees, "run-1", nil)) // the retry: same run id
	require.NoError(t, err)
	require.Equal(t, 5, res.Counts.Pages, "1200 records are 5 pages in all")
	require.Equal(t, 5-k, emu.Requests()-afterFailure, "the retry fetched only pages k+1..5")
	require.Equal(t, k+1, afterFailure-start, "the first attempt fetched k pages and failed on the next")
	require.Equal(t, 1200, res.Counts.Inserted)
	require.Zero(t, res.Counts.Unchanged, "nothing was applied twice")

	_, err = clean.fetch(t, input(employees, "run-1", nil))
	require.NoError(t, err)
	require.Equal(t, clean.changeLog(t), interrupted.changeLog(t))
	interrupted.requireStoreEqualsTruth(t, employees)
}

func TestARejectedCursorRestartsThePass(t *testing.T) {
	t.Parallel()
	h := setup(t, 600)
	h.emu.QueueFaults("", komboemu.FaultDrop) // page 1 passes, page 2 fails
	_, err := h.fetch(t, input(employees, "run-1", nil))
	require.Error(t, err)
	h.emu.ExpireCursors() // the saved cursor is now rejected

	res, err := h.fetch(t, input(employees, "run-1", nil))
	require.NoError(t, err)
	require.Equal(t, 1, res.Restarts)
	require.Equal(t, 250, res.Counts.Unchanged, "page 1 again, found unchanged")
	require.Equal(t, 600, res.Counts.Inserted)
	h.requireStoreEqualsTruth(t, employees)
	require.Len(t, h.changeLog(t), 600, "one change row per record, despite the restart")
}

func requireAppError(t *testing.T, err error, typ string, nonRetryable bool) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr, "%v", err)
	require.Equal(t, typ, appErr.Type(), "%v", err)
	require.Equal(t, nonRetryable, appErr.NonRetryable(), "%v", err)
	require.NotContains(t, err.Error(), "key", "the API key never appears")
	return appErr
}

func TestErrorClassesBecomeTypedOutcomes(t *testing.T) {
	t.Parallel()
	emu, clk, base := newEmulator(t)
	h := newHarness(t, emu, clk, base)
	spec := func(id string, pending bool) {
		require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 3, FirstSyncPending: pending}))
	}
	spec("p:pending", true)
	spec("p:invalid", false)
	require.NoError(t, emu.SetState("p:invalid", kombo.IntegrationInvalid))
	spec("p:inactive", false)
	require.NoError(t, emu.SetState("p:inactive", kombo.IntegrationInactive))
	spec("p:ok", false)
	absences := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "absences"}
	timesheets := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "timesheets"}
	require.NoError(t, emu.DisableModel("p:ok", absences, false))
	require.NoError(t, emu.DisableModel("p:ok", timesheets, true))

	run := func(id string, ep kombo.Endpoint, runID string) (activities.FetchEndpointResult, error) {
		in := input(ep, runID, nil)
		in.IntegrationID = id
		return h.fetch(t, in)
	}
	_, err := run("p:pending", employees, "r1")
	requireAppError(t, err, activities.ErrFirstSyncPending, true)
	_, err = run("p:invalid", employees, "r2")
	requireAppError(t, err, activities.ErrAuthFailed, true)
	_, err = run("p:ok", timesheets, "r3")
	requireAppError(t, err, activities.ErrAuthFailed, true)
	_, err = run("p:inactive", employees, "r4")
	requireAppError(t, err, activities.ErrIntegrationUnavailable, true)
	_, err = run("p:gone", employees, "r5")
	appErr := requireAppError(t, err, activities.ErrIntegrationUnavailable, true)
	var details activities.ErrorDetails
	require.NoError(t, appErr.Details(&details))
	require.Equal(t, kombo.CodeIntegrationNotFound, details.Code)

	res, err := run("p:ok", absences, "r6")
	require.NoError(t, err, "a model the integration lacks is skipped, not failed")
	require.Equal(t, store.OutcomeModelUnavailable, res.Outcome)

	emu.QueueFaults(komboemu.FaultRateLimitRetry)
	_, err = run("p:ok", employees, "r7")
	appErr = requireAppError(t, err, activities.ErrRateLimited, false)
	require.Equal(t, 2*time.Second, appErr.NextRetryDelay(), "Retry-After is honoured")
	emu.QueueFaults(komboemu.FaultRateLimit)
	_, err = run("p:ok", employees, "r8")
	appErr = requireAppError(t, err, activities.ErrRateLimited, false)
	require.Zero(t, appErr.NextRetryDelay(), "no Retry-After: the retry policy's backoff")
	for i, f := range []komboemu.Fault{komboemu.FaultServerError, komboemu.FaultRemoteUnavailable, komboemu.FaultDrop, komboemu.FaultBareGateway} {
		emu.QueueFaults(f)
		_, err = run("p:ok", employees, "r9-"+string(rune('a'+i)))
		requireAppError(t, err, activities.ErrKomboUnavailable, false)
	}

	var outcomes []string
	rows, err := h.pool.Query(t.Context(), `select outcome from kombo.fetch_runs where id in ('r1', 'r6', 'r9-d') order by id`)
	require.NoError(t, err)
	for rows.Next() {
		var o string
		require.NoError(t, rows.Scan(&o))
		outcomes = append(outcomes, o)
	}
	require.Equal(t, []string{"failed", "model_unavailable", "running"}, outcomes, "a retryable failure leaves the run open for the retry (until a later full pass of the endpoint abandons it)")
}

// retryingWorkflow runs FetchEndpoint with a retry interval far shorter than Kombo's Retry-After
// and reports how long the pass took in workflow time.
func retryingWorkflow(ctx workflow.Context, in activities.FetchEndpointInput) (time.Duration, error) {
	start := workflow.Now(ctx)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaximumAttempts: 5},
	})
	var acts *activities.Activities
	err := workflow.ExecuteActivity(ctx, acts.FetchEndpoint, in).Get(ctx, nil)
	return workflow.Now(ctx).Sub(start), err
}

func TestRetryAfterIsHonouredByTheRetryPolicy(t *testing.T) {
	t.Parallel()
	h := setup(t, 10)
	h.emu.QueueFaults(komboemu.FaultRateLimitRetry) // Retry-After: 2
	env := h.suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(retryingWorkflow)
	env.RegisterActivity(h.acts)
	env.ExecuteWorkflow(retryingWorkflow, input(employees, "r", nil))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var took time.Duration
	require.NoError(t, env.GetWorkflowResult(&took))
	require.GreaterOrEqual(t, took, 2*time.Second, "the retry waited for Retry-After, not the 10 ms interval")
	h.requireStoreEqualsTruth(t, employees)
}

func TestBadInputIsRejected(t *testing.T) {
	t.Parallel()
	h := setup(t, 1)
	_, err := h.fetch(t, activities.FetchEndpointInput{Endpoint: employees, Kind: store.KindFull})
	requireAppError(t, err, activities.ErrInvalidInput, true)
	in := input(employees, "r", nil)
	in.Kind = "weekly"
	_, err = h.fetch(t, in)
	require.ErrorContains(t, err, "kind must be delta or full")
}

// heartbeatingWorkflow runs one FetchEndpoint attempt with a heartbeat timeout of two seconds.
func heartbeatingWorkflow(ctx workflow.Context, in activities.FetchEndpointInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    2 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var acts *activities.Activities
	return workflow.ExecuteActivity(ctx, acts.FetchEndpoint, in).Get(ctx, nil)
}

// A page slower than the heartbeat timeout does not time the pass out: it heartbeats while it
// waits, so only a dead worker's silence does (FETCH_HEARTBEAT_TIMEOUT).
func TestASlowPageDoesNotTimeOutThePass(t *testing.T) {
	t.Parallel()
	h := setup(t, 300)                                         // 2 pages
	h.emu.SetFaults(komboemu.Faults{Latency: 5 * time.Second}) // 2.5 heartbeat timeouts a page
	env := h.suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	env.RegisterWorkflow(heartbeatingWorkflow)
	env.RegisterActivity(h.acts)
	env.ExecuteWorkflow(heartbeatingWorkflow, input(employees, "slow", nil))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	h.requireStoreEqualsTruth(t, employees)
}
