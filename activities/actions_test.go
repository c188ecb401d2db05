package activities_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
)

const atsIntegration = "greenhouse:acts"

var atsJobsEP = kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}

// actionHarness is an ATS integration in the emulator, its jobs synced into a fresh database,
// and the action activities with short timeouts.
type actionHarness struct {
	*harness
	open, closed string // job ids
	syncs        []string
	mu           sync.Mutex
	keys         int
}

func setupActions(t *testing.T) *actionHarness {
	t.Helper()
	emu, clk, base := newEmulator(t)
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: atsIntegration, Category: kombo.CategoryATS, Records: 200, Seed: 5}))
	h := &actionHarness{harness: newHarness(t, emu, clk, base)}
	h.acts.Actions = activities.Actions{MaxInFlight: 10, Timeout: 300 * time.Millisecond, LookupWindow: 2 * time.Second,
		RequestSync: func(_ context.Context, id string, eps []string, _ string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.syncs = append(h.syncs, fmt.Sprintf("%s %v", id, eps))
			return nil
		}}
	_, err := h.fetch(t, activities.FetchEndpointInput{IntegrationID: atsIntegration, Endpoint: atsJobsEP, Kind: store.KindFull, RunID: "jobs-1"})
	require.NoError(t, err)
	truth, err := emu.Truth(atsIntegration, atsJobsEP)
	require.NoError(t, err)
	for _, r := range truth {
		var j struct{ Status string }
		require.NoError(t, json.Unmarshal(r.Data, &j))
		switch {
		case r.RemoteDeletedAt != nil:
		case j.Status == "OPEN" && h.open == "":
			h.open = r.ID
		case j.Status == "CLOSED" && h.closed == "":
			h.closed = r.ID
		}
	}
	require.NotEmpty(t, h.open)
	require.NotEmpty(t, h.closed)
	return h
}

// create stores a create_application action for email and job.
func (h *actionHarness) create(t *testing.T, email, job string) string {
	t.Helper()
	h.keys++
	body := fmt.Sprintf(`{"candidate": {"first_name": "Ada", "last_name": "Lovelace", "email_address": %q}}`, email)
	a, created, err := h.acts.Store.CreateAction(t.Context(), store.NewAction{IntegrationID: atsIntegration, Kind: store.ActionCreateApplication,
		IdempotencyKey: fmt.Sprintf("key-%d", h.keys), RequestHash: []byte(body), Target: job, Request: json.RawMessage(body)})
	require.NoError(t, err)
	require.True(t, created)
	return a.ID
}

func (h *actionHarness) execute(t *testing.T, activity any, in any) (activities.ActionStep, error) {
	t.Helper()
	env := h.suite.NewTestActivityEnvironment()
	env.RegisterActivity(h.acts)
	val, err := env.ExecuteActivity(activity, in)
	if err != nil {
		return activities.ActionStep{}, err
	}
	var step activities.ActionStep
	require.NoError(t, val.Get(&step))
	return step, nil
}

// run drives an action as its workflow would, with the emulator's clock standing in for the
// durable timers, and returns how it ended and the sends and looks it took.
func (h *actionHarness) run(t *testing.T, id string) (final store.Action, sends, looks int) {
	t.Helper()
	for range 50 {
		sends++
		step, err := h.execute(t, h.acts.ExecuteAction, activities.ActionInput{ActionID: id})
		if err != nil {
			require.ErrorContains(t, err, activities.ErrActionRetry)
			continue
		}
		for step.Outcome == activities.StepInDoubt {
			h.age(t, id, step.LookAgainIn) // the workflow's timer: the attempt is that much older
			looks++
			step, err = h.execute(t, h.acts.LookUpAction, activities.ActionInput{ActionID: id})
			require.NoError(t, err)
		}
		if step.Outcome == activities.StepFinal {
			a, err := h.acts.Store.GetAction(t.Context(), atsIntegration, id)
			require.NoError(t, err)
			return a, sends, looks
		}
	}
	t.Fatal("the action did not finish")
	return
}

// age makes the action's attempt in doubt d older, as the workflow's durable timer would: the
// lookup window is measured on the database's clock from that time.
func (h *actionHarness) age(t *testing.T, id string, d time.Duration) {
	t.Helper()
	_, err := h.pool.Exec(t.Context(), `update kombo.actions set in_doubt_since = in_doubt_since - $2::interval where id = $1`, id, d)
	require.NoError(t, err)
}

func (h *actionHarness) applicationsOf(t *testing.T, email string) int {
	t.Helper()
	apps, err := h.emu.Applications(atsIntegration)
	require.NoError(t, err)
	n := 0
	for _, a := range apps {
		if a.Email == email {
			n++
		}
	}
	return n
}

