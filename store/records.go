package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kombosync/kombosync/kombo"
)

// upsertPage writes one page of records and their change rows in a single statement.
//
//   - prev: the stored versions, read in the statement's snapshot before it writes: one
//     primary-key probe per id of the page. A plain join let the planner, misled by the stale
//     statistics of a table being filled, read every stored row of the integration for each page:
//     quadratic in the table's size (2,300 records/s at 100,000 employees);
//   - up: inserts new records and updates changed ones. The WHERE of DO UPDATE makes an unchanged
//     record cost no write at all (no new row version, no change row; ON CONFLICT does lock it).
//     A version fetched before the stored one (a zombie attempt finishing late) is not applied
//     either. Filtering unchanged records out before the insert, to spare the lock, was measured
//     slower: it makes prev a twice-used, always-computed CTE (unchanged re-fetch 0.8× instead of
//     0.4× of a full pass);
//   - ch: one change row per written record, with the op and the changed top-level fields (the
//     values of fields the field policy touches are "[redacted]": a stored version from before a
//     policy change may still hold them);
//   - run: the run's counts and next cursor, so its progress never disagrees with the data.
//
// Callers hold the (integration, endpoint) advisory lock, so prev cannot go stale under it.
const upsertPage = `
with incoming as (
	select * from unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
		as t(id, remote_id, data, changed_at, remote_deleted_at)
	where not exists ( -- erased and suppressed: not stored again while Kombo serves it
		select from kombo.suppressed_records s where s.integration_id = $1 and s.endpoint = $2 and s.record_id = t.id)
), prev as (
	select r.id, r.data, r.deleted_at
	from unnest($3::text[]) as i(id)
	cross join lateral (
		select r.id, r.data, r.deleted_at from kombo.records r
		where r.integration_id = $1 and r.endpoint = $2 and r.id = i.id
		offset 0 -- a fence: one primary-key probe per id, whatever the statistics say
	) r
), up as (
	insert into kombo.records as r (integration_id, endpoint, id, remote_id, data, changed_at, remote_deleted_at,
		deleted_at, first_seen_at, last_seen_at, fetched_at, fetch_run_id)
	select $1, $2, i.id, i.remote_id, i.data::jsonb, i.changed_at, i.remote_deleted_at,
		case when i.remote_deleted_at is not null then $8::timestamptz end, $8, $8, $8, $9
	from incoming i
	on conflict (integration_id, endpoint, id) do update set
		remote_id = excluded.remote_id,
		data = excluded.data,
		changed_at = excluded.changed_at,
		remote_deleted_at = excluded.remote_deleted_at,
		deleted_at = case when excluded.remote_deleted_at is null then null else coalesce(r.deleted_at, excluded.deleted_at) end,
		last_seen_at = excluded.last_seen_at,
		fetched_at = excluded.fetched_at,
		fetch_run_id = excluded.fetch_run_id,
		content_removed_at = null
	where (r.data is distinct from excluded.data
			or (r.deleted_at is not null and excluded.remote_deleted_at is null))
		and r.fetched_at <= excluded.fetched_at
		-- A tombstone stays one while Kombo still serves the record as deleted; a restore
		-- brings the content back.
		and (r.content_removed_at is null or excluded.remote_deleted_at is null)
	returning r.id, r.data, r.deleted_at
), ch as (
	insert into kombo.changes (integration_id, endpoint, record_id, op, diff, fetch_run_id, recorded_at)
	select $1, $2, u.id,
		case
			when p.id is null and u.deleted_at is null then 'created'
			when p.id is null then 'deleted'
			when p.deleted_at is not null and u.deleted_at is null then 'restored'
			when p.deleted_at is null and u.deleted_at is not null then 'deleted'
			else 'updated'
		end,
		case when p.id is not null then (
			select coalesce(jsonb_object_agg(k, case when k = any($15::text[]) then '["[redacted]", "[redacted]"]'::jsonb
				else jsonb_build_array(p.data -> k, u.data -> k) end), '{}'::jsonb)
			from jsonb_object_keys(p.data || u.data) as k
			where (p.data -> k) is distinct from (u.data -> k)
		) end,
		$9, $8
	from up u left join prev p on p.id = u.id
	returning op
), counts as (
	select
		count(*) filter (where op = 'created') as inserted,
		count(*) filter (where op = 'updated') as updated,
		count(*) filter (where op = 'deleted') as deleted,
		count(*) filter (where op = 'restored') as restored
	from ch
), run as (
	update kombo.fetch_runs f set
		next_cursor = nullif($10, ''), pages = pages + $14, fetched = fetched + $11,
		sanitized = f.sanitized + $12, rejected = f.rejected + $13,
		inserted = f.inserted + c.inserted, updated = f.updated + c.updated,
		deleted = f.deleted + c.deleted, restored = f.restored + c.restored,
		unchanged = f.unchanged + $11 - c.inserted - c.updated - c.deleted - c.restored
	from counts c
	where f.id = $9 and f.finished_at is null
	returning f.id
)
select inserted, updated, deleted, restored, (select count(*) from run) from counts`

