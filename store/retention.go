package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Retention steps, in the order a run takes them (README "Personal data").
const (
	RetainPolicy   = "field-policy"    // stored rows and change rows follow a changed field policy
	RetainDeleted  = "deleted-records" // deleted records become tombstones
	RetainChanges  = "change-values"   // old change rows' values are redacted
	RetainWebhooks = "webhook-events"  // old signaled webhooks leave the inbox
	// RetainActionPayloads: finished actions' requests (candidate data, attachments) are removed.
	// A step of runs since the workflow version retention-action-payloads (not in RetentionSteps,
	// which older runs replay).
	RetainActionPayloads = "action-payloads"
	redactedPairSQL      = `'["[redacted]", "[redacted]"]'::jsonb`
)

// RetentionSteps are the steps of a retention run, in order.
var RetentionSteps = []string{RetainPolicy, RetainDeleted, RetainChanges, RetainWebhooks}

// RetentionCounts are what a retention run did, as kombo.retention_runs records it.
type RetentionCounts struct {
	PolicyRows      int64 `json:"policy_rows"`
	PolicyChanges   int64 `json:"policy_changes"`
	Tombstoned      int64 `json:"tombstoned"`
	ChangesRedacted int64 `json:"changes_redacted"`
	WebhooksDeleted int64 `json:"webhooks_deleted"`
	// DeliveriesDeleted: outbound deliveries delivered before the webhooks' cutoff.
	DeliveriesDeleted int64 `json:"deliveries_deleted"`
	// ActionPayloadsRemoved: finished actions whose request was removed.
	ActionPayloadsRemoved int64 `json:"action_payloads_removed"`
}

// Add sums counts.
func (c RetentionCounts) Add(o RetentionCounts) RetentionCounts {
	return RetentionCounts{c.PolicyRows + o.PolicyRows, c.PolicyChanges + o.PolicyChanges, c.Tombstoned + o.Tombstoned,
		c.ChangesRedacted + o.ChangesRedacted, c.WebhooksDeleted + o.WebhooksDeleted, c.DeliveriesDeleted + o.DeliveriesDeleted,
		c.ActionPayloadsRemoved + o.ActionPayloadsRemoved}
}

// Total is every row the counts name.
func (c RetentionCounts) Total() int64 {
	return c.PolicyRows + c.PolicyChanges + c.Tombstoned + c.ChangesRedacted + c.WebhooksDeleted + c.DeliveriesDeleted +
		c.ActionPayloadsRemoved
}

// StartRetentionRun records a retention run (again, harmlessly, on a retried start).
func (s *Store) StartRetentionRun(ctx context.Context, runID string) error {
	_, err := s.pool.Exec(ctx, `insert into kombo.retention_runs (id) values ($1) on conflict do nothing`, runID)
	if err != nil {
		return fmt.Errorf("start retention run %s: %w", runID, err)
	}
	return nil
}

// FinishRetentionRun marks the run finished and returns its counts.
func (s *Store) FinishRetentionRun(ctx context.Context, runID string) (RetentionCounts, error) {
	var c RetentionCounts
	err := s.pool.QueryRow(ctx, `update kombo.retention_runs set finished_at = coalesce(finished_at, now()) where id = $1
		returning policy_rows, policy_changes, tombstoned, changes_redacted, webhooks_deleted, deliveries_deleted, action_payloads_removed`, runID).
		Scan(&c.PolicyRows, &c.PolicyChanges, &c.Tombstoned, &c.ChangesRedacted, &c.WebhooksDeleted, &c.DeliveriesDeleted, &c.ActionPayloadsRemoved)
	if err != nil {
		return c, fmt.Errorf("finish retention run %s: %w", runID, err)
	}
	return c, nil
}

