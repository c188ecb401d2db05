package workflows_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

const integrationID = "personio:abc"

func hris(name string) kombo.Endpoint {
	return kombo.Endpoint{Category: kombo.CategoryHRIS, Name: name}
}

// harness runs IntegrationSync in Temporal's test environment (time skips) with the activities
// replaced by recorders.
type harness struct {
	t      *testing.T
	env    *testsuite.TestWorkflowEnvironment
	start  time.Time
	loaded activities.LoadIntegrationResult

	mu      sync.Mutex
	fetches []fetch
	saved   []store.Integration
	// respond answers the n-th FetchEndpoint call (from 0); nil succeeds.
	respond   func(n int, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error)
	fetchMock *testsuite.MockCallWrapper
	sweeps    []activities.SweepInput
	purged    []string
	notices   []store.RoundNotice
	reports   []activities.PublishRoundInput
}

type fetch struct {
	at time.Duration // since the workflow started
	in activities.FetchEndpointInput
}

func newHarness(t *testing.T) *harness {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	h := &harness{t: t, env: env, start: env.Now().UTC()}
	wm := h.start.Add(-time.Hour)
	h.loaded = activities.LoadIntegrationResult{
		Settings: activities.Settings{
			Endpoints: []kombo.Endpoint{hris("employees"), hris("employments"), hris("absences"), hris("time-off-balances"),
				{Category: kombo.CategoryATS, Name: "jobs"}},
			Triggers:      []string{kombo.EventDataChanged},
			DebounceQuiet: 5 * time.Second, DebounceMax: 60 * time.Second, FetchOverlap: 2 * time.Minute,
			MaxParallelFetches: 4,
		},
		Integration: store.Integration{ID: integrationID, Tool: "personio", Category: "HRIS", State: "ACTIVE", FirstSyncFinished: true},
		// Every endpoint synced before: no backfill unless a test removes a watermark.
		Watermarks: map[string]time.Time{"hris/employees": wm, "hris/employments": wm, "hris/absences": wm, "hris/time-off-balances": wm},
	}
	a := &activities.Activities{}
	env.RegisterActivity(a)
	workflows.Register(env)
	env.OnActivity(a.LoadIntegration, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.LoadIntegrationInput) (activities.LoadIntegrationResult, error) {
			return h.loaded, nil
		})
	env.OnActivity(a.SaveIntegration, mock.Anything, mock.Anything).Return(func(_ context.Context, in store.Integration) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.saved = append(h.saved, in)
		return nil
	})
	env.OnActivity(a.SweepEndpoint, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SweepInput) (store.SweepResult, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.sweeps = append(h.sweeps, in)
		return store.SweepResult{Alive: 10, Missing: 1, Swept: 1}, nil
	})
	env.OnActivity(a.PurgeIntegration, mock.Anything, mock.Anything).Return(func(_ context.Context, id string) (int64, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.purged = append(h.purged, id)
		return 42, nil
	})
	env.OnActivity(a.PublishRound, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PublishRoundInput) (activities.PublishRoundResult, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.notices = append(h.notices, in.Notice)
		h.reports = append(h.reports, in)
		return activities.PublishRoundResult{Event: true}, nil
	})
	h.fetchMock = env.OnActivity(a.FetchEndpoint, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
			h.mu.Lock()
			n := len(h.fetches)
			h.fetches = append(h.fetches, fetch{at: env.Now().Sub(h.start), in: in})
			respond := h.respond
			h.mu.Unlock()
			if respond != nil {
				return respond(n, in)
			}
			return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded, Counts: store.Counts{Pages: 1, Fetched: 3}}, nil
		})
	return h
}

// at runs f when the workflow has run for d.
func (h *harness) at(d time.Duration, f func()) { h.env.RegisterDelayedCallback(f, d) }

func (h *harness) signal(d time.Duration, name string, arg any) {
	h.at(d, func() { h.env.SignalWorkflow(name, arg) })
}

func (h *harness) dataChanged(d time.Duration, id string, models ...string) {
	h.signal(d, workflows.SignalKomboEvent, workflows.KomboEvent{ID: id, Type: kombo.EventDataChanged,
		IntegrationID: integrationID, Tool: "personio", Category: "HRIS", ChangedModels: models})
}

func (h *harness) syncFinished(d time.Duration, id, state string) {
	h.signal(d, workflows.SignalKomboEvent, workflows.KomboEvent{ID: id, Type: kombo.EventSyncFinished,
		IntegrationID: integrationID, Tool: "personio", Category: "HRIS", SyncState: state})
}

