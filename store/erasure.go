package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// RecordRef names one stored record of an integration.
type RecordRef struct {
	Endpoint string `json:"endpoint"` // "hris/employees"
	ID       string `json:"id"`       // Kombo's id
}

// personEmails are where a person's email sits in the records kombosync stores: the lookup of
// `starter erase --email`. Compared case-insensitively.
const findByEmail = `
select endpoint, id from kombo.records
where integration_id = $1 and (
	(endpoint = 'hris/employees' and (lower(data ->> 'work_email') = $2 or lower(data ->> 'personal_email') = $2))
	or (endpoint = 'ats/candidates' and exists (
		select from jsonb_array_elements(case when jsonb_typeof(data -> 'email_addresses') = 'array' then data -> 'email_addresses' else '[]' end) e
		where lower(e ->> 'email_address') = $2))
	or (endpoint = 'ats/users' and lower(data ->> 'email') = $2))
order by endpoint, id`

// FindByEmail finds the people of an integration with that email: employees (work or personal
// email), candidates (any of their email addresses) and ATS users. A policy that hashes or drops
// the email field makes them unfindable this way; erase them by id.
func (s *Store) FindByEmail(ctx context.Context, integrationID, email string) ([]RecordRef, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return nil, errors.New("find by email: the email is empty")
	}
	rows, err := s.pool.Query(ctx, findByEmail, integrationID, email)
	if err != nil {
		return nil, fmt.Errorf("find by email: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RecordRef])
}

// related are the records that copy a person's data into their own: an employee's employments,
// absences, balances, timesheets and the reviews of them; a candidate's applications (and any ATS
// record embedding the candidate).
const findRelated = `
select endpoint, id from kombo.records
where integration_id = $1 and (
	($2 = 'hris/employees' and endpoint like 'hris/%' and endpoint <> 'hris/employees'
		and (data ->> 'employee_id' = $3 or data -> 'reviewee' ->> 'id' = $3))
	or ($2 = 'ats/candidates' and endpoint like 'ats/%' and endpoint <> 'ats/candidates'
		and (data ->> 'candidate_id' = $3 or data -> 'candidate' ->> 'id' = $3)))
order by endpoint, id`

// RelatedRecords are the records of the integration that embed the person's data (see
// findRelated); erasing a person erases them too.
func (s *Store) RelatedRecords(ctx context.Context, integrationID string, person RecordRef) ([]RecordRef, error) {
	rows, err := s.pool.Query(ctx, findRelated, integrationID, person.Endpoint, person.ID)
	if err != nil {
		return nil, fmt.Errorf("related records of %s %s: %w", person.Endpoint, person.ID, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RecordRef])
}

// ErasureResult is what an erasure removed.
type ErasureResult struct {
	// Records are the records whose row was deleted (the others were not stored).
	Records []RecordRef `json:"records"`
	// ChangeRows is how many change rows of theirs were deleted (one "erased" row per record
	// is left, so a reader of the feed learns it must erase its copy).
	ChangeRows int64 `json:"change_rows"`
	// RejectedRows is how many rejected-record excerpts of theirs were deleted.
	RejectedRows int64       `json:"rejected_rows"`
	Suppressed   []RecordRef `json:"suppressed,omitempty"`
	DryRun       bool        `json:"dry_run,omitempty"`
}

// ErasedRunID is the fetch_run_id of the change rows an erasure writes.
const ErasedRunID = "erasure"

// Erase removes records and their history from every table kombosync keeps them in, in one
// transaction: the record rows, their change rows (one "erased" change row per record stays, with
// no values), their rejected-record excerpts. With suppress, the ids are kept in
// kombo.suppressed_records so a sync does not store them again while Kombo still serves them.
// It takes each endpoint's write lock first, so no page of theirs is being written meanwhile.
// A dry run reports the same and changes nothing.
func (s *Store) Erase(ctx context.Context, integrationID string, refs []RecordRef, suppress bool, reason string, dryRun bool) (ErasureResult, error) {
	res := ErasureResult{DryRun: dryRun}
	if integrationID == "" || len(refs) == 0 {
		return res, errors.New("erase: an integration and at least one record are required")
	}
	if suppress && strings.TrimSpace(reason) == "" {
		return res, errors.New("erase: a suppression needs a reason (a ticket number, not the person's data)")
	}
	refs = slices.Clone(refs)
	slices.SortFunc(refs, func(a, b RecordRef) int { return strings.Compare(a.Endpoint+" "+a.ID, b.Endpoint+" "+b.ID) })
	refs = slices.Compact(refs)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("erase: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a committed transaction ignores it
	var endpoints []string
	for _, r := range refs {
		endpoints = append(endpoints, r.Endpoint)
	}
	slices.Sort(endpoints) // always the same order: two erasures never deadlock
	for _, ep := range slices.Compact(endpoints) {
		if _, err := tx.Exec(ctx, lockEndpoint, ep+" "+integrationID); err != nil {
			return res, fmt.Errorf("erase: lock %s: %w", ep, err)
		}
	}
	for _, r := range refs {
		tag, err := tx.Exec(ctx, `delete from kombo.records where integration_id = $1 and endpoint = $2 and id = $3`,
			integrationID, r.Endpoint, r.ID)
		if err != nil {
			return res, fmt.Errorf("erase %s %s: %w", r.Endpoint, r.ID, err)
		}
		if tag.RowsAffected() > 0 {
			res.Records = append(res.Records, r)
		}
		tag, err = tx.Exec(ctx, `delete from kombo.changes where integration_id = $1 and endpoint = $2 and record_id = $3`,
			integrationID, r.Endpoint, r.ID)
		if err != nil {
			return res, fmt.Errorf("erase the changes of %s %s: %w", r.Endpoint, r.ID, err)
		}
		res.ChangeRows += tag.RowsAffected()
		changes := tag.RowsAffected()
		tag, err = tx.Exec(ctx, `delete from kombo.rejected_records where integration_id = $1 and endpoint = $2 and record_id = $3`,
			integrationID, r.Endpoint, r.ID)
		if err != nil {
			return res, fmt.Errorf("erase the rejected excerpts of %s %s: %w", r.Endpoint, r.ID, err)
		}
		res.RejectedRows += tag.RowsAffected()
		// Something of it was stored: one "erased" row tells the feed's readers.
		if slices.Contains(res.Records, r) || changes+tag.RowsAffected() > 0 {
			if _, err := tx.Exec(ctx, `insert into kombo.changes (integration_id, endpoint, record_id, op, diff, fetch_run_id, values_redacted_at)
				values ($1, $2, $3, 'erased', null, $4, now())`, integrationID, r.Endpoint, r.ID, ErasedRunID); err != nil {
				return res, fmt.Errorf("erase %s %s: %w", r.Endpoint, r.ID, err)
			}
		}
		if suppress {
			if _, err := tx.Exec(ctx, `insert into kombo.suppressed_records (integration_id, endpoint, record_id, reason)
				values ($1, $2, $3, $4) on conflict (integration_id, endpoint, record_id) do update set reason = excluded.reason`,
				integrationID, r.Endpoint, r.ID, reason); err != nil {
				return res, fmt.Errorf("suppress %s %s: %w", r.Endpoint, r.ID, err)
			}
			res.Suppressed = append(res.Suppressed, r)
		}
	}
	if dryRun {
		return res, nil // the deferred rollback undoes it
	}
	if err := tx.Commit(ctx); err != nil {
		return ErasureResult{}, fmt.Errorf("erase: %w", err)
	}
	return res, nil
}

// Suppression is one row of kombo.suppressed_records.
type Suppression struct {
	IntegrationID string `json:"integration_id"`
	RecordRef
	SuppressedAt string `json:"suppressed_at"`
	Reason       string `json:"reason"`
}

// Suppressions lists the suppressed records (of one integration, or all when empty).
func (s *Store) Suppressions(ctx context.Context, integrationID string) ([]Suppression, error) {
	rows, err := s.pool.Query(ctx, `select integration_id, endpoint, record_id, to_char(suppressed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), reason
		from kombo.suppressed_records where $1 = '' or integration_id = $1 order by integration_id, endpoint, record_id`, integrationID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Suppression, error) {
		var x Suppression
		return x, row.Scan(&x.IntegrationID, &x.Endpoint, &x.ID, &x.SuppressedAt, &x.Reason)
	})
}

// LiftSuppression ends a suppression: the next pass that sees the record stores it again.
func (s *Store) LiftSuppression(ctx context.Context, integrationID string, r RecordRef) error {
	tag, err := s.pool.Exec(ctx, `delete from kombo.suppressed_records where integration_id = $1 and endpoint = $2 and record_id = $3`,
		integrationID, r.Endpoint, r.ID)
	if err != nil {
		return fmt.Errorf("lift suppression: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("suppression of %s %s in %s: %w", r.Endpoint, r.ID, integrationID, ErrNotFound)
	}
	return nil
}
