package store_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// fullPass writes the records with ids [0, n) of a full run over employees, and finishes it.
func fullPass(t *testing.T, s *store.Store, runID string, ids []int) store.Run {
	t.Helper()
	run := store.Run{ID: runID, IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindFull}
	_, err := s.StartRun(t.Context(), run)
	require.NoError(t, err)
	var recs []kombo.Record
	for _, i := range ids {
		recs = append(recs, rec(t, fmt.Sprintf("e%02d", i), map[string]any{"n": i}, nil))
	}
	_, err = s.ApplyPage(t.Context(), run, &kombo.Page{Records: recs}, t0)
	require.NoError(t, err)
	require.NoError(t, s.SucceedRun(t.Context(), run, nil))
	return run
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestSweepMarksUnseenRowsDeletedOnce(t *testing.T) {
	s, pool := newStore(t)
	fullPass(t, s, "full-1", seq(0, 20))
	run := fullPass(t, s, "full-2", seq(0, 18)) // two records vanished

	res, err := s.Sweep(t.Context(), run, 0.2, false)
	require.NoError(t, err)
	require.Equal(t, store.SweepResult{Alive: 20, Missing: 2, Swept: 2}, res)
	var deleted, changes int
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.records where deleted_at is not null`).Scan(&deleted))
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.changes where op = 'deleted' and fetch_run_id = 'full-2'`).Scan(&changes))
	require.Equal(t, 2, deleted)
	require.Equal(t, 2, changes)

	again, err := s.Sweep(t.Context(), run, 0.2, false)
	require.NoError(t, err)
	require.Equal(t, 2, again.Swept, "a retried sweep returns what it did")
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.records where deleted_at is not null`).Scan(&deleted))
	require.Equal(t, 2, deleted, "and never sweeps again")

	// A swept record that comes back is restored.
	back := fullPass(t, s, "full-3", seq(0, 20))
	_, err = s.Sweep(t.Context(), back, 0.2, false)
	require.NoError(t, err)
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.changes where op = 'restored'`).Scan(&changes))
	require.Equal(t, 2, changes)
}

func TestSweepGuardRefusesALargeShareUntilConfirmed(t *testing.T) {
	s, pool := newStore(t)
	fullPass(t, s, "full-1", seq(0, 40))
	run := fullPass(t, s, "full-2", seq(0, 28)) // 30% gone

	res, err := s.Sweep(t.Context(), run, 0.2, false)
	require.NoError(t, err)
	require.Equal(t, store.SweepResult{Alive: 40, Missing: 12, Refused: true}, res)
	var deleted int
	require.NoError(t, pool.QueryRow(t.Context(), `select count(*) from kombo.records where deleted_at is not null`).Scan(&deleted))
	require.Zero(t, deleted, "a refused sweep changes nothing")

	// The operator confirms: a new pass, confirmed (a confirmation applies to the pass it is given for).
	again := fullPass(t, s, "full-3", seq(0, 28))
	res, err = s.Sweep(t.Context(), again, 0.2, true)
	require.NoError(t, err)
	require.Equal(t, 12, res.Swept)
}

func TestSweepGuardLetsAFewRowsGoButNeverAll(t *testing.T) {
	s, _ := newStore(t)
	fullPass(t, s, "full-1", seq(0, 3))
	run := fullPass(t, s, "full-2", seq(0, 2)) // one of three: 33%, but only one row
	res, err := s.Sweep(t.Context(), run, 0.2, false)
	require.NoError(t, err)
	require.Equal(t, 1, res.Swept)

	empty := fullPass(t, s, "full-3", nil) // Kombo returned nothing at all
	res, err = s.Sweep(t.Context(), empty, 0.2, false)
	require.NoError(t, err)
	require.True(t, res.Refused, "emptying an endpoint always needs a confirmation")
}

func TestOnlyACompletedFullPassSweeps(t *testing.T) {
	s, _ := newStore(t)
	run := store.Run{ID: "open", IntegrationID: "personio:1", Endpoint: employees, Kind: store.KindFull}
	_, err := s.StartRun(t.Context(), run)
	require.NoError(t, err)
	_, err = s.Sweep(t.Context(), run, 0.2, true)
	require.ErrorContains(t, err, "only a completed full pass may sweep")
}
