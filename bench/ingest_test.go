//go:build bench

package bench

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/testsuite"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

const (
	ingestRecords   = 100_000
	ingestPairs     = 3                // backfill + COPY pairs of figure 1; the median is reported
	naiveRecords    = 10_000           // the naive baseline commits per record: its rate is measured on the first pages
	netRTT          = time.Millisecond // figure 2's database across a network
	farNaiveRecords = 2_000            // the naive port at netRTT: about 1.5 ms a record
	latencyRecords  = 25_000           // 100 pages
	pageLatency     = 200 * time.Millisecond
	integrationID   = "personio:bench"
)

var employees = kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}

// ingest is a recording's replay, a fresh database and the activities on them.
type ingest struct {
	replay *replay
	kc     *kombo.Client
	pool   *pgxpool.Pool
	acts   *activities.Activities
	suite  testsuite.WorkflowTestSuite
}

// newIngest serves rec, each page after latency, to activities writing into a fresh database
// reached at dsn (testenv's when empty).
func newIngest(t *testing.T, rec *recording, latency time.Duration, dsn string) *ingest {
	t.Helper()
	rp := &replay{rec: rec, latency: latency}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	kc, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1", APIKey: "key", Timeout: time.Minute})
	must(t, err)
	if dsn == "" {
		dsn = testenv.Database(t)
	}
	pool, err := pgxpool.New(t.Context(), dsn)
	must(t, err)
	t.Cleanup(pool.Close)
	in := &ingest{replay: rp, kc: kc, pool: pool, acts: &activities.Activities{Kombo: kc, Store: store.New(pool)}}
	in.suite.SetLogger(testenv.QuietLogger())
	t.Cleanup(func() {
		if n := rp.misses.Load(); n > 0 {
			t.Errorf("%d requests asked for pages not recorded", n)
		}
	})
	return in
}

// pass runs FetchEndpoint without updated_after as Temporal would (in the SDK's activity
// environment) and times it: kind delta is a new integration's backfill, kind full the weekly
// full pass, which also records the ids it saw for its sweep.
func (in *ingest) pass(t *testing.T, runID, kind string) (activities.FetchEndpointResult, time.Duration) {
	t.Helper()
	env := in.suite.NewTestActivityEnvironment()
	env.RegisterActivity(in.acts)
	// Each timed pass starts from a collected heap: the recording's rendering (a whole emulator of
	// 100,000 nested records) is the benchmark's garbage, not kombosync's, and the first pass
	// after it ran 10 points under the others, every time, until this.
	runtime.GC()
	start := time.Now()
	v, err := env.ExecuteActivity(in.acts.FetchEndpoint, activities.FetchEndpointInput{
		IntegrationID: integrationID, Endpoint: employees, Kind: kind, RunID: runID})
	took := time.Since(start)
	must(t, err)
	var res activities.FetchEndpointResult
	must(t, v.Get(&res))
	return res, took
}

// allPages is every page of the endpoint, as the API returns them.
func (in *ingest) allPages(ctx context.Context) iter.Seq2[*kombo.Page, error] {
	return in.kc.Pages(ctx, integrationID, employees, passParams)
}

