package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SweepResult is what a sweep after a full pass did, or would have done.
type SweepResult struct {
	Alive   int  // rows not deleted before the sweep
	Missing int  // of those, rows the pass did not see
	Swept   int  // rows marked deleted
	Refused bool // Missing exceeded the allowed share and no one confirmed
}

// sweepFloor: a sweep of this many rows or fewer is never refused for its share, unless it
// would empty the endpoint. Deleting one of three legal entities is ordinary; the guard is
// there for a truncated list from Kombo that would wipe out a large share of the data.
const sweepFloor = 5

// emptying reports whether a sweep would mark every live row of the endpoint deleted: refused even
// when confirmed. A list that suddenly comes back empty is far likelier a broken integration than
// a company without employees, and a confirmation given for a partial sweep must not cover it.
func emptying(missing, alive int) bool { return alive > 0 && missing == alive }

// guarded reports whether a sweep of missing out of alive rows needs a confirmation.
func guarded(missing, alive int, maxShare float64) bool {
	if missing == 0 || float64(missing) <= maxShare*float64(alive) {
		return false
	}
	return missing > sweepFloor || missing == alive
}

// Sweep runs after a full pass over an endpoint completed: every row of the endpoint that the
// pass did not see is marked deleted (deleted_at, and a "deleted" change row with a null diff).
// When that would delete more than maxShare of the rows still alive (and more than a handful, or
// all of them), it refuses unless confirmed and changes nothing; one that would mark every row
// deleted is refused even when confirmed. A sweep happens once per run: a retry returns the recorded result.
func (s *Store) Sweep(ctx context.Context, run Run, maxShare float64, confirmed bool) (SweepResult, error) {
	var res SweepResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockEndpoint, endpointLockKey(run)); err != nil {
			return err
		}
		var kind, outcome string
		var sweep *string
		err := tx.QueryRow(ctx, `select kind, outcome, sweep, swept from kombo.fetch_runs where id = $1 for update`, run.ID).
			Scan(&kind, &outcome, &sweep, &res.Swept)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRunNotOpen
		}
		if err != nil {
			return err
		}
		if kind != KindFull || outcome != OutcomeSucceeded {
			return fmt.Errorf("only a completed full pass may sweep (kind %s, outcome %s)", kind, outcome)
		}
		if sweep != nil && *sweep == "done" {
			return nil // swept before: the pass's seen ids are gone, never sweep again
		}
		res.Swept = 0
		err = tx.QueryRow(ctx, `
			select count(*), count(*) filter (where not exists (
				select from kombo.full_pass_seen s where s.run_id = $3 and s.id = r.id))
			from kombo.records r
			where r.integration_id = $1 and r.endpoint = $2 and r.deleted_at is null`,
			run.IntegrationID, run.Endpoint.String(), run.ID).Scan(&res.Alive, &res.Missing)
		if err != nil {
			return err
		}
		if emptying(res.Missing, res.Alive) || (!confirmed && guarded(res.Missing, res.Alive, maxShare)) {
			res.Refused = true
			// Nothing sweeps after a refusal: the ids the pass saw are of no further use.
			_, err := tx.Exec(ctx, `
				with r as (update kombo.fetch_runs set sweep = 'refused' where id = $1)
				delete from kombo.full_pass_seen where run_id = $1`, run.ID)
			return err
		}
		now := s.now()
		err = tx.QueryRow(ctx, `
			with gone as (
				update kombo.records r set deleted_at = $4
				where r.integration_id = $1 and r.endpoint = $2 and r.deleted_at is null
					and not exists (select from kombo.full_pass_seen s where s.run_id = $3 and s.id = r.id)
				returning r.id
			), ch as (
				insert into kombo.changes (integration_id, endpoint, record_id, op, diff, fetch_run_id, recorded_at)
				select $1, $2, id, 'deleted', null, $3, $4 from gone
				returning 1
			)
			update kombo.fetch_runs set sweep = 'done', swept = (select count(*) from ch), deleted = deleted + (select count(*) from ch)
			where id = $3
			returning swept`,
			run.IntegrationID, run.Endpoint.String(), run.ID, now).Scan(&res.Swept)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `delete from kombo.full_pass_seen where run_id = $1`, run.ID); err != nil {
			return err
		}
		// Rejected elements without an id that the complete pass no longer met are gone at Kombo.
		_, err = tx.Exec(ctx, `
			delete from kombo.rejected_records x using kombo.fetch_runs f
			where f.id = $3 and x.integration_id = $1 and x.endpoint = $2 and x.last_seen_at < f.started_at`,
			run.IntegrationID, run.Endpoint.String(), run.ID)
		return err
	})
	if err != nil {
		return SweepResult{}, fmt.Errorf("sweep %s %s: %w", run.IntegrationID, run.Endpoint, err)
	}
	return res, nil
}
