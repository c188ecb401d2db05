//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
)

// outboundEnv lets subscriptions name, and the worker deliver to, the benchmark's receiver on
// loopback.
var outboundEnv = []string{"OUTBOUND_ALLOW_HTTP=true", "OUTBOUND_ALLOW_PRIVATE=true"}

// subscribe creates a subscription to the receiver with the starter and sets its secret.
func (s *stack) subscribe(t *testing.T, rcv *teststack.Receiver) string {
	t.Helper()
	var created struct {
		Subscription struct{ ID string } `json:"subscription"`
		Secret       string              `json:"secret"`
	}
	s.StarterJSON(t, &created, "subscription", "create", rcv.URL, "--events", store.EventRecordsChanged)
	rcv.SetSecret(t, created.Secret)
	return created.Subscription.ID
}

func recordsChangedIn(t *testing.T, r teststack.Received) store.RecordsChanged {
	t.Helper()
	var m struct {
		Type string               `json:"type"`
		Data store.RecordsChanged `json:"data"`
	}
	must(t, json.Unmarshal(r.Body, &m))
	return m.Data
}

// benchOutbound measures figures 12 and 13.
func benchOutbound(t *testing.T) {
	t.Run("latency", benchOutboundLatency)
	t.Run("throughput", benchOutboundThroughput)
}

// 12. From a round's commit to the receiver's 200: one integration, one isolated change at a
// time; for each delivery, the receiver's arrival time minus the commit of the last fetch run
// whose change rows its range covers (fetch_runs.finished_at, set in the transaction that ends
// the run, the round's last).
func benchOutboundLatency(t *testing.T) {
	const changes = 40
	s := newStack(t, stackOptions{worker: true, workerEnv: []string{"KOMBO_ENDPOINTS=hris/employees"}, programEnv: outboundEnv})
	rcv := teststack.NewReceiver(t)
	s.subscribe(t, rcv)
	const id = "personio:bench-outbound-latency"
	must(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 50, Seed: 5, Notify: true}))
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	received := func(n int) func() string {
		return func() string {
			if got := len(rcv.Received()); got < n {
				return fmt.Sprintf("%d of %d deliveries", got, n)
			}
			return ""
		}
	}
	teststack.Eventually(t, 2*time.Minute, received(1)) // the backfill's
	for k := range changes {
		_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
		must(t, err)
		teststack.Eventually(t, time.Minute, received(k+2))
	}
	var lat []time.Duration
	for _, r := range rcv.Received()[1:] {
		rc := recordsChangedIn(t, r)
		var committed time.Time
		must(t, s.Pool.QueryRow(t.Context(), `select max(r.finished_at) from kombo.fetch_runs r
			where r.id in (select fetch_run_id from kombo.changes where integration_id = $1
				and (txid, seq) > ($2::text::xid8, $3) and (txid, seq) <= ($4::text::xid8, $5))`,
			id, rc.From.TxID, rc.From.Seq, rc.To.TxID, rc.To.Seq).Scan(&committed))
		lat = append(lat, r.At.Sub(committed))
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	p50, p95 := q(0.5), q(0.95)
	record(figure{N: 12, Title: "Outbound webhooks: a round's commit to the receiver's 200",
		Result: fmt.Sprintf("p50 %s, p95 %s, max %s over %d isolated changes", sec(p50), sec(p95), sec(lat[len(lat)-1]), len(lat)),
		Goal:   "p95 ≤ 1 s", Met: p95 <= time.Second,
		Note: "One worker (defaults but `KOMBO_ENDPOINTS=hris/employees`), one subscription (to `records.changed`) to a receiver " +
			"on loopback that verifies each delivery with the Standard Webhooks reference library and answers 204. Each change " +
			"is one employee updated in the emulator, its data-changed webhook sent, and the next made once its delivery arrived. " +
			"The latency is the receiver's arrival time minus `fetch_runs.finished_at` of the newest run whose change rows the " +
			"delivery's range covers: the transaction that ends the round. In between: the round's end in the workflow, the " +
			"`PublishRound` activity (the report's transaction, its commit, the signal-with-start of the subscription's " +
			"workflow), a workflow task, the `DeliverPending` activity (reading the subscription and its pending deliveries, " +
			"the POST, recording the attempt)."})
}

