package activities

import (
	"context"
	"time"

	"github.com/kombosync/kombosync/store"
)

// LoadIntegrationInput names the integration and what the caller knows of it.
type LoadIntegrationInput struct {
	IntegrationID string
	Tool          string
	Category      string
}

// LoadIntegrationResult is what a workflow run starts from: the settings, the integration's row
// and its watermarks (Postgres is the durable truth of both).
type LoadIntegrationResult struct {
	Settings    Settings
	Integration store.Integration
	// Watermarks: the updated_after of the next delta, by endpoint ("hris/employees").
	Watermarks map[string]time.Time
	// Rejected: how many records of each endpoint sit in kombo.rejected_records.
	Rejected map[string]int
}

// LoadIntegration records the integration (creating its row on first sight) and returns the
// settings, the row and the watermarks.
func (a *Activities) LoadIntegration(ctx context.Context, in LoadIntegrationInput) (LoadIntegrationResult, error) {
	if err := a.Store.SaveIntegration(ctx, store.Integration{ID: in.IntegrationID, Tool: in.Tool, Category: in.Category}); err != nil {
		return LoadIntegrationResult{}, err
	}
	row, _, err := a.Store.Integration(ctx, in.IntegrationID)
	if err != nil {
		return LoadIntegrationResult{}, err
	}
	ws, err := a.Store.Watermarks(ctx, in.IntegrationID)
	if err != nil {
		return LoadIntegrationResult{}, err
	}
	rejected, err := a.Store.RejectedByEndpoint(ctx, in.IntegrationID)
	if err != nil {
		return LoadIntegrationResult{}, err
	}
	out := LoadIntegrationResult{Settings: a.Settings, Integration: row, Watermarks: map[string]time.Time{}, Rejected: rejected}
	for ep, w := range ws {
		if w.UpdatedAfter != nil {
			out.Watermarks[ep] = *w.UpdatedAfter
		}
	}
	return out, nil
}

// SaveIntegration records the integration's state in kombo.integrations, for SQL users and for
// `starter integration status` while no worker runs.
// The events the change tells the application of (a state transition, an attention) are queued
// in the same transaction, and their subscriptions woken.
func (a *Activities) SaveIntegration(ctx context.Context, in store.Integration) error {
	return a.saveWithEvents(ctx, in)
}

// NotifyRound sends the kombo_changes notification of a finished fetch round (a local activity:
// one statement, no Kombo call).
func (a *Activities) NotifyRound(ctx context.Context, n store.RoundNotice) error {
	return a.Store.NotifyRound(ctx, n)
}
