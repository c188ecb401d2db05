//go:build bench

package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/workflows"
)

// The scale run: integrations × one data-changed each per minute, for a while, on one worker.
func scaleSettings() (integrations int, duration time.Duration) {
	integrations, duration = 1000, 10*time.Minute
	if v, err := strconv.Atoi(os.Getenv("BENCH_SCALE_INTEGRATIONS")); err == nil && v > 0 {
		integrations = v
	}
	if v, err := time.ParseDuration(os.Getenv("BENCH_SCALE_DURATION")); err == nil && v > 0 {
		duration = v
	}
	return integrations, duration
}

// 7 and 8. 1,000 integrations, each sent a data-changed per minute for ten minutes, on one
// worker (employees only, so the load is integrations, not endpoints); then how a workflow's
// history grows per round and how many rounds a run holds before it continues as new.
func benchScale(t *testing.T) {
	n, duration := scaleSettings()
	s := newStack(t, stackOptions{worker: true, workerEnv: []string{"KOMBO_ENDPOINTS=hris/employees"}})
	ctx := t.Context()
	ids := make([]string, n)
	for k := range ids {
		ids[k] = fmt.Sprintf("personio:scale-%04d", k)
		must(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: ids[k], Category: kombo.CategoryHRIS, Records: 5, Seed: uint64(k), Notify: true}))
	}
	setupStart := time.Now()
	s.waitBackfilled(t, n, 10*time.Minute)
	setup := time.Since(setupStart)
	sample := ids[:min(20, n)]
	before := s.historyAndRounds(ctx, t, sample)

	// The load: one integration after the other, evenly spread, each once per minute.
	type point struct {
		at         time.Duration
		busy       int
		rss        float64
		unsignaled int
	}
	var points []point
	every := time.Minute / time.Duration(n)
	tick := time.NewTicker(every)
	sampleTick := time.NewTicker(30 * time.Second)
	loadStart := time.Now()
	sent := 0
	for time.Since(loadStart) < duration {
		select {
		case <-tick.C:
			_, err := s.Emu.Mutate(ids[sent%n], komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
			must(t, err)
			sent++
		case <-sampleTick.C:
			var unsignaled int
			must(t, s.Pool.QueryRow(ctx, `select count(*) from kombo.webhook_events where signaled_at is null`).Scan(&unsignaled))
			points = append(points, point{at: time.Since(loadStart), busy: s.busy(ctx), rss: s.Worker.RSSMiB(), unsignaled: unsignaled})
		}
	}
	tick.Stop()
	sampleTick.Stop()
	loadTook := time.Since(loadStart)
	drainStart := time.Now()
	must(t, s.Emu.WaitWebhooks(ctx))
	s.waitIdle(t, 5*time.Minute)
	drain := time.Since(drainStart)
	wrong := s.wrongIntegrations(t, ids)
	after := s.historyAndRounds(ctx, t, sample)
	lag := histogramQuantile(t, s.MetricsURL+"/metrics", "kombosync_sync_lag_seconds")
	lagP50, lagP95 := lag(0.5), lag(0.95)

	var busyFirst, busySecond, maxBusy int
	var maxRSS float64
	for k, p := range points {
		if k < len(points)/2 {
			busyFirst += p.busy
		} else {
			busySecond += p.busy
		}
		maxBusy, maxRSS = max(maxBusy, p.busy), max(maxRSS, p.rss)
	}
	half := max(1, len(points)/2)
	avgFirst, avgSecond := float64(busyFirst)/float64(half), float64(busySecond)/float64(max(1, len(points)-half))
	flat := avgSecond <= avgFirst*1.5+5
	var trace []string
	for _, p := range points {
		trace = append(trace, fmt.Sprintf("%s: %d busy, %.0f MiB", p.at.Round(time.Second), p.busy, p.rss))
	}
	eventsPerRound := float64(after.events-before.events) / math.Max(1, float64(after.rounds-before.rounds))
	record(figure{N: 7, Title: fmt.Sprintf("Scale: %s integrations × 1 data-changed/min for %s on one worker", num(float64(n)), duration),
		Result: fmt.Sprintf("%s changes sent (%.0f/min); integrations busy at a time: avg %.1f (first half) → %.1f (second half), max %d; "+
			"drained %s after the load; %d integrations differing from Kombo at the end; worker RSS max %.0f MiB; sync lag p50 %s, p95 %s; "+
			"%.1f history events per delta round",
			num(float64(sent)), float64(sent)/loadTook.Minutes(), avgFirst, avgSecond, maxBusy, drain.Round(time.Second), wrong, maxRSS,
			sec(lagP50), sec(lagP95), eventsPerRound),
		Goal: "backlog flat, every change lands, memory reported", Met: flat && wrong == 0,
		Note: fmt.Sprintf("One worker process (defaults, `KOMBO_ENDPOINTS=hris/employees`), the gateway, and the emulator sending a "+
			"webhook for every change (each integration changes once a minute, below Kombo's 30 s coalescing). Backfilling the %s "+
			"integrations took %s first. \"Busy\" is the number of `IntegrationSync` workflows debouncing or syncing "+
			"(`KomboSyncState` in visibility), sampled every 30 s: %s. In a steady state it is the arrival rate times the "+
			"time each change keeps its workflow busy: since the leading edge only the fetch round (≈0.15 s; 1,000/min × 0.15 s ≈ 2.5), before it the 5 s quiet window too (≈87 busy); flat "+
			"means the worker keeps up. \"Differing\" compares every stored employee with the "+
			"emulator's truth after the drain. The lag is `kombosync_sync_lag_seconds` from the worker, estimated from its buckets. "+
			"Events per round from the histories of %d of the workflows before and after the load.",
			num(float64(n)), setup.Round(time.Second), strings.Join(trace, "; "), len(sample))})

	benchHistory(t, s, ids[0])
}

