-- Actions (README "Creating applications", docs/ARCHITECTURE.md section 12): every write to Kombo
-- (create an application, move it, reject it, add a note or an attachment) is a row here, created
-- by the back-office API with the caller's Idempotency-Key and executed by an Action workflow.
-- Kombo's writes take no idempotency key, so the row is what makes them exactly once: an attempt
-- is recorded (attempts, in_doubt_since) before its request leaves, and an attempt whose answer
-- was lost is looked for at Kombo before anything is sent again.
--
-- New tables only: the upgrade takes no lock on anything applications read.

create table kombo.actions (
    seq                 bigserial   not null unique,           -- list order and cursor
    id                  text        primary key,                -- act_…
    integration_id      text        not null,
    kind                text        not null check (kind in ('create_application', 'move_stage', 'reject', 'add_note', 'add_attachment')),
    idempotency_key     text        not null,
    request_hash        bytea       not null,                   -- sha-256 of the kind, the target and the canonical body
    target              text        not null,                   -- create_application: Kombo's job id (or remote:<id>); otherwise the application id
    app_job_id          text,                                   -- create_application through a job link
    state               text        not null default 'pending' check (state in ('pending', 'running', 'succeeded', 'refused', 'failed')),
    attempts            integer     not null default 0,         -- requests that left (or may have left) for Kombo
    in_doubt_since      timestamptz,                            -- an attempt whose outcome is unknown: look before sending again
    already_exists_seen boolean     not null default false,     -- Kombo answered ATS.APPLICATION_ALREADY_EXISTS after our own unknown attempt
    lookups             integer     not null default 0,
    cancel_requested_at timestamptz,
    request             jsonb,                                  -- the body sent to Kombo: personal data; null once removed
    request_removed_at  timestamptz,                            -- ACTION_PAYLOAD_RETENTION after finishing, or an erasure
    result              jsonb,                                  -- ids and Kombo's warnings: never personal data
    error               jsonb,                                  -- {code, message, log_url}
    workflow_started_at timestamptz,                            -- the Action workflow was started (the relay starts the rest)
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    finished_at         timestamptz,
    unique (integration_id, idempotency_key),
    check ((state in ('succeeded', 'refused', 'failed')) = (finished_at is not null))
);
create index actions_list on kombo.actions (integration_id, seq);
create index actions_state on kombo.actions (state, seq) where state in ('pending', 'running', 'failed');
create index actions_unstarted on kombo.actions (created_at) where workflow_started_at is null;
create index actions_payload_retention on kombo.actions (finished_at) where request is not null;
-- The application an action acted on or created: erasure by candidate, the synced link, later actions.
create index actions_application on kombo.actions (integration_id, (coalesce(result ->> 'application_id', case when kind <> 'create_application' then target end)));

-- The fleet's action requests in flight per integration (KOMBO_MAX_ACTIONS_IN_FLIGHT): a request
-- holds one slot, leased until lease_until so a worker that died frees its slots by itself.
create table kombo.action_slots (
    integration_id text        not null,
    slot           integer     not null,
    holder         text,                                        -- action id and attempt; null: free
    lease_until    timestamptz,
    primary key (integration_id, slot)
);

-- Kombo's Concurrency-Limit for an integration when it is below ours (some tools allow fewer).
create table kombo.action_limits (
    integration_id text        primary key,
    max_in_flight  integer     not null check (max_in_flight > 0),
    seen_at        timestamptz not null default now()
);

alter table kombo.retention_runs add column action_payloads_removed bigint not null default 0;

comment on table kombo.actions is 'kombosync: writes to Kombo (applications, stages, rejections, notes, attachments), each exactly once';
comment on table kombo.action_slots is 'kombosync: leases of the action requests in flight per integration (KOMBO_MAX_ACTIONS_IN_FLIGHT)';
comment on table kombo.action_limits is 'kombosync: Kombo''s own concurrency limit of an integration, when lower than ours';

-- Why a synced job cannot take applications ('' when it can): one definition for the job links'
-- view and the actions' gate, which asks it of jobs that no link names (a job_id given directly).
-- The view is redefined on it with the same columns (an instant catalogue change).
create function kombo.job_inactive_reason(status text, postings jsonb, deleted boolean) returns text
language sql immutable as $$
    select case
        when deleted then 'deleted_in_ats'
        when status = 'CLOSED' then 'closed'
        when status = 'DRAFT' then 'draft'
        when status = 'ARCHIVED' then 'archived'
        when coalesce(status, '') <> 'OPEN' then 'not_open'
        when jsonb_typeof(postings) = 'array' and jsonb_array_length(postings) > 0
             and not exists (select 1 from jsonb_array_elements(postings) p
                             where p ->> 'status' is distinct from 'INACTIVE' and p ->> 'status' is distinct from 'DRAFT')
            then 'posting_inactive'
        else ''
    end
$$;

create or replace view kombo.job_link_status as
select
    l.integration_id,
    l.app_job_id,
    l.kombo_job_id,
    l.state,
    l.state = 'confirmed' and j.id is not null
        and kombo.job_inactive_reason(j.data ->> 'status', j.data -> 'job_postings', j.remote_deleted_at is not null or j.deleted_at is not null) = ''
        as active,
    case
        when l.state <> 'confirmed' then l.state                 -- unresolved, proposed, rejected: not linked yet
        when j.id is null then 'removed'                          -- no longer synced (purged, or never seen)
        else nullif(kombo.job_inactive_reason(j.data ->> 'status', j.data -> 'job_postings',
                                              j.remote_deleted_at is not null or j.deleted_at is not null), '')
    end as reason,
    j.data ->> 'name' as job_name,
    j.data ->> 'status' as job_status
from kombo.job_links l
left join kombo.ats_jobs j on j.integration_id = l.integration_id and j.id = l.kombo_job_id;