// ApplyPage writes one fetched page in one transaction: the records (nothing for unchanged ones),
// a change row per real change, and the run's counts and next cursor (page.Next), so the run's
// progress never disagrees with the data. fetchedAt is when the page was fetched. It returns the
// page's counts. The run must have been started (StartRun).
//
// A page of huge records (HR free text can be hundreds of kilobytes a record) is sent in chunks of
// about chunkBytes, one statement each in the same transaction, so the memory a page costs the
// driver stays a few times chunkBytes instead of a few times the page.
func (s *Store) ApplyPage(ctx context.Context, run Run, page *kombo.Page, fetchedAt time.Time) (Counts, error) {
	recs := dedupe(page.Records)
	recs, err := s.applyPolicy(run.Endpoint.String(), recs)
	if err != nil {
		return Counts{}, fmt.Errorf("apply page of %s %s: %w", run.IntegrationID, run.Endpoint, err)
	}
	policyFields := s.policy.TopLevel(run.Endpoint.String())
	if policyFields == nil {
		policyFields = []string{}
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	c := Counts{Pages: 1, Fetched: len(page.Records), Rejected: len(page.Rejected)}
	for _, r := range page.Records {
		if r.Sanitized {
			c.Sanitized++
		}
	}
	chunks := chunk(recs)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		// One writer per (integration, endpoint) at a time: a retried attempt and its zombie
		// predecessor take turns instead of interleaving.
		b.Queue(lockEndpoint, endpointLockKey(run))
		if run.Kind == KindFull {
			// What the sweep must not delete: every id this pass saw.
			b.Queue(`insert into kombo.full_pass_seen (run_id, id) select $1, unnest($2::text[]) on conflict do nothing`, run.ID, ids)
		}
		queueRejected(b, run, page.Rejected, ids, fetchedAt)
		queueJobKeys(b, run, recs)
		// The first chunk (a whole ordinary page) goes in the same round trip; the chunks of a
		// huge page follow one statement each.
		var runs int
		for k, part := range chunks {
			// The page's own numbers go with its first statement; duplicates dropped by dedupe
			// count as fetched (and unchanged) there too.
			pages, fetched, sanitized, rejected := 0, len(part), 0, 0
			if k == 0 {
				pages, fetched, sanitized, rejected = 1, len(part)+len(page.Records)-len(recs), c.Sanitized, c.Rejected
			}
			queueUpsert(b, run, part, fetchedAt, page.Next, fetched, sanitized, rejected, pages, policyFields, &c, &runs)
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
			if runs == 0 {
				// The run finished (or was never started) while this page was fetched, by
				// another attempt: this one is a zombie, and writes nothing.
				return ErrRunNotOpen
			}
			b = &pgx.Batch{}
		}
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("apply page of %s %s: %w", run.IntegrationID, run.Endpoint, err)
	}
	c.Unchanged = c.Fetched - c.Written()
	return c, nil
}

// queueUpsert queues the page statement for part of a page's records; its counts are added to c
// and the number of open runs it found is set in runs.
func queueUpsert(b *pgx.Batch, run Run, part []kombo.Record, fetchedAt time.Time, next string,
	fetched, sanitized, rejected, pages int, policyFields []string, c *Counts, runs *int) {
	n := len(part)
	ids, remoteIDs, data := make([]string, n), make([]*string, n), make([]string, n)
	changedAt, deletedAt := make([]time.Time, n), make([]*time.Time, n)
	for i, r := range part {
		ids[i], data[i], changedAt[i], deletedAt[i] = r.ID, string(r.Raw), r.ChangedAt, r.RemoteDeletedAt
		if r.RemoteID != "" {
			remoteIDs[i] = &r.RemoteID
		}
	}
	b.Queue(upsertPage, run.IntegrationID, run.Endpoint.String(), ids, remoteIDs, data, changedAt, deletedAt,
		fetchedAt, run.ID, next, fetched, sanitized, rejected, pages, policyFields).
		QueryRow(func(row pgx.Row) error {
			var in, up, del, res int
			if err := row.Scan(&in, &up, &del, &res, runs); err != nil {
				return err
			}
			c.Inserted, c.Updated, c.Deleted, c.Restored = c.Inserted+in, c.Updated+up, c.Deleted+del, c.Restored+res
			return nil
		})
}

