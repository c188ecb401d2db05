//go:build bench

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/webhookgw"
	"github.com/kombosync/kombosync/workflows"
)

const (
	senders         = 32
	gatewayRequests = 6_000
	gatewayTargets  = 500 // integrations the webhooks are spread over
)

// 5. The gateway's throughput and latency at 32 concurrent senders, against a bare client's
// SignalWithStartWorkflow on the same dev server. No worker polls: only the front door is measured.
func benchGateway(t *testing.T) {
	s := newStack(t, stackOptions{})
	ctx := t.Context()

	cpu0, self0 := machineCPU(), processCPU()
	raw := concurrently(gatewayRequests, func(i int) error {
		id := fmt.Sprintf("personio:raw-%d", i%gatewayTargets)
		ev := workflows.KomboEvent{ID: fmt.Sprintf("raw-%d", i), Type: kombo.EventDataChanged, IntegrationID: id,
			Tool: "personio", Category: "HRIS", ReceivedAt: time.Now(), ChangedModels: []string{"hris_employees"}}
		return workflows.SignalWithStart(ctx, s.Temporal, s.TaskQueue+"-raw", id, "personio", "HRIS", workflows.SignalKomboEvent, ev)
	})
	rawBusy, rawClient := machineCPU().busyShareSince(cpu0), (processCPU()-self0).Seconds()/gatewayRequests
	cpu1, gwCPU0 := machineCPU(), s.Gateway.CPUSeconds()
	post := poster(t, s.GatewayURL)
	gw := concurrently(gatewayRequests, func(i int) error { return post(fmt.Sprintf("gw-%d", i), i) })
	gwBusy, gwCPU := machineCPU().busyShareSince(cpu1), s.Gateway.CPUSeconds()-gwCPU0
	var stored int
	must(t, s.Pool.QueryRow(ctx, `select count(*) from kombo.webhook_events where signaled_at is not null`).Scan(&stored))
	if stored != gatewayRequests {
		t.Fatalf("%d of %d webhooks stored and signaled", stored, gatewayRequests)
	}
	ratio := gw.rate / raw.rate
	f5 := figure{N: 5, Title: "Webhook gateway at 32 concurrent senders vs raw SignalWithStartWorkflow",
		Result: fmt.Sprintf("gateway %s req/s, p50 %s, p99 %s; raw %s signals/s (p50 %s, p99 %s): **%.0f%%**",
			num(gw.rate), ms(gw.p50), ms(gw.p99), num(raw.rate), ms(raw.p50), ms(raw.p99), 100*ratio),
		Goal: "≥ 90% of raw", Met: ratio >= 0.9,
		Note: fmt.Sprintf("%s signed `data-changed` webhooks over %d integrations from 32 goroutines to the built gateway "+
			"(verify, store in the inbox, signal-with-start, mark signaled), every one answered 200 and found signaled in "+
			"the inbox; against the same number of `SignalWithStartWorkflow` calls from a bare Go client, 32 at a time, on the "+
			"same dev server, measured first. No worker runs. Machine CPU in use: %.0f%% during the raw run, %.0f%% during the "+
			"gateway run; the gateway process used %.2f ms of CPU per webhook.", num(gatewayRequests), gatewayTargets,
			100*rawBusy, 100*gwBusy, 1000*gwCPU/gatewayRequests)}
	if !f5.Met {
		f5.Note += fmt.Sprintf(" **Why the goal is missed here:** the machine is CPU-bound in both runs (%.0f%% and %.0f%% of its %d "+
			"cores busy), and the dev server, PostgreSQL, the gateway and the 32 senders share those cores. A webhook costs the "+
			"raw path's signal plus the gateway's own work (%.2f ms of CPU: HTTP, HMAC, JSON, the insert and its share of a mark) and PostgreSQL's "+
			"(the inbox insert and the mark), and every millisecond of it is taken from the dev server. The marks of concurrent "+
			"requests already share one statement and Temporal requests go uncompressed, which lowered the gateway's CPU (figure "+
			"10) more than this ratio: commits are not the limit, CPU is. The gap closes where the gateway and PostgreSQL do not share the Temporal server's "+
			"cores, as in any real deployment: the gateway's CPU per webhook allows about %s webhooks/s per core on its own.",
			100*rawBusy, 100*gwBusy, runtime.NumCPU(), 1000*gwCPU/gatewayRequests, num(gatewayRequests/gwCPU))
	}
	record(f5)

	perWebhook := gwCPU / gatewayRequests
	shares := profileGateway(t, s)
	f10 := figure{N: 10, Title: "Webhook gateway's CPU per webhook",
		Result: fmt.Sprintf("**%.2f ms** per webhook; a bare client's `SignalWithStartWorkflow` alone (SDK defaults): %.2f ms", 1000*perWebhook,
			1000*rawClient),
		Goal: "≤ 0.3 ms", Met: perWebhook <= 0.0003,
		Note: fmt.Sprintf("The built gateway's CPU time (user and system, from /proc) during figure 5's run, divided by its %s "+
			"webhooks; beside it, the benchmark process's CPU per signal during the raw run (the bare client's share of the same "+
			"call, with the SDK's default gzip). Where it goes, from a CPU profile of the same gateway code in the benchmark process (the programs' Temporal "+
			"client options, 2,000 webhooks, 32 senders): %s. Requests to Temporal go uncompressed (gzip was a third of the "+
			"signal's gRPC CPU) and concurrent requests' signaled marks share one statement.",
			num(gatewayRequests), sharesText(gatewayParts, shares))}
	if !f10.Met {
		f10.Note += fmt.Sprintf(" **Why the goal is missed here:** the gateway's irreducible work per webhook is one HTTP request "+
			"read and answered, one PostgreSQL round trip to store the event before it is acknowledged, and one Temporal "+
			"round trip to signal it, each a write and a read on a loopback socket. The signal alone costs a bare client "+
			"%.2f ms of CPU here, and on this virtual machine a loopback write costs tens of microseconds of system time "+
			"(most of the profile's syscall time is the kernel delivering to the receiver). What would take it further: "+
			"batching the inbox inserts of concurrent requests as the marks are (one round trip fewer per webhook under load).",
			1000*rawClient)
	}
	record(f10)
}

