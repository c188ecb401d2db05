-- Job links (README "Jobs your customers choose"): the application's jobs linked to Kombo's ATS
-- jobs, and the normalised keys the matcher looks jobs up by. Needs the pg_trgm extension
-- (PostgreSQL contrib) for title similarity; creating it needs the CREATE privilege on the database.
create extension if not exists pg_trgm;

-- Normalised lookup keys of every synced ats/jobs row, written by kombosync in the transaction that
-- writes the job: its id, remote_id, job_code (trimmed, case-folded), post_url and remote_url
-- (as post_url: scheme dropped, host lower-cased, no trailing slash, no tracking parameters), and
-- its postings' url (posting_url) and remote_id (posting_remote_id).
create table kombo.job_keys (
    integration_id text not null,
    job_id         text not null,  -- Kombo's id of the job
    kind           text not null check (kind in ('id', 'remote_id', 'job_code', 'post_url', 'posting_url', 'posting_remote_id')),
    key            text not null,
    primary key (integration_id, kind, key, job_id)
);
create index job_keys_job on kombo.job_keys (integration_id, job_id);

-- Titles are matched by trigram similarity, only ever as proposals.
create index ats_jobs_name_trgm on kombo.ats_jobs using gin (lower(data ->> 'name') gin_trgm_ops);

-- The application's job ↔ Kombo's job, per integration. kombosync is its only writer (store
-- functions, the back-office API, starter jobs).
create table kombo.job_links (
    integration_id text        not null,
    app_job_id     text        not null,  -- the application's own job id
    kombo_job_id   text,                  -- Kombo's ats/jobs id; null while unresolved
    state          text        not null check (state in ('unresolved', 'proposed', 'confirmed', 'rejected')),
    method         text        check (method in ('id', 'remote_id', 'job_code', 'post_url', 'posting_url', 'title')),
    score          real,                  -- 1 for an exact key; the title's similarity otherwise
    hints          jsonb       not null default '{}', -- what the application gave: id, remote_id, job_code, url, title
    proposals      jsonb       not null default '[]', -- candidates when ambiguous or by title: [{job_id, method, score, status}]
    decided_by     text,                  -- who confirmed or rejected (a person's handle, or "kombosync" for an exact key)
    decided_at     timestamptz,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    primary key (integration_id, app_job_id)
);
create index job_links_job on kombo.job_links (integration_id, kombo_job_id);
create index job_links_open on kombo.job_links (integration_id, state) where state in ('unresolved', 'proposed');

comment on table kombo.job_keys is 'kombosync: normalised lookup keys of synced ATS jobs, for matching';
comment on table kombo.job_links is 'kombosync: application jobs linked to Kombo ATS jobs';

-- Whether a linked job can still take applications, with the reason when not: the guide's "a job
-- is deleted when it is deleted in the ATS or leaves OPEN". One row per link with a job.
create view kombo.job_link_status as
select
    l.integration_id,
    l.app_job_id,
    l.kombo_job_id,
    l.state,
    case
        when l.state <> 'confirmed' then false
        when j.id is null then false
        when j.remote_deleted_at is not null or j.deleted_at is not null then false
        when coalesce(j.data ->> 'status', '') <> 'OPEN' then false
        when jsonb_typeof(j.data -> 'job_postings') = 'array' and jsonb_array_length(j.data -> 'job_postings') > 0
             and not exists (select 1 from jsonb_array_elements(j.data -> 'job_postings') p where p ->> 'status' is distinct from 'INACTIVE' and p ->> 'status' is distinct from 'DRAFT')
            then false
        else true
    end as active,
    case
        when l.state <> 'confirmed' then l.state                 -- unresolved, proposed, rejected: not linked yet
        when j.id is null then 'removed'                          -- no longer synced (purged, or never seen)
        when j.remote_deleted_at is not null or j.deleted_at is not null then 'deleted_in_ats'
        when j.data ->> 'status' = 'CLOSED' then 'closed'
        when j.data ->> 'status' = 'DRAFT' then 'draft'
        when j.data ->> 'status' = 'ARCHIVED' then 'archived'
        when coalesce(j.data ->> 'status', '') <> 'OPEN' then 'not_open'
        when jsonb_typeof(j.data -> 'job_postings') = 'array' and jsonb_array_length(j.data -> 'job_postings') > 0
             and not exists (select 1 from jsonb_array_elements(j.data -> 'job_postings') p where p ->> 'status' is distinct from 'INACTIVE' and p ->> 'status' is distinct from 'DRAFT')
            then 'posting_inactive'
    end as reason,
    j.data ->> 'name' as job_name,
    j.data ->> 'status' as job_status
from kombo.job_links l
left join kombo.ats_jobs j on j.integration_id = l.integration_id and j.id = l.kombo_job_id;

comment on view kombo.job_link_status is 'kombosync: per job link, whether its job can take applications, and why not';

-- Call before creating an application: true only for a confirmed link whose job is open, not
-- deleted, and has an active posting (or none listed).
create function kombo.job_can_take_applications(p_integration_id text, p_app_job_id text) returns boolean
language sql stable as $$
    select coalesce((select active from kombo.job_link_status
                      where integration_id = p_integration_id and app_job_id = p_app_job_id), false)
$$;

-- The last activity reported for each link: a change writes a 'deactivated' or 'reactivated' row
-- to kombo.changes (endpoint 'job-links', record_id the application's job id) in the report's
-- transaction, so the transitions are read with the feed's own cursor.
alter table kombo.job_links add column reported_active boolean, add column reported_reason text;
alter table kombo.changes drop constraint changes_op_check;
alter table kombo.changes add constraint changes_op_check
    check (op in ('created', 'updated', 'deleted', 'restored', 'erased', 'deactivated', 'reactivated'));
