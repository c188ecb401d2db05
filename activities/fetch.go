package activities

import (
	"cmp"
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// FetchEndpointInput is one pass over one endpoint of one integration.
type FetchEndpointInput struct {
	IntegrationID string
	Endpoint      kombo.Endpoint
	// UpdatedAfter limits the pass to records changed since then; nil fetches everything.
	UpdatedAfter *time.Time
	Kind         string // store.KindDelta or store.KindFull
	// RunID names the pass (its kombo.fetch_runs row); it must stay the same across retries.
	RunID string
	// AdvanceWatermarkTo, when set, becomes the endpoint's updated_after for the next delta, in
	// the transaction that records the pass's success. The workflow sets it to the time the pass
	// started minus the safety overlap.
	AdvanceWatermarkTo *time.Time
	// ChangedSince is when the workflow heard of the first change this delta fetches; a
	// succeeded pass reports the time since as its sync lag. Nil for passes nobody waits on.
	ChangedSince *time.Time
	// MaxAttempts is the retry policy's bound, for a full pass: its last attempt that fails
	// ends the run as failed (nothing resumes a full pass; the next one starts over). Zero: not
	// known.
	MaxAttempts int32
}

// FetchEndpointResult is what the pass did.
type FetchEndpointResult struct {
	Outcome  string // store.OutcomeSucceeded or store.OutcomeModelUnavailable
	Counts   store.Counts
	Restarts int // passes restarted because Kombo rejected a cursor
	// RejectedOpen is how many of the endpoint's records sit in kombo.rejected_records after the
	// pass (from this pass or earlier ones).
	RejectedOpen int
}

// FetchProgress is the heartbeat: where the pass is and what it did so far. The resume point
// itself is read from Postgres, where it is committed with each page; a heartbeat can be lost
// with a crashed worker.
type FetchProgress struct {
	NextCursor string
	Counts     store.Counts
}

// maxRestarts bounds how often one attempt restarts the pass after a rejected cursor.
const maxRestarts = 3

// FetchEndpoint pages through an endpoint (page_size 250, include_deleted) into Postgres. Each
// page is written in one transaction together with the cursor of the next, and only then
// heartbeated, so a retried attempt continues after the last committed page and nothing is
// applied twice. The next page is fetched while the current one is written.
func (a *Activities) FetchEndpoint(ctx context.Context, in FetchEndpointInput) (res FetchEndpointResult, err error) {
	started := time.Now()
	logger := activity.GetLogger(ctx)
	defer func() {
		a.Metrics.fetched(in, started, res.Outcome, err)
		// One line per attempt, with the workflow's ids (the SDK adds them); never record contents.
		kv := []any{"integration_id", in.IntegrationID, "endpoint", in.Endpoint.String(), "kind", in.Kind, "run_id", in.RunID,
			"duration", time.Since(started).Round(time.Millisecond).String()}
		if err != nil {
			logger.Warn("pass failed", append(kv, "error", err)...)
			return
		}
		c := res.Counts
		logger.Info("pass finished", append(kv, "outcome", res.Outcome, "pages", c.Pages, "fetched", c.Fetched,
			"inserted", c.Inserted, "updated", c.Updated, "unchanged", c.Unchanged, "deleted", c.Deleted, "restored", c.Restored,
			"sanitized", c.Sanitized, "rejected", c.Rejected)...)
	}()
	if in.IntegrationID == "" || in.RunID == "" || in.Endpoint.Name == "" {
		return FetchEndpointResult{}, temporal.NewNonRetryableApplicationError(
			"fetch endpoint: integration, endpoint and run id are required", ErrInvalidInput, nil)
	}
	run := store.Run{ID: in.RunID, IntegrationID: in.IntegrationID, Endpoint: in.Endpoint, Kind: in.Kind, UpdatedAfter: in.UpdatedAfter}
	progress, err := a.Store.StartRun(ctx, run)
	if err != nil {
		return FetchEndpointResult{}, err // Postgres: retryable
	}
	if progress.Finished {
		// A retry after the final commit: the pass is done, and reports what it ended with. A
		// run an earlier attempt ended as failed stays the failure it was: taking it for a
		// success would advance the watermark over records never fetched.
		if progress.Outcome == store.OutcomeFailed {
			return FetchEndpointResult{}, temporal.NewNonRetryableApplicationError(
				"the pass failed in an earlier attempt: "+progress.Error, cmp.Or(progress.ErrorType, ErrKombo), nil)
		}
		return FetchEndpointResult{Outcome: progress.Outcome, Counts: progress.Counts, Restarts: progress.Restarts}, nil
	}
	if progress.Counts.Pages > 0 {
		logger.Info("resuming pass", "integration_id", in.IntegrationID, "endpoint", in.Endpoint.String(),
			"pages_done", progress.Counts.Pages, "restarts", progress.Restarts)
	}
	params := kombo.ListParams{PageSize: kombo.DefaultPageSize, IncludeDeleted: true}
	if in.UpdatedAfter != nil {
		params.UpdatedAfter = *in.UpdatedAfter
	}
	counts, cursor, restarts := progress.Counts, progress.NextCursor, progress.Restarts
	for attemptRestarts := 0; ; {
		params.Cursor = cursor
		counts, err = a.pass(ctx, run, params, counts)
		var apiErr *kombo.APIError
		if errors.As(err, &apiErr) && apiErr.CursorRejected && attemptRestarts < maxRestarts {
			// The saved or current cursor expired: start over. Writes are idempotent, so the
			// records already written are found unchanged.
			logger.Warn("kombo rejected the cursor; restarting the pass", "integration_id", in.IntegrationID,
				"endpoint", in.Endpoint.String(), "error", err)
			if err := a.Store.RestartRun(ctx, run.ID); err != nil {
				return FetchEndpointResult{}, err
			}
			cursor, restarts = "", restarts+1
			attemptRestarts++
			continue
		}
		break
	}
	if err != nil {
		last := in.Kind == store.KindFull && in.MaxAttempts > 0 && activity.GetInfo(ctx).Attempt >= in.MaxAttempts
		return a.fail(ctx, run, err, last)
	}
	if err := a.Store.SucceedRun(ctx, run, in.AdvanceWatermarkTo); err != nil {
		return FetchEndpointResult{}, err
	}
	rejected, err := a.Store.RejectedByEndpoint(ctx, in.IntegrationID)
	if err != nil {
		return FetchEndpointResult{}, err
	}
	return FetchEndpointResult{Outcome: store.OutcomeSucceeded, Counts: counts, Restarts: restarts,
		RejectedOpen: rejected[in.Endpoint.String()]}, nil
}

// fetched is one page, or the error that ended fetching.
type fetched struct {
	page *kombo.Page
	at   time.Time
	err  error
}

// pass fetches and writes pages from params.Cursor to the end, returning the run's counts.
// A fetcher goroutine stays one page ahead of the writer.
func (a *Activities) pass(ctx context.Context, run store.Run, params kombo.ListParams, counts store.Counts) (store.Counts, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	progress := FetchProgress{NextCursor: params.Cursor, Counts: counts} // before the fetcher moves params on
	pages := make(chan fetched, 1)                                       // one page in hand while the writer writes the one before
	go func() {
		defer close(pages)
		for {
			// The database's clock, not this worker's: versions fetched by workers whose clocks
			// disagree are still ordered right (an older fetch never overwrites a newer one).
			at, err := a.Store.DatabaseTime(ctx)
			var page *kombo.Page
			if err == nil {
				page, err = a.Kombo.ListPage(ctx, run.IntegrationID, run.Endpoint, params)
			}
			select {
			case pages <- fetched{page, at, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || page.Next == "" {
				return
			}
			params.Cursor = page.Next
		}
	}()
	// Heartbeat while waiting for a slow page and while a page is written too: silence must
	// mean the worker died. The SDK throttles what it sends to the server, so beating often is cheap.
	var latest atomic.Pointer[FetchProgress]
	latest.Store(&progress)
	stop := heartbeatEvery(ctx, func() any { return *latest.Load() })
	defer stop()
	for f := range pages {
		if f.err != nil {
			return counts, f.err
		}
		c, err := a.Store.ApplyPage(ctx, run, f.page, f.at)
		if err != nil {
			return counts, err
		}
		counts = counts.Add(c)
		a.Metrics.page(run.Endpoint, run.Kind, c)
		latest.Store(&FetchProgress{NextCursor: f.page.Next, Counts: counts})
		activity.RecordHeartbeat(ctx, *latest.Load())
	}
	return counts, ctx.Err()
}
