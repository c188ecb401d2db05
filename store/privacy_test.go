package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/privacy"
	"github.com/kombosync/kombosync/store"
)

var hashKey = []byte("0123456789abcdef0123456789abcdef")

// requireNowhere fails when any of the values is in any row of any table of schema kombo.
func requireNowhere(t *testing.T, pool *pgxpool.Pool, values ...string) {
	t.Helper()
	require.Empty(t, teststack.FindInSchema(t, pool, values...))
}

// requireSomewhere is requireNowhere's converse, so a scan that finds nothing proves something.
func requireSomewhere(t *testing.T, pool *pgxpool.Pool, value string) {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `select (select count(*) from kombo.records r where r::text like '%' || $1 || '%')
		+ (select count(*) from kombo.changes c where c::text like '%' || $1 || '%')`, value).Scan(&n))
	require.Positive(t, n, "%q should be stored", value)
}

func page(t *testing.T, s *store.Store, runID string, recs ...kombo.Record) store.Counts {
	t.Helper()
	run := startRun(t, s, runID)
	c, err := s.ApplyPage(t.Context(), run, &kombo.Page{Records: recs}, time.Now())
	require.NoError(t, err)
	require.NoError(t, s.SucceedRun(t.Context(), run, nil))
	return c
}

func startRetention(t *testing.T, s *store.Store, id string) {
	t.Helper()
	require.NoError(t, s.StartRetentionRun(t.Context(), id))
}

func TestAFieldPolicyKeepsItsValuesOutOfEveryTable(t *testing.T) {
	base, pool := newStore(t)
	p, err := privacy.Parse([]byte(`{"hris/employees": {"drop": ["date_of_birth", "home_address.street_1"], "hash": ["ssn"]}}`), hashKey)
	require.NoError(t, err)
	s := base.WithPolicy(p)
	page(t, s, "run-1", rec(t, "e1", map[string]any{"first_name": "Ada", "date_of_birth": "1815-12-10", "ssn": "078-05-1120",
		"home_address": map[string]any{"street_1": "12 Hidden Lane", "city": "London"}}, nil))
	c := page(t, s, "run-2", rec(t, "e1", map[string]any{"first_name": "Ada", "date_of_birth": "1815-12-11", "ssn": "078-05-1121",
		"home_address": map[string]any{"street_1": "13 Hidden Lane", "city": "London"}}, nil))
	require.Equal(t, 1, c.Updated, "a changed hashed value is a change")

	requireNowhere(t, pool, "1815-12-1", "078-05-112", "Hidden Lane")
	requireSomewhere(t, pool, "London")
	var data map[string]any
	require.NoError(t, pool.QueryRow(t.Context(), `select data from kombo.hris_employees where id = 'e1'`).Scan(&data))
	require.NotContains(t, data, "date_of_birth")
	require.True(t, strings.HasPrefix(data["ssn"].(string), privacy.HashPrefix))
	ch := changes(t, pool)
	require.Len(t, ch, 2)
	require.Equal(t, map[string][2]any{"ssn": {"[redacted]", "[redacted]"}}, ch[1].Diff,
		"the policy's fields are named in the diff, never with values (not even hashes); home_address changed only in what is dropped")
}

