package activities

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/kombosync/kombosync/kombo"
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

// Reconciler asks an integration's workflow to run a full pass (signal-with-start), telling it
// first what Kombo said of the integration when asked. The worker provides it, because activities
// cannot import the workflows package that names signals.
type Reconciler func(ctx context.Context, ref store.IntegrationRef, reason string, state KomboState) error

// KomboState is what Kombo answered, when asked, about an integration: the catch-up for a lost
// integration-state-changed or integration-deleted webhook.
type KomboState struct {
	Checked bool      // Kombo answered; false: not asked, or the question failed
	Found   bool      // false: Kombo does not know the integration (any more)
	State   string    // ACTIVE, INVALID or INACTIVE
	At      time.Time // when Kombo answered
}

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
	stop := heartbeatEvery(ctx, nil)
	defer stop()
	for _, ref := range in.Integrations {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := a.Reconciler(ctx, ref, in.Reason, a.komboState(ctx, ref.ID))
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

// komboState asks Kombo for an integration's state; a failed question is logged and answered
// "not checked": the full pass goes ahead either way.
func (a *Activities) komboState(ctx context.Context, integrationID string) KomboState {
	if a.Kombo == nil {
		return KomboState{}
	}
	in, err := a.Kombo.GetIntegration(ctx, integrationID)
	var apiErr *kombo.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == kombo.CodeIntegrationNotFound:
		return KomboState{Checked: true, At: time.Now()}
	case err != nil:
		activity.GetLogger(ctx).Warn("could not ask Kombo for an integration's state", "integration_id", integrationID, "error", err)
		return KomboState{}
	}
	return KomboState{Checked: true, Found: true, State: in.State, At: time.Now()}
}

// CheckIntegrationResult is what Kombo says of an integration now.
type CheckIntegrationResult struct {
	Found bool   // false: Kombo does not know it (any more)
	State string // ACTIVE, INVALID or INACTIVE
}

// CheckIntegration asks Kombo for an integration's state (GET /integrations/{id}): the workflow
// of an integration Kombo paused probes with it, so a lost ACTIVE webhook costs little.
func (a *Activities) CheckIntegration(ctx context.Context, integrationID string) (CheckIntegrationResult, error) {
	in, err := a.Kombo.GetIntegration(ctx, integrationID)
	var apiErr *kombo.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == kombo.CodeIntegrationNotFound:
		return CheckIntegrationResult{}, nil
	case err != nil:
		return CheckIntegrationResult{}, classify(err)
	}
	return CheckIntegrationResult{Found: true, State: in.State}, nil
}
