package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// JobLinkTransition is the data of a job_link.deactivated or job_link.reactivated event, and the
// diff of its change row (endpoint "job-links").
type JobLinkTransition struct {
	IntegrationID string `json:"integration_id"`
	AppJobID      string `json:"app_job_id"`
	KomboJobID    string `json:"kombo_job_id"`
	Active        bool   `json:"active"`
	Reason        string `json:"reason,omitempty"` // closed, draft, archived, not_open, deleted_in_ats, removed, posting_inactive
}

// reportJobLinks writes, in the report's transaction, a change row and an event for every
// confirmed link whose job's activity differs from the one reported last: deactivated (with the
// reason; again when an inactive job's reason changes, closed → deleted_in_ats) or reactivated.
// A new link to an active job is recorded silently; to an inactive one it is reported
// deactivated.
func reportJobLinks(ctx context.Context, tx pgx.Tx, r ChangeReport) ([]string, error) {
	rows, err := tx.Query(ctx, `
		select s.app_job_id, coalesce(s.kombo_job_id, ''), s.active, coalesce(s.reason, ''), l.reported_active, coalesce(l.reported_reason, '')
		from kombo.job_link_status s
		join kombo.job_links l on l.integration_id = s.integration_id and l.app_job_id = s.app_job_id
		where s.integration_id = $1 and s.state = 'confirmed'
		  and (l.reported_active is distinct from s.active or coalesce(l.reported_reason, '') <> coalesce(s.reason, ''))
		order by s.app_job_id`, r.IntegrationID)
	if err != nil {
		return nil, fmt.Errorf("job link transitions: %w", err)
	}
	type change struct {
		AppJobID, KomboJobID string
		Active               bool
		Reason               string
		WasActive            *bool
		WasReason            string
	}
	changes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[change])
	if err != nil {
		return nil, fmt.Errorf("job link transitions: %w", err)
	}
	var wake []string
	for _, c := range changes {
		if _, err := tx.Exec(ctx, `update kombo.job_links set reported_active = $3, reported_reason = nullif($4, '')
			where integration_id = $1 and app_job_id = $2`, r.IntegrationID, c.AppJobID, c.Active, c.Reason); err != nil {
			return nil, err
		}
		if c.Active && (c.WasActive == nil || *c.WasActive) {
			continue // first seen active, or still active
		}
		op, typ := "deactivated", EventJobLinkDeactivated
		if c.Active {
			op, typ = "reactivated", EventJobLinkReactivated
		}
		was := any(nil)
		if c.WasActive != nil {
			was = *c.WasActive
		}
		diff, _ := json.Marshal(map[string][2]any{"active": {was, c.Active}, "reason": {nilIfEmpty(c.WasReason), nilIfEmpty(c.Reason)}})
		if _, err := tx.Exec(ctx, `insert into kombo.changes (integration_id, endpoint, record_id, op, diff, fetch_run_id)
			values ($1, 'job-links', $2, $3, $4, 'job-links')`, r.IntegrationID, c.AppJobID, op, diff); err != nil {
			return nil, err
		}
		w, err := enqueue(ctx, tx, event{Type: typ, IntegrationID: r.IntegrationID, Data: JobLinkTransition{
			IntegrationID: r.IntegrationID, AppJobID: c.AppJobID, KomboJobID: c.KomboJobID, Active: c.Active, Reason: c.Reason}})
		if err != nil {
			return nil, err
		}
		wake = appendNew(wake, w...)
	}
	return wake, nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// SyncedJob is an ats/jobs row as the back office lists it.
type SyncedJob struct {
	ID       string   `json:"id"`
	RemoteID string   `json:"remote_id"`
	Name     string   `json:"name"`
	JobCode  string   `json:"job_code"`
	Status   string   `json:"status"`
	PostURL  string   `json:"post_url"`
	Deleted  bool     `json:"deleted"`
	Links    []string `json:"linked_app_job_ids"` // confirmed links to it
}