func TestAChangedPolicyIsAppliedToStoredRowsAndChangeRows(t *testing.T) {
	s, pool := newStore(t)
	const n = 5
	for v := range 2 { // two versions: change rows with old and new birth dates
		var recs []kombo.Record
		for i := range n {
			recs = append(recs, rec(t, fmt.Sprintf("e%d", i), map[string]any{"first_name": "P", "date_of_birth": fmt.Sprintf("1990-0%d-1%d", i+1, v)}, nil))
		}
		page(t, s, fmt.Sprintf("run-%d", v), recs...)
	}
	requireSomewhere(t, pool, "1990-01-10")
	p, err := privacy.Parse([]byte(`{"hris/employees": {"drop": ["date_of_birth"]}}`), nil)
	require.NoError(t, err)
	ps := s.WithPolicy(p)
	// A page under the new policy before the retention run: its diff names the field, redacted.
	page(t, ps, "run-new", rec(t, "e0", map[string]any{"first_name": "Q", "date_of_birth": "1990-01-12"}, nil))
	eps, err := ps.PolicyEndpoints(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"hris/employees"}, eps)

	startRetention(t, ps, "ret-1")
	var total store.RetentionCounts
	batches := 0
	for done := false; !done; batches++ {
		var c store.RetentionCounts
		c, done, err = ps.PolicyBatch(t.Context(), "ret-1", "hris/employees", 2)
		require.NoError(t, err)
		total = total.Add(c)
		require.Less(t, batches, 10)
	}
	require.Equal(t, 3, batches, "five rows, two a batch")
	require.Equal(t, int64(n-1), total.PolicyRows, "e0 was written under the policy already")
	require.Equal(t, int64(n), total.PolicyChanges, "each record's update row held birth dates (e0's newest is redacted already)")
	requireNowhere(t, pool, "1990-0")
	got, err := ps.FinishRetentionRun(t.Context(), "ret-1")
	require.NoError(t, err)
	require.Equal(t, total, got, "the run's row counts exactly what the batches did")

	c, done, err := ps.PolicyBatch(t.Context(), "ret-1", "hris/employees", 2)
	require.NoError(t, err)
	require.True(t, done, "the recorded fingerprint is the policy's: nothing to do")
	require.Zero(t, c.Total())
	for _, ch := range changes(t, pool) {
		if ch.Op == "updated" {
			require.Equal(t, [2]any{"[redacted]", "[redacted]"}, ch.Diff["date_of_birth"], "the field's name stays in the diff")
		}
	}
}

