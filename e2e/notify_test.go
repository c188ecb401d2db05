package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// listener LISTENs on kombo_changes, as an application would, and keeps what it hears.
type listener struct {
	mu      sync.Mutex
	notices []store.RoundNotice
	err     error
}

func listen(t *testing.T, databaseURL string) *listener {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, databaseURL)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "listen "+store.ChangesChannel)
	require.NoError(t, err)
	l := &listener{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil {
					l.mu.Lock()
					l.err = err
					l.mu.Unlock()
				}
				return
			}
			var rn store.RoundNotice
			err = json.Unmarshal([]byte(n.Payload), &rn)
			l.mu.Lock()
			l.notices, l.err = append(l.notices, rn), err
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; conn.Close(context.Background()) })
	return l
}

func (l *listener) heard() ([]store.RoundNotice, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.notices), l.err
}

// A LISTEN client wakes once per committed fetch round, not per page (the backfill's employees
// take three pages), and the notification's position covers every change row of the round.
func TestAListenerWakesOncePerRound(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("KOMBO_ENDPOINTS", "hris/employees,hris/employments")})
	const id = "personio:e2e-listen"
	l := listen(t, s.DatabaseURL)
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	employments := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employments"}
	inSync := func(within time.Duration) { // the two endpoints this worker syncs
		teststack.Eventually(t, within, func() string { return s.Diff(t, id, employees) + s.Diff(t, id, employments) })
	}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 600, Seed: 4, Notify: true}))
	inSync(2 * time.Minute)
	require.GreaterOrEqual(t, s.Count(t, `select coalesce(max(pages), 0) from kombo.fetch_runs where integration_id = $1 and endpoint = 'hris/employees'`, id), 3)
	for range 2 { // two more rounds, one after the other
		_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate}, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate})
		require.NoError(t, err)
		require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
		inSync(time.Minute)
		s.WaitState(t, id, workflows.StateIdle, time.Minute)
	}
	st := s.WaitState(t, id, workflows.StateIdle, time.Minute)
	require.GreaterOrEqual(t, st.RoundsThisRun, 3)
	var notices []store.RoundNotice
	teststack.Eventually(t, 30*time.Second, func() string {
		var err error
		notices, err = l.heard()
		require.NoError(t, err)
		if len(notices) < st.RoundsThisRun {
			return fmt.Sprintf("%d notifications for %d rounds", len(notices), st.RoundsThisRun)
		}
		return ""
	})
	require.Len(t, notices, st.RoundsThisRun, "one notification per round, none per page")
	written := 0
	for k, n := range notices {
		require.Equal(t, id, n.IntegrationID)
		require.Equal(t, k+1, n.Round, "each round once, in order")
		require.NotEmpty(t, n.Endpoints)
		require.NotEmpty(t, n.TxID)
		written += n.Written
	}
	require.Equal(t, []string{"hris/employees", "hris/employments"}, notices[0].Endpoints, "the backfill round")
	require.Equal(t, s.Count(t, `select count(*) from kombo.changes where integration_id = $1`, id), written,
		"the rounds' counts add up to the feed")
	last := notices[len(notices)-1]
	require.Equal(t, s.Count(t, `select max(seq) from kombo.changes where integration_id = $1`, id), int(last.Seq),
		"the last notification's position is the feed's end")
	s.finish(t, id, "integration_sync_round_notify")
}
