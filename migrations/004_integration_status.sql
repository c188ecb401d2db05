-- kombo.integration_status: one row per integration, for SQL users and dashboards: its states,
-- how far behind it is, what runs, what failed and whether an operator is needed. Everything is
-- computed from the bookkeeping tables at query time; filter by id for a cheap lookup.
create view kombo.integration_status as
select
    i.id                                         as integration_id,
    i.tool,
    i.category,
    i.state,                                     -- Kombo's: ACTIVE, INVALID, INACTIVE
    i.sync_state,                                -- ours: idle, syncing, waiting_first_sync, auth_failed, paused, deleted, …
    i.first_sync_status,
    i.last_synced_at,
    now() - i.last_synced_at                     as sync_lag,
    w.oldest_watermark,                          -- the endpoint furthest behind: the next delta fetches from here
    w.last_full_pass_at,                         -- the oldest of the endpoints' last complete full passes
    w.endpoints                                  as endpoints_synced,
    r.running                                    as fetches_running,
    r.retrying                                   as fetches_retrying,   -- running, after an error
    r.failed_24h                                 as fetches_failed_24h, -- gave up (retries exhausted or not retryable)
    f.endpoint                                   as last_error_endpoint,
    f.error                                      as last_error,
    f.outcome                                    as last_error_outcome, -- running: being retried; failed: gave up
    f.started_at                                 as last_error_run_started_at,
    coalesce(e.unsignaled, 0)                    as webhooks_unsignaled,
    i.attention,                                 -- why an operator is needed (a refused sweep), or null
    i.deleted_at,
    i.purged_at,
    i.updated_at
from kombo.integrations i
left join lateral (
    select min(updated_after) as oldest_watermark, min(last_full_pass_at) as last_full_pass_at, count(*) as endpoints
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
) e on true;

comment on view kombo.integration_status is 'kombosync: one row per integration: states, lag, running and failed fetches, operator attention';