// IntegrationKnown says whether kombosync knows the integration (ErrNotFound otherwise).
func (s *Store) IntegrationKnown(ctx context.Context, integrationID string) error {
	if err := checkText("the integration id", integrationID); err != nil {
		return err
	}
	var n int
	if err := s.pool.QueryRow(ctx, `select count(*) from kombo.integrations where id = $1`, integrationID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("integration %s: %w", integrationID, ErrNotFound)
	}
	return nil
}

// ListJobs lists the integration's synced jobs by id after the cursor: those with one of the
// statuses (all when empty), whose name or job code contains q (case-insensitive; all when
// empty). Deleted jobs are left out unless withDeleted.
func (s *Store) ListJobs(ctx context.Context, integrationID string, statuses []string, q, after string, limit int, withDeleted bool) ([]SyncedJob, error) {
	if err := checkText("the search and cursor", q, after); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		select j.id, coalesce(j.remote_id, ''), coalesce(j.data ->> 'name', ''), coalesce(j.data ->> 'job_code', ''),
			coalesce(j.data ->> 'status', ''), coalesce(j.data ->> 'post_url', ''),
			j.remote_deleted_at is not null or j.deleted_at is not null,
			coalesce((select array_agg(l.app_job_id order by l.app_job_id) from kombo.job_links l
				where l.integration_id = j.integration_id and l.kombo_job_id = j.id and l.state = 'confirmed'), '{}')
		from kombo.ats_jobs j
		where j.integration_id = $1 and j.id > $2
		  and (coalesce(cardinality($3::text[]), 0) = 0 or j.data ->> 'status' = any($3))
		  and ($4 = '' or strpos(lower(j.data ->> 'name'), lower($4)) > 0 or strpos(lower(j.data ->> 'job_code'), lower($4)) > 0)
		  and ($6 or (j.remote_deleted_at is null and j.deleted_at is null))
		order by j.id limit $5`, integrationID, after, statuses, q, limit, withDeleted)
	if err != nil {
		return nil, fmt.Errorf("list jobs of %s: %w", integrationID, err)
	}
	jobs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SyncedJob])
	if err != nil {
		return nil, fmt.Errorf("list jobs of %s: %w", integrationID, err)
	}
	return jobs, nil
}

// LinkView is a link with its job's activity (kombo.job_link_status).
type LinkView struct {
	JobLink
	Active  bool   `json:"active"`
	Reason  string `json:"reason,omitempty"`
	JobName string `json:"job_name,omitempty"`
}

// ListLinks lists the integration's links by application job id after the cursor; with
// needsPerson only those a person should look at: proposed (title or ambiguous), and confirmed
// ones whose job no longer takes applications.
func (s *Store) ListLinks(ctx context.Context, integrationID, after string, limit int, needsPerson bool) ([]LinkView, error) {
	if err := checkText("the cursor", after); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		select l.integration_id, l.app_job_id, coalesce(l.kombo_job_id, ''), l.state, coalesce(l.method, ''), l.score::float8,
			l.hints, l.proposals, coalesce(l.decided_by, ''), l.decided_at, st.active, coalesce(st.reason, ''), coalesce(st.job_name, '')
		from kombo.job_links l
		join kombo.job_link_status st on st.integration_id = l.integration_id and st.app_job_id = l.app_job_id
		where l.integration_id = $1 and l.app_job_id > $2
		  and (not $4 or l.state = 'proposed' or (l.state = 'confirmed' and not st.active))
		order by l.app_job_id limit $3`, integrationID, after, limit, needsPerson)
	if err != nil {
		return nil, fmt.Errorf("list job links of %s: %w", integrationID, err)
	}
	links, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LinkView, error) {
		var v LinkView
		var hints, proposals []byte
		if err := row.Scan(&v.IntegrationID, &v.AppJobID, &v.KomboJobID, &v.State, &v.Method, &v.Score, &hints, &proposals,
			&v.DecidedBy, &v.DecidedAt, &v.Active, &v.Reason, &v.JobName); err != nil {
			return v, err
		}
		if err := json.Unmarshal(hints, &v.Hints); err != nil {
			return v, err
		}
		return v, json.Unmarshal(proposals, &v.Proposals)
	})
	if err != nil {
		return nil, fmt.Errorf("list job links of %s: %w", integrationID, err)
	}
	return links, nil
}
