package store_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func subscribe(t *testing.T, s *store.Store, types ...string) store.Subscription {
	t.Helper()
	sub, err := s.CreateSubscription(t.Context(), store.SubscriptionSpec{URL: "https://receiver.example/hooks", Secret: testSecret, EventTypes: types})
	require.NoError(t, err)
	return sub
}

// writeRound writes n new employees (ids prefix-0…) through a run, as a fetch round does.
func writeRound(t *testing.T, s *store.Store, prefix string, n int) {
	t.Helper()
	run := startRun(t, s, "run-"+prefix)
	page := &kombo.Page{}
	for i := range n {
		page.Records = append(page.Records, rec(t, fmt.Sprintf("%s-%d", prefix, i), map[string]any{"first_name": "X"}, nil))
	}
	_, err := s.ApplyPage(t.Context(), run, page, t0)
	require.NoError(t, err)
}

// report reports the integration's changes until the report is settled: the horizon is the
// cluster's, and the tests running beside this one hold it back for moments (as the workflow's
// activity does, which is retried while Behind). The events of every call are kept.
func report(t *testing.T, s *store.Store) store.ReportResult {
	t.Helper()
	var all store.ReportResult
	deadline := time.Now().Add(20 * time.Second)
	for {
		res := reportOnce(t, s)
		all.Event = all.Event || res.Event
		all.Wake = append(all.Wake, res.Wake...)
		all.To, all.Behind = res.To, res.Behind
		if !res.Behind || time.Now().After(deadline) {
			return all
		}
		time.Sleep(10 * time.Millisecond) // polling the horizon: nothing to wait on
	}
}

func reportOnce(t *testing.T, s *store.Store) store.ReportResult {
	t.Helper()
	res, err := s.ReportChanges(t.Context(), store.ChangeReport{IntegrationID: "personio:1", Tool: "personio", Category: "HRIS"})
	require.NoError(t, err)
	return res
}

func pending(t *testing.T, s *store.Store, subID string) []store.Delivery {
	t.Helper()
	ds, err := s.PendingDeliveries(t.Context(), subID, 1000)
	require.NoError(t, err)
	return ds
}

func recordsChanged(t *testing.T, d store.Delivery) store.RecordsChanged {
	t.Helper()
	require.Equal(t, store.EventRecordsChanged, d.Type)
	var rc store.RecordsChanged
	require.NoError(t, json.Unmarshal(d.Data, &rc))
	return rc
}

