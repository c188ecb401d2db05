package activities

import (
	"context"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// SweepInput names a completed full pass whose unseen rows are to be marked deleted.
type SweepInput struct {
	IntegrationID string
	Endpoint      kombo.Endpoint
	RunID         string
	// MaxShare is the largest share of live rows the sweep may delete without confirmation.
	MaxShare  float64
	Confirmed bool
}

// SweepEndpoint marks the rows a completed full pass did not see as deleted, within the guard.
func (a *Activities) SweepEndpoint(ctx context.Context, in SweepInput) (store.SweepResult, error) {
	return heartbeating(ctx, func() (store.SweepResult, error) {
		return a.Store.Sweep(ctx, store.Run{ID: in.RunID, IntegrationID: in.IntegrationID, Endpoint: in.Endpoint, Kind: store.KindFull},
			in.MaxShare, in.Confirmed)
	})
}
