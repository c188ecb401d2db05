-- Job titles as lookup keys (README "Job links"): a title is matched by the nearest trigram
-- neighbours of kombo.job_keys (kind 'title', the name lower-cased with its white space folded, at
-- most 200 characters) on a GiST index per integration, instead of computing the similarity of
-- every job's name in kombo.ats_jobs: a lookup of 100 hints over 20,000 jobs went from about 1 s
-- to a few tens of milliseconds (BENCHMARKS.md, figure 14). btree_gist (PostgreSQL contrib) lets
-- the index lead with integration_id; creating it needs the CREATE privilege, as pg_trgm did.
create extension if not exists btree_gist;

alter table kombo.job_keys drop constraint job_keys_kind_check;
alter table kombo.job_keys add constraint job_keys_kind_check
    check (kind in ('id', 'remote_id', 'job_code', 'post_url', 'posting_url', 'posting_remote_id', 'title'));

create index job_keys_title_trgm on kombo.job_keys using gist (integration_id, key gist_trgm_ops) where kind = 'title';

-- The titles of the jobs synced so far; kombosync writes them with every page from now on (and
-- the weekly full pass rewrites every job's keys).
insert into kombo.job_keys (integration_id, job_id, kind, key)
select integration_id, id, 'title', btrim(left(regexp_replace(lower(btrim(data ->> 'name')), '\s+', ' ', 'g'), 200))
from kombo.ats_jobs
where coalesce(btrim(data ->> 'name'), '') <> ''
on conflict do nothing;

drop index kombo.ats_jobs_name_trgm;