// feedRows counts the integration's change rows in (from, to].
func feedRows(t *testing.T, pool *pgxpool.Pool, from, to store.FeedPosition) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.changes where integration_id = 'personio:1'
		and (txid, seq) > ($1::text::xid8, $2) and (txid, seq) <= ($3::text::xid8, $4)`, from.TxID, from.Seq, to.TxID, to.Seq).Scan(&n))
	return n
}

func TestReportsCoverTheFeedExactlyAndWaitForARunningWriter(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	sub := subscribe(t, s)
	ctx := t.Context()

	writeRound(t, s, "a", 3)
	first := report(t, s)
	require.True(t, first.Event)
	require.Equal(t, []string{sub.ID}, first.Wake)
	require.False(t, first.Behind)

	// A transaction writing a change row of the integration is still running while a round
	// commits: the report stops before it, and says nothing of it until it commits.
	slow, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer slow.Rollback(ctx) //nolint:errcheck
	_, err = slow.Exec(ctx, `insert into kombo.changes (integration_id, endpoint, record_id, op, fetch_run_id)
		values ('personio:1', 'hris/employees', 'late', 'created', 'run-late')`)
	require.NoError(t, err)
	writeRound(t, s, "b", 2)
	second := reportOnce(t, s)
	require.True(t, second.Behind, "b's rows committed after a running transaction: past the horizon")
	require.False(t, second.Event)
	require.NoError(t, slow.Commit(ctx))
	third := report(t, s)
	require.True(t, third.Event)
	require.False(t, third.Behind)
	require.Empty(t, report(t, s).Wake, "nothing new: no event")

	ds := pending(t, s, sub.ID)
	require.Len(t, ds, 1, "never attempted: the second records.changed was merged into the first")
	rc := recordsChanged(t, ds[0])
	require.Equal(t, store.FeedPosition{TxID: "0", Seq: 0}, rc.From)
	require.Equal(t, third.To, rc.To)
	require.Equal(t, 6, rc.Changes)
	require.Equal(t, 6, feedRows(t, pool, rc.From, rc.To))
	require.Equal(t, store.OpCounts{Created: 6}, rc.Endpoints["hris/employees"])
	// Two reported rounds at least (a report may stop part-way at the horizon other tests hold).
	require.GreaterOrEqual(t, rc.Rounds, 2)
	require.Equal(t, rc.Rounds, ds[0].Events)

	// Once attempted, a delivery is frozen: the next round is a new message starting where it
	// ended.
	_, err = s.RecordAttempt(ctx, sub.ID, ds[0].Seq, store.Attempt{At: time.Now(), Error: "connection refused"})
	require.NoError(t, err)
	writeRound(t, s, "c", 4)
	report(t, s)
	ds = pending(t, s, sub.ID)
	require.Len(t, ds, 2)
	require.Equal(t, rc, recordsChanged(t, ds[0]), "the attempted message is unchanged")
	next := recordsChanged(t, ds[1])
	require.Equal(t, rc.To, next.From, "consecutive ranges meet")
	require.Equal(t, 4, next.Changes)
	require.Equal(t, 4, feedRows(t, pool, next.From, next.To))
	var total int
	require.NoError(t, pool.QueryRow(ctx, `select count(*) from kombo.changes`).Scan(&total))
	require.Equal(t, rc.Changes+next.Changes, total, "every change row is in exactly one range")
}

func TestAStateEventKeepsTheIntegrationsOrder(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	sub := subscribe(t, s)
	only := subscribe(t, s, store.EventStateChanged)
	ctx := t.Context()
	require.NoError(t, s.SaveIntegration(ctx, store.Integration{ID: "personio:1", Tool: "personio", Category: "HRIS"}))
	writeRound(t, s, "a", 1)
	report(t, s)
	wake, err := s.SaveIntegrationEvents(ctx, store.Integration{ID: "personio:1", SyncState: "auth_failed"})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{sub.ID, only.ID}, wake)
	wake, err = s.SaveIntegrationEvents(ctx, store.Integration{ID: "personio:1", SyncState: "auth_failed"})
	require.NoError(t, err)
	require.Empty(t, wake, "the same state again is no event")
	writeRound(t, s, "b", 1)
	report(t, s)

	ds := pending(t, s, sub.ID)
	require.Len(t, ds, 3, "a records.changed after a state event is not merged over it")
	require.Equal(t, []string{store.EventRecordsChanged, store.EventStateChanged, store.EventRecordsChanged},
		[]string{ds[0].Type, ds[1].Type, ds[2].Type})
	var sc store.StateChanged
	require.NoError(t, json.Unmarshal(ds[1].Data, &sc))
	require.Equal(t, store.StateChanged{IntegrationID: "personio:1", Tool: "personio", Category: "HRIS", State: "auth_failed",
		KomboState: "ACTIVE"}, sc)
	require.Len(t, pending(t, s, only.ID), 1, "a subscription gets only the types it asked for")

	// A refused sweep's attention, and records rejected since the last report, each once.
	attention := "sweep refused (more than 50% of the rows): hris/employees"
	_, err = s.SaveIntegrationEvents(ctx, store.Integration{ID: "personio:1", Attention: &attention})
	require.NoError(t, err)
	_, err = s.Pool().Exec(ctx, `insert into kombo.rejected_records (integration_id, endpoint, key, reason, excerpt, first_seen_at, last_seen_at, fetch_run_id)
		values ('personio:1', 'hris/employees', 'k1', 'no id', '{}', now(), now(), 'run-x')`)
	require.NoError(t, err)
	report(t, s)
	report(t, s)
	ds = pending(t, s, sub.ID)
	require.Len(t, ds, 5)
	var sweep, rejected store.Attention
	require.NoError(t, json.Unmarshal(ds[3].Data, &sweep))
	require.NoError(t, json.Unmarshal(ds[4].Data, &rejected))
	require.Equal(t, "sweep_refused", sweep.Kind)
	require.Equal(t, store.Attention{IntegrationID: "personio:1", Tool: "personio", Category: "HRIS", Kind: "records_rejected",
		Message: "1 records could not be taken (see kombo.rejected_records)", Endpoints: []string{"hris/employees"}, Count: 1}, rejected)
}

func TestAttemptsDisableOnGoneOrAfterTheGiveUpWindow(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name     string
		attempts []store.Attempt
		state    string
		reason   string
	}{
		{"gone", []store.Attempt{{At: t0, Status: 410, Gone: true, Error: "answered 410"}}, store.SubscriptionDisabled, "410 Gone"},
		{"failing for a while", []store.Attempt{
			{At: t0, Error: "refused", GiveUpAfter: time.Hour},
			{At: t0.Add(59 * time.Minute), Error: "refused", GiveUpAfter: time.Hour},
		}, store.SubscriptionActive, ""},
		{"failing too long", []store.Attempt{
			{At: t0, Error: "refused", GiveUpAfter: time.Hour},
			{At: t0.Add(30 * time.Minute), Status: 500, Error: "answered 500", GiveUpAfter: time.Hour},
			{At: t0.Add(61 * time.Minute), Status: 500, Error: "answered 500", GiveUpAfter: time.Hour},
		}, store.SubscriptionDisabled, "3 failed attempts since 2026-03-01T12:00:00Z (last: answered 500)"},
		{"a success ends the run", []store.Attempt{
			{At: t0, Error: "refused", GiveUpAfter: time.Hour},
			{At: t0.Add(30 * time.Minute), Status: 200, Delivered: true, GiveUpAfter: time.Hour},
			{At: t0.Add(61 * time.Minute), Error: "refused", GiveUpAfter: time.Hour},
		}, store.SubscriptionActive, ""},
	} {
		sub := subscribe(t, s)
		var got store.Subscription
		for _, a := range tc.attempts {
			var err error
			got, err = s.RecordAttempt(ctx, sub.ID, 0, a)
			require.NoError(t, err, tc.name)
		}
		require.Equal(t, tc.state, got.State, tc.name)
		require.Contains(t, got.StateReason, tc.reason, tc.name)
		if tc.state == store.SubscriptionDisabled {
			back, err := s.SetSubscriptionState(ctx, sub.ID, store.SubscriptionActive, "")
			require.NoError(t, err)
			require.Equal(t, 0, back.Failures, "resuming forgets the failures")
			require.Nil(t, back.FailingSince)
		}
	}
	_, err := s.RecordAttempt(ctx, "sub_missing", 1, store.Attempt{At: t0})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestReplayResendsTheSameMessages(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	sub := subscribe(t, s)
	ctx := t.Context()
	var sent []store.Delivery
	for _, p := range []string{"a", "b", "c"} {
		writeRound(t, s, p, 1)
		report(t, s)
		d := pending(t, s, sub.ID)
		require.Len(t, d, 1)
		_, err := s.RecordAttempt(ctx, sub.ID, d[0].Seq, store.Attempt{At: time.Now(), Status: 200, Delivered: true})
		require.NoError(t, err)
		sent = append(sent, d[0])
	}
	require.Empty(t, pending(t, s, sub.ID))

	second := recordsChanged(t, sent[1])
	n, err := s.ReplaySubscription(ctx, sub.ID, store.ReplayFrom{After: &second.From})
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "the messages covering rows after the position")
	again := pending(t, s, sub.ID)
	require.Len(t, again, 2)
	for i, d := range again {
		require.Equal(t, sent[i+1].ID, d.ID, "the same webhook-id")
		require.Equal(t, sent[i+1].Body(), d.Body(), "the same body")
		require.Equal(t, 1, d.Replays)
	}
	_, err = s.ReplaySubscription(ctx, sub.ID, store.ReplayFrom{})
	require.ErrorIs(t, err, store.ErrInvalid)
	since := sent[0].CreatedAt
	n, err = s.ReplaySubscription(ctx, sub.ID, store.ReplayFrom{Since: &since})
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the two others are pending already")
	require.Len(t, pending(t, s, sub.ID), 3)
}

func TestSubscriptionsRefuseUnknownEventTypes(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	_, err := s.CreateSubscription(t.Context(), store.SubscriptionSpec{URL: "https://x.example", Secret: testSecret, EventTypes: []string{"records.updated"}})
	require.ErrorIs(t, err, store.ErrInvalid)
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.subscriptions`).Scan(&n))
	require.Zero(t, n)
	_, err = s.UpdateSubscription(t.Context(), "sub_missing", store.SubscriptionPatch{})
	require.ErrorIs(t, err, store.ErrNotFound)
}

