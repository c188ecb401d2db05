package activities

import (
	"context"
	"errors"
	"sync"

	"go.temporal.io/sdk/activity"

	"github.com/kombosync/kombosync/store"
)

// ListIntegrationsInput pages through the integrations by id.
type ListIntegrationsInput struct {
	After string
	Limit int
}

// ListIntegrations lists the integrations that are not deleted.
func (a *Activities) ListIntegrations(ctx context.Context, in ListIntegrationsInput) ([]store.IntegrationRef, error) {
	return heartbeating(ctx, func() ([]store.IntegrationRef, error) { return a.Store.ActiveIntegrations(ctx, in.After, in.Limit) })
}

// Reconciler asks an integration's workflow to run a full pass (signal-with-start). The worker
// provides it, because activities cannot import the workflows package that names signals.
type Reconciler func(ctx context.Context, ref store.IntegrationRef, reason string) error

// ReconcileBatchInput is one batch of the weekly reconciliation.
type ReconcileBatchInput struct {
	Integrations []store.IntegrationRef
	Reason       string
}

// ReconcileBatchResult counts the integrations the batch reached.
type ReconcileBatchResult struct {
	Reached int
	Failed  []string
}

// ReconcileBatch asks each integration of the batch to reconcile, a few at a time. An
// integration that could not be reached is reported, not retried here: the others must not wait
// for it, and next week's run reaches it again.
func (a *Activities) ReconcileBatch(ctx context.Context, in ReconcileBatchInput) (ReconcileBatchResult, error) {
	if a.Reconciler == nil {
		return ReconcileBatchResult{}, errors.New("reconcile batch: this worker has no Temporal client to signal with")
	}
	var (
		mu  sync.Mutex
		res ReconcileBatchResult
		wg  sync.WaitGroup
		sem = make(chan struct{}, 8)
	)
	stop := heartbeatEvery(ctx)
	defer stop()
	for _, ref := range in.Integrations {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := a.Reconciler(ctx, ref, in.Reason)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed = append(res.Failed, ref.ID)
				activity.GetLogger(ctx).Warn("could not ask an integration to reconcile", "integration_id", ref.ID, "error", err)
				return
			}
			res.Reached++
		}()
	}
	wg.Wait()
	return res, nil
}
