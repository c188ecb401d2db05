package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/testsuite"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/migrations"
	"github.com/kombosync/kombosync/workflows"
)

// LongDurabilityEnv, set to 1, runs the durability test's long variant: more waves of changes,
// more records and many more worker kills (about 10 minutes instead of about 2).
const LongDurabilityEnv = "KOMBOSYNC_LONG_DURABILITY"

// TestNothingIsLostOrAppliedTwiceUnderCrashesAndFaults runs the whole product on a Postgres
// cluster and a Temporal dev server of its own (so it may crash and restart them) while:
//   - a monkey SIGKILLs the worker at random points while fetches run, and restarts it;
//   - the Kombo API fails: 5xx, 429 with Retry-After, connections cut mid-answer, latency, and
//     cursors that expire;
//   - webhooks are duplicated, reordered and partly lost;
//   - Postgres crashes (immediate shutdown) and the Temporal dev server restarts on its SQLite
//     file while changes are in flight.
//
// Changes come in waves, each one atomic batch per integration, and the stack is brought in step
// after each (by its webhooks, or by an operator's sync-now when they were lost); the last wave's
// webhooks are all lost and only the reconciliation repairs it. At the end Postgres equals the
// emulator's truth record for record, and the change feed holds exactly the changes between the
// wave snapshots: one row per record that changed, with the right op, none twice.
func TestNothingIsLostOrAppliedTwiceUnderCrashesAndFaults(t *testing.T) {
	t.Parallel()
	waves, hrisRecords, atsRecords := 6, 1500, 400
	if os.Getenv(LongDurabilityEnv) == "1" {
		waves, hrisRecords, atsRecords = 25, 4000, 1500
	}
	infra := startCrashableInfra(t)
	s := newStack(t, teststack.Options{DatabaseURL: infra.databaseURL, TemporalAddress: infra.temporalAddress,
		Webhooks:  komboemu.WebhookOptions{Retries: 8}, // Kombo keeps retrying; 8 doublings from 100 ms span ~50 s
		WorkerEnv: teststack.Env("FETCH_HEARTBEAT_TIMEOUT", "2s", "LOG_LEVEL", "info")})
	ids := map[string]kombo.Category{"personio:e2e-durable": kombo.CategoryHRIS, "greenhouse:e2e-durable": kombo.CategoryATS}
	for id, cat := range ids {
		n := hrisRecords
		if cat == kombo.CategoryATS {
			n = atsRecords
		}
		require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: cat, Records: n, Seed: 21, Notify: true}))
	}
	require.NoError(t, s.Emu.WaitWebhooks(t.Context())) // integration-created reaches us: nothing else would tell
	faults := komboemu.Faults{ErrorRate: 0.03, RateLimitRate: 0.03, RetryAfter: time.Second, DropRate: 0.03,
		Latency: 15 * time.Millisecond, Webhooks: komboemu.WebhookFaults{LossRate: 0.2, DuplicateRate: 0.3, MaxReorder: 300 * time.Millisecond}}
	s.Emu.SetFaults(faults)

	m := startMonkey(t, s, infra)
	defer m.halt()
	t.Cleanup(func() {
		if t.Failed() {
			s.logOpenWorkflows(t)
		}
	})

	// The backfill, with the worker killed under it.
	for id, cat := range ids {
		s.WaitInSync(t, id, cat, 5*time.Minute)
	}
	snaps := []map[string]truthSnapshot{snapshot(t, s, ids)}

	for w := 1; w <= waves; w++ {
		last := w == waves
		if last {
			lost := faults
			lost.Webhooks.LossRate = 1
			s.Emu.SetFaults(lost)
		}
		mutate := func() {
			for id, cat := range ids {
				_, err := s.Emu.MutateRandom(id, 15)
				require.NoError(t, err)
				// Real HR data is messy: every wave adds two messy records (raw escapes, bytes that
				// are not UTF-8, a 300 KB field, a record twice in its page).
				for k := range 2 {
					_, err := s.Emu.Make(id, messyEndpoint[cat], "", storableMesses[(2*w+k)%len(storableMesses)])
					require.NoError(t, err)
				}
			}
		}
		if w%3 == 0 {
			s.Emu.ExpireCursors()
		}
		switch {
		case w == 2:
			m.crashPostgres(mutate) // its webhooks meet the gateway without a database
		case w == 4:
			m.restartTemporal(mutate) // its webhooks meet the gateway unable to signal
		default:
			mutate()
		}
		for id, cat := range ids {
			switch {
			case last:
				require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
				s.Emu.SetFaults(faults)
				s.Starter(t, "integration", "reconcile", id)
			case !s.inSyncWithin(t, id, cat, 10*time.Second):
				s.Starter(t, "integration", "sync", id) // its webhook was lost: an operator's sync-now
			}
			s.WaitInSync(t, id, cat, 5*time.Minute)
		}
		snaps = append(snaps, snapshot(t, s, ids))
	}
	kills := m.halt()
	s.Emu.SetFaults(komboemu.Faults{})
	for id := range ids {
		s.WaitState(t, id, workflows.StateIdle, 2*time.Minute)
	}
	t.Logf("%d waves, worker killed %d times, Postgres crashed once, Temporal restarted once", waves, kills)
	require.GreaterOrEqual(t, kills, 3, "the monkey must have struck during fetches")

	for id := range ids {
		require.Empty(t, s.FirstDiff(t, id, ids[id]), "Postgres equals Kombo's truth")
		requireChangeFeedMatches(t, s, id, snaps)
	}
	s.requireInboxComplete(t)
}

