package workflows

import (
	"cmp"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
)

// probeMax bounds the wait between two questions to Kombo about a paused integration: a lost
// ACTIVE webhook costs at most this long.
const probeMax = time.Hour

// pausedByKombo: Kombo's state (INVALID, INACTIVE, or not served) pauses fetching, and no
// operator's pause or deletion stands in the way of asking Kombo whether that is still so.
func (s *syncer) pausedByKombo() bool {
	return s.probing && s.st.KomboInactive && !s.st.OperatorPaused && !s.st.Deleted
}

// scheduleProbe sets when Kombo is asked next: now (evidence of life), or after the back-off.
func (s *syncer) scheduleProbe(now time.Time, atOnce bool) {
	if !s.pausedByKombo() {
		s.st.ProbeAt, s.st.ProbeAttempts = nil, 0
		return
	}
	first := cmp.Or(s.settings.StateProbeInterval, time.Minute)
	if atOnce {
		// At once, but not more often than the first interval, however many events arrive.
		at := now
		if s.st.LastProbeAt != nil && s.st.LastProbeAt.Add(first).After(now) {
			at = s.st.LastProbeAt.Add(first)
		}
		if s.st.ProbeAt == nil || at.Before(*s.st.ProbeAt) {
			s.st.ProbeAt = &at
		}
		return
	}
	if s.st.ProbeAt == nil {
		at := now.Add(backoff(first, probeMax, s.st.ProbeAttempts))
		s.st.ProbeAt = &at
	}
}

// probeIfDue asks Kombo for the integration's state when the probe is due, and resumes fetching
// when Kombo answers ACTIVE: the way out of a pause whose ACTIVE webhook was lost.
func (s *syncer) probeIfDue(ctx workflow.Context) {
	now := workflow.Now(ctx)
	s.scheduleProbe(now, false)
	if s.st.ProbeAt == nil || now.Before(*s.st.ProbeAt) || len(s.inflight) > 0 || s.child != nil {
		return
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		Summary:             "ask Kombo for the integration's state",
	})
	var res activities.CheckIntegrationResult
	err := workflow.ExecuteActivity(actx, acts.CheckIntegration, s.id).Get(ctx, &res)
	now = workflow.Now(ctx)
	s.st.ProbeAt, s.st.LastProbeAt = nil, &now
	if err == nil && res.Found && res.State == kombo.IntegrationActive {
		s.logger.Info("Kombo reports the integration ACTIVE again; resuming")
		s.st.KomboState, s.st.KomboInactive, s.st.KomboStateSetAt = kombo.IntegrationActive, false, &now
		s.st.ProbeAttempts = 0
		s.markDirty(ctx, s.configured(), true) // whatever changed while it was paused
		return
	}
	s.st.ProbeAttempts++
	s.scheduleProbe(now, false)
	s.logger.Info("integration still paused at Kombo", "found", res.Found, "state", res.State, "error", err,
		"next_probe", *s.st.ProbeAt)
}
