package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// outboundEnv lets deliveries reach the test's receiver on loopback over http, and keeps the
// back-off short: 3 s at most (before jitter) instead of 6 h.
var outboundEnv = teststack.Env("OUTBOUND_ALLOW_HTTP", "true", "OUTBOUND_ALLOW_PRIVATE", "true",
	"OUTBOUND_MAX_BACKOFF", "3s", "OUTBOUND_GIVE_UP_AFTER", "1h")

// message is a delivered webhook's body.
type message struct {
	ID        string          `json:"-"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
	raw       []byte
}

// messages decodes what the receiver verified, each webhook-id once (a receiver dedupes by it).
func messages(t *testing.T, rcv *teststack.Receiver) []message {
	t.Helper()
	var out []message
	seen := map[string]bool{}
	for _, r := range rcv.Received() {
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		var m message
		require.NoError(t, json.Unmarshal(r.Body, &m), string(r.Body))
		m.ID, m.raw = r.ID, r.Body
		out = append(out, m)
	}
	return out
}

func recordsChangedOf(t *testing.T, ms []message, integrationID string) []store.RecordsChanged {
	t.Helper()
	var out []store.RecordsChanged
	for _, m := range ms {
		if m.Type != store.EventRecordsChanged {
			continue
		}
		var rc store.RecordsChanged
		require.NoError(t, json.Unmarshal(m.Data, &rc))
		if rc.IntegrationID == integrationID {
			out = append(out, rc)
		}
	}
	return out
}

// coverage says how the received records.changed ranges fall short of the integration's feed:
// "" when, in the order delivered, the first starts at the feed's start, each starts where the
// one before ended, each counts exactly the rows in its range, and the last ends at the feed's
// last row.
func coverage(t *testing.T, s *stack, rcv *teststack.Receiver, integrationID string) string {
	t.Helper()
	rcs := recordsChangedOf(t, messages(t, rcv), integrationID)
	if len(rcs) == 0 {
		return "no records.changed received"
	}
	if rcs[0].From != (store.FeedPosition{TxID: "0", Seq: 0}) {
		return fmt.Sprintf("the first range starts at %v", rcs[0].From)
	}
	for k, rc := range rcs {
		if k > 0 && rc.From != rcs[k-1].To {
			return fmt.Sprintf("range %d starts at %v, the one before ended at %v", k, rc.From, rcs[k-1].To)
		}
		n := s.Count(t, `select count(*) from kombo.changes where integration_id = $1
			and (txid, seq) > ($2::text::xid8, $3) and (txid, seq) <= ($4::text::xid8, $5)`,
			integrationID, rc.From.TxID, rc.From.Seq, rc.To.TxID, rc.To.Seq)
		if n != rc.Changes {
			return fmt.Sprintf("range %d counts %d changes, the feed holds %d there", k, rc.Changes, n)
		}
	}
	last := rcs[len(rcs)-1].To
	if after := s.Count(t, `select count(*) from kombo.changes where integration_id = $1
		and (txid, seq) > ($2::text::xid8, $3)`, integrationID, last.TxID, last.Seq); after > 0 {
		return fmt.Sprintf("%d change rows after the last range", after)
	}
	return ""
}

// backoffice is the back-office API program of a stack, called as the application would.
type backoffice struct {
	base string
}

func (b backoffice) do(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+teststack.APIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, out), string(raw))
	}
	return resp.StatusCode
}

// endDelivery deletes the subscription and waits for its delivery workflow to end, then records
// its history.
func endDelivery(t *testing.T, s *stack, subID, history string) {
	t.Helper()
	s.Starter(t, "subscription", "delete", subID)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	require.NoError(t, s.Temporal.GetWorkflow(ctx, workflows.SubscriptionWorkflowID(subID), "").Get(ctx, nil))
	s.recordHistory(t, workflows.SubscriptionWorkflowID(subID), "", history)
}

func deliveryStatus(t *testing.T, s *stack, subID string) workflows.DeliveryStatus {
	t.Helper()
	v, err := s.Temporal.QueryWorkflow(t.Context(), workflows.SubscriptionWorkflowID(subID), "", workflows.QueryStatus)
	require.NoError(t, err)
	var st workflows.DeliveryStatus
	require.NoError(t, v.Get(&st))
	return st
}

// Changes produce verified records.changed deliveries whose ranges cover every change row
// exactly; state transitions are delivered; a receiver down for two minutes gets, once back,
// everything, in fewer deliveries than rounds (coalesced); a worker killed while a delivery is in
// flight loses nothing (the delivery comes again with its webhook-id); a replay re-sends with
// the same ids and bodies.
func TestOutboundWebhooksCoverTheFeedThroughOutagesAndCrashes(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{ProgramEnv: outboundEnv, WorkerEnv: teststack.Env("KOMBO_ENDPOINTS", "hris/employees,hris/employments")})
	const id = "personio:e2e-outbound"
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	employments := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employments"}
	rcv := teststack.NewReceiver(t)

	api := backoffice{base: s.StartBackoffice(t)}
	var created struct {
		Subscription struct{ ID string } `json:"subscription"`
		Secret       string              `json:"secret"`
	}
	require.Equal(t, http.StatusCreated, api.do(t, "POST", "/v1/subscriptions", `{"url": "`+rcv.URL+`", "description": "e2e"}`, &created))
	sub := created.Subscription.ID
	rcv.SetSecret(t, created.Secret)
	s.ForbidInLogs(created.Secret)

	inSync := func(within time.Duration) {
		teststack.Eventually(t, within, func() string { return s.Diff(t, id, employees) + s.Diff(t, id, employments) })
	}
	round := func() {
		_, err := s.Emu.MutateRandom(id, 4, employees, employments)
		require.NoError(t, err)
		require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
		inSync(time.Minute)
		s.WaitState(t, id, workflows.StateIdle, time.Minute)
	}
	covered := func(within time.Duration) {
		teststack.Eventually(t, within, func() string { return coverage(t, s, rcv, id) })
	}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 300, Seed: 9, Notify: true}))
	inSync(2 * time.Minute)
	for range 3 {
		round()
	}
	covered(time.Minute)

	// An operator's pause and resume are state transitions the application is told of.
	s.Starter(t, "integration", "pause", id, "--reason", "e2e")
	s.WaitState(t, id, workflows.StatePaused, time.Minute)
	s.Starter(t, "integration", "resume", id)
	s.WaitState(t, id, workflows.StateIdle, time.Minute)
	teststack.Eventually(t, time.Minute, func() string {
		var states []string
		for _, m := range messages(t, rcv) {
			if m.Type == store.EventStateChanged {
				var sc store.StateChanged
				require.NoError(t, json.Unmarshal(m.Data, &sc))
				states = append(states, sc.PreviousState+"→"+sc.State)
			}
		}
		if !slices.Contains(states, "idle→paused") || !slices.Contains(states, "paused→idle") {
			return fmt.Sprintf("state events %v", states)
		}
		return ""
	})

	// The receiver is down for two minutes while rounds keep committing.
	before := len(recordsChangedOf(t, messages(t, rcv), id))
	roundsBefore := s.WaitState(t, id, workflows.StateIdle, time.Minute).RoundsThisRun
	rcv.Stop()
	down := time.Now()
	tick := time.NewTicker(10 * time.Second)
	for time.Since(down) < 2*time.Minute {
		round()
		<-tick.C // the outage's rounds are spread over its two minutes
	}
	tick.Stop()
	rounds := s.WaitState(t, id, workflows.StateIdle, time.Minute).RoundsThisRun - roundsBefore
	require.GreaterOrEqual(t, rounds, 10)
	var failing struct {
		Failures int    `json:"failures"`
		State    string `json:"state"`
	}
	require.Equal(t, http.StatusOK, api.do(t, "GET", "/v1/subscriptions/"+sub, "", &failing))
	require.Positive(t, failing.Failures, "attempts failed while the receiver was down")
	require.Equal(t, "active", failing.State, "an outage shorter than OUTBOUND_GIVE_UP_AFTER does not disable")
	rcv.Start(t)
	covered(time.Minute)
	after := len(recordsChangedOf(t, messages(t, rcv), id)) - before
	require.Less(t, after, rounds, "the outage's records.changed coalesced: %d deliveries for %d rounds", after, rounds)
	t.Logf("receiver down %s: %d rounds, %d records.changed deliveries once back", time.Since(down).Round(time.Second), rounds, after)

	// A worker killed while a delivery is in flight: the delivery comes again, same webhook-id.
	arrivals := rcv.Arrivals()
	held := len(rcv.Attempts())
	rcv.Script(func(n int) teststack.Answer {
		if n == held {
			return teststack.Answer{Hold: time.Minute} // until the worker dies
		}
		return teststack.Answer{}
	})
	_, err := s.Emu.MutateRandom(id, 4, employees, employments)
	require.NoError(t, err)
	select {
	case <-arrivals:
	case <-time.After(time.Minute):
		t.Fatal("no delivery arrived after the change")
	}
	s.Worker.Kill()
	inFlight := rcv.Attempts()[held].ID
	s.StartWorker(t)
	inSync(2 * time.Minute)
	covered(2 * time.Minute)
	require.True(t, slices.ContainsFunc(rcv.Received(), func(r teststack.Received) bool { return r.ID == inFlight }),
		"the delivery in flight when its worker died came again with its webhook-id")

	// A replay from a feed position re-sends the deliveries covering rows after it, same ids and
	// bodies, and the feed stays covered.
	teststack.Eventually(t, time.Minute, func() string { // every receipt recorded as delivered
		var st struct{ Pending int }
		require.Equal(t, http.StatusOK, api.do(t, "GET", "/v1/subscriptions/"+sub, "", &st))
		if st.Pending > 0 {
			return fmt.Sprintf("%d pending", st.Pending)
		}
		return ""
	})
	original := messages(t, rcv)
	rcs := recordsChangedOf(t, original, id)
	from := rcs[1].From
	var replayed struct{ Replayed int }
	require.Equal(t, http.StatusOK, api.do(t, "POST", "/v1/subscriptions/"+sub+"/replay",
		fmt.Sprintf(`{"after": {"txid": %q, "seq": %d}}`, from.TxID, from.Seq), &replayed))
	require.Equal(t, len(rcs)-1, replayed.Replayed)
	received := len(rcv.Received())
	teststack.Eventually(t, time.Minute, func() string {
		if n := len(rcv.Received()) - received; n < replayed.Replayed {
			return fmt.Sprintf("%d of %d replayed", n, replayed.Replayed)
		}
		return ""
	})
	bodies := map[string][]byte{}
	for _, m := range original {
		bodies[m.ID] = m.raw
	}
	for _, r := range rcv.Received()[received:] {
		require.Contains(t, bodies, r.ID, "a replay re-sends a delivered id")
		require.JSONEq(t, string(bodies[r.ID]), string(r.Body), "with the same body")
	}
	require.Empty(t, rcv.Invalid(), "every delivery verified with the reference library")

	s.finish(t, id, "integration_sync_round_report")
	endDelivery(t, s, sub, "subscription_delivery")
}

// A 429 with Retry-After is waited out (longer than the back-off would be), a 410 disables the
// subscription (deliveries queue without attempts), and a resume delivers what queued.
func TestOutboundHonoursRetryAfterAndGone(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{ProgramEnv: outboundEnv, WorkerEnv: teststack.Env("KOMBO_ENDPOINTS", "hris/employees")})
	const id = "personio:e2e-gone"
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	rcv := teststack.NewReceiver(t)
	rcv.Script(func(n int) teststack.Answer {
		switch n {
		case 0:
			return teststack.Answer{Status: http.StatusTooManyRequests, RetryAfter: "6"}
		case 2:
			return teststack.Answer{Status: http.StatusGone}
		}
		return teststack.Answer{}
	})
	var created struct {
		Subscription struct{ ID string } `json:"subscription"`
		Secret       string              `json:"secret"`
	}
	s.StarterJSON(t, &created, "subscription", "create", rcv.URL, "--events", "records.changed")
	sub := created.Subscription.ID
	rcv.SetSecret(t, created.Secret)
	s.ForbidInLogs(created.Secret)

	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 50, Seed: 3, Notify: true}))
	teststack.Eventually(t, 2*time.Minute, func() string {
		if n := len(rcv.Received()); n < 1 {
			return fmt.Sprintf("%d deliveries", n)
		}
		return ""
	})
	attempts := rcv.Attempts()
	require.Equal(t, attempts[0].ID, attempts[1].ID, "the retry is the same message")
	require.GreaterOrEqual(t, attempts[1].At.Sub(attempts[0].At), 6*time.Second,
		"Retry-After: 6 waited out (the back-off alone is at most 3.6 s here)")

	mutate := func() {
		_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
		require.NoError(t, err)
		require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
		teststack.Eventually(t, time.Minute, func() string { return s.Diff(t, id, employees) })
	}
	mutate()
	var shown struct {
		Subscription store.Subscription `json:"subscription"`
	}
	teststack.Eventually(t, time.Minute, func() string {
		s.StarterJSON(t, &shown, "subscription", "show", sub)
		if shown.Subscription.State != store.SubscriptionDisabled {
			return "state " + shown.Subscription.State
		}
		return ""
	})
	require.Contains(t, shown.Subscription.StateReason, "410")
	teststack.Eventually(t, time.Minute, func() string {
		if st := deliveryStatus(t, s, sub); st.State != store.SubscriptionDisabled {
			return "workflow " + st.State
		}
		return ""
	})
	attemptsAtGone := len(rcv.Attempts())
	mutate()
	teststack.Eventually(t, time.Minute, func() string {
		s.StarterJSON(t, &shown, "subscription", "show", sub)
		if shown.Subscription.Pending < 2 {
			return fmt.Sprintf("%d pending", shown.Subscription.Pending)
		}
		return ""
	})
	require.Equal(t, attemptsAtGone, len(rcv.Attempts()), "a disabled subscription is not called")

	s.Starter(t, "subscription", "resume", sub, "--reason", "receiver fixed")
	teststack.Eventually(t, time.Minute, func() string {
		s.StarterJSON(t, &shown, "subscription", "show", sub)
		if shown.Subscription.Pending > 0 || shown.Subscription.State != store.SubscriptionActive {
			return fmt.Sprintf("%s, %d pending", shown.Subscription.State, shown.Subscription.Pending)
		}
		return ""
	})
	teststack.Eventually(t, time.Minute, func() string { return coverage(t, s, rcv, id) })
	require.Empty(t, rcv.Invalid())
	endDelivery(t, s, sub, "subscription_delivery_gone")
}