func TestDeletedRecordsBecomeTombstonesAfterTheirRetention(t *testing.T) {
	s, pool := newStore(t)
	page(t, s, "run-1", rec(t, "gone", map[string]any{"first_name": "Grace", "work_email": "grace@acme.example"}, nil),
		rec(t, "kept", map[string]any{"first_name": "Alan"}, nil))
	deleted := t0.Add(time.Hour)
	page(t, s, "run-2", rec(t, "gone", map[string]any{"first_name": "Grace", "work_email": "grace@acme.example", "title": "CEO"}, &deleted))
	startRetention(t, s, "ret-1")
	dbNow, err := s.DatabaseTime(t.Context())
	require.NoError(t, err)

	c, rows, err := s.RetainBatch(t.Context(), "ret-1", store.RetainDeleted, dbNow.Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Zero(t, rows, "deleted less than the retention ago: kept whole")
	require.Zero(t, c.Total())
	c, rows, err = s.RetainBatch(t.Context(), "ret-1", store.RetainDeleted, dbNow.Add(time.Second), 10)
	require.NoError(t, err)
	require.Equal(t, 1, rows)
	require.Equal(t, store.RetentionCounts{Tombstoned: 1, ChangesRedacted: 1}, c, "the update row; the created row has no values")
	requireNowhere(t, pool, "Grace", "grace@acme.example", "CEO")
	requireSomewhere(t, pool, "Alan")
	var data map[string]any
	var removed *time.Time
	require.NoError(t, pool.QueryRow(t.Context(), `select data, content_removed_at from kombo.hris_employees where id = 'gone'`).Scan(&data, &removed))
	require.NotNil(t, removed)
	require.Equal(t, map[string]any{"id": "gone", "remote_id": "r-gone", "changed_at": kombo.FormatTime(t0), "remote_deleted_at": kombo.FormatTime(deleted)}, data)
	ch := changes(t, pool)
	require.Equal(t, map[string][2]any{"title": {"[redacted]", "[redacted]"}, "remote_deleted_at": {"[redacted]", "[redacted]"}},
		ch[len(ch)-1].Diff, "field names kept")

	// Kombo still serves it as deleted (include_deleted): it stays a tombstone.
	c2 := page(t, s, "run-3", rec(t, "gone", map[string]any{"first_name": "Grace", "work_email": "grace@acme.example", "title": "CEO"}, &deleted))
	require.Equal(t, 0, c2.Written())
	requireNowhere(t, pool, "Grace")
	// Restored at Kombo: the whole record is back, no longer a tombstone.
	page(t, s, "run-4", rec(t, "gone", map[string]any{"first_name": "Grace", "work_email": "grace@acme.example"}, nil))
	require.NoError(t, pool.QueryRow(t.Context(), `select data, content_removed_at from kombo.hris_employees where id = 'gone'`).Scan(&data, &removed))
	require.Nil(t, removed)
	require.Equal(t, "Grace", data["first_name"])
}

func TestChangeValuesAreRedactedInBatchesAfterTheirRetention(t *testing.T) {
	s, pool := newStore(t)
	for v := range 4 {
		page(t, s, fmt.Sprintf("run-%d", v), rec(t, "e1", map[string]any{"salary": fmt.Sprintf("salary-%d", v)}, nil))
	}
	startRetention(t, s, "ret-1")
	dbNow, err := s.DatabaseTime(t.Context())
	require.NoError(t, err)
	var total store.RetentionCounts
	for k := 0; ; k++ {
		c, rows, err := s.RetainBatch(t.Context(), "ret-1", store.RetainChanges, dbNow.Add(time.Second), 2)
		require.NoError(t, err)
		total = total.Add(c)
		if rows < 2 {
			break
		}
		require.Less(t, k, 5)
	}
	require.Equal(t, int64(3), total.ChangesRedacted, "three updates; the created row has no values")
	requireNowhere(t, pool, "salary-0", "salary-1", "salary-2")
	requireSomewhere(t, pool, "salary-3") // the record itself keeps its current value
	for _, ch := range changes(t, pool)[1:] {
		require.Equal(t, map[string][2]any{"salary": {"[redacted]", "[redacted]"}}, ch.Diff)
	}
	got, err := s.FinishRetentionRun(t.Context(), "ret-1")
	require.NoError(t, err)
	require.Equal(t, total, got)
	_, _, err = s.RetainBatch(t.Context(), "no-such-run", store.RetainChanges, dbNow, 2)
	require.ErrorIs(t, err, store.ErrNoRetentionRun, "a batch never works uncounted")
}

func TestSignaledWebhooksLeaveTheInboxAfterTheirRetention(t *testing.T) {
	s, pool := newStore(t)
	old := time.Now().Add(-48 * time.Hour)
	for _, ev := range []struct {
		id       string
		at       time.Time
		signaled bool
	}{{"old-signaled", old, true}, {"old-unsignaled", old, false}, {"new-signaled", time.Now(), true}} {
		_, err := s.InsertWebhookEvent(t.Context(), store.InboxEvent{ID: ev.id, Type: "data-changed", IntegrationID: "personio:1",
			Payload:    []byte(`{"id":"` + ev.id + `","type":"data-changed","data":{"end_user":{"creator_email":"admin-` + ev.id + `@acme.example"}}}`),
			ReceivedAt: ev.at}, !ev.signaled)
		require.NoError(t, err)
	}
	// Outbound deliveries: one delivered long ago, one delivered now, one pending since long ago.
	sub := subscribe(t, s)
	for range 3 {
		_, err := s.SaveIntegrationEvents(t.Context(), store.Integration{ID: "personio:1", SyncState: "auth_failed"})
		require.NoError(t, err)
		_, err = s.SaveIntegrationEvents(t.Context(), store.Integration{ID: "personio:1", SyncState: "idle"})
		require.NoError(t, err)
	}
	ds := pending(t, s, sub.ID)
	require.Len(t, ds, 6)
	_, err := s.RecordAttempt(t.Context(), sub.ID, ds[0].Seq, store.Attempt{At: old, Status: 200, Delivered: true})
	require.NoError(t, err)
	_, err = s.RecordAttempt(t.Context(), sub.ID, ds[1].Seq, store.Attempt{At: time.Now(), Status: 200, Delivered: true})
	require.NoError(t, err)

	startRetention(t, s, "ret-1")
	c, _, err := s.RetainBatch(t.Context(), "ret-1", store.RetainWebhooks, time.Now().Add(-24*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, int64(1), c.WebhooksDeleted)
	require.Equal(t, int64(1), c.DeliveriesDeleted, "only the delivery delivered before the cutoff")
	require.Len(t, pending(t, s, sub.ID), 4, "pending deliveries stay, whatever their age")
	log, err := s.DeliveryLog(t.Context(), sub.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, log, 5)
	requireNowhere(t, pool, "admin-old-signaled@")
	rows, err := pool.Query(t.Context(), `select id from kombo.webhook_events order by id`)
	require.NoError(t, err)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"new-signaled", "old-unsignaled"}, left, "an unsignaled webhook is still owed to its workflow")
}