func benchIngest(t *testing.T) {
	ctx := t.Context()
	rec := recordPages(t, ingestRecords)
	in := newIngest(t, rec, 0, "")

	// 1. All 100,000 employees into an empty table, and the machine's limit: COPY of the same
	// rows, right after, into the same database. Three such pairs; the median pair is reported.
	type pair struct {
		rate, copyRate float64
		took           time.Duration
	}
	var pairs []pair
	for k := range ingestPairs {
		p := in
		if k > 0 {
			p = newIngest(t, rec, 0, "")
		}
		res, took := p.pass(t, "backfill-1", store.KindDelta)
		if res.Counts.Fetched != ingestRecords {
			t.Fatalf("fetched %d, want %d", res.Counts.Fetched, ingestRecords)
		}
		var records []kombo.Record
		for pg, err := range p.allPages(ctx) {
			must(t, err)
			records = append(records, pg.Records...)
		}
		pairs = append(pairs, pair{rate: float64(res.Counts.Fetched) / took.Seconds(), copyRate: copyRows(ctx, t, p.pool, records), took: took})
	}
	var spread []string // in the order they ran
	for _, p := range pairs {
		spread = append(spread, fmt.Sprintf("%.0f%%", 100*p.rate/p.copyRate))
	}
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(a.rate/a.copyRate, b.rate/b.copyRate) })
	median := pairs[len(pairs)/2]
	rate, copyRate, took := median.rate, median.copyRate, median.took
	cost := profileWritePath(t, newIngest(t, rec, 0, ""))
	weekly := newIngest(t, rec, 0, "")
	wres, wtook := weekly.pass(t, "full-1", store.KindFull)
	wrate := float64(wres.Counts.Fetched) / wtook.Seconds()
	f1 := figure{N: 1, Title: "Full-pass ingest of 100,000 employees vs COPY",
		Result: fmt.Sprintf("%s records/s (%s); COPY %s rows/s: **%.0f%%** (median of %s, in the order run). As a weekly full pass (also recording the ids it saw): %s records/s, %.0f%%",
			num(rate), took.Round(time.Millisecond), num(copyRate), 100*rate/copyRate, strings.Join(spread, ", "), num(wrate), 100*wrate/copyRate),
		Goal: "≥ 50% of COPY in each of 3 runs", Met: pairs[0].rate >= pairs[0].copyRate/2,
		Note: "`FetchEndpoint` in the SDK's activity environment pages the emulator's 100,000 employees (loopback, 250 per page, " +
			"nested records, no injected latency; recorded once and replayed from memory, so serving costs about nothing) into an " +
			"empty database, as a new integration's backfill does: upsert, change-feed row and run bookkeeping per page " +
			"in one transaction. The limit is one `COPY` (pgx `CopyFrom`) of the same 100,000 rows, as the API returned them, into a " +
			"table of the same shape (`create table … (like kombo.hris_employees including all)`: same columns, primary key and " +
			"indexes); COPY writes no change feed. The same pass as a weekly full pass (kind full) into another empty database also " +
			"writes each id to `kombo.full_pass_seen` for its sweep: a second row per record, which costs the difference. " +
			"Each backfill runs against a fresh replay and database, its COPY right after on the same database; of three such " +
			"pairs the median ratio is reported. COPY takes " + ms(time.Duration(float64(kombo.DefaultPageSize)/copyRate*float64(time.Second))) +
			" for a page's 250 rows. **Where a page's time goes** (the same pages fetched and written one after the other, " +
			"into another empty database): " + cost.String() + "."}
	if !f1.Met {
		f1.Note += fmt.Sprintf(" **Why the goal is missed here:** a page's write is PostgreSQL's CPU (%s of the machine's "+
			"CPU besides kombosync's while a page is written, against %s for COPY's 250 rows): per record kombosync writes the "+
			"record and a change row (two rows, each with its indexes: four on the change feed) where COPY writes one, in a "+
			"statement that also looks each id up first. kombosync's own work (%s fetching and decoding a page, overlapped "+
			"with the previous page's write, and %s of CPU in the write) is not the limit, so about half of COPY's rate is the "+
			"ceiling of one connection writing pages in order, and runs land on either side of it. What would close it: "+
			"writing two pages at once on two connections (the advisory lock would have to become per page), or dropping a "+
			"change-feed index.", ms(cost.writePgCPU), ms(time.Duration(float64(kombo.DefaultPageSize)/copyRate*float64(time.Second))),
			ms(cost.fetch), ms(cost.writeSelfCPU))
	}
	record(f1)

	// 2. The naive port: one upsert statement and commit per record, on loopback and with a
	// network's round trip to PostgreSQL.
	naiveRate := naive(ctx, t, in, naiveRecords)
	farDSN := latencyProxy(t, testenv.Database(t), netRTT)
	far := newIngest(t, rec, 0, farDSN)
	rtt := roundTrip(ctx, t, far.pool)
	farRes, farTook := far.pass(t, "far-1", store.KindDelta)
	farRate := float64(farRes.Counts.Fetched) / farTook.Seconds()
	farNaive := naive(ctx, t, far, farNaiveRecords)
	f2 := figure{N: 2, Title: "Full-pass ingest vs a naive per-record upsert",
		Result: fmt.Sprintf("loopback: naive %s records/s, kombosync **%.1f×** faster; with a %s round trip to PostgreSQL: "+
			"naive %s records/s, kombosync %s records/s, **%.1f×**", num(naiveRate), rate/naiveRate, ms(rtt), num(farNaive),
			num(farRate), farRate/farNaive),
		Goal: "≥ 10×", Met: rate >= 10*naiveRate,
		Note: fmt.Sprintf("The straightforward port of Kombo's example: fetch a page, then for each record one "+
			"`insert … on conflict do update` in its own transaction (autocommit) into a table of the same shape; timed over "+
			"the first %s records (its rate is flat: every record costs one commit). Then both again through a TCP proxy in "+
			"the benchmark that delays every chunk sent to PostgreSQL by %s (measured `select 1` round trip %s), the situation of a database "+
			"across a network: kombosync's whole 100,000-record backfill into another empty database, the naive port over its "+
			"first %s records. The goal is judged on loopback, the harder case for it.", num(naiveRecords), netRTT, ms(rtt),
			num(farNaiveRecords))}
	if !f2.Met {
		f2.Note += fmt.Sprintf(" **Why the goal is missed here (on loopback):** a commit costs this machine about %.2f ms (its virtual disk "+
			"acknowledges fsync from a cache), so the naive port already reaches 1/%.0f of the machine's COPY limit. Ten times "+
			"the naive rate would be %s records/s, %.1f× what COPY itself manages: no sync can reach it on this machine, let "+
			"alone one that also writes a change feed and its run bookkeeping. kombosync commits once per 250 records, so "+
			"where a statement or a commit is not nearly free the naive port falls far behind: with the database a %s round "+
			"trip away it is %.1f× slower than kombosync. "+
			"Closing it here would take nothing in kombosync (it already runs at %.0f%% of COPY); it is the baseline that is fast.",
			1000/naiveRate, copyRate/naiveRate, num(10*naiveRate), 10*naiveRate/copyRate, ms(rtt), farRate/farNaive,
			100*rate/copyRate)
	}
	record(f2)

	// 3. The same 100,000 again, unchanged.
	var changesBefore, changesAfter int64
	must(t, in.pool.QueryRow(ctx, `select count(*) from kombo.changes`).Scan(&changesBefore))
	again, againTook := in.pass(t, "full-2", store.KindFull)
	must(t, in.pool.QueryRow(ctx, `select count(*) from kombo.changes`).Scan(&changesAfter))
	written := again.Counts.Written()
	record(figure{N: 3, Title: "Unchanged re-fetch of the same 100,000",
		Result: fmt.Sprintf("%d rows written, %d change rows; %s, **%.2f×** the first pass", written, changesAfter-changesBefore,
			againTook.Round(time.Millisecond), againTook.Seconds()/took.Seconds()),
		Goal: "0 rows written", Met: written == 0 && changesAfter == changesBefore,
		Note: "A weekly full pass over the same, unchanged data: the upsert compares the stored data and writes no record row " +
			"version and no change row. Its only writes are bookkeeping: the run's row and the 100,000 ids it saw, in " +
			"`kombo.full_pass_seen`, which its sweep deletes."})

	// 4. 200 ms per page: fetching overlaps writing.
	slow := newIngest(t, recordPages(t, latencyRecords), pageLatency, "")
	sres, stook := slow.pass(t, "slow-1", store.KindDelta)
	served, bound := slow.replay.served()
	if served != sres.Counts.Pages {
		t.Fatalf("%d pages served for a pass of %d", served, sres.Counts.Pages)
	}
	ratio := stook.Seconds() / bound.Seconds()
	record(figure{N: 4, Title: "Full pass with 200 ms per page vs the pages' service time",
		Result: fmt.Sprintf("%d pages in %s, bound %s: **%.3f×**", sres.Counts.Pages, stook.Round(time.Millisecond),
			bound.Round(time.Millisecond), ratio),
		Goal: "≤ 1.05×", Met: ratio <= 1.05,
		Note: fmt.Sprintf("%s employees, recorded pages answered %s after each request (as figure 1's); the next page is "+
			"fetched while the current one is written, so the pass should cost little more than the API's own time. The bound "+
			"is the sum of the server's service times, from each request's arrival to its last byte sent (%s for %d pages: "+
			"the injected 200 ms and %.2f ms a page of serving), so nothing the server spends is counted against kombosync.",
			num(latencyRecords), pageLatency, bound.Round(time.Millisecond), served,
			float64((bound-time.Duration(served)*pageLatency).Microseconds())/1000/float64(served))})
}

