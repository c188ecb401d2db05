package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/webhookgw"
	"github.com/kombosync/kombosync/workflows"
)

// The fleet: two workers and two gateways on one namespace and one database, Kombo's webhooks
// alternating between the gateways as a load balancer sends them.
//
// First both gateways lose Temporal while webhooks arrive that Kombo will not send again: each is
// stored and answered 503. When Temporal is back, the two relays take them over side by side,
// and every one reaches its workflow exactly once (the relays' counters add up to the number of
// such events, and each appears once in its workflow's history). Then one worker and one gateway
// are killed for good, mid-run: Postgres still ends equal to the emulator's truth, every stored
// webhook is signaled, and no event reached its workflow more than once.
func TestFleetRelaysOnceAndLosesAWorkerAndAGateway(t *testing.T) {
	t.Parallel()
	lb := &roundRobin{}
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)
	link := startLink(t, testenv.TemporalAddress(t)) // the gateways' way to Temporal, to cut
	s := newStack(t, teststack.Options{
		Webhooks:   komboemu.WebhookOptions{URL: lbSrv.URL + webhookgw.Path, Retries: 8},
		ProgramEnv: teststack.Env("TEMPORAL_ADDRESS", link.addr),
		// The workers dial Temporal directly: only the gateways lose it.
		WorkerEnv: teststack.Env("TEMPORAL_ADDRESS", testenv.TemporalAddress(t), "FETCH_HEARTBEAT_TIMEOUT", "2s"),
		LogLevel:  "info"})
	gateway2, gateway2URL := s.StartGateway(t)
	worker2 := s.StartWorker(t)
	gateways := []string{s.GatewayURL, gateway2URL}
	lb.set(t, gateways...)

	ids := []string{"personio:e2e-fleet-1", "personio:e2e-fleet-2", "personio:e2e-fleet-3", "personio:e2e-fleet-4"}
	s.terminateAtEnd(t, ids...)
	for i, id := range ids {
		require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS,
			Records: 60, Seed: uint64(10 + i), Notify: true}))
	}
	change := func(rounds int) {
		for range rounds {
			for _, id := range ids {
				_, err := s.Emu.MutateRandom(id, 3)
				require.NoError(t, err)
			}
			time.Sleep(100 * time.Millisecond) // spread over several of Kombo's coalescing windows
		}
	}
	change(5)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))

	// Temporal unreachable from the gateways: events stored, answered 503, never sent again.
	link.cut()
	const stranded = 16
	var wg sync.WaitGroup
	codes := make([]int, stranded)
	for i := range stranded {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := event(fmt.Sprintf("stranded-%d", i), kombo.EventDataChanged, ids[i%len(ids)])
			codes[i], _ = teststack.PostWebhookTo(t, gateways[i%2], body)
		}()
	}
	wg.Wait()
	for i, code := range codes {
		require.Equal(t, http.StatusServiceUnavailable, code, "stranded-%d: stored, not signaled", i)
	}
	require.Equal(t, stranded, s.Count(t, `select count(*) from kombo.webhook_events where signaled_at is null`))
	link.restore()
	teststack.Eventually(t, time.Minute, func() string {
		if n := s.Count(t, `select count(*) from kombo.webhook_events where signaled_at is null`); n > 0 {
			return fmt.Sprintf("%d stranded webhooks not relayed yet", n)
		}
		return ""
	})
	var relayed float64
	for _, gw := range gateways {
		relayed += scrape(t, gw+"/metrics").sum("kombosync_webhook_relay_total", "outcome", "signaled")
	}
	require.Equal(t, float64(stranded), relayed, "the two relays signaled each stranded event once between them")

	// Mid-run, one worker and one gateway die for good.
	change(5)
	s.Worker.Kill()
	gateway2.Kill()
	change(10)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	for _, id := range ids {
		s.WaitInSync(t, id, kombo.CategoryHRIS, 2*time.Minute)
	}
	select {
	case <-worker2.Done():
		t.Fatalf("the surviving worker exited: %v", worker2.Err())
	default:
	}
	// Events the dead gateway stored but had not marked signaled are taken over by the relay
	// of the one alive.
	teststack.Eventually(t, time.Minute, func() string {
		if n := s.Count(t, `select count(*) from kombo.webhook_events where signaled_at is null`); n > 0 {
			return fmt.Sprintf("%d stored webhooks not signaled", n)
		}
		return ""
	})
	signals := map[string]int{}
	for _, id := range ids {
		for ev, n := range s.eventSignals(t, id) {
			signals[ev] += n
		}
	}
	rows, err := s.Pool.Query(t.Context(), `select id from kombo.webhook_events where type in ('data-changed', 'integration-created')`)
	require.NoError(t, err)
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, ev := range stored {
		require.Positive(t, signals[ev], "stored event %s reached its workflow", ev)
	}
	for i := range stranded {
		require.Equal(t, 1, signals[fmt.Sprintf("stranded-%d", i)], "stranded-%d", i)
	}
	// A gateway killed between signaling an event and marking it leaves it to a relay, which
	// signals it again (the workflow drops the repeat); nothing is signaled a third time.
	again := 0
	for ev, n := range signals {
		require.LessOrEqual(t, n, 2, "event %s signaled %d times", ev, n)
		if n == 2 {
			again++
		}
	}
	require.LessOrEqual(t, again, s.Count(t, `select count(*) from kombo.webhook_events
		where signaled_at - received_at > interval '5 seconds'`), "only events a relay took over reached a workflow twice")
}

