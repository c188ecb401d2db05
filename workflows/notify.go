package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/store"
)

// roundSoFar is what the fetches of the current round committed.
type roundSoFar struct {
	endpoints []string
	written   int
	number    int  // rounds notified in this run
	full      bool // a full pass wrote some of it
}

// add records an endpoint the round committed, with the change rows it wrote.
func (r *roundSoFar) add(endpoint string, written int) {
	if !slices.Contains(r.endpoints, endpoint) {
		r.endpoints = append(r.endpoints, endpoint)
	}
	r.written += written
}

// notifyIfRoundDone reports a round (PublishRound; before the round-report version, the
// kombo_changes notification alone, NotifyRound) when the fetches of a
// round have all finished, before the next round starts: an application LISTENing wakes once
// per committed round, never per page. A round whose fetches all failed notifies nothing; a
// notification that cannot be sent is logged and not retried (the feed is the truth, the
// notification only a wake-up).
func (s *syncer) notifyIfRoundDone(ctx workflow.Context) {
	if !s.notifyRounds || len(s.round.endpoints) == 0 || len(s.inflight) > 0 || s.child != nil {
		return
	}
	s.round.number++
	slices.Sort(s.round.endpoints)
	n := store.RoundNotice{IntegrationID: s.id, Endpoints: s.round.endpoints, Written: s.round.written,
		Round: s.round.number, RunID: workflow.GetInfo(ctx).WorkflowExecution.RunID}
	full := s.round.full
	s.round.endpoints, s.round.written, s.round.full = nil, 0, false
	if s.reportRounds {
		// A regular activity, retried: the report queues the round's records.changed event
		// for the subscriptions (store.ReportChanges). It gives up after a few minutes of a
		// feed horizon held back; the next round's report covers what this one could not.
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second,
				MaximumAttempts: 8},
			Summary: "report the round's changes",
		})
		err := workflow.ExecuteActivity(actx, acts.PublishRound, activities.PublishRoundInput{IntegrationID: s.id,
			Tool: s.st.Tool, Category: s.st.Category, Full: full, Notice: n}).Get(actx, nil)
		if err != nil {
			s.logger.Warn("could not report the round's changes; the next round's report covers them", "error", err)
		}
		return
	}
	// Bounded and tried twice at most: the event loop waits for it, and a lost wake-up costs
	// nothing but latency (readers also poll).
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 5 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
		Summary:                "notify kombo_changes",
	})
	if err := workflow.ExecuteLocalActivity(lctx, acts.NotifyRound, n).Get(lctx, nil); err != nil {
		s.logger.Warn("could not notify the round's changes", "error", err)
	}
}