// gatewayParts are where a webhook's CPU goes in the gateway.
var gatewayParts = []part{
	{"Temporal signal (SDK and gRPC call)", []string{"webhookgw.(*Gateway).signal"}},
	{"inbox insert", []string{"store.(*Store).InsertWebhookEvent"}},
	{"signaled mark", []string{"webhookgw.(*marks).mark"}},
	{"verify and parse", []string{"kombo.Verify", "kombo.ParseEvent"}},
	{"HTTP serving, routing, answer, metrics", []string{"net/http.(*conn).serve"}},
	{"gRPC and pgx connection goroutines", []string{"google.golang.org/grpc", "jackc/pgx"}},
	{"the benchmark's own senders", []string{"bench.concurrently", "net/http.(*persistConn)", "net/http.(*Transport)"}},
	{"garbage collection", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge"}},
	{"scheduler and network poller", []string{"runtime.mcall", "runtime.schedule", "runtime.findRunnable", "runtime.netpoll"}},
}

// profileGateway runs the gateway's code in this process, as the program builds it, under the
// CPU profiler for 2,000 webhooks from 32 senders, and returns the shares of gatewayParts.
func profileGateway(t *testing.T, s *stack) []float64 {
	t.Helper()
	tc, err := service.DialTemporal(t.Context(), &config.Config{TemporalAddress: s.TemporalAddress,
		TemporalNamespace: config.DefaultTemporalNamespace}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	must(t, err)
	defer tc.Close()
	gw, err := webhookgw.New(webhookgw.Options{Secrets: []string{teststack.WebhookSecret}, Store: store.New(s.Pool),
		Temporal: tc, TaskQueue: s.TaskQueue, Registry: prometheus.NewRegistry()})
	must(t, err)
	srv := httptest.NewServer(gw)
	defer srv.Close()
	return profiled(t, gatewayParts, func() {
		post := poster(t, srv.URL)
		concurrently(2_000, func(i int) error { return post(fmt.Sprintf("prof-%d", i), i) })
	})
}

// poster posts signed data-changed webhooks to the gateway at base: event id, for integration
// personio:gw-(i mod gatewayTargets); any answer but 200 is an error.
func poster(t *testing.T, base string) func(id string, i int) error {
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	t.Cleanup(httpc.CloseIdleConnections)
	return func(id string, i int) error {
		body, _ := json.Marshal(map[string]any{"id": id, "type": kombo.EventDataChanged, "data": map[string]any{
			"integration_id": fmt.Sprintf("personio:gw-%d", i%gatewayTargets), "integration_tool": "personio", "integration_category": "HRIS",
			"changed_models": []map[string]string{{"name": "hris_employees"}}}})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+webhookgw.Path, bytes.NewReader(body))
		req.Header.Set(kombo.SignatureHeader, kombo.Sign(teststack.WebhookSecret, body))
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("gateway answered %d", resp.StatusCode)
		}
		return nil
	}
}

