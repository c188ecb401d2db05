package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kombosync/kombosync/kombo"
)

// Run kinds.
const (
	KindDelta = "delta"
	KindFull  = "full"
)

// Run outcomes.
const (
	OutcomeRunning          = "running"
	OutcomeSucceeded        = "succeeded"
	OutcomeModelUnavailable = "model_unavailable"
	OutcomeFailed           = "failed"
)

// Run identifies one endpoint pass (a kombo.fetch_runs row). Its ID is chosen by the caller and
// stays the same across retries of the pass, which is what lets a retry resume.
type Run struct {
	ID            string
	IntegrationID string
	Endpoint      kombo.Endpoint
	Kind          string
	UpdatedAfter  *time.Time
}

// Counts are what a pass did to the records it fetched.
type Counts struct {
	Pages     int `json:"pages"`
	Fetched   int `json:"fetched"`
	Inserted  int `json:"inserted"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Deleted   int `json:"deleted"`
	Restored  int `json:"restored"`
	// Sanitized records were stored with text PostgreSQL cannot hold replaced (see
	// kombo.Record.Sanitized); they are counted in the other counts too.
	Sanitized int `json:"sanitized"`
	// Rejected page elements went to kombo.rejected_records instead; they are not in Fetched.
	Rejected int `json:"rejected"`
}

// Add sums two counts.
func (c Counts) Add(o Counts) Counts {
	return Counts{c.Pages + o.Pages, c.Fetched + o.Fetched, c.Inserted + o.Inserted, c.Updated + o.Updated,
		c.Unchanged + o.Unchanged, c.Deleted + o.Deleted, c.Restored + o.Restored, c.Sanitized + o.Sanitized,
		c.Rejected + o.Rejected}
}

// Written is how many records the counts changed.
func (c Counts) Written() int { return c.Inserted + c.Updated + c.Deleted + c.Restored }

// Progress is how far a run got: the cursor of the next page (empty: from the start, or done when
// Finished) and the counts so far.
type Progress struct {
	NextCursor string
	Counts     Counts
	Restarts   int
	Finished   bool
	Outcome    string
	Error      string // the last attempt's error, or why the run failed
	ErrorType  string // of a failed run: the activity's error type that ended it
}

// StartRun records the run unless it exists and returns its progress, so a retried attempt
// continues where the last committed page left it.
func (s *Store) StartRun(ctx context.Context, r Run) (Progress, error) {
	if r.Kind != KindDelta && r.Kind != KindFull {
		return Progress{}, fmt.Errorf("start run %s: kind must be delta or full, not %q", r.ID, r.Kind)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			insert into kombo.fetch_runs (id, integration_id, endpoint, kind, updated_after, started_at)
			values ($1, $2, $3, $4, $5, $6)
			on conflict (id) do nothing`,
			r.ID, r.IntegrationID, r.Endpoint.String(), r.Kind, r.UpdatedAfter, s.now())
		if err != nil || tag.RowsAffected() == 0 || r.Kind != KindFull {
			return err
		}
		// Full passes of an integration never overlap, so an older full pass of the endpoint
		// still open was abandoned (its retries ran out): end it, and forget the ids it saw.
		return abandonFullRuns(ctx, tx, r.IntegrationID, r.Endpoint.String(), r.ID, s.now())
	})
	if err != nil {
		return Progress{}, fmt.Errorf("start run %s: %w", r.ID, err)
	}
	return s.RunProgress(ctx, r.ID)
}

// RunProgress reads a run's progress.
func (s *Store) RunProgress(ctx context.Context, runID string) (Progress, error) {
	var p Progress
	var cursor, errText, errType *string
	var finished *time.Time
	err := s.pool.QueryRow(ctx, `
		select next_cursor, pages, fetched, inserted, updated, unchanged, deleted, restored, sanitized, rejected,
			restarts, finished_at, outcome, error, error_type
		from kombo.fetch_runs where id = $1`, runID).
		Scan(&cursor, &p.Counts.Pages, &p.Counts.Fetched, &p.Counts.Inserted, &p.Counts.Updated, &p.Counts.Unchanged,
			&p.Counts.Deleted, &p.Counts.Restored, &p.Counts.Sanitized, &p.Counts.Rejected, &p.Restarts, &finished,
			&p.Outcome, &errText, &errType)
	if err != nil {
		return Progress{}, fmt.Errorf("read run %s: %w", runID, err)
	}
	if cursor != nil {
		p.NextCursor = *cursor
	}
	if errText != nil {
		p.Error = *errText
	}
	if errType != nil {
		p.ErrorType = *errType
	}
	p.Finished = finished != nil
	return p, nil
}