// waitBackfilled waits until n integrations have synced hris/employees once and every workflow
// is idle again.
func (s *stack) waitBackfilled(t *testing.T, n int, within time.Duration) {
	t.Helper()
	teststack.Eventually(t, within, func() string {
		synced := s.Count(t, `select count(*) from kombo.watermarks where endpoint = 'hris/employees' and updated_after is not null`)
		if synced == n {
			return ""
		}
		return fmt.Sprintf("%d of %d integrations backfilled", synced, n)
	})
	s.waitIdle(t, 2*time.Minute)
}

// busy counts the stack's integration workflows debouncing or syncing (other parts' workflows,
// whose workers are gone, are left out).
func (s *stack) busy(ctx context.Context) int {
	res, err := s.Temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: s.busyQuery()})
	if err != nil {
		return -1
	}
	return int(res.Count)
}

func (s *stack) busyQuery() string {
	return fmt.Sprintf(`WorkflowType = %q AND TaskQueue = %q AND ExecutionStatus = "Running" AND KomboSyncState IN ("debouncing", "syncing")`,
		workflows.IntegrationSyncType, s.TaskQueue)
}

// waitIdle waits until no integration workflow is busy, and says which are when it gives up.
func (s *stack) waitIdle(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.busy(t.Context()) != 0 {
		if time.Now().After(deadline) {
			it, err := s.Temporal.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{PageSize: 5, Query: s.busyQuery()})
			if err == nil {
				for _, e := range it.Executions {
					st, err := s.Status(t, strings.TrimPrefix(e.Execution.WorkflowId, "kombo-integration:"))
					t.Logf("busy: %s %+v %v", e.Execution.WorkflowId, st, err)
				}
			}
			t.Fatalf("%d integration workflows still busy after %s", s.busy(t.Context()), within)
		}
		time.Sleep(time.Second) // polling visibility
	}
}

type growth struct{ events, rounds int }

// historyAndRounds sums the history lengths and rounds of the integrations' current runs.
func (s *stack) historyAndRounds(ctx context.Context, t *testing.T, ids []string) growth {
	t.Helper()
	var g growth
	for _, id := range ids {
		d, err := s.Temporal.DescribeWorkflowExecution(ctx, workflows.IntegrationWorkflowID(id), "")
		must(t, err)
		st, err := s.Status(t, id)
		must(t, err)
		g.events += int(d.WorkflowExecutionInfo.HistoryLength)
		g.rounds += st.RoundsThisRun
	}
	return g
}