func result(t *testing.T, a store.Action) map[string]any {
	t.Helper()
	var r map[string]any
	require.NoError(t, json.Unmarshal(a.Result, &r))
	return r
}

// A clean create succeeds with one request and Kombo's ids.
func TestCreateApplicationSucceedsOnce(t *testing.T) {
	h := setupActions(t)
	id := h.create(t, "ada@example.com", h.open)
	a, sends, looks := h.run(t, id)
	require.Equal(t, store.ActionSucceeded, a.State)
	require.Equal(t, 1, a.Attempts)
	require.Equal(t, [2]int{1, 0}, [2]int{sends, looks})
	r := result(t, a)
	require.NotEmpty(t, r["application_id"])
	require.NotEmpty(t, r["candidate_id"])
	require.Equal(t, h.open, r["job_id"])
	require.Equal(t, false, r["found_by_lookup"])
	require.Equal(t, 1, h.applicationsOf(t, "ada@example.com"))
	// Executing a finished action again sends nothing.
	step, err := h.execute(t, h.acts.ExecuteAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, activities.StepFinal, step.Outcome)
	require.Equal(t, 1, h.emu.WriteStats().Requests)
}

// Every answer lost after Kombo committed (a reset connection, an answer held past the timeout, a
// 504 although the ATS finished) ends as succeeded through a look, with one application.
func TestLostAnswersAreFoundNotResent(t *testing.T) {
	h := setupActions(t)
	for _, fault := range []komboemu.WriteFault{komboemu.WriteResetAfterCommit, komboemu.WriteHoldAfterCommit, komboemu.WriteTimedOutAfterCommit} {
		t.Run(string(fault), func(t *testing.T) {
			email := string(fault) + "@example.com"
			h.emu.SetWriteFaults(komboemu.WriteFaults{HoldFor: time.Minute})
			h.emu.QueueWriteFaults(fault)
			a, sends, looks := h.run(t, h.create(t, email, h.open))
			require.Equal(t, store.ActionSucceeded, a.State)
			require.Equal(t, 1, sends)
			require.GreaterOrEqual(t, looks, 1)
			require.Equal(t, true, result(t, a)["found_by_lookup"])
			require.NotEmpty(t, result(t, a)["application_id"])
			require.Equal(t, 1, h.applicationsOf(t, email), "exactly one application")
		})
	}
}

// A 500 before the commit is an unknown outcome too: it is looked for until the lookup window has
// passed, then sent again, once. A 503 REMOTE.SERVICE_UNAVAILABLE is Kombo saying it did nothing:
// retried at once, without a look.
func TestFailuresBeforeTheCommitAreSentAgainOnlyWhenSurelyAbsent(t *testing.T) {
	h := setupActions(t)
	h.emu.QueueWriteFaults(komboemu.WriteFailBeforeCommit)
	a, sends, looks := h.run(t, h.create(t, "five-hundred@example.com", h.open))
	require.Equal(t, store.ActionSucceeded, a.State)
	require.Equal(t, 2, sends)
	require.Equal(t, 2, a.Attempts)
	require.GreaterOrEqual(t, looks, 2, "looked until the window passed")
	require.Equal(t, false, result(t, a)["found_by_lookup"])
	require.Equal(t, 1, h.applicationsOf(t, "five-hundred@example.com"))

	h.emu.QueueWriteFaults(komboemu.WriteUnavailable)
	a, sends, looks = h.run(t, h.create(t, "unavailable@example.com", h.open))
	require.Equal(t, store.ActionSucceeded, a.State)
	require.Equal(t, [2]int{2, 0}, [2]int{sends, looks})
	require.Equal(t, 2, a.Attempts)
	require.Equal(t, 1, h.applicationsOf(t, "unavailable@example.com"))
}

