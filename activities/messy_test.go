package activities_test

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
)

// requireStoreEqualsSanitizedTruth: every record the emulator serves well-formed is stored as
// kombosync's sanitising rule makes it; broken ones are not stored.
func (h *harness) requireStoreEqualsSanitizedTruth(t *testing.T, ep kombo.Endpoint) {
	t.Helper()
	truth, err := h.emu.Truth("personio:t", ep)
	require.NoError(t, err)
	for _, r := range truth {
		var data []byte
		err := h.pool.QueryRow(t.Context(), `select data from kombo.records where integration_id = 'personio:t' and endpoint = $1 and id = $2`,
			ep.String(), r.ID).Scan(&data)
		if r.Broken {
			continue // it may hold the version from before it broke
		}
		require.NoError(t, err, r.ID)
		require.JSONEq(t, string(kombo.Sanitize(r.Data)), string(data), r.ID)
	}
}

// Real HR data is messy: U+0000, half surrogate pairs, bytes that are not UTF-8, huge fields,
// the same record twice in a page, and a record without a usable changed_at. None of them stops
// the endpoint: the records are stored sanitised and counted, the broken one is set aside, and
// when it arrives well-formed it is taken.
func TestMessyRecordsDoNotStopTheirEndpoint(t *testing.T) {
	t.Parallel()
	h := setup(t, 40)
	res, err := h.fetch(t, input(employees, "full-1", nil))
	require.NoError(t, err)
	require.Equal(t, 40, res.Counts.Inserted)

	truth, err := h.emu.Truth("personio:t", employees)
	require.NoError(t, err)
	messes := map[komboemu.Mess]string{}
	for k, m := range komboemu.Messes {
		_, err := h.emu.Make("personio:t", employees, truth[k].ID, m)
		require.NoError(t, err)
		messes[m] = truth[k].ID
	}
	h.clk.Advance(time.Minute)
	since := h.clk.Now().Add(-2 * time.Minute)
	res, err = h.fetch(t, input(employees, "delta-1", &since))
	require.NoError(t, err, "a messy page is written")
	require.Equal(t, 3, res.Counts.Sanitized, "NUL, half surrogate, invalid UTF-8")
	require.Equal(t, 1, res.Counts.Rejected)
	require.Equal(t, 1, res.RejectedOpen)
	require.Equal(t, 4, res.Counts.Updated, "the three sanitised records and the huge one; the duplicate is unchanged")
	h.requireStoreEqualsSanitizedTruth(t, employees)

	// The change feed carries the sanitised values.
	want := map[string]string{
		messes[komboemu.MessNUL]:         "beforeafter",
		messes[komboemu.MessSurrogate]:   "half a pair: \ufffd here",
		messes[komboemu.MessInvalidUTF8]: "a byte: \ufffd here",
	}
	for id, note := range want {
		var diff []byte
		require.NoError(t, h.pool.QueryRow(t.Context(), `select diff from kombo.changes where record_id = $1 and op = 'updated'`, id).Scan(&diff))
		var d map[string][2]any
		require.NoError(t, json.Unmarshal(diff, &d))
		require.Equal(t, note, d["custom_note"][1], id)
	}
	var reason string
	require.NoError(t, h.pool.QueryRow(t.Context(), `select reason from kombo.rejected_records where record_id = $1`,
		messes[komboemu.MessBroken]).Scan(&reason))
	require.Contains(t, reason, "changed_at")

	// The broken record is mended at the source: the next delta takes it and clears the list.
	_, err = h.emu.Make("personio:t", employees, messes[komboemu.MessBroken], komboemu.MessNone)
	require.NoError(t, err)
	h.clk.Advance(time.Minute)
	since = h.clk.Now().Add(-2 * time.Minute)
	res, err = h.fetch(t, input(employees, "delta-2", &since))
	require.NoError(t, err)
	require.Zero(t, res.RejectedOpen)
	h.requireStoreEqualsSanitizedTruth(t, employees)
}

// A page that is not JSON fails the same way on every attempt: the run ends as failed at once
// with a DataError, not after ten retries; and a retried attempt of a run an earlier attempt ended
// as failed reports that failure, never a success.
func TestAPageThatCannotBeReadFailsTheRunOnce(t *testing.T) {
	t.Parallel()
	h := setup(t, 5)
	h.emu.QueueFaults(komboemu.FaultGarbage)
	_, err := h.fetch(t, input(employees, "bad", nil))
	requireAppError(t, err, activities.ErrDataError, true)
	p, err := h.acts.Store.RunProgress(t.Context(), "bad")
	require.NoError(t, err)
	require.Equal(t, store.OutcomeFailed, p.Outcome)
	require.Equal(t, activities.ErrDataError, p.ErrorType)

	// The same run id again (an attempt whose answer was lost): the failure it was.
	_, err = h.fetch(t, input(employees, "bad", nil))
	appErr := requireAppError(t, err, activities.ErrDataError, true)
	require.Contains(t, appErr.Error(), "failed in an earlier attempt")
	var n int
	require.NoError(t, h.pool.QueryRow(t.Context(), `select count(*) from kombo.records`).Scan(&n))
	require.Zero(t, n)
}

// hugePage is a harness whose employees are one page of 250 records with a 300 KB field each.
func hugePage(t testing.TB) *harness {
	t.Helper()
	h := setup(t, 250)
	truth, err := h.emu.Truth("personio:t", employees)
	require.NoError(t, err)
	for _, r := range truth {
		_, err := h.emu.Make("personio:t", employees, r.ID, komboemu.MessHuge)
		require.NoError(t, err)
	}
	return h
}

// A page of 250 records with a 300 KB free-text field each (75 MB) is synced. What one such page
// costs in memory is BenchmarkHugePage's figure.
func TestAPageOfHugeRecordsIsSynced(t *testing.T) {
	// Not parallel: its gigabyte of allocation would starve the timing of the others.
	h := hugePage(t)
	res, err := h.fetch(t, input(employees, "huge", nil))
	require.NoError(t, err)
	require.Equal(t, 250, res.Counts.Inserted)
	var longest int
	require.NoError(t, h.pool.QueryRow(t.Context(), `select min(length(data->>'custom_note')) from kombo.hris_employees`).Scan(&longest))
	require.Equal(t, komboemu.HugeFieldBytes, longest)
}

// BenchmarkHugePage: the Go heap one page of 250 × 300 KB records costs the worker (allocated
// bytes per page, and the heap in use at its peak), decode and write included.
func BenchmarkHugePage(b *testing.B) {
	h := hugePage(b)
	var peak uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		k++
		if _, err := h.fetch(b, input(employees, "huge-"+strings.Repeat("x", k), nil)); err != nil {
			b.Fatal(err)
		}
	}
	close(done)
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
