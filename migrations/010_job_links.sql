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
