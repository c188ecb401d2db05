package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Postgres) }

var employees = kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}

func newStore(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), testenv.Database(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return store.New(pool), pool
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func rec(t *testing.T, id string, fields map[string]any, deletedAt *time.Time) kombo.Record {
	t.Helper()
	obj := map[string]any{"id": id, "remote_id": "r-" + id, "changed_at": kombo.FormatTime(t0)}
	for k, v := range fields {
		obj[k] = v
	}
	if deletedAt != nil {
		obj["remote_deleted_at"] = kombo.FormatTime(*deletedAt)
	} else {
		obj["remote_deleted_at"] = nil
	}
	raw, err := json.Marshal(obj)
	require.NoError(t, err)
	return kombo.Record{ID: id, RemoteID: "r-" + id, ChangedAt: t0, RemoteDeletedAt: deletedAt, Raw: raw}
}

func startRun(t *testing.T, s *store.Store, id string) store.Run {
	t.Helper()
	r := store.Run{ID: id, IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindDelta}
	_, err := s.StartRun(t.Context(), r)
	require.NoError(t, err)
	return r
}

type change struct {
	RecordID string
	Op       string
	Diff     map[string][2]any
}

func changes(t *testing.T, pool *pgxpool.Pool) []change {
	t.Helper()
	rows, err := pool.Query(t.Context(), `select record_id, op, diff from kombo.changes order by seq`)
	require.NoError(t, err)
	defer rows.Close()
	var out []change
	for rows.Next() {
		var c change
		var diff []byte
		require.NoError(t, rows.Scan(&c.RecordID, &c.Op, &diff))
		if diff != nil {
			require.NoError(t, json.Unmarshal(diff, &c.Diff))
		}
		out = append(out, c)
	}
	require.NoError(t, rows.Err())
	return out
}

// rowVersions maps each record id to its row version (xmin), which changes on every rewrite.
func rowVersions(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `select id, xmin::text from kombo.hris_employees`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, xmin string
		require.NoError(t, rows.Scan(&id, &xmin))
		out[id] = xmin
	}
	return out
}

func TestPageInsertsIntoTheEndpointRelation(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	run := startRun(t, s, "run-1")
	page := &kombo.Page{Records: []kombo.Record{
		rec(t, "a", map[string]any{"first_name": "Ada", "employments": []any{map[string]any{"id": "e1"}}}, nil),
		rec(t, "b", map[string]any{"first_name": "Ben"}, nil),
	}, Next: "cursor-2"}
	c, err := s.ApplyPage(t.Context(), run, page, t0)
	require.NoError(t, err)
	require.Equal(t, store.Counts{Pages: 1, Fetched: 2, Inserted: 2}, c)

	var data []byte
	var remoteID, runID string
	require.NoError(t, pool.QueryRow(t.Context(), `select data, remote_id, fetch_run_id from kombo.hris_employees where integration_id = 'personio:1' and id = 'a'`).
		Scan(&data, &remoteID, &runID))
	require.JSONEq(t, string(page.Records[0].Raw), string(data), "stored exactly as Kombo returned it")
	require.Equal(t, "r-a", remoteID)
	require.Equal(t, "run-1", runID)
	require.Equal(t, []change{{"a", "created", nil}, {"b", "created", nil}}, changes(t, pool))

	p, err := s.RunProgress(t.Context(), "run-1")
	require.NoError(t, err)
	require.Equal(t, store.Progress{NextCursor: "cursor-2", Counts: c, Outcome: store.OutcomeRunning}, p)
}

func TestUnchangedRecordsAreNotWrittenAtAll(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	run := startRun(t, s, "run-1")
	page := &kombo.Page{Records: []kombo.Record{rec(t, "a", map[string]any{"x": 1}, nil), rec(t, "b", map[string]any{"x": 2}, nil)}}
	_, err := s.ApplyPage(t.Context(), run, page, t0)
	require.NoError(t, err)
	before := rowVersions(t, pool)

	// The same data with keys in another order and other white space is the same jsonb.
	again := &kombo.Page{Records: []kombo.Record{
		{ID: "a", RemoteID: "r-a", ChangedAt: t0, Raw: json.RawMessage(`{ "x": 1, "remote_deleted_at": null, "changed_at": "` + kombo.FormatTime(t0) + `", "remote_id": "r-a", "id": "a" }`)},
		rec(t, "b", map[string]any{"x": 2}, nil),
	}}
	run2 := startRun(t, s, "run-2")
	c, err := s.ApplyPage(t.Context(), run2, again, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, store.Counts{Pages: 1, Fetched: 2, Unchanged: 2}, c)
	require.Equal(t, before, rowVersions(t, pool), "no row was rewritten")
	require.Len(t, changes(t, pool), 2, "no change row")
}

