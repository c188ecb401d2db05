package workflows

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Sync states (the KomboSyncState search attribute, docs/ARCHITECTURE.md section 3).
const (
	StateWaitingFirstSync = "waiting_first_sync"
	StateIdle             = "idle"
	StateDebouncing       = "debouncing"
	StateSyncing          = "syncing"
	StateReconciling      = "reconciling"
	StateAuthFailed       = "auth_failed"
	StatePaused           = "paused"
	StateDeleted          = "deleted"
)

// RunSummary is the last pass of one endpoint.
type RunSummary struct {
	RunID      string
	Kind       string
	Outcome    string
	StartedAt  time.Time
	FinishedAt time.Time
	Pages      int
	Fetched    int
	Inserted   int
	Updated    int
	Unchanged  int
	Deleted    int
	Restored   int
	Sanitized  int // stored with text Postgres cannot hold replaced
	Rejected   int // set aside in kombo.rejected_records
	Swept      int // full pass: rows marked deleted because Kombo no longer returned them
}

// Status is the answer of the status query.
type Status struct {
	IntegrationID string
	Tool          string
	Category      string
	State         string
	// KomboState is the integration's state at Kombo (ACTIVE, INVALID, INACTIVE).
	KomboState        string
	LastSyncState     string // of Kombo's last sync-finished
	FirstSyncFinished bool
	PauseReason       string
	Pending           []string // endpoints waiting for a fetch
	InFlight          []string // endpoints being fetched
	Unavailable       []string // endpoints the integration does not offer
	Watermarks        map[string]time.Time
	LastRuns          map[string]RunSummary
	LastSyncAt        *time.Time
	LastError         string
	LastErrorAt       *time.Time
	NextWakeAt        *time.Time
	NextWake          string // what the next wake-up is for
	EventsThisRun     int
	RoundsThisRun     int
	LastFullSyncAt    *time.Time
	// Attention says why an operator is needed: a refused sweep, records set aside, pages that
	// cannot be stored, endpoints Kombo does not serve; empty when all is well.
	Attention string
	// Rejected counts each endpoint's records in kombo.rejected_records.
	Rejected map[string]int
	// FetchOverlap is subtracted from a pass's start to make its watermark: a watermark plus it
	// is when the endpoint's last successful pass began.
	FetchOverlap time.Duration
	PurgeAt      *time.Time // a deleted integration's rows go then
	// Upstream is the Kombo sync (sync --upstream) whose sync-finished the workflow waits for.
	Upstream *UpstreamWait
}

// state is the KomboSyncState the workflow is in.
func (s *syncer) state() string {
	switch {
	case s.st.Deleted:
		return StateDeleted
	case s.st.OperatorPaused || s.st.KomboInactive:
		return StatePaused
	case s.st.AuthFailed:
		return StateAuthFailed
	case s.st.FirstSyncPending:
		return StateWaitingFirstSync
	case s.child != nil:
		return StateReconciling
	case len(s.inflight) > 0:
		return StateSyncing
	case len(s.st.Pending) > 0 && s.st.RetryAt == nil:
		return StateDebouncing
	}
	return StateIdle
}

// status answers the status query.
func (s *syncer) status() Status {
	st := Status{
		IntegrationID: s.id, Tool: s.st.Tool, Category: s.st.Category, State: s.state(),
		KomboState: s.st.KomboState, LastSyncState: s.st.LastSyncState, FirstSyncFinished: s.st.FirstSyncFinished,
		PauseReason: s.st.PauseReason, Pending: slices.Clone(s.st.Pending), Unavailable: slices.Clone(s.st.Unavailable),
		Watermarks: maps.Clone(s.watermarks), LastRuns: maps.Clone(s.st.LastRuns), LastSyncAt: s.st.LastSyncAt,
		LastError: s.st.LastError, LastErrorAt: s.st.LastErrorAt, EventsThisRun: s.eventsThisRun, RoundsThisRun: s.rounds,
		LastFullSyncAt: s.st.LastFullSyncAt, Attention: s.attention(), PurgeAt: s.st.PurgeAt,
		Rejected: maps.Clone(s.st.Rejected), FetchOverlap: s.settings.FetchOverlap, Upstream: s.st.Upstream,
	}
	for _, c := range s.inflight {
		st.InFlight = append(st.InFlight, c.endpoint)
	}
	if s.child != nil {
		st.InFlight = append(st.InFlight, "full pass "+s.child.id)
	}
	if at, why := s.nextWake(); !at.IsZero() {
		st.NextWakeAt, st.NextWake = &at, why
	}
	return st
}

// attention is everything an operator should look at, in one line: what st.Attention says (a
// refused sweep), and the endpoints that sync only in part or not at all.
func (s *syncer) attention() string {
	var parts []string
	if s.st.Attention != "" {
		parts = append(parts, s.st.Attention)
	}
	for _, ep := range workflow.DeterministicKeys(s.st.DataErrors) {
		parts = append(parts, fmt.Sprintf("%s: a page cannot be stored (%s); it is fetched again on its next change", ep, s.st.DataErrors[ep]))
	}
	for _, ep := range workflow.DeterministicKeys(s.st.Rejected) {
		if n := s.st.Rejected[ep]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d records rejected (see kombo.rejected_records)", ep, n))
		}
	}
	if len(s.st.Unavailable) > 0 {
		parts = append(parts, "not served by Kombo: "+strings.Join(s.st.Unavailable, ", "))
	}
	return strings.Join(parts, "; ")
}