// storableMesses are the messes kombosync stores (sanitised); MessBroken's records are set aside,
// which the truth comparison does not cover.
var storableMesses = []komboemu.Mess{komboemu.MessNUL, komboemu.MessSurrogate, komboemu.MessInvalidUTF8, komboemu.MessHuge,
	komboemu.MessDuplicate}

var messyEndpoint = map[kombo.Category]kombo.Endpoint{
	kombo.CategoryHRIS: {Category: kombo.CategoryHRIS, Name: "employees"},
	kombo.CategoryATS:  {Category: kombo.CategoryATS, Name: "candidates"},
}

// crashableInfra is a Postgres cluster and a Temporal dev server owned by one test.
type crashableInfra struct {
	pg              *localstack.Postgres
	databaseURL     string
	temporalAddress string
	temporal        *testsuite.DevServer
	temporalOpts    testsuite.DevServerOptions
	temporalLog     *teststack.Tail
}

func startCrashableInfra(t *testing.T) *crashableInfra {
	t.Helper()
	ctx := t.Context()
	dir, err := os.MkdirTemp("", "kombosync-durability-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755)) // the cluster may run as the postgres user
	t.Cleanup(func() { os.RemoveAll(dir) })

	pgPort, err := localstack.FreePort()
	require.NoError(t, err)
	// Durable settings (fsync, synchronous commit): a crash must lose no committed transaction.
	infra := &crashableInfra{pg: &localstack.Postgres{Root: filepath.Join(dir, "pg"), Port: pgPort}}
	require.NoError(t, infra.pg.Start(ctx))
	t.Cleanup(func() { _ = infra.pg.Stop(context.Background()) })
	require.NoError(t, infra.pg.CreateDatabase(ctx, "kombosync"))
	infra.databaseURL = infra.pg.URL("kombosync")
	_, err = migrations.Apply(ctx, infra.databaseURL)
	require.NoError(t, err)

	tPort, err := localstack.FreePort()
	require.NoError(t, err)
	infra.temporalAddress = "127.0.0.1:" + strconv.Itoa(tPort)
	infra.temporalLog = teststack.NewTail(1 << 20)
	infra.temporalOpts, err = testenv.DevServerOptions(infra.temporalAddress, filepath.Join(dir, "temporal.db"), infra.temporalLog)
	require.NoError(t, err)
	infra.startTemporal(t)
	t.Cleanup(func() {
		if infra.temporal != nil {
			_ = infra.temporal.Stop()
		}
		if t.Failed() {
			t.Logf("temporal dev server errors:\n%s", infra.temporalLog.String())
		}
	})
	return infra
}

func (in *crashableInfra) startTemporal(t *testing.T) {
	t.Helper()
	srv, err := testsuite.StartDevServer(t.Context(), in.temporalOpts)
	require.NoError(t, err)
	in.temporal = srv
}

// monkey kills the worker at random moments while a fetch runs, restarts it, and keeps it
// running across the infrastructure's restarts.
type monkey struct {
	t     *testing.T
	s     *stack
	infra *crashableInfra
	mu    sync.Mutex // held by the monkey while it strikes, and while the infrastructure restarts
	kills int
	stop  chan struct{}
	done  chan struct{}
}

func startMonkey(t *testing.T, s *stack, infra *crashableInfra) *monkey {
	m := &monkey{t: t, s: s, infra: infra, stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

func (m *monkey) run() {
	defer close(m.done)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	quietUntil := time.Now().Add(time.Second)
	for {
		select {
		case <-m.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		m.mu.Lock()
		m.keepWorkerRunning()
		if time.Now().After(quietUntil) && m.fetchRunning() {
			time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
			m.s.Worker.Kill()
			m.kills++
			m.s.Worker = teststack.Start(m.t, "worker", m.s.WorkerEnv)
			// Leave the restarted worker time to take the fetch over and commit pages, so that
			// passes progress between strikes.
			quietUntil = time.Now().Add(4*time.Second + time.Duration(rng.IntN(4000))*time.Millisecond)
		}
		m.mu.Unlock()
	}
}

// keepWorkerRunning restarts a worker that exited on its own (it refuses to start while
// Postgres or Temporal is down).
func (m *monkey) keepWorkerRunning() {
	select {
	case <-m.s.Worker.Done():
		time.Sleep(300 * time.Millisecond)
		m.s.Worker = teststack.Start(m.t, "worker", m.s.WorkerEnv)
	default:
	}
}

func (m *monkey) fetchRunning() bool {
	ctx, cancel := context.WithTimeout(m.t.Context(), time.Second)
	defer cancel()
	var running bool
	err := m.s.Pool.QueryRow(ctx, `select exists(select from kombo.fetch_runs where outcome = 'running')`).Scan(&running)
	return err == nil && running
}

// crashPostgres crashes the cluster, runs during, and starts it again two seconds later.
func (m *monkey) crashPostgres(during func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	require.NoError(m.t, m.infra.pg.Crash(m.t.Context()))
	during()
	time.Sleep(2 * time.Second)
	require.NoError(m.t, m.infra.pg.Start(m.t.Context()))
	m.s.Pool.Reset() // the test's own connections died with the server
}

// restartTemporal stops the dev server, runs during, and starts the server again on the same
// SQLite file three seconds later.
func (m *monkey) restartTemporal(during func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	require.NoError(m.t, m.infra.temporal.Stop())
	m.infra.temporal = nil
	during()
	time.Sleep(3 * time.Second)
	m.infra.startTemporal(m.t)
}

// halt stops the monkey (once) and returns how many times it killed the worker.
func (m *monkey) halt() int {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keepWorkerRunning()
	return m.kills
}

// truthSnapshot is every record of an integration at one moment: endpoint → id → record.
type truthSnapshot map[string]map[string]komboemu.TruthRecord

func snapshot(t *testing.T, s *stack, ids map[string]kombo.Category) map[string]truthSnapshot {
	t.Helper()
	out := map[string]truthSnapshot{}
	for id, cat := range ids {
		snap := truthSnapshot{}
		for _, ep := range kombo.DefaultEndpoints() {
			if ep.Category != cat {
				continue
			}
			truth, err := s.Emu.Truth(id, ep)
			require.NoError(t, err)
			snap[ep.String()] = map[string]komboemu.TruthRecord{}
			for _, r := range truth {
				snap[ep.String()][r.ID] = r
			}
		}
		out[id] = snap
	}
	return out
}

// expectedOp is the change row the store must write when a record goes from prev to next
// between two sync points ("" for none), by the contract of kombo.changes.
func expectedOp(prev, next *komboemu.TruthRecord) string {
	switch {
	case next == nil:
		return "" // the tests never let Kombo forget a record
	case prev == nil && next.RemoteDeletedAt != nil:
		return "deleted"
	case prev == nil:
		return "created"
	case teststack.JSONEqual(kombo.Sanitize(prev.Data), kombo.Sanitize(next.Data)):
		return "" // equal as stored
	case prev.RemoteDeletedAt != nil && next.RemoteDeletedAt == nil:
		return "restored"
	case prev.RemoteDeletedAt == nil && next.RemoteDeletedAt != nil:
		return "deleted"
	default:
		return "updated"
	}
}

// requireChangeFeedMatches checks the integration's change feed against the snapshots: for
// every record, exactly the ops of the transitions between consecutive snapshots, in order.
func requireChangeFeedMatches(t *testing.T, s *stack, id string, snaps []map[string]truthSnapshot) {
	t.Helper()
	want := map[string][]string{} // endpoint|record → ops
	var prev truthSnapshot
	for _, snap := range snaps {
		for ep, recs := range snap[id] {
			for rid, r := range recs {
				var p *komboemu.TruthRecord
				if old, ok := prev[ep][rid]; ok {
					p = &old
				}
				if op := expectedOp(p, &r); op != "" {
					want[ep+"|"+rid] = append(want[ep+"|"+rid], op)
				}
			}
		}
		prev = snap[id]
	}
	rows, err := s.Pool.Query(t.Context(), `select endpoint, record_id, op from kombo.changes where integration_id = $1 order by seq`, id)
	require.NoError(t, err)
	got := map[string][]string{}
	total := 0
	for rows.Next() {
		var ep, rid, op string
		require.NoError(t, rows.Scan(&ep, &rid, &op))
		got[ep+"|"+rid] = append(got[ep+"|"+rid], op)
		total++
	}
	require.NoError(t, rows.Err())
	wantTotal := 0
	for key, ops := range want {
		wantTotal += len(ops)
		require.Equal(t, ops, got[key], "change rows of %s %s", id, key)
	}
	for key, ops := range got {
		require.Contains(t, want, key, "change rows %v of %s %s, which never changed", ops, id, key)
	}
	require.Equal(t, wantTotal, total)
	t.Logf("%s: %d change rows, exactly the %d real changes", id, total, wantTotal)
}

// requireInboxComplete: every webhook the emulator got a 2xx for is in the inbox, and every
// stored event needing a signal was signaled, including those that arrived while Temporal was
// down; at least one did.
func (s *stack) requireInboxComplete(t *testing.T) {
	t.Helper()
	teststack.Eventually(t, time.Minute, func() string {
		if n := s.Count(t, `select count(*) from kombo.webhook_events where signaled_at is null`); n > 0 {
			return fmt.Sprintf("%d events never signaled", n)
		}
		return ""
	})
	acked := 0
	for _, d := range s.Emu.Deliveries() {
		if d.Lost || d.Status < 200 || d.Status > 299 {
			continue
		}
		acked++
		require.Equal(t, 1, s.Count(t, `select count(*) from kombo.webhook_events where id = $1`, d.ID), "acknowledged event %s is stored", d.ID)
	}
	require.Positive(t, acked)
	require.Positive(t, s.Count(t, `select count(*) from kombo.webhook_events where signal_attempts > 0 or last_error is not null`),
		"some events met Temporal down and were signaled later")
}

// logOpenWorkflows logs the stack's open workflows and their pending activities, to explain a
// failure.
func (s *stack) logOpenWorkflows(t *testing.T) {
	ctx := context.Background()
	resp, err := s.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: `TaskQueue = "` + s.TaskQueue + `" AND ExecutionStatus = "Running"`})
	if err != nil {
		t.Logf("list open workflows: %v", err)
		return
	}
	for _, e := range resp.Executions {
		d, err := s.Temporal.DescribeWorkflowExecution(ctx, e.Execution.WorkflowId, e.Execution.RunId)
		if err != nil {
			t.Logf("describe %s: %v", e.Execution.WorkflowId, err)
			continue
		}
		t.Logf("open: %s (%d history events, pending workflow task: %v)", e.Execution.WorkflowId,
			d.WorkflowExecutionInfo.HistoryLength, d.PendingWorkflowTask)
		for _, a := range d.PendingActivities {
			t.Logf("  activity %s %s: state %s, attempt %d, scheduled %v, last started %v, last heartbeat %v, last failure %v",
				a.ActivityId, a.ActivityType.GetName(), a.State, a.Attempt, a.ScheduledTime.AsTime(), a.LastStartedTime.AsTime(),
				a.LastHeartbeatTime.AsTime(), a.LastFailure.GetMessage())
		}
	}
}

// inSyncWithin reports whether the category equals the truth within d.
func (s *stack) inSyncWithin(t *testing.T, id string, cat kombo.Category, d time.Duration) bool {
	t.Helper()
	return teststack.Poll(t, d, func() string { return s.FirstDiff(t, id, cat) }) == ""
}
