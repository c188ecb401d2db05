package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// ChangeCursor is a change-feed reader's position: the (txid, seq) of the last row it read. The
// zero cursor reads from the start.
type ChangeCursor struct {
	TxID uint64 `json:"txid"`
	Seq  int64  `json:"seq"`
}

// Change is one row of the change feed, kombo.changes.
type Change struct {
	Seq           int64
	TxID          uint64
	IntegrationID string
	Endpoint      string
	RecordID      string
	Op            string          // created, updated, deleted, restored
	Diff          json.RawMessage // {"field": [old, new]}; null for created
	FetchRunID    string
	RecordedAt    time.Time
}

// Cursor is the position after this change.
func (c Change) Cursor() ChangeCursor { return ChangeCursor{TxID: c.TxID, Seq: c.Seq} }

// ChangesQuery is how an application reads the change feed without ever skipping a row: only
// rows of transactions older than every one still running, in (txid, seq) order, after the
// reader's cursor. Reading by seq alone can skip a change: seq is taken at insert, and a
// transaction that took a lower seq may commit after a reader passed it. The README's data
// contract gives the same query. (The text column needs its own name: an output column called
// txid would make "order by txid" sort text, 1000 before 999.)
const ChangesQuery = `
	select seq, txid::text as txid_text, integration_id, endpoint, record_id, op, diff, fetch_run_id, recorded_at
	from kombo.changes
	where (txid, seq) > ($1::text::xid8, $2::bigint)
	  and txid < pg_snapshot_xmin(pg_current_snapshot())
	order by txid, seq
	limit $3`

// ReadChanges reads up to limit changes after the cursor with ChangesQuery.
func ReadChanges(ctx context.Context, db DBTX, after ChangeCursor, limit int) ([]Change, error) {
	rows, err := db.Query(ctx, ChangesQuery, strconv.FormatUint(after.TxID, 10), after.Seq, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Change, error) {
		var c Change
		var txid string
		if err := row.Scan(&c.Seq, &txid, &c.IntegrationID, &c.Endpoint, &c.RecordID, &c.Op, &c.Diff, &c.FetchRunID, &c.RecordedAt); err != nil {
			return c, err
		}
		c.TxID, err = strconv.ParseUint(txid, 10, 64)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return out, nil
}