func event(id, typ, integrationID string) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "type": typ, "data": map[string]any{"integration_id": integrationID,
		"integration_tool": "personio", "integration_category": "HRIS", "changed_models": []map[string]string{{"name": "hris_employees"}}}})
	return b
}

// link is a TCP proxy that can be cut: while cut, its connections are closed and new ones refused.
type link struct {
	addr string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func startLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &link{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close(); l.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			down := l.down
			if !down {
				l.conns = append(l.conns, c)
			}
			l.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			go func() {
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				l.mu.Lock()
				l.conns = append(l.conns, up)
				l.mu.Unlock()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	return l
}

func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *link) restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = false
}

// eventSignals counts the kombo-event signals of the integration's workflow, by event id.
func (s *stack) eventSignals(t *testing.T, integrationID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	it := s.Temporal.GetWorkflowHistory(t.Context(), workflows.IntegrationWorkflowID(integrationID), "", false,
		enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		a := e.GetWorkflowExecutionSignaledEventAttributes()
		if a == nil || a.SignalName != workflows.SignalKomboEvent {
			continue
		}
		var ev workflows.KomboEvent
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(a.Input, &ev))
		out[ev.ID]++
	}
	return out
}

// roundRobin is the load balancer in front of the gateways: requests alternate between them,
// and one that is down answers 502, which Kombo retries (and the next try goes to the other).
type roundRobin struct {
	mu      sync.Mutex
	proxies []*httputil.ReverseProxy
	next    int
}

func (lb *roundRobin) set(t *testing.T, targets ...string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, target := range targets {
		u, err := url.Parse(target)
		require.NoError(t, err)
		p := httputil.NewSingleHostReverseProxy(u)
		p.ErrorLog = log.New(io.Discard, "", 0) // a dead gateway's 502s are expected
		lb.proxies = append(lb.proxies, p)
	}
}

func (lb *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lb.mu.Lock()
	if len(lb.proxies) == 0 {
		lb.mu.Unlock()
		http.Error(w, "no gateway yet", http.StatusBadGateway)
		return
	}
	p := lb.proxies[lb.next%len(lb.proxies)]
	lb.next++
	lb.mu.Unlock()
	p.ServeHTTP(w, r)
}

// KOMBO_MAX_RPS is the fleet's: two workers backfilling four integrations at once stay under the
// cap between them (measured at the emulator), and everything still arrives.
func TestKomboRequestCapHoldsAcrossWorkers(t *testing.T) {
	t.Parallel()
	const rps = 8
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("KOMBO_MAX_RPS", fmt.Sprint(rps)), LogLevel: "info"})
	s.StartWorker(t)
	ids := []string{"personio:e2e-cap-1", "personio:e2e-cap-2", "personio:e2e-cap-3", "personio:e2e-cap-4"}
	s.terminateAtEnd(t, ids...)
	for i, id := range ids {
		require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS,
			Records: 300, Seed: uint64(20 + i), Notify: true}))
	}
	for _, id := range ids {
		s.WaitInSync(t, id, kombo.CategoryHRIS, 3*time.Minute)
	}
	times := s.Emu.RequestTimes()
	require.Greater(t, len(times), 3*rps, "enough requests to see the pace")
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	// Slots are 1/rps apart on the database's clock, so a second holds rps of them and one more
	// at its edge; a request arrives a little after its slot (its worker and the emulator must
	// run it, slower under the race detector beside the other tests), which may shift one or
	// two more into a window. Uncapped, these backfills send all 64 requests within two seconds.
	require.LessOrEqual(t, peakIn(times, time.Second), rps+3, "the most requests in any second, both workers together")
	require.LessOrEqual(t, peakIn(times, 5*time.Second), rps*5+4, "the most requests in any 5 s")
	require.GreaterOrEqual(t, times[len(times)-1].Sub(times[0]), time.Duration(len(times)-1)*time.Second/rps*9/10,
		"%d requests were spread over their slots", len(times))
	t.Logf("%d requests; peak %d in a second, %d in 5 s; cap %d/s", len(times), peakIn(times, time.Second),
		peakIn(times, 5*time.Second), rps)
}

// peakIn is the most of the sorted times that fall within any window.
func peakIn(times []time.Time, window time.Duration) int {
	peak := 0
	for i := range times {
		j := i
		for j < len(times) && times[j].Sub(times[i]) < window {
			j++
		}
		peak = max(peak, j-i)
	}
	return peak
}

// MAX_CONCURRENT_FETCHES caps what one worker runs at once: with slow pages, a backfill of every
// endpoint (FETCH_PARALLELISM 4) never has more than the cap in flight at Kombo.
func TestWorkerRunsAtMostMaxConcurrentFetches(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("MAX_CONCURRENT_FETCHES", "2", "FETCH_PARALLELISM", "4"),
		LogLevel: "info"})
	const id = "personio:e2e-max-fetches"
	s.terminateAtEnd(t, id)
	s.Emu.SetFaults(komboemu.Faults{Latency: 150 * time.Millisecond})
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS,
		Records: 40, Seed: 5, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, 2*time.Minute)
	require.Equal(t, 2, s.Emu.MaxInFlight(), "two fetches at a time, never more (and the cap is used)")
}