// status queries the workflow at d and hands the answer to check.
func (h *harness) status(d time.Duration, check func(workflows.Status)) {
	h.at(d, func() {
		v, err := h.env.QueryWorkflow(workflows.QueryStatus)
		require.NoError(h.t, err)
		var st workflows.Status
		require.NoError(h.t, v.Get(&st))
		check(st)
	})
}

// runUntil runs the workflow until it is cancelled at d, and returns its error.
func (h *harness) runUntil(d time.Duration, in *workflows.IntegrationSyncInput) error {
	h.at(d, h.env.CancelWorkflow)
	if in == nil {
		in = &workflows.IntegrationSyncInput{IntegrationID: integrationID, Tool: "personio", Category: "HRIS"}
	}
	h.env.ExecuteWorkflow(workflows.IntegrationSync, *in)
	require.True(h.t, h.env.IsWorkflowCompleted())
	return h.env.GetWorkflowError()
}

func (h *harness) requireCancelled(d time.Duration) {
	h.t.Helper()
	err := h.runUntil(d, nil)
	var canceled *temporal.CanceledError
	require.ErrorAs(h.t, err, &canceled, "the workflow runs until it is cancelled")
}

func (h *harness) fetched() []fetch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.fetches)
}

func endpointsOf(fs []fetch) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.in.Endpoint.String())
	}
	slices.Sort(out)
	return out
}

func TestAnIsolatedChangeIsFetchedAtOnce(t *testing.T) {
	h := newHarness(t)
	h.dataChanged(time.Second, "ev", "hris_employees")
	h.requireCancelled(time.Minute)
	fs := h.fetched()
	require.Len(t, fs, 1)
	require.Equal(t, time.Second, fs[0].at, "no quiet window: fetched as the event arrives")
}

func TestBurstBecomesALeadingAndATrailingRound(t *testing.T) {
	h := newHarness(t)
	for i := range 40 { // 40 events, 100 ms apart: never 5 s quiet until the last
		h.dataChanged(time.Second+time.Duration(i)*100*time.Millisecond, "ev"+string(rune('A'+i)), "hris_employees")
	}
	h.status(3*time.Second, func(st workflows.Status) {
		require.Equal(t, workflows.StateDebouncing, st.State)
		require.Equal(t, []string{"hris/employees"}, st.Pending)
	})
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Len(t, fs, 2, "one leading and one trailing round for the whole burst")
	require.Equal(t, time.Second, fs[0].at, "the first event is fetched at once")
	last := time.Second + 39*100*time.Millisecond
	require.Equal(t, last+5*time.Second, fs[1].at, "the rest once the quiet window after the last event passed")
	require.Equal(t, store.KindDelta, fs[0].in.Kind)
	require.NotNil(t, fs[0].in.UpdatedAfter)
	require.Equal(t, h.loaded.Watermarks["hris/employees"], *fs[0].in.UpdatedAfter, "the stored watermark is passed in")
	started := h.start.Add(fs[0].at)
	require.Equal(t, started.Add(-2*time.Minute), *fs[0].in.AdvanceWatermarkTo,
		"the next watermark is the fetch's start (workflow time) minus the overlap")
	require.Equal(t, *fs[0].in.AdvanceWatermarkTo, *fs[1].in.UpdatedAfter, "the trailing round starts where the leading one began")
}