type load struct {
	rate     float64
	p50, p99 time.Duration
}

// concurrently runs n calls of f from `senders` goroutines and measures them.
func concurrently(n int, f func(i int) error) load {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := f(i); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if firstErr != nil {
		panic(firstErr)
	}
	slices.Sort(lat)
	return load{rate: float64(n) / took.Seconds(), p50: lat[n/2], p99: lat[n*99/100]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

const (
	freshIntegrations = 20
	freshRounds       = 10 // 200 changes
)

// 6. Freshness: from the data-changed webhook reaching the gateway to the changed rows committed,
// for isolated changes (the leading edge: no quiet window), with the default settings.
func benchFreshness(t *testing.T) {
	s := newStack(t, stackOptions{worker: true})
	ctx := t.Context()
	ids := make([]string, freshIntegrations)
	for k := range ids {
		ids[k] = fmt.Sprintf("personio:fresh-%d", k)
		must(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: ids[k], Category: kombo.CategoryHRIS, Records: 50, Seed: uint64(k), Notify: true}))
	}
	teststack.Eventually(t, 3*time.Minute, func() string { return s.notIdle(t, ids) })

	var mu sync.Mutex
	var fresh []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range freshRounds {
				began := time.Now()
				d, err := s.oneChange(ctx, id)
				if err != nil {
					errs <- err
					return
				}
				if d > time.Second {
					t.Logf("slow change: %s, change %d: %s", id, k, d)
				}
				mu.Lock()
				fresh = append(fresh, d)
				mu.Unlock()
				// Isolated: the next change comes after the quiet window (Kombo itself sends at
				// most one data-changed per 30 s per integration).
				time.Sleep(time.Until(began.Add(freshQuiet + 2*time.Second))) // pacing the load, not waiting for a result
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(fresh)
	p50, p95 := fresh[len(fresh)/2], fresh[len(fresh)*95/100]
	record(figure{N: 6, Title: "Freshness: webhook at the gateway → changed rows committed (isolated changes)",
		Result: fmt.Sprintf("p50 %s, p95 %s, max %s over %d changes", sec(p50), sec(p95), sec(fresh[len(fresh)-1]), len(fresh)),
		Goal:   "p95 ≤ 1 s", Met: p95 <= time.Second,
		Note: fmt.Sprintf("%d HRIS integrations in parallel, each changed %d times (3 employees updated per change, the next change "+
			"once the last landed and the quiet window and 2 s more passed since it was made, as Kombo's own coalescing spaces them), the built gateway and worker "+
			"with the default settings. An isolated change is fetched on the leading edge, without the quiet window. From the "+
			"inbox's `received_at` of the change's webhook to the `recorded_at` of its last change row (both Postgres clocks).",
			freshIntegrations, freshRounds)})
	benchBurst(t, s)
}

// freshQuiet is the worker's default DEBOUNCE_QUIET, which the freshness stack runs with.
const freshQuiet = 5 * time.Second

// 9. A burst: 100 data-changed webhooks for one integration in 10 s (posted to the gateway
// directly, as a Kombo without its coalescing would send them) become how many fetch rounds.
func benchBurst(t *testing.T, s *stack) {
	const id, webhooks = "personio:burst", 100
	must(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 50, Seed: 99, Notify: true}))
	teststack.Eventually(t, 3*time.Minute, func() string { return s.notIdle(t, []string{id}) })
	time.Sleep(freshQuiet) // the backfill's events are past the quiet window: the burst starts on a quiet integration
	var began time.Time
	must(t, s.Pool.QueryRow(t.Context(), `select now()`).Scan(&began))
	for k := range webhooks {
		body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("burst-%d", k), "type": kombo.EventDataChanged, "data": map[string]any{
			"integration_id": id, "integration_tool": "personio", "integration_category": "HRIS",
			"changed_models": []map[string]string{{"name": "hris_employees"}}}})
		if code, answer := s.PostWebhook(t, body); code != http.StatusOK {
			t.Fatalf("burst webhook %d: %d %v", k, code, answer)
		}
		time.Sleep(100 * time.Millisecond) // the burst's pace: 100 webhooks in 10 s
	}
	time.Sleep(freshQuiet) // the trailing round's quiet window
	teststack.Eventually(t, time.Minute, func() string { return s.notIdle(t, []string{id}) })
	rounds := s.Count(t, `select count(*) from kombo.fetch_runs where integration_id = $1 and endpoint = 'hris/employees'
		and kind = 'delta' and started_at >= $2`, id, began)
	record(figure{N: 9, Title: "A burst of 100 data-changed webhooks in 10 s for one integration",
		Result: fmt.Sprintf("%d fetch rounds of `hris/employees`", rounds),
		Goal:   "≤ 3 rounds", Met: rounds <= 3,
		Note: "Signed webhooks posted to the gateway every 100 ms (Kombo would coalesce them to one per 30 s; this is the worst " +
			"case of a sender that does not), the default `DEBOUNCE_QUIET` 5 s and `DEBOUNCE_MAX` 60 s. The first is fetched at " +
			"once (the leading edge), the rest wait for the quiet window after the last and make one trailing round."})
}