// chunkBytes bounds the records' bytes one page statement carries.
const chunkBytes = 4 << 20

// chunk splits records into runs of at most chunkBytes of raw JSON (at least one record each,
// and always one chunk, possibly empty, so that an empty page still moves the run on).
func chunk(recs []kombo.Record) [][]kombo.Record {
	out := [][]kombo.Record{nil}
	size := 0
	for _, r := range recs {
		last := len(out) - 1
		if size+len(r.Raw) > chunkBytes && len(out[last]) > 0 {
			out = append(out, nil)
			last++
			size = 0
		}
		out[last] = append(out[last], r)
		size += len(r.Raw)
	}
	return out
}

// queueRejected records the page's rejected elements, and takes the page's good records off the
// rejected list: a record rejected before that now arrives well-formed is taken normally.
func queueRejected(b *pgx.Batch, run Run, rejected []kombo.RejectedRecord, accepted []string, seenAt time.Time) {
	b.Queue(`delete from kombo.rejected_records where integration_id = $1 and endpoint = $2 and key = any($3::text[])`,
		run.IntegrationID, run.Endpoint.String(), accepted)
	if len(rejected) == 0 {
		return
	}
	seen := make(map[string]bool, len(rejected))
	var keys, recordIDs, reasons, excerpts []string
	for _, r := range rejected {
		key := rejectedKey(r)
		if seen[key] {
			continue // one statement cannot write a row twice
		}
		seen[key] = true
		keys, recordIDs, reasons, excerpts = append(keys, key), append(recordIDs, r.ID), append(reasons, r.Reason), append(excerpts, r.Excerpt)
	}
	b.Queue(`
		insert into kombo.rejected_records as x (integration_id, endpoint, key, record_id, reason, excerpt,
			first_seen_at, last_seen_at, fetch_run_id)
		select $1, $2, k, nullif(i, ''), r, e, $7, $7, $8
		from unnest($3::text[], $4::text[], $5::text[], $6::text[]) as t(k, i, r, e)
		on conflict (integration_id, endpoint, key) do update set
			reason = excluded.reason, excerpt = excluded.excerpt, last_seen_at = excluded.last_seen_at,
			fetch_run_id = excluded.fetch_run_id`,
		run.IntegrationID, run.Endpoint.String(), keys, recordIDs, reasons, excerpts, seenAt, run.ID)
}

// rejectedKey identifies a rejected element across fetches: its id, or the hash of its bytes.
func rejectedKey(r kombo.RejectedRecord) string {
	if r.ID != "" {
		return r.ID
	}
	sum := sha256.Sum256(r.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// lockEndpoint serialises the writers of one (integration, endpoint) for a transaction: page
// writes and sweeps take turns.
const lockEndpoint = `select pg_advisory_xact_lock(hashtextextended($1, 0))`

// endpointLockKey is lockEndpoint's key; unambiguous, as endpoints hold no space.
func endpointLockKey(run Run) string { return run.Endpoint.String() + " " + run.IntegrationID }

// ErrRunNotOpen: the page's run is finished or unknown.
var ErrRunNotOpen = errors.New("fetch run is not open")

// dedupe keeps the last of records sharing an id: one statement cannot write a row twice.
func dedupe(recs []kombo.Record) []kombo.Record {
	seen := make(map[string]int, len(recs))
	out := make([]kombo.Record, 0, len(recs))
	for _, r := range recs {
		if i, ok := seen[r.ID]; ok {
			out[i] = r
			continue
		}
		seen[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}

// RejectedByEndpoint counts an integration's records in kombo.rejected_records, by endpoint.
func (s *Store) RejectedByEndpoint(ctx context.Context, integrationID string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `select endpoint, count(*) from kombo.rejected_records where integration_id = $1 group by endpoint`,
		integrationID)
	if err != nil {
		return nil, fmt.Errorf("count rejected records of %s: %w", integrationID, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var ep string
		var n int
		if err := rows.Scan(&ep, &n); err != nil {
			return nil, fmt.Errorf("count rejected records of %s: %w", integrationID, err)
		}
		out[ep] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rejected records of %s: %w", integrationID, err)
	}
	return out, nil
}

// applyPolicy applies the field policy to the records (copies; the page is not changed), before
// anything is stored or diffed.
func (s *Store) applyPolicy(endpoint string, recs []kombo.Record) ([]kombo.Record, error) {
	if s.policy.TopLevel(endpoint) == nil {
		return recs, nil
	}
	out := make([]kombo.Record, len(recs))
	for i, r := range recs {
		raw, _, err := s.policy.Apply(endpoint, r.Raw)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", r.ID, err)
		}
		r.Raw = raw
		out[i] = r
	}
	return out, nil
}