// Runs recorded before the leading edge (version leading-edge absent) keep the quiet window.
func TestTheQuietWindowVersionStillDebouncesEveryEvent(t *testing.T) {
	h := newHarness(t)
	h.env.OnGetVersion("leading-edge", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	for i := range 40 {
		h.dataChanged(time.Second+time.Duration(i)*100*time.Millisecond, "ev"+string(rune('A'+i)), "hris_employees")
	}
	h.requireCancelled(5 * time.Minute)
	fs := h.fetched()
	require.Len(t, fs, 1, "one fetch for the whole burst")
	require.Equal(t, time.Second+39*100*time.Millisecond+5*time.Second, fs[0].at)
}

func TestDuplicateEventsAreDroppedAndNextDeltaUsesTheNewWatermark(t *testing.T) {
	h := newHarness(t)
	h.dataChanged(time.Second, "same", "hris_absences")
	h.dataChanged(time.Minute, "same", "hris_absences") // a redelivery: no second round
	h.dataChanged(2*time.Minute, "other", "hris_absences")
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Len(t, fs, 2)
	require.Equal(t, time.Second, fs[0].at)
	require.Equal(t, 2*time.Minute, fs[1].at)
	require.Equal(t, *fs[0].in.AdvanceWatermarkTo, *fs[1].in.UpdatedAfter, "the second delta starts where the first began")
	require.NotEqual(t, fs[0].in.RunID, fs[1].in.RunID)
}

func TestMaximumDelayCapsASteadyStream(t *testing.T) {
	h := newHarness(t)
	for i := range 40 { // an event every 3 s for two minutes: the quiet window never passes
		h.dataChanged(time.Second+time.Duration(i)*3*time.Second, "ev-"+string(rune('A'+i)), "hris_employees")
	}
	h.requireCancelled(10 * time.Minute)

	fs := h.fetched()
	require.GreaterOrEqual(t, len(fs), 3)
	require.Equal(t, time.Second, fs[0].at, "the first event is fetched at once")
	require.Equal(t, 64*time.Second, fs[1].at, "the next no later than DEBOUNCE_MAX after the first event it covers (4 s)")
	require.LessOrEqual(t, fs[2].at-fs[1].at, 61*time.Second, "and so on")
	require.LessOrEqual(t, len(fs), 4, "a stream of 40 events makes a handful of rounds, not 40")
}

func TestChangedModelsMapToConfiguredEndpoints(t *testing.T) {
	h := newHarness(t)
	// absence types dirty absences, absence-types and time-off-balances; absence-types is not
	// configured, and ATS endpoints are not this integration's category.
	h.dataChanged(time.Second, "a", "hris_absence_types")
	h.dataChanged(time.Minute, "b", "hris_brand_new_model") // unknown: every configured HRIS endpoint
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Equal(t, []string{"hris/absences", "hris/time-off-balances"}, endpointsOf(fs[:2]))
	require.Equal(t, []string{"hris/absences", "hris/employees", "hris/employments", "hris/time-off-balances"}, endpointsOf(fs[2:]))
}

func TestTriggersDecideWhichEventsStartADelta(t *testing.T) {
	h := newHarness(t)
	h.loaded.Settings.Triggers = []string{kombo.EventSyncFinished} // the legacy approach only
	h.dataChanged(time.Second, "dc", "hris_employees")
	h.syncFinished(time.Minute, "sf", kombo.SyncSucceeded)
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Equal(t, []string{"hris/absences", "hris/employees", "hris/employments", "hris/time-off-balances"}, endpointsOf(fs),
		"sync-finished dirties every configured endpoint; data-changed is not a trigger here")
	for _, f := range fs {
		require.Equal(t, time.Minute+5*time.Second, f.at)
	}
}

func TestNewIntegrationIsBackfilled(t *testing.T) {
	h := newHarness(t)
	h.loaded.Watermarks = nil
	h.loaded.Integration = store.Integration{ID: integrationID}
	h.requireCancelled(time.Minute)

	fs := h.fetched()
	require.Equal(t, []string{"hris/absences", "hris/employees", "hris/employments", "hris/time-off-balances"}, endpointsOf(fs))
	for _, f := range fs {
		require.Nil(t, f.in.UpdatedAfter, "no watermark: everything is fetched")
	}
}

func firstSyncPending(int, activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
	return activities.FetchEndpointResult{}, temporal.NewNonRetryableApplicationError(
		"INTEGRATION.SETUP_SYNC_PENDING", activities.ErrFirstSyncPending, nil)
}

func TestFirstSyncWaitEndsByTimer(t *testing.T) {
	h := newHarness(t)
	h.loaded.Watermarks = map[string]time.Time{}
	h.loaded.Settings.Endpoints = []kombo.Endpoint{hris("employees")}
	h.respond = func(n int, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
		if n < 2 {
			return firstSyncPending(n, in)
		}
		return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded}, nil
	}
	h.status(10*time.Second, func(st workflows.Status) {
		require.Equal(t, workflows.StateWaitingFirstSync, st.State)
		require.Equal(t, "waiting for first sync", st.NextWake)
		require.Equal(t, h.start.Add(30*time.Second), *st.NextWakeAt, "the backfill started at once, then 30 s")
	})
	h.status(2*time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StateIdle, st.State)
		require.True(t, st.FirstSyncFinished)
		require.Empty(t, st.LastError)
	})
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Len(t, fs, 3)
	require.Equal(t, []time.Duration{0, 30 * time.Second, 90 * time.Second},
		[]time.Duration{fs[0].at, fs[1].at, fs[2].at}, "the backfill at once, then backoff 30 s, then 60 s")
}