// wrongIntegrations counts the integrations whose stored employees differ from the emulator's.
func (s *stack) wrongIntegrations(t *testing.T, ids []string) int {
	t.Helper()
	wrong := 0
	for _, id := range ids {
		if s.Diff(t, id, employees) != "" {
			wrong++
		}
	}
	return wrong
}

// histogramQuantile scrapes a Prometheus histogram (summed over its series) and returns its
// quantile function, estimated from the buckets, interpolating linearly within a bucket.
func histogramQuantile(t *testing.T, url, name string) func(q float64) time.Duration {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	must(t, err)
	f := fams[name]
	if f == nil {
		return func(float64) time.Duration { return 0 }
	}
	cum := map[float64]uint64{}
	var total uint64
	var bounds []float64
	for _, m := range f.Metric {
		h := m.GetHistogram()
		total += h.GetSampleCount()
		for _, b := range h.Bucket {
			if _, ok := cum[b.GetUpperBound()]; !ok {
				bounds = append(bounds, b.GetUpperBound())
			}
			cum[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	slices.Sort(bounds)
	return func(q float64) time.Duration {
		want := q * float64(total)
		lower, below := 0.0, uint64(0)
		for _, ub := range bounds {
			if float64(cum[ub]) >= want {
				frac := (want - float64(below)) / math.Max(1, float64(cum[ub]-below))
				return time.Duration((lower + frac*(ub-lower)) * float64(time.Second))
			}
			lower, below = ub, cum[ub]
		}
		return time.Duration(lower * float64(time.Second))
	}
}

// 8. How a workflow's history grows per delta round, and how many rounds one run holds before it
// continues as new: one integration driven round after round with sync-now.
func benchHistory(t *testing.T, s *stack, id string) {
	ctx := t.Context()
	wfID := workflows.IntegrationWorkflowID(id)
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
	must(t, err)
	firstRun := d.WorkflowExecutionInfo.Execution.RunId
	st, err := s.Status(t, id)
	must(t, err)
	startRounds, startEvents := st.RoundsThisRun, int(d.WorkflowExecutionInfo.HistoryLength)
	var rounds, events int
	for k := 0; k < 300; k++ {
		must(t, workflows.SignalWithStart(ctx, s.Temporal, s.TaskQueue, id, "", "", workflows.SignalSyncNow, workflows.SyncNowRequest{Reason: "bench"}))
		var now workflows.Status
		var nowRun string
		teststack.Eventually(t, time.Minute, func() string {
			d, err := s.Temporal.DescribeWorkflowExecution(ctx, wfID, "")
			if err != nil {
				return err.Error()
			}
			nowRun = d.WorkflowExecutionInfo.Execution.RunId
			if now, err = s.Status(t, id); err != nil {
				return err.Error()
			}
			if nowRun != firstRun || (now.RoundsThisRun > st.RoundsThisRun && now.State == workflows.StateIdle) {
				return ""
			}
			return "no round finished yet"
		})
		if nowRun != firstRun {
			// The previous run closed: its whole history and rounds.
			prev, err := s.Temporal.DescribeWorkflowExecution(ctx, wfID, firstRun)
			must(t, err)
			events = int(prev.WorkflowExecutionInfo.HistoryLength)
			rounds = st.RoundsThisRun + 1
			break
		}
		st = now
	}
	if rounds == 0 {
		t.Fatalf("no continue-as-new after 300 rounds")
	}
	perRound := float64(events-startEvents) / float64(max(1, rounds-startRounds))
	record(figure{N: 8, Title: "Workflow history growth",
		Result: fmt.Sprintf("%.1f events per delta round; a run continued as new after %d rounds with %s events", perRound, rounds, num(float64(events))),
		Goal:   "reported", Met: true,
		Note: "One integration driven with `sync-now`, a round at a time, until its run continued as new: the run's history " +
			"length and rounds at that moment (`IntegrationSync` continues as new after 100 rounds, 2,000 events or when Temporal " +
			"suggests it, well below Temporal's 51,200-event limit). A round started by a webhook costs more, as figure 7 shows: " +
			"the signal, the debounce timer (started, fired), and the extra workflow task and recorded state change they bring."})
}
