-- Outbound webhooks (README "Outbound webhooks", docs/ARCHITECTURE.md section 10): subscriptions,
-- the deliveries queued for each, and the position up to which the change feed has been reported.

-- The records.changed reporter reads one integration's feed between two positions: an index in
-- (integration_id, txid, seq) order serves that range and the newest position alike, and
-- replaces (integration_id, seq), so a page write maintains as many indexes as before.
create index changes_integration_txid_seq on kombo.changes (integration_id, txid, seq);
drop index kombo.changes_integration_seq;

create table kombo.subscriptions (
    id                text        primary key,                 -- sub_…
    url               text        not null,
    secrets           text[]      not null check (cardinality(secrets) between 1 and 5), -- whsec_…, newest first; every one signs
    event_types       text[]      not null default '{}',      -- empty: every type
    integration_id    text,                                    -- null: every integration
    description       text        not null default '',
    state             text        not null default 'active' check (state in ('active', 'paused', 'disabled')),
    state_reason      text,                                    -- why paused or disabled
    state_changed_at  timestamptz not null default now(),
    failures          integer     not null default 0,         -- consecutive failed attempts
    failing_since     timestamptz,                             -- the first of them
    last_attempt_at   timestamptz,
    last_status       integer,                                 -- HTTP status of the last attempt; null: no answer
    last_error        text,
    last_delivered_at timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);

-- One message to one subscription: its webhook-id is stable across retries and replays. A
-- records.changed not yet attempted absorbs the next one of its integration (counts summed,
-- range widened), so a receiver that is down accumulates at most one per integration between
-- two other events of it.
create table kombo.deliveries (
    seq              bigserial   primary key,
    subscription_id  text        not null references kombo.subscriptions on delete cascade,
    id               text        not null unique,             -- msg_…: the webhook-id
    type             text        not null,                    -- records.changed, integration.state_changed, attention, …
    integration_id   text,
    data             jsonb       not null,                    -- the event's data: ids, states, counts; never record contents
    created_at       timestamptz not null default now(),      -- the event's time (its first, when coalesced)
    events           integer     not null default 1,          -- events coalesced into it
    range_to_txid    xid8,                                    -- records.changed: the feed position it covers up to
    range_to_seq     bigint,
    attempts         integer     not null default 0,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    replays          integer     not null default 0
);
create index deliveries_pending on kombo.deliveries (subscription_id, seq) where delivered_at is null;
create index deliveries_integration on kombo.deliveries (subscription_id, integration_id, seq);
create index deliveries_created on kombo.deliveries (subscription_id, created_at);
create index deliveries_delivered on kombo.deliveries (delivered_at) where delivered_at is not null; -- retention

-- The daily retention's webhook-events step also deletes deliveries delivered before its cutoff.
alter table kombo.retention_runs add column deliveries_deleted bigint not null default 0;

-- How far each integration's change feed has been reported in records.changed events: the next
-- event covers (txid, seq) exclusive to the newest settled position inclusive.
create table kombo.change_reports (
    integration_id text        primary key,
    txid           xid8        not null,
    seq            bigint      not null,
    reported_at    timestamptz not null default now(),
    rejected_until timestamptz            -- the newest kombo.rejected_records.first_seen_at reported in an attention event
);

-- Start every integration's reports at its feed's newest settled position, so the first event
-- after the upgrade is one round's, not the whole history's.
insert into kombo.change_reports (integration_id, txid, seq, rejected_until)
select distinct on (integration_id) integration_id, txid, seq, now()
from kombo.changes
where txid < pg_snapshot_xmin(pg_current_snapshot())
order by integration_id, txid desc, seq desc;

comment on table kombo.subscriptions is 'kombosync: outbound webhook subscriptions (Standard Webhooks)';
comment on table kombo.deliveries is 'kombosync: messages to subscriptions, pending and delivered; data never holds record contents';
comment on table kombo.change_reports is 'kombosync: the feed position each integration''s records.changed events cover up to';