func TestFirstSyncWaitEndsBySyncFinished(t *testing.T) {
	h := newHarness(t)
	h.loaded.Watermarks = map[string]time.Time{}
	h.loaded.Settings.Endpoints = []kombo.Endpoint{hris("employees")}
	h.respond = func(n int, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
		if n == 0 {
			return firstSyncPending(n, in)
		}
		return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded}, nil
	}
	h.syncFinished(12*time.Second, "sf", kombo.SyncFailed) // not a success: keeps waiting
	h.syncFinished(20*time.Second, "sf2", kombo.SyncSucceeded)
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Len(t, fs, 2)
	require.Equal(t, 20*time.Second, fs[1].at, "sync-finished ends the wait at once, before the 35 s timer")
}

func TestAuthFailureWaitsForRecovery(t *testing.T) {
	for _, c := range []struct {
		name    string
		recover func(h *harness, d time.Duration)
	}{
		{"successful sync", func(h *harness, d time.Duration) { h.syncFinished(d, "ok", kombo.SyncSucceeded) }},
		{"integration active", func(h *harness, d time.Duration) {
			h.signal(d, workflows.SignalKomboEvent, workflows.KomboEvent{ID: "active", Type: kombo.EventIntegrationStateChanged,
				IntegrationID: integrationID, IntegrationState: kombo.IntegrationActive})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.respond = func(n int, _ activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
				if n == 0 {
					return activities.FetchEndpointResult{}, temporal.NewNonRetryableApplicationError(
						"INTEGRATION.AUTHENTICATION_INVALID", activities.ErrAuthFailed, nil)
				}
				return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded}, nil
			}
			h.dataChanged(time.Second, "a", "hris_absences")
			h.dataChanged(time.Minute, "b", "hris_absences") // while auth_failed: no fetch
			h.status(2*time.Minute, func(st workflows.Status) {
				require.Equal(t, workflows.StateAuthFailed, st.State)
				require.Equal(t, []string{"hris/absences"}, st.Pending)
				require.Nil(t, st.NextWakeAt, "nothing to wake up for until someone fixes the credentials")
			})
			c.recover(h, 10*time.Minute)
			h.status(11*time.Minute, func(st workflows.Status) { require.Equal(t, workflows.StateIdle, st.State) })
			h.requireCancelled(15 * time.Minute)

			fs := h.fetched()
			require.Len(t, fs, 2)
			require.Equal(t, 10*time.Minute, fs[1].at, "recovery fetches what is pending at once")
		})
	}
}

func TestAuthenticationFailedSyncStopsFetching(t *testing.T) {
	h := newHarness(t)
	h.syncFinished(time.Second, "sf", kombo.SyncAuthenticationFailed)
	h.dataChanged(2*time.Second, "a", "hris_employees")
	h.status(time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StateAuthFailed, st.State)
		require.Equal(t, kombo.SyncAuthenticationFailed, st.LastSyncState)
	})
	h.syncFinished(2*time.Minute, "later", "SOMETHING_NEW") // unknown states are recorded, never fatal
	h.status(3*time.Minute, func(st workflows.Status) { require.Equal(t, "SOMETHING_NEW", st.LastSyncState) })
	h.requireCancelled(5 * time.Minute)
	require.Empty(t, h.fetched())
}

func TestPauseAndResume(t *testing.T) {
	h := newHarness(t)
	h.signal(time.Second, workflows.SignalPause, workflows.PauseRequest{Reason: "maintenance"})
	h.dataChanged(2*time.Second, "a", "hris_employees")
	h.status(time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StatePaused, st.State)
		require.Equal(t, "maintenance", st.PauseReason)
		require.Equal(t, []string{"hris/employees"}, st.Pending, "events still accumulate")
	})
	h.signal(10*time.Minute, workflows.SignalResume, workflows.ResumeRequest{})
	h.requireCancelled(15 * time.Minute)

	fs := h.fetched()
	require.Len(t, fs, 1)
	require.Equal(t, 10*time.Minute, fs[0].at, "the overdue fetch starts on resume")
}

func TestSyncNowSkipsTheQuietWindow(t *testing.T) {
	h := newHarness(t)
	h.signal(time.Second, workflows.SignalSyncNow, workflows.SyncNowRequest{Endpoints: []string{"hris/absences", "ats/jobs"}})
	h.requireCancelled(time.Minute)
	fs := h.fetched()
	require.Equal(t, []string{"hris/absences"}, endpointsOf(fs), "ats/jobs is not this integration's category")
	require.Equal(t, time.Second, fs[0].at)
}