// RestartRun forgets a run's cursor after Kombo rejected it: the pass starts over. Its writes
// are idempotent, so records already written are found unchanged.
func (s *Store) RestartRun(ctx context.Context, runID string) error {
	_, err := s.pool.Exec(ctx, `update kombo.fetch_runs set next_cursor = null, restarts = restarts + 1 where id = $1`, runID)
	if err != nil {
		return fmt.Errorf("restart run %s: %w", runID, err)
	}
	return nil
}

// FinishRun records the run's outcome. A finished run stays finished: a late duplicate call of a
// zombie attempt does not change it.
func (s *Store) FinishRun(ctx context.Context, runID, outcome, errText string) error {
	return finishRun(ctx, s.pool, runID, outcome, errText, s.now())
}

func finishRun(ctx context.Context, db DBTX, runID, outcome, errText string, now time.Time) error {
	_, err := db.Exec(ctx, `
		update kombo.fetch_runs set finished_at = $2, outcome = $3, error = nullif($4, ''), next_cursor = null
		where id = $1 and finished_at is null`, runID, now, outcome, errText)
	if err != nil {
		return fmt.Errorf("finish run %s: %w", runID, err)
	}
	return nil
}

// SucceedRun finishes a run as succeeded and, in the same transaction, advances its endpoint's
// watermark to advanceTo (when not nil): the next delta asks for what changed since then. Done
// together, a crash cannot leave a finished run whose watermark did not move, or the reverse.
func (s *Store) SucceedRun(ctx context.Context, run Run, advanceTo *time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := finishRun(ctx, tx, run.ID, OutcomeSucceeded, "", s.now()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `update kombo.watermarks set unavailable_since = null
			where integration_id = $1 and endpoint = $2 and unavailable_since is not null`,
			run.IntegrationID, run.Endpoint.String()); err != nil {
			return err
		}
		if advanceTo == nil {
			return nil
		}
		return advanceWatermark(ctx, tx, run.IntegrationID, run.Endpoint, *advanceTo, run.Kind == KindFull)
	})
}

// abandonFullRuns ends the open full passes of the endpoint other than except as failed, and
// deletes the ids they saw: nothing will sweep after them.
func abandonFullRuns(ctx context.Context, db DBTX, integrationID, endpoint, except string, now time.Time) error {
	_, err := db.Exec(ctx, `
		with abandoned as (
			update kombo.fetch_runs set finished_at = $4, outcome = 'failed', next_cursor = null,
				error = coalesce(error || '; ', '') || 'abandoned: a later full pass started'
			where integration_id = $1 and endpoint = $2 and kind = 'full' and finished_at is null and id <> $3
			returning id
		)
		delete from kombo.full_pass_seen where run_id in (select id from abandoned)`,
		integrationID, endpoint, except, now)
	return err
}

// FinishModelUnavailable ends a run whose endpoint Kombo does not serve for the integration
// (INTEGRATION.MODEL_NOT_AVAILABLE or MODEL_DISABLED), and records since when: the endpoint's rows
// stay as they were last synced, and kombo.integration_status names the endpoint.
func (s *Store) FinishModelUnavailable(ctx context.Context, run Run, errText string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := finishRun(ctx, tx, run.ID, OutcomeModelUnavailable, errText, s.now()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			insert into kombo.watermarks as w (integration_id, endpoint, unavailable_since, updated_at)
			values ($1, $2, $3, $3)
			on conflict (integration_id, endpoint) do update set
				unavailable_since = coalesce(w.unavailable_since, excluded.unavailable_since), updated_at = excluded.updated_at`,
			run.IntegrationID, run.Endpoint.String(), s.now())
		return err
	})
}

// FailRun records an attempt's error (of type errType, the activity's) on a run that goes on (it
// will be retried), or ends it when final is set: a retry of the activity then gets the same error
// back from Progress.
func (s *Store) FailRun(ctx context.Context, runID, errType string, runErr error, final bool) error {
	if final {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := finishRun(ctx, tx, runID, OutcomeFailed, runErr.Error(), s.now()); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `update kombo.fetch_runs set error_type = nullif($2, '') where id = $1 and error_type is null`, runID, errType); err != nil {
				return err
			}
			// A failed full pass sweeps nothing: the ids it saw are of no use.
			_, err := tx.Exec(ctx, `delete from kombo.full_pass_seen where run_id = $1`, runID)
			return err
		})
	}
	_, err := s.pool.Exec(ctx, `update kombo.fetch_runs set error = $2 where id = $1 and finished_at is null`, runID, runErr.Error())
	if err != nil {
		return fmt.Errorf("record error of run %s: %w", runID, err)
	}
	return nil
}