// RetentionRun is one row of kombo.retention_runs.
type RetentionRun struct {
	ID         string     `json:"id"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	RetentionCounts
}

// RetentionRuns are the latest runs, newest first.
func (s *Store) RetentionRuns(ctx context.Context, limit int) ([]RetentionRun, error) {
	rows, err := s.pool.Query(ctx, `select id, started_at, finished_at, policy_rows, policy_changes, tombstoned,
		changes_redacted, webhooks_deleted, deliveries_deleted, action_payloads_removed from kombo.retention_runs order by started_at desc limit $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (RetentionRun, error) {
		var r RetentionRun
		err := row.Scan(&r.ID, &r.StartedAt, &r.FinishedAt, &r.PolicyRows, &r.PolicyChanges, &r.Tombstoned,
			&r.ChangesRedacted, &r.WebhooksDeleted, &r.DeliveriesDeleted, &r.ActionPayloadsRemoved)
		return r, err
	})
}

// tombstoneBatch reduces up to limit records deleted before cutoff to tombstones, redacting their
// change rows' values, in one transaction with the run's counts.
const tombstoneBatch = `
with victims as (
	select integration_id, endpoint, id from kombo.records
	where deleted_at is not null and content_removed_at is null and deleted_at < $1
	order by deleted_at limit $2
	for update skip locked
), tomb as (
	update kombo.records r set
		data = jsonb_strip_nulls(jsonb_build_object('id', r.data -> 'id', 'remote_id', r.data -> 'remote_id',
			'changed_at', r.data -> 'changed_at', 'remote_deleted_at', r.data -> 'remote_deleted_at')),
		content_removed_at = now()
	from victims v
	where r.integration_id = v.integration_id and r.endpoint = v.endpoint and r.id = v.id
	returning r.integration_id, r.endpoint, r.id
), ch as (
	update kombo.changes c set diff = ` + redactAllSQL + `, values_redacted_at = now()
	from tomb t
	where c.integration_id = t.integration_id and c.endpoint = t.endpoint and c.record_id = t.id
		and c.values_redacted_at is null and c.diff is not null
	returning 1
), counted as (
	update kombo.retention_runs set tombstoned = tombstoned + (select count(*) from tomb),
		changes_redacted = changes_redacted + (select count(*) from ch)
	where id = $3
	returning 1
)
select (select count(*) from tomb), (select count(*) from ch), (select count(*) from counted)`

// redactAllSQL is c.diff with every value replaced: {"field": ["[redacted]", "[redacted]"]}.
const redactAllSQL = `coalesce((select jsonb_object_agg(k, ` + redactedPairSQL + `) from jsonb_object_keys(c.diff) as k), '{}'::jsonb)`

// redactChangesBatch redacts the values of up to limit change rows recorded before cutoff.
const redactChangesBatch = `
with victims as (
	select seq from kombo.changes
	where values_redacted_at is null and diff is not null and recorded_at < $1
	order by recorded_at limit $2
	for update skip locked
), red as (
	update kombo.changes c set diff = ` + redactAllSQL + `, values_redacted_at = now()
	from victims v where c.seq = v.seq
	returning 1
), counted as (
	update kombo.retention_runs set changes_redacted = changes_redacted + (select count(*) from red) where id = $3
	returning 1
)
select 0, (select count(*) from red), (select count(*) from counted)`

// deleteWebhooksBatch deletes up to limit signaled webhooks received before cutoff, and up to
// limit outbound deliveries delivered before it (webhooks in and out). Unsignaled webhooks stay:
// the relay still owes them to their workflow (an alert says so); so do pending deliveries.
const deleteWebhooksBatch = `
with victims as (
	select id from kombo.webhook_events
	where signaled_at is not null and received_at < $1
	order by received_at limit $2
	for update skip locked
), del as (
	delete from kombo.webhook_events w using victims v where w.id = v.id
	returning 1
), sent as (
	select seq from kombo.deliveries
	where delivered_at < $1
	order by delivered_at limit $2
	for update skip locked
), odel as (
	delete from kombo.deliveries d using sent s where d.seq = s.seq
	returning 1
), counted as (
	update kombo.retention_runs set webhooks_deleted = webhooks_deleted + (select count(*) from del),
		deliveries_deleted = deliveries_deleted + (select count(*) from odel)
	where id = $3
	returning 1
)
select (select count(*) from del), (select count(*) from odel), (select count(*) from counted)`