func TestFailedFetchIsRetriedLaterAndResumesItsRun(t *testing.T) {
	h := newHarness(t)
	h.respond = func(n int, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
		if n < 10 { // the activity's ten attempts all fail
			return activities.FetchEndpointResult{}, temporal.NewApplicationError("REMOTE.SERVICE_UNAVAILABLE", activities.ErrKomboUnavailable)
		}
		return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded}, nil
	}
	h.dataChanged(time.Second, "a", "hris_absences")
	h.status(5*time.Minute, func(st workflows.Status) { // the ten attempts took about four minutes
		require.Equal(t, workflows.StateIdle, st.State)
		require.Contains(t, st.LastError, "REMOTE.SERVICE_UNAVAILABLE")
		require.Equal(t, "retry after error", st.NextWake)
	})
	h.requireCancelled(30 * time.Minute)

	fs := h.fetched()
	require.Len(t, fs, 11)
	require.Equal(t, fs[0].in.RunID, fs[10].in.RunID, "the later round resumes the same run from its last page")
	require.Equal(t, *fs[0].in.AdvanceWatermarkTo, *fs[10].in.AdvanceWatermarkTo, "measured from the run's first start")
}

func TestModelUnavailableSkipsTheEndpointWithoutFailing(t *testing.T) {
	h := newHarness(t)
	h.respond = func(_ int, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
		if in.Endpoint == hris("absences") {
			return activities.FetchEndpointResult{Outcome: store.OutcomeModelUnavailable}, nil
		}
		return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded}, nil
	}
	h.dataChanged(time.Second, "a", "hris_absence_types")
	h.status(time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StateIdle, st.State)
		require.Equal(t, []string{"hris/absences"}, st.Unavailable)
		require.Contains(t, st.Watermarks, "hris/time-off-balances")
		require.True(t, st.Watermarks["hris/time-off-balances"].After(h.start.Add(-2*time.Minute)))
		require.Equal(t, h.loaded.Watermarks["hris/absences"], st.Watermarks["hris/absences"], "no watermark move without data")
	})
	h.requireCancelled(2 * time.Minute)
}

func TestStateIsRecordedInPostgresAndSearchAttributes(t *testing.T) {
	h := newHarness(t)
	h.dataChanged(time.Second, "a", "hris_employees")
	h.requireCancelled(time.Minute)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.NotEmpty(t, h.saved)
	last := h.saved[len(h.saved)-1]
	require.Equal(t, workflows.StateIdle, last.SyncState)
	require.NotNil(t, last.LastSyncedAt, "a completed fetch is recorded")
	for _, s := range h.saved {
		require.NotEqual(t, workflows.StateDebouncing, s.SyncState, "brief states are not written to Postgres")
	}
}

func TestContinueAsNewCarriesStateAndLosesNoSignal(t *testing.T) {
	h := newHarness(t)
	h.env.SetContinueAsNewSuggested(true)
	// Delivered with the start, as signal-with-start does: all three are buffered when the first
	// workflow task decides to continue as new, and only draining them keeps them.
	h.at(0, func() {
		h.env.SignalWorkflow(workflows.SignalKomboEvent, workflows.KomboEvent{ID: "a", Type: kombo.EventDataChanged,
			IntegrationID: integrationID, ChangedModels: []string{"hris_absences"}})
		h.env.SignalWorkflow(workflows.SignalKomboEvent, workflows.KomboEvent{ID: "b", Type: kombo.EventDataChanged,
			IntegrationID: integrationID, ChangedModels: []string{"hris_employments"}})
		h.env.SignalWorkflow(workflows.SignalPause, workflows.PauseRequest{Reason: "carried"})
	})
	err := h.runUntil(time.Hour, nil)
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, err, &can)
	var next workflows.IntegrationSyncInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, integrationID, next.IntegrationID)
	require.NotNil(t, next.Carried)
	require.Equal(t, []string{"hris/employees", "hris/employments", "hris/absences"}, next.Carried.Pending)
	require.True(t, next.Carried.OperatorPaused)
	require.Equal(t, h.start, *next.Carried.QuietUntil, "the open deadline (due at once: the leading edge), as an absolute time")
	require.Equal(t, []string{"a", "b"}, next.Carried.RecentIDs, "and the ids that drop redeliveries")
	require.Empty(t, h.fetched(), "no fetch starts once continue-as-new is due")
}