func TestErasureRemovesAPersonAndWhatEmbedsThem(t *testing.T) {
	s, pool := newStore(t)
	page(t, s, "run-1", rec(t, "e1", map[string]any{"first_name": "Hedy", "work_email": "Hedy.L@acme.example"}, nil),
		rec(t, "e2", map[string]any{"first_name": "Other", "work_email": "other@acme.example"}, nil))
	page(t, s, "run-2", rec(t, "e1", map[string]any{"first_name": "Hedy", "work_email": "Hedy.L@acme.example", "title": "Inventor"}, nil))
	employments := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employments"}
	run := store.Run{ID: "run-emp", IntegrationID: "personio:1", Endpoint: employments, Kind: store.KindDelta}
	_, err := s.StartRun(t.Context(), run)
	require.NoError(t, err)
	_, err = s.ApplyPage(t.Context(), run, &kombo.Page{Records: []kombo.Record{rec(t, "m1", map[string]any{"employee_id": "e1", "pay_rate": "Hedy's pay"}, nil)}}, time.Now())
	require.NoError(t, err)
	bad := startRun(t, s, "run-bad") // a broken version of e1, set aside with an excerpt
	_, err = s.ApplyPage(t.Context(), bad, &kombo.Page{Rejected: []kombo.RejectedRecord{{ID: "e1", Reason: "bad", Excerpt: `{"id":"e1","first_name":"Hedy"`}}}, time.Now())
	require.NoError(t, err)

	people, err := s.FindByEmail(t.Context(), "personio:1", " hedy.l@ACME.example ")
	require.NoError(t, err)
	require.Equal(t, []store.RecordRef{{Endpoint: "hris/employees", ID: "e1"}}, people)
	related, err := s.RelatedRecords(t.Context(), "personio:1", people[0])
	require.NoError(t, err)
	require.Equal(t, []store.RecordRef{{Endpoint: "hris/employments", ID: "m1"}}, related)
	refs := append(people, related...)

	dry, err := s.Erase(t.Context(), "personio:1", refs, true, "DSR-17", true)
	require.NoError(t, err)
	require.Equal(t, refs, dry.Records)
	requireSomewhere(t, pool, "Hedy")

	res, err := s.Erase(t.Context(), "personio:1", refs, true, "DSR-17", false)
	require.NoError(t, err)
	require.Equal(t, store.ErasureResult{Records: refs, ChangeRows: 3, RejectedRows: 1, Suppressed: refs}, res)
	requireNowhere(t, pool, "Hedy", "Inventor")
	requireSomewhere(t, pool, "other@acme.example")
	var erased int
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.changes where op = 'erased' and diff is null`).Scan(&erased))
	require.Equal(t, 2, erased, "a reader of the feed learns to erase its copies")

	// Suppressed: Kombo still serves it, the next pass does not store it again; lifted, it does.
	page(t, s, "run-3", rec(t, "e1", map[string]any{"first_name": "Hedy", "work_email": "Hedy.L@acme.example"}, nil))
	requireNowhere(t, pool, "Hedy")
	sup, err := s.Suppressions(t.Context(), "personio:1")
	require.NoError(t, err)
	require.Len(t, sup, 2)
	require.Equal(t, "DSR-17", sup[0].Reason)
	require.NoError(t, s.LiftSuppression(t.Context(), "personio:1", people[0]))
	require.ErrorIs(t, s.LiftSuppression(t.Context(), "personio:1", people[0]), store.ErrNotFound)
	page(t, s, "run-4", rec(t, "e1", map[string]any{"first_name": "Hedy", "work_email": "Hedy.L@acme.example"}, nil))
	requireSomewhere(t, pool, "Hedy")

	_, err = s.Erase(t.Context(), "personio:1", refs, true, " ", false)
	require.ErrorContains(t, err, "needs a reason")
}
