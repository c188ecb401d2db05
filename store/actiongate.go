package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrJobNotLinked: the application's job has no confirmed job link.
var ErrJobNotLinked = errors.New("job not linked")

// JobNotOpenError: the job cannot take applications; Reason is the synced job's (closed,
// deleted_in_ats, draft, archived, not_open, posting_inactive, removed).
type JobNotOpenError struct {
	JobID  string
	Reason string
}

func (e *JobNotOpenError) Error() string {
	return fmt.Sprintf("job %s cannot take applications: %s", e.JobID, e.Reason)
}

// ApplicationJob resolves the job of a new application: the Kombo job of a confirmed job link
// (appJobID), or the Kombo job given (jobID, which may be remote:<id>). A link that is not
// confirmed is ErrJobNotLinked; a job kombosync has synced that is closed, deleted or otherwise
// not open is a *JobNotOpenError. A jobID kombosync has not synced passes: Kombo decides.
func (s *Store) ApplicationJob(ctx context.Context, integrationID, appJobID, jobID string) (string, error) {
	if err := checkText("the job id", appJobID, jobID); err != nil {
		return "", err
	}
	if appJobID != "" {
		var kombo, state, reason string
		var active bool
		err := s.pool.QueryRow(ctx, `select coalesce(kombo_job_id, ''), state, active, coalesce(reason, '') from kombo.job_link_status
			where integration_id = $1 and app_job_id = $2`, integrationID, appJobID).Scan(&kombo, &state, &active, &reason)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && state != LinkConfirmed) {
			return "", fmt.Errorf("%w: application job %q has no confirmed job link", ErrJobNotLinked, appJobID)
		}
		if err != nil {
			return "", fmt.Errorf("read job link: %w", err)
		}
		if !active {
			return "", &JobNotOpenError{JobID: kombo, Reason: reason}
		}
		return kombo, nil
	}
	if strings.HasPrefix(jobID, "remote:") {
		var id string
		err := s.pool.QueryRow(ctx, `select id from kombo.ats_jobs where integration_id = $1 and remote_id = $2
			order by deleted_at nulls first limit 1`, integrationID, strings.TrimPrefix(jobID, "remote:")).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return jobID, nil
		}
		if err != nil {
			return "", fmt.Errorf("read job: %w", err)
		}
		if reason, err := s.jobReason(ctx, integrationID, id); err != nil || reason != "" {
			if err == nil {
				err = &JobNotOpenError{JobID: id, Reason: reason}
			}
			return "", err
		}
		return jobID, nil
	}
	reason, err := s.jobReason(ctx, integrationID, jobID)
	if err != nil {
		return "", err
	}
	if reason != "" {
		return "", &JobNotOpenError{JobID: jobID, Reason: reason}
	}
	return jobID, nil
}

// jobReason is why a synced job cannot take applications ("" when it can, or is not synced):
// kombo.job_inactive_reason, the rule kombo.job_link_status applies too.
func (s *Store) jobReason(ctx context.Context, integrationID, jobID string) (string, error) {
	var reason string
	err := s.pool.QueryRow(ctx, `select kombo.job_inactive_reason(j.data ->> 'status', j.data -> 'job_postings',
			j.remote_deleted_at is not null or j.deleted_at is not null)
		from kombo.ats_jobs j where j.integration_id = $1 and j.id = $2`, integrationID, jobID).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read job %s: %w", jobID, err)
	}
	return reason, nil
}

// JobStages are the stage ids of a synced job; synced is false when kombosync has not synced it
// (remote:<id> jobs included).
func (s *Store) JobStages(ctx context.Context, integrationID, jobID string) (stages []string, synced bool, err error) {
	var ids []string
	err = s.pool.QueryRow(ctx, `select coalesce((select array_agg(st ->> 'id') from jsonb_array_elements(
			case when jsonb_typeof(j.data -> 'stages') = 'array' then j.data -> 'stages' else '[]' end) st), '{}')
		from kombo.ats_jobs j where j.integration_id = $1 and (j.id = $2 or ('remote:' || j.remote_id) = $2)
		order by j.deleted_at nulls first limit 1`, integrationID, jobID).Scan(&ids)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read stages of job %s: %w", jobID, err)
	}
	return ids, true, nil
}

// ApplicationsJob is the Kombo job of an application: the synced application's, or that of the
// action that created it (not synced yet). found is false when kombosync knows neither.
func (s *Store) ApplicationsJob(ctx context.Context, integrationID, applicationID string) (jobID string, found bool, err error) {
	if err := checkText("the application id", applicationID); err != nil {
		return "", false, err
	}
	err = s.pool.QueryRow(ctx, `select coalesce(data ->> 'job_id', data -> 'job' ->> 'id', '') from kombo.ats_applications
		where integration_id = $1 and id = $2 and deleted_at is null
		union all
		select coalesce(result ->> 'job_id', target) from kombo.actions
		where integration_id = $1 and kind = 'create_application' and state = 'succeeded' and result ->> 'application_id' = $2
		limit 1`, integrationID, applicationID).Scan(&jobID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read application %s: %w", applicationID, err)
	}
	return jobID, true, nil
}

// RejectionReasonSynced says whether the id is a synced, not deleted, rejection reason.
func (s *Store) RejectionReasonSynced(ctx context.Context, integrationID, id string) (bool, error) {
	if err := checkText("the rejection reason id", id); err != nil {
		return false, err
	}
	var ok bool
	err := s.pool.QueryRow(ctx, `select exists (select from kombo.ats_rejection_reasons
		where integration_id = $1 and id = $2 and deleted_at is null and remote_deleted_at is null)`, integrationID, id).Scan(&ok)
	return ok, err
}

