package workflows

import (
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/kombo"
)

func (s *syncer) receiveEvent(ctx workflow.Context, c workflow.ReceiveChannel) {
	var ev KomboEvent
	c.Receive(ctx, &ev)
	s.eventsThisRun++
	if ev.ID != "" {
		if slices.Contains(s.st.RecentIDs, ev.ID) {
			return // a duplicate delivery
		}
		s.st.RecentIDs = append(s.st.RecentIDs, ev.ID)
		if len(s.st.RecentIDs) > recentEvents {
			s.st.RecentIDs = s.st.RecentIDs[len(s.st.RecentIDs)-recentEvents:]
		}
	}
	if s.st.Deleted {
		s.logger.Info("event for a deleted integration ignored", "type", ev.Type, "event_id", ev.ID)
		return
	}
	if s.st.Tool == "" {
		s.st.Tool = ev.Tool
	}
	if s.st.Category == "" && ev.Category != "" {
		s.st.Category = ev.Category
		s.backfill(ctx) // now the endpoints are known
	}
	triggers := s.settings.Triggers
	switch ev.Type {
	case kombo.EventDataChanged:
		s.scheduleProbe(workflow.Now(ctx), true) // evidence of life: a paused integration checks at once
		if !slices.Contains(triggers, kombo.EventDataChanged) {
			return
		}
		now := workflow.Now(ctx)
		leading := s.leadingEdge && s.quiet(now)
		if s.leadingEdge {
			s.st.LastChangeAt = &now
		}
		for _, m := range ev.ChangedModels {
			eps, known := kombo.DirtiedEndpoints(m, s.configured())
			if !known && !s.unknownModels[m] {
				s.unknownModels[m] = true
				s.logger.Warn("unknown model in data-changed; fetching every endpoint of its category", "model", m)
			}
			s.markDirty(ctx, eps, leading)
		}
	case kombo.EventSyncFinished:
		now := workflow.Now(ctx)
		s.st.LastSyncState, s.st.LastSyncStateAt, s.st.LastSyncID = ev.SyncState, &now, ev.SyncID
		upstream := s.st.Upstream
		if upstream != nil && ev.SyncID != "" && ev.SyncID != upstream.SyncID {
			upstream = nil // another sync of Kombo's: the wait goes on
		}
		if upstream != nil {
			s.st.Upstream = nil
			s.logger.Info("the Kombo sync asked for finished", "sync_id", ev.SyncID, "sync_state", ev.SyncState)
		}
		switch ev.SyncState {
		case kombo.SyncSucceeded, kombo.SyncPartiallyFailed:
			if s.st.FirstSyncPending {
				s.st.RetryAt = nil // the first-sync wait ends now
			}
			s.st.FirstSyncFinished, s.st.FirstSyncPending, s.st.AuthFailed = true, false, false
			s.scheduleProbe(now, true) // evidence of life
			if slices.Contains(triggers, kombo.EventSyncFinished) {
				s.markDirty(ctx, s.configured(), false)
			}
			if upstream != nil {
				s.st.RetryAt = nil // an operator's "now", as sync-now
				s.markDirty(ctx, s.endpointsNamed(upstream.Endpoints), true)
			}
		case kombo.SyncAuthenticationFailed:
			s.st.AuthFailed = true
		default: // CANCELLED, FAILED, TIMED_OUT and states Kombo adds later: recorded only
			s.logger.Info("sync-finished recorded", "sync_state", ev.SyncState)
		}
	case kombo.EventRemoteEventReceived:
		if slices.Contains(triggers, kombo.EventRemoteEventReceived) {
			s.markDirty(ctx, s.configured(), false)
		}
	case kombo.EventIntegrationStateChanged:
		if ev.StateUpdatedAt != nil && s.st.KomboStateUpdatedAt != nil && !ev.StateUpdatedAt.After(*s.st.KomboStateUpdatedAt) {
			// Delivered late (a retry, the relay): a newer state was applied already.
			s.logger.Info("integration state older than the one applied; ignored", "state", ev.IntegrationState, "event_id", ev.ID)
			return
		}
		now := workflow.Now(ctx)
		s.st.KomboState, s.st.KomboStateSetAt = ev.IntegrationState, &now
		if ev.StateUpdatedAt != nil {
			s.st.KomboStateUpdatedAt = ev.StateUpdatedAt
		}
		switch ev.IntegrationState {
		case kombo.IntegrationActive:
			s.st.KomboInactive, s.st.AuthFailed = false, false
		case kombo.IntegrationInvalid, kombo.IntegrationInactive:
			s.st.KomboInactive = true
		}
		s.scheduleProbe(now, false)
	case kombo.EventIntegrationCreated:
		// Tool and category are recorded above; backfill follows from the missing watermarks.
	case kombo.EventIntegrationDeleted:
		s.markDeleted(workflow.Now(ctx))
		s.logger.Info("integration deleted; purging its rows after the retention period", "purge_at", *s.st.PurgeAt)
	default:
		s.logger.Info("event recorded, nothing to do", "type", ev.Type, "event_id", ev.ID)
	}
}