// Kombo's reads lag its writes: a lost answer whose application is not readable yet is not
// resent; the application found later is the action's. And after a resend that Kombo answers
// ATS.APPLICATION_ALREADY_EXISTS (our first attempt, visible late), the look finds it.
func TestReadLagIsWaitedOut(t *testing.T) {
	h := setupActions(t)
	h.acts.Actions.LookupWindow = 10 * time.Second
	h.emu.SetWriteFaults(komboemu.WriteFaults{ReadLag: 3 * time.Second})
	h.emu.QueueWriteFaults(komboemu.WriteResetAfterCommit)
	id := h.create(t, "lagged@example.com", h.open)
	step, err := h.execute(t, h.acts.ExecuteAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, activities.StepInDoubt, step.Outcome)
	step, err = h.execute(t, h.acts.LookUpAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, activities.StepInDoubt, step.Outcome, "not readable yet, and the window is open: look again later")
	h.clk.Advance(4 * time.Second) // the emulator's reads catch up
	step, err = h.execute(t, h.acts.LookUpAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, activities.ActionStep{Outcome: activities.StepFinal, State: store.ActionSucceeded}, step)
	require.Equal(t, 1, h.applicationsOf(t, "lagged@example.com"))

	// The window closes before the reads catch up: the resend meets ALREADY_EXISTS, and the
	// action is looked for again rather than refused.
	h.acts.Actions.LookupWindow = time.Millisecond
	h.emu.QueueWriteFaults(komboemu.WriteResetAfterCommit)
	id = h.create(t, "late@example.com", h.open)
	step, err = h.execute(t, h.acts.ExecuteAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, activities.StepInDoubt, step.Outcome)
	h.age(t, id, time.Second) // past the request timeout and the window
	step, err = h.execute(t, h.acts.LookUpAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, activities.StepResend, step.Outcome)
	step, err = h.execute(t, h.acts.ExecuteAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, activities.StepInDoubt, step.Outcome, "ALREADY_EXISTS after our own unknown attempt is looked up")
	h.clk.Advance(4 * time.Second)
	step, err = h.execute(t, h.acts.LookUpAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, store.ActionSucceeded, step.State)
	require.Equal(t, 1, h.applicationsOf(t, "late@example.com"))
}

// A worker that died after the request left (the attempt recorded, its answer never recorded):
// the retry sends nothing before it has looked.
func TestAttemptRecordedBeforeSendingIsNeverResentBlindly(t *testing.T) {
	h := setupActions(t)
	id := h.create(t, "crash@example.com", h.open)
	_, ok, err := h.acts.Store.BeginAttempt(t.Context(), id) // what the dead worker recorded
	require.NoError(t, err)
	require.True(t, ok)
	before := h.emu.WriteStats().Requests
	step, err := h.execute(t, h.acts.ExecuteAction, activities.ActionInput{ActionID: id})
	require.NoError(t, err)
	require.Equal(t, activities.StepInDoubt, step.Outcome)
	require.Equal(t, before, h.emu.WriteStats().Requests, "nothing sent while in doubt")
	a, _, _ := h.run(t, id) // nothing is found after the window: sent once, now
	require.Equal(t, store.ActionSucceeded, a.State)
	require.Equal(t, 2, a.Attempts)
	require.Equal(t, 1, h.applicationsOf(t, "crash@example.com"))
}

// A closed job: refused by our gate before any request when kombosync has synced it closed;
// refused by Kombo's ATS.JOB_CLOSED otherwise, which asks for a sync of ats/jobs.
func TestClosedJobsAreRefused(t *testing.T) {
	h := setupActions(t)
	a, _, _ := h.run(t, h.create(t, "closed@example.com", h.closed))
	require.Equal(t, store.ActionRefused, a.State)
	require.Equal(t, store.CodeJobNotOpen, a.Error.Code)
	require.Contains(t, a.Error.Message, "closed")
	require.Zero(t, h.emu.WriteStats().Requests)

	_, err := h.emu.Mutate(atsIntegration, komboemu.Mutation{Endpoint: atsJobsEP, Op: komboemu.OpUpdate, ID: h.open,
		Fields: map[string]any{"status": "CLOSED"}})
	require.NoError(t, err)
	a, _, _ = h.run(t, h.create(t, "closed-at-kombo@example.com", h.open))
	require.Equal(t, store.ActionRefused, a.State)
	require.Equal(t, kombo.CodeJobClosed, a.Error.Code)
	require.Equal(t, []string{atsIntegration + " [ats/jobs]"}, h.syncs)
	require.Zero(t, h.applicationsOf(t, "closed-at-kombo@example.com"))
}

// A note whose answer was lost cannot be looked up: it fails for a person, never resent.
func TestALostNoteNeedsAPerson(t *testing.T) {
	h := setupActions(t)
	app, _, _ := h.run(t, h.create(t, "noted@example.com", h.open))
	appID := result(t, app)["application_id"].(string)
	body := `{"content": "Great fit", "content_type": "PLAIN_TEXT"}`
	a, _, err := h.acts.Store.CreateAction(t.Context(), store.NewAction{IntegrationID: atsIntegration, Kind: store.ActionAddNote,
		IdempotencyKey: "note-1", RequestHash: []byte(body), Target: appID, Request: json.RawMessage(body)})
	require.NoError(t, err)
	h.emu.QueueWriteFaults(komboemu.WriteResetAfterCommit)
	final, sends, _ := h.run(t, a.ID)
	require.Equal(t, store.ActionFailed, final.State)
	require.Equal(t, store.CodeOutcomeUnknown, final.Error.Code)
	require.Equal(t, 1, sends)
	apps, err := h.emu.Applications(atsIntegration)
	require.NoError(t, err)
	for _, x := range apps {
		if x.ID == appID {
			require.Equal(t, 1, x.Notes, "the note was written once, and not again")
		}
	}
	// A person checks the ATS, finds the note missing… here it is there, so a resend would be
	// wrong; retry without resend looks again and fails the same way.
	_, err = h.acts.Store.RetryAction(t.Context(), a.ID, false)
	require.NoError(t, err)
	final, _, _ = h.run(t, a.ID)
	require.Equal(t, store.ActionFailed, final.State)
}

