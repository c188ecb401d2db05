package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/store"
)

// publish makes the state visible: search attributes when they change, the current details for
// the UI, and the kombo.integrations row when a lasting field changes (not for the brief
// debouncing and syncing states, which would cost history events every round).
func (s *syncer) publish(ctx workflow.Context) {
	state := s.state()
	var sas []temporal.SearchAttributeUpdate
	if state != s.published.state {
		sas = append(sas, SASyncState.ValueSet(state))
		s.published.state = state
	}
	if s.st.LastSyncAt != nil && !s.st.LastSyncAt.Equal(s.published.lastSyncAt) {
		sas = append(sas, SALastSyncAt.ValueSet(*s.st.LastSyncAt))
		s.published.lastSyncAt = *s.st.LastSyncAt
	}
	if len(sas) > 0 {
		if s.st.Tool != "" {
			sas = append(sas, SATool.ValueSet(s.st.Tool))
		}
		if s.st.Category != "" {
			sas = append(sas, SACategory.ValueSet(s.st.Category))
		}
		sas = append(sas, SAIntegrationID.ValueSet(s.id))
		if err := workflow.UpsertTypedSearchAttributes(ctx, sas...); err != nil {
			s.logger.Warn("could not upsert search attributes", "error", err)
		}
	}
	workflow.SetCurrentDetails(ctx, s.details(state))

	lasting := state
	if state == StateDebouncing || state == StateSyncing || state == StateReconciling {
		lasting = StateIdle
	}
	row := store.Integration{ID: s.id, Tool: s.st.Tool, Category: s.st.Category, State: s.st.KomboState,
		SyncState: lasting, LastSyncState: s.st.LastSyncState, LastSyncStateAt: s.st.LastSyncStateAt,
		FirstSyncFinished: s.st.FirstSyncFinished, LastSyncedAt: s.st.LastSyncAt, DeletedAt: s.st.DeletedAt,
		Attention: &s.st.Attention}
	if s.published.saved != nil && sameIntegration(*s.published.saved, row) {
		return
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 30 * time.Second,
		Summary:                "record state " + lasting,
	})
	if err := workflow.ExecuteLocalActivity(lctx, acts.SaveIntegration, row).Get(lctx, nil); err != nil {
		// Postgres's copy is for reading only; the next change tries again.
		s.logger.Warn("could not record the integration's state", "error", err)
		return
	}
	s.published.saved = &row
}

func sameIntegration(a, b store.Integration) bool {
	return a.Tool == b.Tool && a.Category == b.Category && a.State == b.State && a.SyncState == b.SyncState &&
		a.LastSyncState == b.LastSyncState && a.FirstSyncFinished == b.FirstSyncFinished &&
		sameTime(a.LastSyncStateAt, b.LastSyncStateAt) && sameTime(a.LastSyncedAt, b.LastSyncedAt) &&
		sameTime(a.DeletedAt, b.DeletedAt) && (a.Attention == nil) == (b.Attention == nil) &&
		(a.Attention == nil || *a.Attention == *b.Attention)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// details is the markdown the Temporal UI shows as the workflow's current details.
func (s *syncer) details(state string) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**%s** · %s %s", state, s.st.Tool, s.st.Category))
	if why := s.blocked(); why != "" {
		b.WriteString(fmt.Sprintf(" · %s", why))
	}
	b.WriteString("\n\n")
	if len(s.inflight) > 0 {
		names := make([]string, len(s.inflight))
		for i, c := range s.inflight {
			names[i] = c.endpoint
		}
		b.WriteString(fmt.Sprintf("- fetching: %s\n", strings.Join(names, ", ")))
	}
	if len(s.st.Pending) > 0 {
		b.WriteString(fmt.Sprintf("- pending: %s\n", strings.Join(s.st.Pending, ", ")))
	}
	if at, why := s.nextWake(); !at.IsZero() {
		b.WriteString(fmt.Sprintf("- next wake-up: %s (%s)\n", at.UTC().Format(time.RFC3339), why))
	}
	if s.st.LastSyncAt != nil {
		b.WriteString(fmt.Sprintf("- last sync: %s\n", s.st.LastSyncAt.UTC().Format(time.RFC3339)))
	}
	if s.st.LastError != "" {
		b.WriteString(fmt.Sprintf("- last error: %s\n", s.st.LastError))
	}
	if a := s.attention(); a != "" {
		b.WriteString(fmt.Sprintf("- **needs an operator**: %s\n", a))
	}
	return b.String()
}