// copyRows COPYs the records into a table shaped like an endpoint's and returns rows/s.
func copyRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool, records []kombo.Record) float64 {
	t.Helper()
	_, err := pool.Exec(ctx, `create table bench_copy (like kombo.hris_employees including all)`)
	must(t, err)
	now := time.Now()
	rows := make([][]any, len(records))
	for i, r := range records {
		rows[i] = []any{integrationID, employees.String(), r.ID, r.RemoteID, []byte(r.Raw), r.ChangedAt, r.RemoteDeletedAt,
			nil, now, now, now, "copy"}
	}
	start := time.Now()
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, []string{"integration_id", "endpoint", "id", "remote_id", "data",
		"changed_at", "remote_deleted_at", "deleted_at", "first_seen_at", "last_seen_at", "fetched_at", "fetch_run_id"},
		pgx.CopyFromRows(rows))
	took := time.Since(start)
	must(t, err)
	if int(n) != len(records) {
		t.Fatalf("copied %d of %d", n, len(records))
	}
	return float64(n) / took.Seconds()
}

// roundTrip is the median time of 50 `select 1` on pool.
func roundTrip(ctx context.Context, t *testing.T, pool *pgxpool.Pool) time.Duration {
	t.Helper()
	var lat []time.Duration
	for range 50 {
		start := time.Now()
		_, err := pool.Exec(ctx, `select 1`)
		must(t, err)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}

// naive fetches pages and upserts record by record, one commit each, until limit records.
func naive(ctx context.Context, t *testing.T, in *ingest, limit int) float64 {
	t.Helper()
	_, err := in.pool.Exec(ctx, `create table bench_naive (like kombo.hris_employees including all)`)
	must(t, err)
	n := 0
	start := time.Now()
	for p, err := range in.allPages(ctx) {
		must(t, err)
		for _, r := range p.Records {
			now := time.Now()
			_, err := in.pool.Exec(ctx, `
				insert into bench_naive (integration_id, endpoint, id, remote_id, data, changed_at, remote_deleted_at,
					first_seen_at, last_seen_at, fetched_at, fetch_run_id)
				values ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, 'naive')
				on conflict (integration_id, endpoint, id) do update set remote_id = excluded.remote_id, data = excluded.data,
					changed_at = excluded.changed_at, remote_deleted_at = excluded.remote_deleted_at,
					last_seen_at = excluded.last_seen_at, fetched_at = excluded.fetched_at`,
				integrationID, employees.String(), r.ID, r.RemoteID, []byte(r.Raw), r.ChangedAt, r.RemoteDeletedAt, now)
			must(t, err)
			n++
		}
		if n >= limit {
			break
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// num prints 12345.6 as "12,346".
func num(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
