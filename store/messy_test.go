package store_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

type rejectedRow struct{ Key, RecordID, Reason string }

func rejectedRows(t *testing.T, pool *pgxpool.Pool) []rejectedRow {
	t.Helper()
	rows, err := pool.Query(t.Context(), `select key, coalesce(record_id, ''), reason from kombo.rejected_records order by key`)
	require.NoError(t, err)
	defer rows.Close()
	var out []rejectedRow
	for rows.Next() {
		var r rejectedRow
		require.NoError(t, rows.Scan(&r.Key, &r.RecordID, &r.Reason))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// A page element kombosync cannot take is set aside in kombo.rejected_records while the rest of
// its page is written; it leaves the list when it arrives well-formed (by id) or when a complete
// full pass no longer meets it (without one), and the status view says so meanwhile.
func TestRejectedRecordsAreSetAsideAndLeaveWhenFixed(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	require.NoError(t, s.SaveIntegration(t.Context(), store.Integration{ID: "personio:1", Tool: "personio", Category: "HRIS"}))
	run := startRun(t, s, "run-1")
	page := &kombo.Page{
		Records: []kombo.Record{rec(t, "a", nil, nil), rec(t, "c", nil, nil)},
		Rejected: []kombo.RejectedRecord{
			{ID: "b", Reason: "changed_at: cannot parse", Raw: []byte(`{"id":"b","changed_at":"yesterday"}`), Excerpt: `{"id":"b"…`},
			{Reason: "no id", Raw: []byte(`{"name":"x"}`), Excerpt: `{"name":"x"}`},
			{Reason: "no id", Raw: []byte(`{"name":"x"}`), Excerpt: `{"name":"x"}`}, // twice in one page
		},
	}
	c, err := s.ApplyPage(t.Context(), run, page, t0)
	require.NoError(t, err)
	require.Equal(t, 2, c.Inserted)
	require.Equal(t, 3, c.Rejected)
	require.Len(t, rowVersions(t, pool), 2, "the good records of the page are written")
	got := rejectedRows(t, pool)
	require.Len(t, got, 2)
	require.Equal(t, rejectedRow{"b", "b", "changed_at: cannot parse"}, got[0])
	require.Regexp(t, `^sha256:[0-9a-f]{64}$`, got[1].Key)
	p, err := s.RunProgress(t.Context(), "run-1")
	require.NoError(t, err)
	require.Equal(t, 3, p.Counts.Rejected)
	n, err := s.RejectedByEndpoint(t.Context(), "personio:1")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"hris/employees": 2}, n)
	st, err := s.IntegrationStatus(t.Context(), "personio:1")
	require.NoError(t, err)
	require.Contains(t, st.Attention, "2 records rejected")

	// b arrives well-formed: taken normally, off the list.
	_, err = s.ApplyPage(t.Context(), run, &kombo.Page{Records: []kombo.Record{rec(t, "b", nil, nil)}}, t0)
	require.NoError(t, err)
	require.Len(t, rejectedRows(t, pool), 1)
	require.Len(t, rowVersions(t, pool), 3)

	// A complete full pass that no longer meets the id-less element: gone at Kombo, off the list.
	require.NoError(t, s.SucceedRun(t.Context(), run, nil))
	full := fullPass(t, s, "full-1", nil)
	_, err = s.ApplyPage(t.Context(), full, &kombo.Page{Records: []kombo.Record{rec(t, "a", nil, nil), rec(t, "b", nil, nil), rec(t, "c", nil, nil)}}, t0)
	require.ErrorIs(t, err, store.ErrRunNotOpen) // fullPass finished it; write the pass through a fresh one
	full = store.Run{ID: "full-2", IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindFull}
	_, err = s.StartRun(t.Context(), full)
	require.NoError(t, err)
	_, err = s.ApplyPage(t.Context(), full, &kombo.Page{Records: []kombo.Record{rec(t, "a", nil, nil), rec(t, "b", nil, nil), rec(t, "c", nil, nil)}}, t0)
	require.NoError(t, err)
	require.NoError(t, s.SucceedRun(t.Context(), full, nil))
	_, err = s.Sweep(t.Context(), full, 0.2, false)
	require.NoError(t, err)
	require.Empty(t, rejectedRows(t, pool))
	st, err = s.IntegrationStatus(t.Context(), "personio:1")
	require.NoError(t, err)
	require.Empty(t, st.Attention)
}

// Sanitised records are counted in the run.
func TestSanitizedRecordsAreCountedInTheRun(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	run := startRun(t, s, "run-1")
	a, b := rec(t, "a", nil, nil), rec(t, "b", nil, nil)
	a.Sanitized = true
	c, err := s.ApplyPage(t.Context(), run, &kombo.Page{Records: []kombo.Record{a, b}}, t0)
	require.NoError(t, err)
	require.Equal(t, 1, c.Sanitized)
	p, err := s.RunProgress(t.Context(), "run-1")
	require.NoError(t, err)
	require.Equal(t, 1, p.Counts.Sanitized)
}

