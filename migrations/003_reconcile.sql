-- Weekly reconciliation and the integration lifecycle: which records a full pass saw, what its
-- sweep did, and integrations that need an operator or were purged.

-- The ids a full pass saw, written with each page; the sweep marks every other row deleted and
-- then forgets the run's ids.
create table kombo.full_pass_seen (
    run_id text not null,
    id     text not null,
    primary key (run_id, id)
);

alter table kombo.fetch_runs
    add column swept integer not null default 0, -- rows the sweep marked deleted
    add column sweep text check (sweep in ('done', 'refused'));

alter table kombo.integrations
    add column attention  text,        -- why an operator is needed (a refused sweep), or null
    add column purged_at timestamptz;  -- a deleted integration's rows were removed