// AcquireActionSlot leases one of the integration's action slots for holder until now + lease:
// at most maxInFlight (or Kombo's lower limit, RecordActionLimit) requests of the whole fleet
// hold one at once. ok is false when every slot is held. Slots whose lease ran out (their worker
// died) are taken again.
func (s *Store) AcquireActionSlot(ctx context.Context, integrationID string, maxInFlight int, holder string, lease time.Duration) (slot int, ok bool, err error) {
	if _, err := s.pool.Exec(ctx, `insert into kombo.action_slots (integration_id, slot)
		select $1, g from generate_series(0, $2 - 1) g
		where (select count(*) from kombo.action_slots where integration_id = $1) < $2
		on conflict do nothing`, integrationID, maxInFlight); err != nil {
		return 0, false, fmt.Errorf("prepare action slots: %w", err)
	}
	err = s.pool.QueryRow(ctx, `update kombo.action_slots s set holder = $3, lease_until = clock_timestamp() + $4::interval
		where (s.integration_id, s.slot) = (
			select integration_id, slot from kombo.action_slots
			where integration_id = $1 and slot < least($2, coalesce((select max_in_flight from kombo.action_limits where integration_id = $1), $2))
				and (holder is null or lease_until < clock_timestamp())
			order by slot limit 1 for update skip locked)
		returning s.slot`, integrationID, maxInFlight, holder, lease).Scan(&slot)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("acquire action slot: %w", err)
	}
	return slot, true, nil
}

// ReleaseActionSlot frees a slot the holder leased (a no-op when its lease ran out and another
// holder took it).
func (s *Store) ReleaseActionSlot(ctx context.Context, integrationID string, slot int, holder string) error {
	_, err := s.pool.Exec(ctx, `update kombo.action_slots set holder = null, lease_until = null
		where integration_id = $1 and slot = $2 and holder = $3`, integrationID, slot, holder)
	return err
}

// LeaseActionSlot extends the holder's lease of a slot to now + lease (after an attempt whose
// answer never came: Kombo may still count it in flight).
func (s *Store) LeaseActionSlot(ctx context.Context, integrationID string, slot int, holder string, lease time.Duration) error {
	_, err := s.pool.Exec(ctx, `update kombo.action_slots set lease_until = clock_timestamp() + $4::interval
		where integration_id = $1 and slot = $2 and holder = $3`, integrationID, slot, holder, lease)
	return err
}

// HeldActionSlots counts the integration's slots under lease now.
func (s *Store) HeldActionSlots(ctx context.Context, integrationID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `select count(*) from kombo.action_slots where integration_id = $1
		and holder is not null and lease_until >= clock_timestamp()`, integrationID).Scan(&n)
	return n, err
}

// RecordActionLimit records Kombo's Concurrency-Limit for the integration (some tools allow
// fewer than 30): later slots are taken below it. A limit at or above ours changes nothing.
func (s *Store) RecordActionLimit(ctx context.Context, integrationID string, limit, ours int) error {
	if limit <= 0 {
		return nil
	}
	if limit >= ours {
		_, err := s.pool.Exec(ctx, `delete from kombo.action_limits where integration_id = $1`, integrationID)
		return err
	}
	_, err := s.pool.Exec(ctx, `insert into kombo.action_limits (integration_id, max_in_flight) values ($1, $2)
		on conflict (integration_id) do update set max_in_flight = excluded.max_in_flight, seen_at = now()`, integrationID, limit)
	return err
}

// RetainActionPayloads removes the request bodies (candidate data, attachments) of up to limit
// actions finished before cutoff, with the run's count, in one transaction; the outcome (ids,
// codes) stays. It returns the rows it changed.
func (s *Store) RetainActionPayloads(ctx context.Context, runID string, cutoff time.Time, limit int) (int64, error) {
	var n, counted int64
	err := s.pool.QueryRow(ctx, `with victims as (
			select id from kombo.actions where request is not null and finished_at < $1
			order by finished_at limit $2 for update skip locked
		), gone as (
			update kombo.actions a set request = null, request_removed_at = now() from victims v where a.id = v.id returning 1
		), counted as (
			update kombo.retention_runs set action_payloads_removed = action_payloads_removed + (select count(*) from gone)
			where id = $3 returning 1
		)
		select (select count(*) from gone), (select count(*) from counted)`, cutoff, limit, runID).Scan(&n, &counted)
	if err != nil {
		return 0, fmt.Errorf("retention of action payloads: %w", err)
	}
	if counted == 0 {
		return 0, fmt.Errorf("retention of action payloads of %s: %w", runID, ErrNoRetentionRun)
	}
	return n, nil
}

// EraseActionPayloads removes the request bodies of the integration's actions about a person:
// applications created for that email, and actions on the given candidates' applications. An
// action not sent yet then fails with KOMBOSYNC.PAYLOAD_ERASED at its next step. It returns the
// actions changed.
func (s *Store) EraseActionPayloads(ctx context.Context, integrationID, email string, candidateIDs []string) (int64, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if candidateIDs == nil {
		candidateIDs = []string{}
	}
	tag, err := s.pool.Exec(ctx, `update kombo.actions a set request = null, request_removed_at = now()
		where a.integration_id = $1 and a.request is not null and (
			($2 <> '' and a.kind = 'create_application' and lower(a.request -> 'candidate' ->> 'email_address') = $2)
			or a.result ->> 'candidate_id' = any($3)
			or (a.kind <> 'create_application' and a.target in (
				select x.id from kombo.ats_applications x where x.integration_id = $1
					and (x.data ->> 'candidate_id' = any($3) or x.data -> 'candidate' ->> 'id' = any($3)))))`,
		integrationID, email, candidateIDs)
	if err != nil {
		return 0, fmt.Errorf("erase action payloads: %w", err)
	}
	return tag.RowsAffected(), nil
}
