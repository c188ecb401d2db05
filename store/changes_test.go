package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/kombosync/kombosync/store"
)

func insertChange(ctx context.Context, db store.DBTX, recordID string) (seq int64, err error) {
	err = db.QueryRow(ctx, `insert into kombo.changes (integration_id, endpoint, record_id, op, fetch_run_id)
		values ('p:1', 'hris/employees', $1, 'created', 'run') returning seq`, recordID).Scan(&seq)
	return seq, err
}

// A change whose transaction took a lower seq but commits later is not skipped: the reader does
// not pass rows while an older transaction still runs. A reader by seq alone loses it for good.
func TestTheChangeFeedCursorNeverSkipsALateCommit(t *testing.T) {
	_, pool := newStore(t)
	ctx := t.Context()
	slow, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer slow.Rollback(ctx)
	lowSeq, err := insertChange(ctx, slow, "late") // takes the lower seq, commits last
	require.NoError(t, err)
	highSeq, err := insertChange(ctx, pool, "early")
	require.NoError(t, err)
	require.Less(t, lowSeq, highSeq)

	var naive int64
	require.NoError(t, pool.QueryRow(ctx, `select max(seq) from kombo.changes`).Scan(&naive))
	require.Equal(t, highSeq, naive, "a reader by seq has passed the running transaction's row")

	got, err := store.ReadChanges(ctx, pool, store.ChangeCursor{}, 100)
	require.NoError(t, err)
	require.Empty(t, got, "the committed row waits while an older transaction runs")

	require.NoError(t, slow.Commit(ctx))
	var missed int
	require.NoError(t, pool.QueryRow(ctx, `select count(*) from kombo.changes where seq > $1`, naive).Scan(&missed))
	require.Zero(t, missed, "the seq reader never sees the late row")
	got, err = store.ReadChanges(ctx, pool, store.ChangeCursor{}, 100)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, []string{"late", "early"}, []string{got[0].RecordID, got[1].RecordID}, "in (txid, seq) order")
	more, err := store.ReadChanges(ctx, pool, got[1].Cursor(), 100)
	require.NoError(t, err)
	require.Empty(t, more)
}

// Under concurrent writers of varying transaction lengths, a reader polling with the cursor
// reads every change exactly once.
func TestTheChangeFeedReaderSeesEveryChangeOnceUnderConcurrentWriters(t *testing.T) {
	_, pool := newStore(t)
	ctx := t.Context()
	const writers, perWriter = 6, 40
	var g errgroup.Group
	for w := range writers {
		g.Go(func() error {
			for i := range perWriter {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					if _, err := insertChange(ctx, tx, fmt.Sprintf("w%d-%d", w, i)); err != nil {
						return err
					}
					time.Sleep(time.Duration((w*7+i)%5) * time.Millisecond) // transactions of different lengths overlap
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	read := func(p *pgxpool.Pool, cur store.ChangeCursor) store.ChangeCursor {
		batch, err := store.ReadChanges(ctx, p, cur, 7)
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		for _, c := range batch {
			seen[c.RecordID]++
			cur = c.Cursor()
		}
		return cur
	}
	var cur store.ChangeCursor
	for writing := true; writing; {
		select {
		case err := <-done:
			require.NoError(t, err)
			writing = false
		default:
		}
		cur = read(pool, cur)
	}
	// Transactions of other tests in the cluster may hold the feed back a moment, never lose rows.
	for deadline := time.Now().Add(30 * time.Second); len(seen) < writers*perWriter && time.Now().Before(deadline); {
		cur = read(pool, cur)
	}
	require.Len(t, seen, writers*perWriter)
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}
}
