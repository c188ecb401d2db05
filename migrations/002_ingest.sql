-- The ingest path (ARCHITECTURE.md section 4): synced records, the change feed, integrations,
-- watermarks, the webhook inbox and fetch-run bookkeeping.

-- Every synced record, partitioned by endpoint. Each partition is the contract relation
-- kombo.<category>_<endpoint> (kombo.hris_employees, …), a real table that applications query.
create table kombo.records (
    integration_id    text        not null,
    endpoint          text        not null, -- 'hris/employees'
    id                text        not null, -- Kombo's id, the stable key
    remote_id         text,
    data              jsonb       not null, -- the record exactly as Kombo returned it
    changed_at        timestamptz not null, -- Kombo's: the record's own fields changed
    remote_deleted_at timestamptz,          -- Kombo's: deleted in the remote system
    deleted_at        timestamptz,          -- ours: Kombo's deletion, or absent from a complete full pass
    first_seen_at     timestamptz not null,
    last_seen_at      timestamptz not null, -- last written from a fetch (unchanged records are not rewritten)
    fetched_at        timestamptz not null, -- when the page holding this version was fetched
    fetch_run_id      text        not null, -- the kombo.fetch_runs row that wrote this version
    primary key (integration_id, endpoint, id)
) partition by list (endpoint);

create table kombo.hris_employees partition of kombo.records for values in ('hris/employees');
create table kombo.hris_employments partition of kombo.records for values in ('hris/employments');
create table kombo.hris_groups partition of kombo.records for values in ('hris/groups');
create table kombo.hris_absences partition of kombo.records for values in ('hris/absences');
create table kombo.hris_absence_types partition of kombo.records for values in ('hris/absence-types');
create table kombo.hris_time_off_balances partition of kombo.records for values in ('hris/time-off-balances');
create table kombo.hris_timesheets partition of kombo.records for values in ('hris/timesheets');
create table kombo.hris_legal_entities partition of kombo.records for values in ('hris/legal-entities');
create table kombo.hris_locations partition of kombo.records for values in ('hris/locations');
create table kombo.hris_employee_document_categories partition of kombo.records for values in ('hris/employee-document-categories');
create table kombo.hris_performance_review_cycles partition of kombo.records for values in ('hris/performance-review-cycles');
create table kombo.hris_performance_reviews partition of kombo.records for values in ('hris/performance-reviews');
create table kombo.hris_staffing_entities partition of kombo.records for values in ('hris/staffing-entities');
create table kombo.ats_jobs partition of kombo.records for values in ('ats/jobs');
create table kombo.ats_applications partition of kombo.records for values in ('ats/applications');
create table kombo.ats_candidates partition of kombo.records for values in ('ats/candidates');
create table kombo.ats_application_stages partition of kombo.records for values in ('ats/application-stages');
create table kombo.ats_users partition of kombo.records for values in ('ats/users');
create table kombo.ats_tags partition of kombo.records for values in ('ats/tags');
create table kombo.ats_interviews partition of kombo.records for values in ('ats/interviews');
create table kombo.ats_offers partition of kombo.records for values in ('ats/offers');
create table kombo.ats_rejection_reasons partition of kombo.records for values in ('ats/rejection-reasons');
create table kombo.ats_roles partition of kombo.records for values in ('ats/roles');
-- Endpoints added to Kombo later land here until a migration gives them their own relation.
create table kombo.records_other partition of kombo.records default;

-- Filters applications commonly use.
create index hris_employees_work_email on kombo.hris_employees ((data->>'work_email'));
create index hris_employees_employment_status on kombo.hris_employees ((data->>'employment_status'));
create index ats_jobs_status on kombo.ats_jobs ((data->>'status'));
create index ats_applications_job_id on kombo.ats_applications ((data->>'job_id'));

-- The change feed: one row per real change of a record. seq is the consumer's cursor.
create table kombo.changes (
    seq            bigint generated always as identity primary key,
    integration_id text        not null,
    endpoint       text        not null,
    record_id      text        not null,
    op             text        not null check (op in ('created', 'updated', 'deleted', 'restored')),
    diff           jsonb,                 -- {"field": [old, new]} of changed top-level fields; null for created
    fetch_run_id   text        not null,
    recorded_at    timestamptz not null default now()
);
create index changes_integration_seq on kombo.changes (integration_id, seq);
create index changes_record on kombo.changes (integration_id, endpoint, record_id, seq);

create table kombo.integrations (
    id                text primary key,
    tool              text,
    category          text,
    end_user          jsonb,
    state             text        not null default 'ACTIVE', -- Kombo's: ACTIVE, INVALID, INACTIVE
    sync_state        text,                                  -- ours: IntegrationSync's state
    last_sync_state   text,                                  -- Kombo's last sync-finished sync_state
    last_sync_state_at timestamptz,
    first_sync_status text        not null default 'pending' check (first_sync_status in ('pending', 'finished')),
    last_synced_at    timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    deleted_at        timestamptz
);

-- Per (integration, endpoint): the updated_after of the next delta and the last complete full pass.
create table kombo.watermarks (
    integration_id   text        not null,
    endpoint         text        not null,
    updated_after    timestamptz,
    last_full_pass_at timestamptz,
    updated_at       timestamptz not null default now(),
    primary key (integration_id, endpoint)
);

-- The inbox: every verified webhook, keyed by Kombo's event id (duplicates are detected here).
create table kombo.webhook_events (
    id             text primary key,
    type           text        not null,
    integration_id text,
    payload        jsonb       not null,
    received_at    timestamptz not null default now(),
    signaled_at    timestamptz,
    signal_attempts integer    not null default 0,
    last_error     text
);
create index webhook_events_unsignaled on kombo.webhook_events (received_at) where signaled_at is null;
create index webhook_events_integration on kombo.webhook_events (integration_id, received_at);

-- One row per endpoint pass. next_cursor and the counts are written in the same transaction as
-- each page, so a retried attempt resumes exactly after the last committed page.
create table kombo.fetch_runs (
    id             text primary key,
    integration_id text        not null,
    endpoint       text        not null,
    kind           text        not null check (kind in ('delta', 'full')),
    updated_after  timestamptz,
    started_at     timestamptz not null default now(),
    finished_at    timestamptz,
    next_cursor    text,
    pages          integer     not null default 0,
    fetched        integer     not null default 0,
    inserted       integer     not null default 0,
    updated        integer     not null default 0,
    unchanged      integer     not null default 0,
    deleted        integer     not null default 0,
    restored       integer     not null default 0,
    restarts       integer     not null default 0, -- passes restarted because Kombo rejected the cursor
    outcome        text        not null default 'running',
    error          text
);
create index fetch_runs_endpoint on kombo.fetch_runs (integration_id, endpoint, started_at desc);