// A full pass ends cleanly whatever happens to it: a refused sweep and a failed pass leave no
// seen ids behind, and a full pass left open (its retries ran out) is ended when the next one
// starts.
func TestFullPassesLeaveNoBookkeepingBehind(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	seen := func(runID string) int {
		var n int
		require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.full_pass_seen where run_id = $1`, runID).Scan(&n))
		return n
	}
	fullPass(t, s, "full-1", seq(0, 40))
	refused := fullPass(t, s, "full-2", seq(0, 20))
	res, err := s.Sweep(t.Context(), refused, 0.2, false)
	require.NoError(t, err)
	require.True(t, res.Refused)
	require.Zero(t, seen("full-2"), "a refused sweep forgets the pass's ids")

	failed := store.Run{ID: "full-3", IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindFull}
	_, err = s.StartRun(t.Context(), failed)
	require.NoError(t, err)
	_, err = s.ApplyPage(t.Context(), failed, &kombo.Page{Records: []kombo.Record{rec(t, "e01", nil, nil)}}, t0)
	require.NoError(t, err)
	require.Equal(t, 1, seen("full-3"))
	require.NoError(t, s.FailRun(t.Context(), "full-3", "DataError", errors.New("bad page"), true))
	require.Zero(t, seen("full-3"), "a failed pass forgets its ids")
	p, err := s.RunProgress(t.Context(), "full-3")
	require.NoError(t, err)
	require.Equal(t, store.Progress{Finished: true, Outcome: store.OutcomeFailed, Error: "bad page", ErrorType: "DataError",
		Counts: store.Counts{Pages: 1, Fetched: 1, Updated: 1}}, p)

	open := store.Run{ID: "full-4", IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindFull}
	_, err = s.StartRun(t.Context(), open)
	require.NoError(t, err)
	_, err = s.ApplyPage(t.Context(), open, &kombo.Page{Records: []kombo.Record{rec(t, "e01", nil, nil)}}, t0)
	require.NoError(t, err)
	_, err = s.StartRun(t.Context(), store.Run{ID: "full-5", IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindFull})
	require.NoError(t, err)
	p, err = s.RunProgress(t.Context(), "full-4")
	require.NoError(t, err)
	require.True(t, p.Finished)
	require.Equal(t, store.OutcomeFailed, p.Outcome)
	require.Contains(t, p.Error, "abandoned")
	require.Zero(t, seen("full-4"))
	p, err = s.RunProgress(t.Context(), "full-5")
	require.NoError(t, err)
	require.False(t, p.Finished, "the new pass runs")
}

// A confirmation lets a sweep pass the share guard, never empty an endpoint.
func TestAConfirmedSweepNeverEmptiesAnEndpoint(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	fullPass(t, s, "full-1", seq(0, 10))
	empty := fullPass(t, s, "full-2", nil)
	res, err := s.Sweep(t.Context(), empty, 0.2, true)
	require.NoError(t, err)
	require.Equal(t, store.SweepResult{Alive: 10, Missing: 10, Refused: true}, res)
	var deleted int
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.records where deleted_at is not null`).Scan(&deleted))
	require.Zero(t, deleted)
}

// An endpoint Kombo stops serving keeps its rows as they were, and says since when, until it is
// served again.
func TestAnEndpointKomboStopsServingIsReported(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	require.NoError(t, s.SaveIntegration(t.Context(), store.Integration{ID: "personio:1", Tool: "personio", Category: "HRIS"}))
	run := startRun(t, s, "run-1")
	_, err := s.ApplyPage(t.Context(), run, &kombo.Page{Records: []kombo.Record{rec(t, "a", nil, nil)}}, t0)
	require.NoError(t, err)
	require.NoError(t, s.SucceedRun(t.Context(), run, &t0))

	gone := startRun(t, s, "run-2")
	require.NoError(t, s.FinishModelUnavailable(t.Context(), gone, "INTEGRATION.MODEL_DISABLED"))
	st, err := s.IntegrationStatus(t.Context(), "personio:1")
	require.NoError(t, err)
	require.Equal(t, "hris/employees", st.EndpointsUnavailable)
	require.Contains(t, st.Attention, "not served by Kombo: hris/employees")
	var live int
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.hris_employees where deleted_at is null`).Scan(&live))
	require.Equal(t, 1, live, "its rows stay as last synced")

	back := startRun(t, s, "run-3")
	require.NoError(t, s.SucceedRun(t.Context(), back, &t0))
	st, err = s.IntegrationStatus(t.Context(), "personio:1")
	require.NoError(t, err)
	require.Empty(t, st.EndpointsUnavailable)
	require.Empty(t, st.Attention)
}

// The database's clock orders fetches: DatabaseTime moves forward across calls.
func TestDatabaseTimeIsTheServersClock(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	var before string
	require.NoError(t, pool.QueryRow(t.Context(), `select clock_timestamp()::text`).Scan(&before))
	a, err := s.DatabaseTime(t.Context())
	require.NoError(t, err)
	b, err := s.DatabaseTime(t.Context())
	require.NoError(t, err)
	require.True(t, b.After(a), fmt.Sprint(a, b))
}
