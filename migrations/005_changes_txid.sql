-- The change feed's safe cursor. seq is allocated when a row is inserted, not when its
-- transaction commits, so concurrent writers (other endpoints, other integrations) can commit a
-- lower seq after a reader has already passed it: a reader that only remembers seq would skip
-- that change for good. txid records the writing transaction; a reader takes only rows whose
-- transaction is older than every transaction still running (txid < pg_snapshot_xmin of its
-- snapshot), in (txid, seq) order, and keeps (txid, seq) as its cursor. See the README's data
-- contract.
alter table kombo.changes add column txid xid8 not null default pg_current_xact_id();
create index changes_txid_seq on kombo.changes (txid, seq);

comment on column kombo.changes.txid is 'the writing transaction: read rows with txid < pg_snapshot_xmin(pg_current_snapshot()) in (txid, seq) order';
