package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

func (h *harness) stateChanged(d time.Duration, id, state string, updatedAt time.Time) {
	h.signal(d, workflows.SignalKomboEvent, workflows.KomboEvent{ID: id, Type: kombo.EventIntegrationStateChanged,
		IntegrationID: integrationID, Tool: "personio", Category: "HRIS", IntegrationState: state, StateUpdatedAt: &updatedAt})
}

// onCheck answers CheckIntegration with answer(n) for the n-th call, and records when it asked.
func (h *harness) onCheck(answer func(n int) activities.CheckIntegrationResult) *[]time.Duration {
	var mu sync.Mutex
	var asked []time.Duration
	a := &activities.Activities{}
	h.env.OnActivity(a.CheckIntegration, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ string) (activities.CheckIntegrationResult, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, h.env.Now().Sub(h.start))
			return answer(len(asked) - 1), nil
		})
	return &asked
}

// A page that fails the same way on every attempt (DataError) does not hold the integration
// back: the other endpoints go on, the endpoint waits for its next change, and the attention
// says so until it succeeds.
func TestADataErrorHoldsOnlyItsEndpoint(t *testing.T) {
	h := newHarness(t)
	h.respond = func(n int, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
		if in.Endpoint == hris("employees") && n == 0 {
			return activities.FetchEndpointResult{}, temporal.NewNonRetryableApplicationError("decode page: not JSON", activities.ErrDataError, nil)
		}
		return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded}, nil
	}
	h.dataChanged(time.Second, "e1", "hris_employees")
	h.dataChanged(20*time.Second, "a1", "hris_absences")
	h.status(time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StateIdle, st.State)
		require.Nil(t, st.NextWakeAt, "no retry timer: the endpoint waits for its next change")
		require.Contains(t, st.Attention, "hris/employees: a page cannot be stored")
	})
	h.dataChanged(2*time.Minute, "e2", "hris_employees")
	h.status(3*time.Minute, func(st workflows.Status) {
		require.Empty(t, st.Attention, "a success clears it")
	})
	h.requireCancelled(5 * time.Minute)

	fs := h.fetched()
	require.Equal(t, []string{"hris/employees", "hris/absences", "hris/employees"},
		[]string{fs[0].in.Endpoint.String(), fs[1].in.Endpoint.String(), fs[2].in.Endpoint.String()})
	require.Equal(t, 20*time.Second, fs[1].at, "absences were not held back by the employees' failure")
}

// Records set aside in kombo.rejected_records show in the attention, from Postgres at the start
// and from each pass after.
func TestRejectedRecordsNeedAttention(t *testing.T) {
	h := newHarness(t)
	h.loaded.Rejected = map[string]int{"hris/absences": 2}
	h.respond = func(int, activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
		return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded, RejectedOpen: 0}, nil
	}
	h.status(time.Second, func(st workflows.Status) {
		require.Equal(t, "hris/absences: 2 records rejected (see kombo.rejected_records)", st.Attention)
	})
	h.dataChanged(2*time.Second, "a", "hris_absences")
	h.status(time.Minute, func(st workflows.Status) {
		require.Empty(t, st.Attention, "the pass took them")
	})
	h.requireCancelled(2 * time.Minute)
}

// Kombo and the relay may deliver integration-state-changed out of order: an INACTIVE older than
// the ACTIVE applied changes nothing.
func TestAStaleStateChangesNothing(t *testing.T) {
	h := newHarness(t)
	t0 := h.start.Add(-time.Hour)
	h.stateChanged(time.Second, "s-active", kombo.IntegrationActive, t0.Add(10*time.Minute))
	h.stateChanged(2*time.Second, "s-inactive-late", kombo.IntegrationInactive, t0.Add(5*time.Minute))
	h.dataChanged(3*time.Second, "d", "hris_employees")
	h.status(time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StateIdle, st.State)
		require.Equal(t, kombo.IntegrationActive, st.KomboState)
	})
	h.stateChanged(2*time.Minute, "s-inactive", kombo.IntegrationInactive, t0.Add(20*time.Minute))
	h.status(3*time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StatePaused, st.State, "a newer INACTIVE does pause")
	})
	h.onCheck(func(int) activities.CheckIntegrationResult {
		return activities.CheckIntegrationResult{Found: true, State: kombo.IntegrationInactive}
	})
	h.requireCancelled(4 * time.Minute)
	require.Len(t, h.fetched(), 1)
}

// A fetch that started before an ACTIVE arrived and failed with IntegrationUnavailable saw the
// old state: it does not pause the integration again.
func TestAnOlderFetchsUnavailableDoesNotOverrideANewerActive(t *testing.T) {
	h := newHarness(t)
	h.respond = func(n int, in activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
		if n == 0 {
			return activities.FetchEndpointResult{}, temporal.NewNonRetryableApplicationError("INTEGRATION.INACTIVE", activities.ErrIntegrationUnavailable, nil)
		}
		return activities.FetchEndpointResult{Outcome: store.OutcomeSucceeded}, nil
	}
	h.fetchMock.After(5 * time.Second) // the failing fetch takes a while
	h.dataChanged(time.Second, "d", "hris_employees")
	h.stateChanged(8*time.Second, "active", kombo.IntegrationActive, h.start) // while the fetch runs
	h.status(20*time.Second, func(st workflows.Status) {
		require.NotEqual(t, workflows.StatePaused, st.State)
	})
	h.requireCancelled(5 * time.Minute)
	require.GreaterOrEqual(t, len(h.fetched()), 2, "fetched again after the back-off")
}