// Stage moves and rejections read the application first when an answer was lost.
func TestLostStageMoveAndRejectionAreLookedUp(t *testing.T) {
	h := setupActions(t)
	app, _, _ := h.run(t, h.create(t, "moved@example.com", h.open))
	appID := result(t, app)["application_id"].(string)
	var job struct {
		Stages []struct{ ID string } `json:"stages"`
	}
	truth, err := h.emu.Truth(atsIntegration, atsJobsEP)
	require.NoError(t, err)
	for _, r := range truth {
		if r.ID == h.open {
			require.NoError(t, json.Unmarshal(r.Data, &job))
		}
	}
	stage := job.Stages[len(job.Stages)-1].ID
	reasons, err := h.emu.Truth(atsIntegration, kombo.Endpoint{Category: kombo.CategoryATS, Name: "rejection-reasons"})
	require.NoError(t, err)
	for i, c := range []struct{ kind, body string }{
		{store.ActionMoveStage, `{"stage_id": "` + stage + `"}`},
		{store.ActionReject, `{"rejection_reason_id": "` + reasons[0].ID + `"}`},
	} {
		a, _, err := h.acts.Store.CreateAction(t.Context(), store.NewAction{IntegrationID: atsIntegration, Kind: c.kind,
			IdempotencyKey: fmt.Sprintf("move-%d", i), RequestHash: []byte(c.body), Target: appID, Request: json.RawMessage(c.body)})
		require.NoError(t, err)
		h.emu.QueueWriteFaults(komboemu.WriteResetAfterCommit)
		final, sends, looks := h.run(t, a.ID)
		require.Equal(t, store.ActionSucceeded, final.State, c.kind)
		require.Equal(t, [2]int{1, 1}, [2]int{sends, looks}, c.kind)
		require.Equal(t, true, result(t, final)["found_by_lookup"])
	}
}

// A cancel before sending refuses the action with nothing sent.
func TestCancelledBeforeSending(t *testing.T) {
	h := setupActions(t)
	id := h.create(t, "cancel@example.com", h.open)
	_, err := h.acts.Store.RequestCancel(t.Context(), id)
	require.NoError(t, err)
	a, _, _ := h.run(t, id)
	require.Equal(t, store.ActionRefused, a.State)
	require.Equal(t, store.CodeCancelled, a.Error.Code)
	require.Zero(t, h.emu.WriteStats().Requests)
}

// Kombo's concurrency limit: a 429 clears the attempt and retries after a back-off, and Kombo's
// lower Concurrency-Limit is recorded for the integration.
func TestConcurrencyLimitIsBackedOffAndLearned(t *testing.T) {
	h := setupActions(t)
	h.emu.SetWriteFaults(komboemu.WriteFaults{ConcurrencyCap: 3})
	// Three writes held at Kombo fill its cap; ours is 10.
	held := komboemu.WriteFaults{ConcurrencyCap: 3, Latency: time.Hour}
	h.emu.SetWriteFaults(held)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	for k := range 3 {
		wg.Go(func() {
			_, _ = h.acts.Kombo.Write(ctx, atsIntegration, "POST", []byte(`{"candidate": {}}`), "ats", "jobs", h.open, "applications")
			_ = k
		})
	}
	require.Eventually(t, func() bool { return h.emu.WriteStats().MaxInFlight[atsIntegration] >= 3 }, 10*time.Second, 5*time.Millisecond)
	id := h.create(t, "limited@example.com", h.open)
	_, err := h.execute(t, h.acts.ExecuteAction, activities.ActionInput{ActionID: id})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, activities.ErrActionRetry, appErr.Type())
	a, err := h.acts.Store.GetAction(t.Context(), atsIntegration, id)
	require.NoError(t, err)
	require.False(t, a.InDoubt, "Kombo said it did nothing")
	var limit int
	require.NoError(t, h.pool.QueryRow(t.Context(), `select max_in_flight from kombo.action_limits where integration_id = $1`, atsIntegration).Scan(&limit))
	require.Equal(t, 3, limit)
	cancel()
	wg.Wait()
	h.emu.SetWriteFaults(komboemu.WriteFaults{ConcurrencyCap: 3})
	final, _, _ := h.run(t, id)
	require.Equal(t, store.ActionSucceeded, final.State)
	held2, err := h.acts.Store.HeldActionSlots(t.Context(), atsIntegration)
	require.NoError(t, err)
	require.Zero(t, held2, "every slot released")
}
