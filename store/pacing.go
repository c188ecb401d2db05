package store

import (
	"context"
	"fmt"
	"time"
)

// PaceBudget is the request_pacing row of Kombo's API: one per deployment, as its API key.
const PaceBudget = "kombo-api"

// Pace reserves the next slot of budget, interval after the one before (or now, when the budget
// has been idle), and waits until it comes: called before every request, it spaces the requests
// of every worker sharing the database at least interval apart. The slot is taken and measured on
// the database's clock, so workers' clocks need not agree. It returns ctx's error when ctx ends
// first; the slot is then spent.
func (s *Store) Pace(ctx context.Context, budget string, interval time.Duration) error {
	var wait float64
	err := s.pool.QueryRow(ctx, `
		insert into kombo.request_pacing as p (budget, next_slot) values ($1, clock_timestamp() + $2)
		on conflict (budget) do update set next_slot = greatest(p.next_slot, clock_timestamp()) + $2
		returning extract(epoch from (p.next_slot - $2 - clock_timestamp()))::float8`,
		budget, interval).Scan(&wait)
	if err != nil {
		return fmt.Errorf("reserve a request slot: %w", err)
	}
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(wait * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