// While Kombo's state pauses the integration, the workflow asks Kombo on a backing-off timer and
// resumes when it answers ACTIVE: a lost ACTIVE webhook costs at most the probe interval. An
// operator's pause is never probed away.
func TestAPauseByKomboEndsWhenKomboSaysActive(t *testing.T) {
	h := newHarness(t)
	h.stateChanged(time.Second, "inactive", kombo.IntegrationInactive, h.start)
	asked := h.onCheck(func(n int) activities.CheckIntegrationResult {
		if n < 3 {
			return activities.CheckIntegrationResult{Found: true, State: kombo.IntegrationInactive}
		}
		return activities.CheckIntegrationResult{Found: true, State: kombo.IntegrationActive}
	})
	h.status(30*time.Second, func(st workflows.Status) {
		require.Equal(t, workflows.StatePaused, st.State)
		require.Equal(t, "ask Kombo for the integration's state", st.NextWake)
	})
	h.status(20*time.Minute, func(st workflows.Status) {
		require.Equal(t, workflows.StateIdle, st.State)
		require.Equal(t, kombo.IntegrationActive, st.KomboState)
	})
	h.requireCancelled(30 * time.Minute)
	require.Equal(t, []time.Duration{61 * time.Second, 181 * time.Second, 421 * time.Second, 901 * time.Second}, *asked,
		"1, 2, 4, 8 minutes apart")
	fs := h.fetched()
	require.Len(t, fs, 4, "every configured endpoint is fetched on resuming")
	require.Equal(t, 901*time.Second, fs[0].at)
}

// Evidence of life (a successful sync-finished, a data-changed) makes a workflow paused by Kombo
// ask at once, not when its timer says.
func TestEvidenceOfLifeEndsAPauseAtOnce(t *testing.T) {
	h := newHarness(t)
	h.stateChanged(time.Second, "inactive", kombo.IntegrationInactive, h.start)
	asked := h.onCheck(func(n int) activities.CheckIntegrationResult {
		return activities.CheckIntegrationResult{Found: true, State: kombo.IntegrationActive}
	})
	h.syncFinished(10*time.Second, "sf", kombo.SyncSucceeded)
	h.requireCancelled(5 * time.Minute)
	require.Equal(t, []time.Duration{10 * time.Second}, *asked)
}

// An operator's pause is theirs: no probe ends it.
func TestAnOperatorsPauseIsNotProbed(t *testing.T) {
	h := newHarness(t)
	h.stateChanged(time.Second, "inactive", kombo.IntegrationInactive, h.start)
	h.signal(2*time.Second, workflows.SignalPause, workflows.PauseRequest{Reason: "maintenance"})
	asked := h.onCheck(func(int) activities.CheckIntegrationResult {
		return activities.CheckIntegrationResult{Found: true, State: kombo.IntegrationActive}
	})
	h.requireCancelled(3 * time.Hour)
	require.Empty(t, *asked)
}

// A sweep confirmation applies to the pass it was given for: given while no pass can start, it
// is dropped, so the pass that runs later is not confirmed.
func TestASweepConfirmationIsNotKeptForALaterPass(t *testing.T) {
	h := newHarness(t)
	h.signal(time.Second, workflows.SignalPause, workflows.PauseRequest{})
	h.signal(2*time.Second, workflows.SignalReconcile, workflows.ReconcileRequest{ConfirmSweep: true})
	h.signal(3*time.Second, workflows.SignalResume, workflows.ResumeRequest{})
	h.signal(time.Minute, workflows.SignalReconcile, workflows.ReconcileRequest{ConfirmSweep: true})
	h.requireCancelled(2 * time.Minute)
	var confirmed []bool
	for _, sw := range h.sweeps {
		confirmed = append(confirmed, sw.Confirmed)
	}
	require.Equal(t, []bool{false, false, false, false, true, true, true, true}, confirmed,
		"the pass run after the pause is not confirmed; the one confirmed while it could run is")
}

// A cancellation while a timer waits (here the retry after a failed fetch) closes the workflow.
// On the dev server one once spun instead, arming timer after timer on the cancelled context (each
// ready at once and picked before ctx.Done); the test environment does not show that spin, the
// end-to-end tests' bounded finish does.
func TestACancellationWhileATimerWaitsClosesTheWorkflow(t *testing.T) {
	h := newHarness(t)
	h.respond = func(int, activities.FetchEndpointInput) (activities.FetchEndpointResult, error) {
		return activities.FetchEndpointResult{}, temporal.NewNonRetryableApplicationError("bad request", activities.ErrKombo, nil)
	}
	h.dataChanged(time.Second, "d", "hris_employees")
	h.status(10*time.Second, func(st workflows.Status) {
		require.Equal(t, "retry after error", st.NextWake)
	})
	h.requireCancelled(20 * time.Second)
}