func sec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// notIdle names an integration whose workflow is not yet idle with its first sync done and its
// endpoints synced; "" when every one is.
func (s *stack) notIdle(t *testing.T, ids []string) string {
	for _, id := range ids {
		st, err := s.Status(t, id)
		if err != nil || st.State != workflows.StateIdle || len(st.Watermarks) == 0 || len(st.Pending) > 0 {
			return id + " not backfilled and idle yet"
		}
	}
	return ""
}

var employees3 = []komboemu.Mutation{{Endpoint: employees, Op: komboemu.OpUpdate}, {Endpoint: employees, Op: komboemu.OpUpdate},
	{Endpoint: employees, Op: komboemu.OpUpdate}}

// oneChange updates three employees and returns the time from their webhook's arrival to the
// commit of their change rows.
func (s *stack) oneChange(ctx context.Context, id string) (time.Duration, error) {
	var mutatedAt time.Time
	if err := s.Pool.QueryRow(ctx, `select now()`).Scan(&mutatedAt); err != nil {
		return 0, err
	}
	changes, err := s.Emu.Mutate(id, employees3...)
	if err != nil {
		return 0, err
	}
	recIDs := make([]string, len(changes))
	for k, c := range changes {
		recIDs[k] = c.ID
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var landed int
		var received, committed *time.Time
		err := s.Pool.QueryRow(ctx, `
			select (select count(distinct record_id) from kombo.changes where integration_id = $1 and record_id = any($2) and recorded_at >= $3),
				(select max(recorded_at) from kombo.changes where integration_id = $1 and record_id = any($2) and recorded_at >= $3),
				(select min(received_at) from kombo.webhook_events where integration_id = $1 and type = 'data-changed' and received_at >= $3)`,
			id, uniq(recIDs), mutatedAt).Scan(&landed, &committed, &received)
		if err != nil {
			return 0, err
		}
		if landed == len(uniq(recIDs)) && received != nil {
			return committed.Sub(*received), nil
		}
		time.Sleep(50 * time.Millisecond) // polling for the change to land
	}
	return 0, fmt.Errorf("%s: the change did not land within a minute", id)
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