// 13. Deliveries per second to a fast receiver, 1,000 integrations changing: the subscription is
// paused while every integration changes (a backlog of one records.changed per integration, the
// events of its rounds coalesced), then resumed; the figure is the backlog over the time to drain
// it, timed at the receiver.
func benchOutboundThroughput(t *testing.T) {
	n, _ := budgetSettings()
	s := newStack(t, stackOptions{worker: true, workerEnv: []string{"KOMBO_ENDPOINTS=hris/employees"}, programEnv: outboundEnv})
	rcv := teststack.NewReceiver(t)
	for k := range n {
		must(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: fmt.Sprintf("personio:outbound-%04d", k), Category: kombo.CategoryHRIS,
			Records: 10, Seed: uint64(k), Notify: true}))
	}
	s.waitBackfilled(t, n, 15*time.Minute)
	sub := s.subscribe(t, rcv)
	s.Starter(t, "subscription", "pause", sub, "--reason", "benchmark backlog")
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	for k := range n {
		_, err := s.Emu.Mutate(fmt.Sprintf("personio:outbound-%04d", k), komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate},
			komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
		must(t, err)
	}
	must(t, s.Emu.WaitWebhooks(t.Context()))
	teststack.Eventually(t, 10*time.Minute, func() string {
		if p := s.Count(t, `select count(*) from kombo.deliveries where subscription_id = $1 and delivered_at is null`, sub); p < n {
			return fmt.Sprintf("%d of %d integrations' changes queued", p, n)
		}
		return ""
	})
	s.waitIdle(t, 5*time.Minute)
	backlog := s.Count(t, `select count(*) from kombo.deliveries where subscription_id = $1 and delivered_at is null`, sub)
	events := s.Count(t, `select coalesce(sum(events), 0) from kombo.deliveries where subscription_id = $1`, sub)
	start := time.Now()
	cpu := machineCPU()
	s.Starter(t, "subscription", "resume", sub)
	teststack.Eventually(t, 10*time.Minute, func() string {
		if got := len(rcv.Received()); got < backlog {
			return fmt.Sprintf("%d of %d delivered", got, backlog)
		}
		return ""
	})
	got := rcv.Received()
	first, last := got[0].At, got[len(got)-1].At
	drain := last.Sub(first)
	rate := float64(len(got)-1) / drain.Seconds()
	busy := machineCPU().busyShareSince(cpu)
	integrations := map[string]bool{}
	for _, r := range got {
		integrations[recordsChangedIn(t, r).IntegrationID] = true
	}
	record(figure{N: 13, Title: fmt.Sprintf("Outbound webhooks: deliveries per second to a fast receiver, %s integrations changing", num(float64(n))),
		Result: fmt.Sprintf("%.0f deliveries/s: a backlog of %s deliveries (carrying %s events, of %s integrations) drained in %s, %s after the resume",
			rate, num(float64(backlog)), num(float64(events)), num(float64(len(integrations))), drain.Round(100*time.Millisecond),
			last.Sub(start).Round(100*time.Millisecond)),
		Goal: "≥ 100 deliveries/s", Met: rate >= 100,
		Note: fmt.Sprintf("One worker (defaults but `KOMBO_ENDPOINTS=hris/employees`), %s integrations of 10 employees backfilled, "+
			"then a subscription to `records.changed`, paused with `starter subscription pause` while two employees of every "+
			"integration change (each integration's rounds coalesce into one pending delivery), resumed with `starter "+
			"subscription resume`. The receiver (loopback, verification with the reference library, 204) timestamps each "+
			"delivery; the rate is the deliveries after the first over the time from the first to the last. One subscription "+
			"is one workflow delivering in order, one `DeliverPending` activity sending up to 50 deliveries a batch, each "+
			"attempt recorded in its own transaction (fsync on) before the next: that commit is most of a delivery's time. "+
			"Machine CPU busy while draining: %.0f%%. More subscriptions deliver in parallel (one workflow each).",
			num(float64(n)), 100*busy)})
}