// ErrNoRetentionRun: the batch's run is not in kombo.retention_runs.
var ErrNoRetentionRun = errors.New("retention run not started")

// RetainBatch runs one transaction of a retention step (RetainDeleted, RetainChanges or
// RetainWebhooks) on up to limit rows older than cutoff, and adds what it did to the run's
// counts in the same transaction: a crash loses or repeats nothing. It returns the counts of the
// batch; fewer rows than limit means the step is done.
func (s *Store) RetainBatch(ctx context.Context, runID, step string, cutoff time.Time, limit int) (RetentionCounts, int, error) {
	if step == RetainActionPayloads {
		n, err := s.RetainActionPayloads(ctx, runID, cutoff, limit)
		return RetentionCounts{ActionPayloadsRemoved: n}, int(n), err
	}
	var sql string
	switch step {
	case RetainDeleted:
		sql = tombstoneBatch
	case RetainChanges:
		sql = redactChangesBatch
	case RetainWebhooks:
		sql = deleteWebhooksBatch
	default:
		return RetentionCounts{}, 0, fmt.Errorf("retention step %q is not a batch step", step)
	}
	var first, second, counted int64
	if err := s.pool.QueryRow(ctx, sql, cutoff, limit, runID).Scan(&first, &second, &counted); err != nil {
		return RetentionCounts{}, 0, fmt.Errorf("retention %s: %w", step, err)
	}
	if counted == 0 {
		return RetentionCounts{}, 0, fmt.Errorf("retention %s of %s: %w", step, runID, ErrNoRetentionRun)
	}
	var c RetentionCounts
	rows := int(first)
	switch step {
	case RetainDeleted:
		c.Tombstoned, c.ChangesRedacted = first, second
	case RetainChanges:
		c.ChangesRedacted, rows = second, int(second)
	case RetainWebhooks:
		c.WebhooksDeleted, c.DeliveriesDeleted, rows = first, second, int(max(first, second))
	}
	return c, rows, nil
}

// PolicyEndpoints are the endpoints whose stored rows may not follow the store's field policy:
// those with rules, and those kombo.field_policies records rules for.
func (s *Store) PolicyEndpoints(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `select endpoint from kombo.field_policies`)
	if err != nil {
		return nil, err
	}
	recorded, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	eps := append(recorded, s.policy.Endpoints()...)
	slices.Sort(eps)
	return slices.Compact(eps), nil
}