func TestCarriedStateResumesItsDeadlines(t *testing.T) {
	h := newHarness(t)
	quiet := h.start.Add(3 * time.Second)
	since := h.start.Add(-time.Second)
	in := workflows.IntegrationSyncInput{IntegrationID: integrationID, Tool: "personio", Category: "HRIS",
		Carried: &workflows.CarriedState{Tool: "personio", Category: "HRIS", Pending: []string{"hris/employees"},
			PendingSince: &since, QuietUntil: &quiet, FirstSyncFinished: true}}
	err := h.runUntil(time.Minute, &in)
	var canceled *temporal.CanceledError
	require.ErrorAs(t, err, &canceled)
	fs := h.fetched()
	require.Len(t, fs, 1)
	require.Equal(t, 3*time.Second, fs[0].at, "the carried quiet deadline holds in the new run")
}

func TestRoundsAreBoundedPerRun(t *testing.T) {
	h := newHarness(t)
	for i := range 150 {
		h.signal(time.Duration(i+1)*time.Minute, workflows.SignalSyncNow, workflows.SyncNowRequest{Endpoints: []string{"hris/employees"}})
	}
	err := h.runUntil(4*time.Hour, nil)
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "continues as new after a bounded number of rounds: %v", err)
	require.Len(t, h.fetched(), 100)
}

func TestFullPassAndDeltasNeverRunAtOnce(t *testing.T) {
	h := newHarness(t)
	h.fetchMock.After(10 * time.Second)              // every fetch takes ten seconds
	h.dataChanged(time.Second, "a", "hris_absences") // a delta starts at once, 1 s → 11 s
	h.signal(7*time.Second, workflows.SignalReconcile, workflows.ReconcileRequest{Reason: "test"})
	h.dataChanged(8*time.Second, "b", "hris_employees") // arrives while the delta runs
	h.status(15*time.Second, func(st workflows.Status) {
		require.Equal(t, workflows.StateReconciling, st.State)
		require.Equal(t, []string{"hris/employees"}, st.Pending, "the burst waits for the full pass")
	})
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	var full, delta []fetch
	for _, f := range fs {
		if f.in.Kind == store.KindFull {
			full = append(full, f)
		} else {
			delta = append(delta, f)
		}
	}
	require.Len(t, full, 4, "every configured endpoint of the category")
	require.Len(t, delta, 2)
	// With After, the harness sees each call when it finishes, ten seconds after it started.
	require.Equal(t, 11*time.Second, delta[0].at, "the first delta runs 1 s → 11 s")
	for _, f := range full {
		require.Equal(t, 21*time.Second, f.at, "the full pass waits for the running delta: 11 s → 21 s")
		require.Nil(t, f.in.UpdatedAfter)
	}
	require.Equal(t, 31*time.Second, delta[1].at, "the waiting delta runs after the full pass: 21 s → 31 s")
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.sweeps, 4, "each completed endpoint is swept")
	require.False(t, h.sweeps[0].Confirmed)
	require.Equal(t, 0.0, h.sweeps[0].MaxShare)
}

func TestDeletedIntegrationIsPurgedAfterRetention(t *testing.T) {
	h := newHarness(t)
	h.loaded.Settings.DeletedRetention = time.Hour
	h.signal(time.Second, workflows.SignalKomboEvent, workflows.KomboEvent{ID: "del", Type: kombo.EventIntegrationDeleted, IntegrationID: integrationID})
	h.dataChanged(2*time.Second, "late", "hris_employees")
	h.signal(3*time.Second, workflows.SignalSyncNow, workflows.SyncNowRequest{})
	h.status(time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StateDeleted, st.State)
		require.Empty(t, st.Pending)
		require.Equal(t, h.start.Add(time.Hour+time.Second), *st.PurgeAt)
	})
	require.NoError(t, h.runUntil(3*time.Hour, nil), "the workflow completes after the purge")
	require.Empty(t, h.fetched(), "nothing is fetched for a deleted integration")
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Equal(t, []string{integrationID}, h.purged)
	last := h.saved[len(h.saved)-1]
	require.NotNil(t, last.DeletedAt)
}

func TestPurgedIntegrationDoesNotComeBack(t *testing.T) {
	h := newHarness(t)
	gone := h.start.Add(-30 * 24 * time.Hour)
	h.loaded.Integration.DeletedAt, h.loaded.Integration.PurgedAt = &gone, &gone
	h.dataChanged(time.Second, "late", "hris_employees")
	require.NoError(t, h.runUntil(time.Minute, nil))
	require.Empty(t, h.fetched())
}
