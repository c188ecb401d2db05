-- Records that cannot be taken, sanitised records, and endpoints Kombo stopped serving: what one
-- bad record or one disabled model does, made visible instead of stalling an integration.

-- Elements of a page kombosync could not take (not an object, no id, no parsable changed_at). The
-- rest of their page was written. A record that later arrives well-formed leaves this table in
-- the transaction that writes it; an id-less one when a complete full pass no longer sees it.
create table kombo.rejected_records (
    integration_id text        not null,
    endpoint       text        not null,
    key            text        not null, -- the record's id, or 'sha256:' and the hash of its bytes when it has none
    record_id      text,                 -- the record's id when it has a string one
    reason         text        not null,
    excerpt        text        not null, -- the start of the element (at most 512 bytes), for people to look at
    first_seen_at  timestamptz not null,
    last_seen_at   timestamptz not null,
    fetch_run_id   text        not null, -- the run that saw it last
    primary key (integration_id, endpoint, key)
);

alter table kombo.fetch_runs
    add column sanitized integer not null default 0, -- records stored with U+0000 removed or bad text replaced by U+FFFD
    add column rejected  integer not null default 0, -- page elements set aside in kombo.rejected_records
    add column error_type text;                       -- the activity's error type of a failed run (AuthFailed, DataError, …)

-- Kombo answers INTEGRATION.MODEL_NOT_AVAILABLE or MODEL_DISABLED for the endpoint (since then):
-- its rows stay as last synced, and are no longer kept up to date.
alter table kombo.watermarks add column unavailable_since timestamptz;

create or replace view kombo.integration_status as
select
    i.id                                         as integration_id,
    i.tool,
    i.category,
    i.state,
    i.sync_state,
    i.first_sync_status,
    i.last_synced_at,
    now() - i.last_synced_at                     as sync_lag,
    w.oldest_watermark,
    w.last_full_pass_at,
    w.endpoints                                  as endpoints_synced,
    r.running                                    as fetches_running,
    r.retrying                                   as fetches_retrying,
    r.failed_24h                                 as fetches_failed_24h,
    f.endpoint                                   as last_error_endpoint,
    f.error                                      as last_error,
    f.outcome                                    as last_error_outcome,
    f.started_at                                 as last_error_run_started_at,
    coalesce(e.unsignaled, 0)                    as webhooks_unsignaled,
    -- why an operator is needed: a refused sweep, rejected records, endpoints Kombo stopped serving
    nullif(concat_ws('; ', i.attention,
        case when x.rejected > 0 then x.rejected || ' records rejected (see kombo.rejected_records)' end,
        case when w.unavailable is not null then 'not served by Kombo: ' || w.unavailable end,
        case when d.endpoints is not null then 'pages that cannot be stored: ' || d.endpoints || ' (see kombo.fetch_runs.error)' end),
        '') as attention,
    i.deleted_at,
    i.purged_at,
    i.updated_at,
    coalesce(x.rejected, 0)                      as records_rejected,
    w.unavailable                                as endpoints_unavailable
from kombo.integrations i
left join lateral (
    select min(updated_after) as oldest_watermark, min(last_full_pass_at) as last_full_pass_at,
           count(*) filter (where updated_after is not null) as endpoints,
           string_agg(endpoint, ', ' order by endpoint) filter (where unavailable_since is not null) as unavailable
    from kombo.watermarks where integration_id = i.id
) w on true
left join lateral (
    select count(*) filter (where outcome = 'running') as running,
           count(*) filter (where outcome = 'running' and error is not null) as retrying,
           count(*) filter (where outcome = 'failed' and started_at > now() - interval '24 hours') as failed_24h
    from kombo.fetch_runs where integration_id = i.id
) r on true
left join lateral (
    select endpoint, error, outcome, started_at from kombo.fetch_runs
    where integration_id = i.id and error is not null
    order by started_at desc limit 1
) f on true
left join lateral (
    select count(*) as unsignaled from kombo.webhook_events
    where integration_id = i.id and signaled_at is null
) e on true
left join lateral (
    select count(*) as rejected from kombo.rejected_records where integration_id = i.id
) x on true
left join lateral (
    -- endpoints whose last pass failed on data that fails every attempt
    select string_agg(endpoint, ', ' order by endpoint) as endpoints from (
        select distinct on (endpoint) endpoint, outcome, error_type from kombo.fetch_runs
        where integration_id = i.id order by endpoint, started_at desc
    ) last where outcome = 'failed' and error_type = 'DataError'
) d on true;
