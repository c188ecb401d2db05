-- The kombo schema holds everything kombosync owns (ARCHITECTURE.md section 4). Its relations are
-- added by the following migrations. The schema itself is created by migrations.Apply before tern
-- runs, because tern's version table lives in it; this file keeps the statement for the record.
create schema if not exists kombo;
comment on schema kombo is 'kombosync: Kombo HRIS/ATS data, change feed and sync bookkeeping';