// endpointsNamed are the configured endpoints among names ("hris/employees"); every configured
// one when names is empty.
func (s *syncer) endpointsNamed(names []string) []kombo.Endpoint {
	if len(names) == 0 {
		return s.configured()
	}
	var eps []kombo.Endpoint
	for _, name := range names {
		if e, ok := kombo.LookupEndpoint(name); ok && slices.Contains(s.configured(), e) {
			eps = append(eps, e)
		} else {
			s.logger.Warn("sync-now: endpoint not configured for this integration", "endpoint", name)
		}
	}
	return eps
}

func (s *syncer) receiveSyncNow(ctx workflow.Context, c workflow.ReceiveChannel) {
	var req SyncNowRequest
	c.Receive(ctx, &req)
	eps := s.endpointsNamed(req.Endpoints)
	if s.st.Deleted {
		s.logger.Info("sync-now ignored: the integration is deleted")
		return
	}
	if req.AfterKomboSync != "" && req.AfterKomboSync != s.st.LastSyncID {
		// Fetch when Kombo's sync ends. A plain sync-now, or a newer upstream request,
		// replaces the wait; the weekly reconciliation covers a sync-finished that never comes.
		s.st.Upstream = &UpstreamWait{SyncID: req.AfterKomboSync, Type: req.KomboSyncType, Endpoints: req.Endpoints, RequestedAt: workflow.Now(ctx)}
		s.logger.Info("sync-now after Kombo's sync", "sync_id", req.AfterKomboSync, "endpoints", len(eps), "reason", req.Reason)
		return
	}
	// A plain sync-now, or the asked-for sync finished before this signal came: fetch now.
	s.st.Upstream = nil
	s.st.RetryAt, s.st.AuthFailed = nil, false
	s.markDirty(ctx, eps, true)
	s.logger.Info("sync-now", "endpoints", len(eps), "reason", req.Reason)
}

func (s *syncer) receivePause(ctx workflow.Context, c workflow.ReceiveChannel) {
	var req PauseRequest
	c.Receive(ctx, &req)
	s.st.OperatorPaused, s.st.PauseReason = true, firstNonEmpty(req.Reason, "paused by an operator")
	s.logger.Info("paused", "reason", s.st.PauseReason)
}

func (s *syncer) receiveResume(ctx workflow.Context, c workflow.ReceiveChannel) {
	var req ResumeRequest
	c.Receive(ctx, &req)
	s.st.OperatorPaused, s.st.PauseReason = false, ""
	s.st.KomboInactive, s.st.AuthFailed, s.st.RetryAt = false, false, nil
	s.logger.Info("resumed", "reason", req.Reason)
}

func (s *syncer) receiveReconcile(ctx workflow.Context, c workflow.ReceiveChannel) {
	var req ReconcileRequest
	c.Receive(ctx, &req)
	if s.st.Deleted {
		s.logger.Info("reconcile ignored: the integration is deleted")
		return
	}
	s.st.ReconcileWanted = true
	// A confirmation applies to the pass it was given for: this request's. A later request
	// without it replaces it, and one that cannot start now is dropped, not kept for whatever
	// pass comes next.
	s.st.ConfirmSweep = req.ConfirmSweep
	if why := s.blocked(); req.ConfirmSweep && why != "" {
		s.st.ConfirmSweep = false
		s.logger.Warn("sweep confirmation dropped: no full pass can start now; confirm again once it runs", "why", why)
	}
	s.logger.Info("reconcile requested", "confirm_sweep", req.ConfirmSweep, "reason", req.Reason)
}
