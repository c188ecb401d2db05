-- Personal data (README "Personal data"): retention, erasure and the field policy.

-- A deleted record's content is reduced to a tombstone DELETED_RECORD_RETENTION after its
-- deletion: data keeps only the ids and timestamps (id, remote_id, changed_at,
-- remote_deleted_at), and the values of its change rows are redacted with it. A record Kombo
-- restores gets its whole content back, and this column is cleared.
alter table kombo.records add column content_removed_at timestamptz;
create index records_deleted_content on kombo.records (deleted_at) where deleted_at is not null and content_removed_at is null;

-- A change row's old and new values are replaced by "[redacted]" (the field names stay, so "what
-- changed when" survives) CHANGE_VALUES_RETENTION after it was recorded, or with its record's
-- tombstone or erasure. The op 'erased' is the one change row an erasure leaves of a record.
alter table kombo.changes add column values_redacted_at timestamptz;
create index changes_unredacted on kombo.changes (recorded_at) where values_redacted_at is null and diff is not null;
alter table kombo.changes drop constraint changes_op_check;
alter table kombo.changes add constraint changes_op_check check (op in ('created', 'updated', 'deleted', 'restored', 'erased'));

-- Records erased with suppression: while Kombo still serves them, a sync does not store them
-- again. `starter erase --lift` ends a suppression.
create table kombo.suppressed_records (
    integration_id text        not null,
    endpoint       text        not null,
    record_id      text        not null,
    suppressed_at  timestamptz not null default now(),
    reason         text        not null, -- the operator's words, e.g. a ticket number; never the person's data
    primary key (integration_id, endpoint, record_id)
);

-- The field policy each endpoint's stored rows follow (FIELD_POLICY_FILE). A policy whose
-- fingerprint differs from the one recorded is applied to the stored rows and change rows by the
-- retention run, resumably: rewrite_after is the last (integration_id, id) done.
create table kombo.field_policies (
    endpoint            text        primary key,
    fingerprint         text        not null, -- of the rules the stored rows follow ('' for none)
    pending_fingerprint text,                 -- of the rules being applied
    rewrite_after       text[],               -- {integration_id, id} of the last row rewritten
    applied_at          timestamptz
);

-- One row per retention run (the kombo-daily-retention schedule, or starter retention run): its
-- counts are added in the transaction of each batch, so they are exact across crashes.
create table kombo.retention_runs (
    id                 text        primary key, -- the workflow's id
    started_at         timestamptz not null default now(),
    finished_at        timestamptz,
    policy_rows        bigint      not null default 0, -- stored rows rewritten to a changed field policy
    policy_changes     bigint      not null default 0, -- change rows whose policy fields were redacted
    tombstoned         bigint      not null default 0, -- deleted records reduced to tombstones
    changes_redacted   bigint      not null default 0, -- change rows whose values were redacted
    webhooks_deleted   bigint      not null default 0  -- inbox rows deleted
);