func TestChangesCarryOpAndDiff(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := t.Context()
	run := startRun(t, s, "run-1")
	apply := func(at time.Time, recs ...kombo.Record) store.Counts {
		t.Helper()
		c, err := s.ApplyPage(ctx, run, &kombo.Page{Records: recs}, at)
		require.NoError(t, err)
		return c
	}
	apply(t0, rec(t, "a", map[string]any{"title": "Engineer", "team": "Core", "salary": 1}, nil))
	c := apply(t0.Add(1*time.Minute), rec(t, "a", map[string]any{"title": "Lead", "team": "Core", "salary": nil}, nil))
	require.Equal(t, 1, c.Updated)

	gone := t0.Add(2 * time.Minute)
	c = apply(t0.Add(3*time.Minute), rec(t, "a", map[string]any{"title": "Lead", "team": "Core", "salary": nil}, &gone))
	require.Equal(t, 1, c.Deleted)
	var deletedAt *time.Time
	require.NoError(t, pool.QueryRow(ctx, `select deleted_at from kombo.hris_employees where id = 'a'`).Scan(&deletedAt))
	require.NotNil(t, deletedAt, "we consider it gone")

	c = apply(t0.Add(4*time.Minute), rec(t, "a", map[string]any{"title": "Lead", "team": "Core", "salary": nil}, &gone))
	require.Equal(t, 1, c.Unchanged, "a deletion is recorded once")

	c = apply(t0.Add(5*time.Minute), rec(t, "a", map[string]any{"title": "Lead", "team": "Core", "salary": nil}, nil))
	require.Equal(t, 1, c.Restored)
	require.NoError(t, pool.QueryRow(ctx, `select deleted_at from kombo.hris_employees where id = 'a'`).Scan(&deletedAt))
	require.Nil(t, deletedAt)

	c = apply(t0.Add(6*time.Minute), rec(t, "z", nil, &gone))
	require.Equal(t, 1, c.Deleted, "first seen already deleted")

	require.Equal(t, []change{
		{"a", "created", nil},
		{"a", "updated", map[string][2]any{"title": {"Engineer", "Lead"}, "salary": {1.0, nil}}},
		{"a", "deleted", map[string][2]any{"remote_deleted_at": {nil, kombo.FormatTime(gone)}}},
		{"a", "restored", map[string][2]any{"remote_deleted_at": {kombo.FormatTime(gone), nil}}},
		{"z", "deleted", nil},
	}, changes(t, pool))
}

func TestAnOlderFetchNeverOverwritesANewerOne(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	run := startRun(t, s, "run-1")
	_, err := s.ApplyPage(t.Context(), run, &kombo.Page{Records: []kombo.Record{rec(t, "a", map[string]any{"v": "new"}, nil)}}, t0.Add(time.Minute))
	require.NoError(t, err)
	c, err := s.ApplyPage(t.Context(), run, &kombo.Page{Records: []kombo.Record{rec(t, "a", map[string]any{"v": "old"}, nil)}}, t0)
	require.NoError(t, err)
	require.Equal(t, 1, c.Unchanged)
	var v string
	require.NoError(t, pool.QueryRow(t.Context(), `select data->>'v' from kombo.hris_employees where id = 'a'`).Scan(&v))
	require.Equal(t, "new", v)
	require.Len(t, changes(t, pool), 1)
}

func TestAFinishedRunAcceptsNoMorePages(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	run := startRun(t, s, "run-1")
	require.NoError(t, s.FinishRun(t.Context(), "run-1", store.OutcomeSucceeded, ""))
	_, err := s.ApplyPage(t.Context(), run, &kombo.Page{Records: []kombo.Record{rec(t, "a", nil, nil)}}, t0)
	require.ErrorIs(t, err, store.ErrRunNotOpen)
	require.Empty(t, rowVersions(t, pool), "nothing written")
	require.Empty(t, changes(t, pool))

	p, err := s.RunProgress(t.Context(), "run-1")
	require.NoError(t, err)
	require.True(t, p.Finished)
	require.Equal(t, store.OutcomeSucceeded, p.Outcome)
	require.NoError(t, s.FinishRun(t.Context(), "run-1", store.OutcomeFailed, "late zombie"))
	p, err = s.RunProgress(t.Context(), "run-1")
	require.NoError(t, err)
	require.Equal(t, store.OutcomeSucceeded, p.Outcome, "a finished run stays as it finished")
}

func TestDuplicateIDsInAPageKeepTheLast(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	run := startRun(t, s, "run-1")
	c, err := s.ApplyPage(t.Context(), run, &kombo.Page{Records: []kombo.Record{
		rec(t, "a", map[string]any{"v": 1}, nil), rec(t, "a", map[string]any{"v": 2}, nil),
	}}, t0)
	require.NoError(t, err)
	require.Equal(t, 1, c.Inserted)
	var v int
	require.NoError(t, pool.QueryRow(t.Context(), `select (data->>'v')::int from kombo.hris_employees where id = 'a'`).Scan(&v))
	require.Equal(t, 2, v)
}

func TestRunsResumeAndRestart(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	run := startRun(t, s, "run-1")
	_, err := s.ApplyPage(ctx, run, &kombo.Page{Records: []kombo.Record{rec(t, "a", nil, nil)}, Next: "c2"}, t0)
	require.NoError(t, err)

	p, err := s.StartRun(ctx, run) // a retried attempt
	require.NoError(t, err)
	require.Equal(t, "c2", p.NextCursor)
	require.Equal(t, 1, p.Counts.Pages)

	require.NoError(t, s.RestartRun(ctx, "run-1"))
	p, err = s.RunProgress(ctx, "run-1")
	require.NoError(t, err)
	require.Empty(t, p.NextCursor)
	require.Equal(t, 1, p.Restarts)

	_, err = s.StartRun(ctx, store.Run{ID: "bad", IntegrationID: "x", Endpoint: employees, Kind: "weekly"})
	require.ErrorContains(t, err, "kind must be delta or full")
}

func TestWatermarksNeverMoveBackwards(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	w, err := s.Watermark(ctx, "p:1", employees)
	require.NoError(t, err)
	require.Equal(t, store.Watermark{}, w)

	require.NoError(t, s.AdvanceWatermark(ctx, "p:1", employees, t0.Add(time.Hour), false))
	require.NoError(t, s.AdvanceWatermark(ctx, "p:1", employees, t0, true))
	w, err = s.Watermark(ctx, "p:1", employees)
	require.NoError(t, err)
	require.True(t, w.UpdatedAfter.Equal(t0.Add(time.Hour)), "kept the later one")
	require.True(t, w.LastFullPassAt.Equal(t0))
}