// Feed positions compare as numbers: a report after the transaction ids gain a digit (999 →
// 1000) still finds the newest row. (Compared as text, "999" sorts after "1000".)
func TestReportsOrderTransactionIDsAsNumbers(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	sub := subscribe(t, s)
	writeRound(t, s, "a", 2)
	var txid uint64
	require.NoError(t, pool.QueryRow(t.Context(), `select pg_current_xact_id()::text::bigint`).Scan(&txid))
	next := uint64(10)
	for next <= txid {
		next *= 10
	}
	// Use up transaction ids until the next ones have one digit more.
	_, err := pool.Exec(t.Context(), fmt.Sprintf(`do $$ begin for i in 1..%d loop perform pg_current_xact_id(); commit; end loop; end $$`, next-txid))
	require.NoError(t, err)
	writeRound(t, s, "b", 3)
	res := report(t, s)
	require.False(t, res.Behind)
	ds := pending(t, s, sub.ID)
	require.Len(t, ds, 1)
	rc := recordsChanged(t, ds[0])
	require.Equal(t, 5, rc.Changes)
	var newest store.FeedPosition
	require.NoError(t, pool.QueryRow(t.Context(), `select txid::text as t, seq from kombo.changes order by txid desc, seq desc limit 1`).
		Scan(&newest.TxID, &newest.Seq))
	require.Equal(t, newest, rc.To)
	require.Greater(t, len(rc.To.TxID), len(fmt.Sprint(txid)), "the ids gained a digit")
}
