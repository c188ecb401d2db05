//go:build bench

package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

// budgetSettings: the integrations of figure 11 and the fleet's cap on Kombo requests.
func budgetSettings() (integrations int, rps float64) {
	integrations, rps = 1000, 20
	if v, err := strconv.Atoi(os.Getenv("BENCH_BUDGET_INTEGRATIONS")); err == nil && v > 0 {
		integrations = v
	}
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_BUDGET_RPS"), 64); err == nil && v > 0 {
		rps = v
	}
	return integrations, rps
}

// 11. The weekly reconciliation of 1,000 integrations with KOMBO_MAX_RPS set: the schedule's own
// workflow (its default batches: 100 integrations, then 10 s), started with `starter schedule
// trigger`, ends when every integration's full pass has finished. The emulator notes when each
// request arrives: the most in any second against the cap, and how long it all took.
func benchBudget(t *testing.T) {
	n, rps := budgetSettings()
	s := newStack(t, stackOptions{worker: true, workerEnv: []string{"KOMBO_ENDPOINTS=hris/employees", "KOMBO_MAX_RPS=" + fmt.Sprint(rps)}})
	ctx := t.Context()
	for k := range n {
		must(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: fmt.Sprintf("personio:budget-%04d", k), Category: kombo.CategoryHRIS,
			Records: 20, Seed: uint64(k), Notify: true}))
	}
	s.waitBackfilled(t, n, 15*time.Minute)
	backfill := s.Emu.RequestTimes()

	s.Starter(t, "schedule", "apply")
	var triggeredAt time.Time
	must(t, s.Pool.QueryRow(ctx, `select now()`).Scan(&triggeredAt))
	start := time.Now()
	s.Starter(t, "schedule", "trigger")
	full := func() int {
		return s.Count(t, `select count(distinct integration_id) from kombo.fetch_runs
			where kind = 'full' and outcome = 'succeeded' and started_at >= $1`, triggeredAt)
	}
	teststack.Eventually(t, 20*time.Minute, func() string {
		if done := full(); done < n {
			return fmt.Sprintf("%d of %d full passes finished", done, n)
		}
		return ""
	})
	took := time.Since(start)
	var times []time.Time
	for _, at := range s.Emu.RequestTimes() {
		if !at.Before(start) {
			times = append(times, at)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	peak1, peak10 := peakIn(times, time.Second), peakIn(times, 10*time.Second)
	busy := times[len(times)-1].Sub(times[0])
	slices.SortFunc(backfill, func(a, b time.Time) int { return a.Compare(b) })
	backfillPeak := peakIn(backfill, time.Second)
	perSecond := perSecondCounts(times)
	met := float64(peak1) <= rps+2 && float64(peak10) <= rps*10+2

	record(figure{N: 11, Title: fmt.Sprintf("Kombo's budget: the weekly reconciliation of %s integrations at `KOMBO_MAX_RPS=%g`", num(float64(n)), rps),
		Result: fmt.Sprintf("%s requests in %s (%.1f/s on average while requests ran, %s from the trigger to the last full pass); peak %d in any second, %d in any 10 s; the backfill before it: peak %d/s",
			num(float64(len(times))), busy.Round(time.Second), float64(len(times)-1)/busy.Seconds(), took.Round(time.Second), peak1, peak10, backfillPeak),
		Goal: fmt.Sprintf("never above the cap: ≤ %g in a second (+2 for arrival jitter), ≤ %g in 10 s (+2)", rps, rps*10), Met: met,
		Note: fmt.Sprintf("One worker (defaults, `KOMBO_ENDPOINTS=hris/employees`, `KOMBO_MAX_RPS=%g`), %s integrations of 20 "+
			"employees, backfilled first under the same cap. `starter schedule apply` and `trigger` launch the weekly `Reconcile` "+
			"with its defaults (batches of 100 integrations, 10 s apart); it asks Kombo for each integration's state "+
			"(`GET /integrations/{id}`) and signals it, and each integration runs a full pass (one page here). The figure "+
			"ends when every integration has a succeeded full pass started after the trigger. The emulator timestamps every "+
			"API request on arrival; \"peak\" is the most in any sliding window. Requests per second, second by second: %s. "+
			"The quiet seconds are the schedule's batch pause: the next batch is asked 10 s after the last was, while a batch's "+
			"200 requests (100 state checks, 100 pages) take 10 s at this cap; with a cap set the pause only adds time, and "+
			"`starter schedule apply --batch-pause 1s` leaves the spreading to the cap. "+
			"The cap is a slot every 1/`KOMBO_MAX_RPS` s taken in Postgres (`kombo.request_pacing`) by whichever worker asks "+
			"next, so it holds for a fleet (e2e `TestKomboRequestCapHoldsAcrossWorkers`); a window can hold one slot more at "+
			"its edge and arrivals jitter by the worker's scheduling. At this cap a week's reconciliation of %s integrations "+
			"needs about %s of Kombo's budget per endpoint; each more endpoint adds a request per page.",
			rps, num(float64(n)), compactCounts(perSecond), num(float64(n)), (time.Duration(float64(len(times))/rps) * time.Second).Round(time.Second))})
}

// perSecondCounts counts the sorted times per whole second since the first.
func perSecondCounts(times []time.Time) []int {
	if len(times) == 0 {
		return nil
	}
	counts := make([]int, int(times[len(times)-1].Sub(times[0])/time.Second)+1)
	for _, at := range times {
		counts[int(at.Sub(times[0])/time.Second)]++
	}
	return counts
}

// compactCounts writes runs of equal counts once: "20×12, 0×9, 19, 20×40".
func compactCounts(counts []int) string {
	var parts []string
	for i := 0; i < len(counts); {
		j := i
		for j < len(counts) && counts[j] == counts[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%d×%d", counts[i], j-i))
		} else {
			parts = append(parts, strconv.Itoa(counts[i]))
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

// peakIn is the most of the sorted times that fall within any window.
func peakIn(times []time.Time, window time.Duration) int {
	peak := 0
	for i, j := 0, 0; i < len(times); i++ {
		for j < len(times) && times[j].Sub(times[i]) < window {
			j++
		}
		peak = max(peak, j-i)
	}
	return peak
}