// PolicyBatch brings up to limit stored rows of the endpoint, and the change rows of the rows it
// passes, to the store's field policy, in one transaction that also moves the endpoint's resume
// point (kombo.field_policies.rewrite_after) and the run's counts. done is true once every row
// follows the policy (then the policy's fingerprint is recorded).
func (s *Store) PolicyBatch(ctx context.Context, runID, endpoint string, limit int) (c RetentionCounts, done bool, err error) {
	fp := s.policy.Fingerprint(endpoint)
	fields := s.policy.TopLevel(endpoint)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var recorded string
		var pending *string
		var after []string
		err := tx.QueryRow(ctx, `select fingerprint, pending_fingerprint, rewrite_after from kombo.field_policies
			where endpoint = $1 for update`, endpoint).Scan(&recorded, &pending, &after)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if fp == "" {
				done = true
				return nil
			}
			recorded = "" // rows written before any policy
			if _, err := tx.Exec(ctx, `insert into kombo.field_policies (endpoint, fingerprint, pending_fingerprint)
				values ($1, '', $2)`, endpoint, fp); err != nil {
				return err
			}
			pending = &fp
		case err != nil:
			return err
		}
		if recorded == fp && pending == nil {
			done = true
			return nil
		}
		if fp == "" {
			// The rules were removed: what they dropped cannot come back from here (the next
			// passes bring it); nothing to rewrite.
			_, err := tx.Exec(ctx, `update kombo.field_policies set fingerprint = '', pending_fingerprint = null,
				rewrite_after = null, applied_at = now() where endpoint = $1`, endpoint)
			done = true
			return err
		}
		if pending == nil || *pending != fp {
			after = nil // a new policy: from the first row
			if _, err := tx.Exec(ctx, `update kombo.field_policies set pending_fingerprint = $2, rewrite_after = null
				where endpoint = $1`, endpoint, fp); err != nil {
				return err
			}
		}
		if len(after) != 2 {
			after = []string{"", ""}
		}
		rows, err := tx.Query(ctx, `select integration_id, id, data from kombo.records
			where endpoint = $1 and (integration_id, id) > ($2, $3)
			order by integration_id, id limit $4 for update`, endpoint, after[0], after[1], limit)
		if err != nil {
			return err
		}
		type row struct {
			integration, id string
			data            []byte
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.integration, &x.id, &x.data)
		})
		if err != nil {
			return err
		}
		var ids, integrations, data []string
		for _, r := range batch {
			out, changed, err := s.policy.Apply(endpoint, r.data)
			if err != nil {
				return fmt.Errorf("record %s of %s: %w", r.id, r.integration, err)
			}
			if changed {
				integrations, ids, data = append(integrations, r.integration), append(ids, r.id), append(data, string(out))
			}
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `update kombo.records r set data = t.data::jsonb
				from unnest($2::text[], $3::text[], $4::text[]) as t(integration_id, id, data)
				where r.endpoint = $1 and r.integration_id = t.integration_id and r.id = t.id`,
				endpoint, integrations, ids, data); err != nil {
				return err
			}
		}
		c.PolicyRows = int64(len(ids))
		// The change rows of the rows passed (and, with the last batch, of every record after
		// them, which may be gone): the policy's fields' values become "[redacted]" (a hashed
		// value's old form too).
		upTo := []string{} // none: to the end (a nil slice would be NULL, matching nothing)
		if len(batch) == limit {
			last := batch[len(batch)-1]
			upTo = []string{last.integration, last.id}
		}
		tag, err := tx.Exec(ctx, `update kombo.changes c set diff = (
				select jsonb_object_agg(e.key, case when e.key = any($4::text[]) then `+redactedPairSQL+` else e.value end)
				from jsonb_each(c.diff) e)
			where c.endpoint = $1 and (c.integration_id, c.record_id) > ($2, $3)
				and (cardinality($5::text[]) = 0 or (c.integration_id, c.record_id) <= ($5[1], $5[2]))
				and c.diff is not null and exists (
					select from jsonb_each(c.diff) e where e.key = any($4::text[]) and e.value <> `+redactedPairSQL+`)`,
			endpoint, after[0], after[1], fields, upTo)
		if err != nil {
			return err
		}
		c.PolicyChanges = tag.RowsAffected()
		if len(upTo) > 0 {
			if _, err := tx.Exec(ctx, `update kombo.field_policies set rewrite_after = $2 where endpoint = $1`, endpoint, upTo); err != nil {
				return err
			}
		}
		if len(batch) < limit {
			done = true
			if _, err := tx.Exec(ctx, `update kombo.field_policies set fingerprint = $2, pending_fingerprint = null,
				rewrite_after = null, applied_at = now() where endpoint = $1`, endpoint, fp); err != nil {
				return err
			}
		}
		tag, err = tx.Exec(ctx, `update kombo.retention_runs set policy_rows = policy_rows + $2,
			policy_changes = policy_changes + $3 where id = $1`, runID, c.PolicyRows, c.PolicyChanges)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNoRetentionRun
		}
		return nil
	})
	if err != nil {
		return RetentionCounts{}, false, fmt.Errorf("field policy of %s: %w", endpoint, err)
	}
	return c, done, nil
}
