package activities

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// Actions are the settings and hooks of the action activities (README "Creating applications").
type Actions struct {
	// MaxInFlight is the fleet's cap on one integration's action requests in flight
	// (KOMBO_MAX_ACTIONS_IN_FLIGHT, at most Kombo's 30).
	MaxInFlight int
	// Timeout bounds one write request (KOMBO_ACTION_TIMEOUT). An answer not received by then is
	// an unknown outcome: looked for, never resent blindly.
	Timeout time.Duration
	// LookupWindow is how long after an attempt with an unknown outcome (and its timeout) the
	// workflow keeps looking for what it did before it concludes it did nothing
	// (ACTION_LOOKUP_WINDOW): Kombo's reads may lag its writes.
	LookupWindow time.Duration
	// MaxAttempts bounds the requests of one action whose outcomes were each unknown and then
	// found to be nothing; 5 when zero.
	MaxAttempts int
	// RequestSync asks an integration's workflow to sync endpoints (sync-now), after
	// ATS.JOB_CLOSED so the link turns inactive. The worker provides it: activities cannot
	// import the workflows package.
	RequestSync func(ctx context.Context, integrationID string, endpoints []string, reason string) error
}

func (s Actions) maxInFlight() int {
	if s.MaxInFlight <= 0 {
		return 10
	}
	return min(s.MaxInFlight, 30)
}

func (s Actions) timeout() time.Duration {
	if s.Timeout <= 0 {
		return 60 * time.Second
	}
	return s.Timeout
}

func (s Actions) lookupWindow() time.Duration {
	if s.LookupWindow <= 0 {
		return 2 * time.Minute
	}
	return s.LookupWindow
}

func (s Actions) maxAttempts() int {
	if s.MaxAttempts <= 0 {
		return 5
	}
	return s.MaxAttempts
}

// slotLeaseAfterTimeout is how long a slot stays leased after an attempt whose answer never came:
// Kombo may still be working on it, and counts it in flight meanwhile.
const slotLeaseAfterTimeout = 30 * time.Second

// ActionInput names the action a workflow executes. Personal data never travels in it: the
// activities read the request from Postgres.
type ActionInput struct {
	ActionID string
}

// Step outcomes (ActionStep.Outcome).
const (
	StepFinal   = "final"    // the action ended (State says how); its row and event are written
	StepInDoubt = "in_doubt" // an attempt's outcome is unknown: wait LookAgainIn, then LookUpAction
	StepResend  = "resend"   // the attempt surely did nothing: ExecuteAction may send again
)

// ActionStep is what one action activity decided. It carries states, codes and waits only.
type ActionStep struct {
	Outcome     string
	State       string        `json:",omitempty"` // StepFinal: succeeded, refused or failed
	Code        string        `json:",omitempty"` // StepFinal: the error code of a refusal or failure
	LookAgainIn time.Duration `json:",omitempty"` // StepInDoubt
}

// Activity error types of the action activities.
const (
	// ErrActionRetry: Kombo answered that the write was not done and may be retried (rate and
	// concurrency limits, REMOTE.SERVICE_UNAVAILABLE, a load balancer's 503), or no slot came
	// free: retried after NextRetryDelay.
	ErrActionRetry = "ActionRetry"
)

// ExecuteAction sends the action's request to Kombo once, if it may: the action is not final,
// no earlier attempt's outcome is unknown, it is not cancelled, its job can still take
// applications, and one of the integration's slots is free. The attempt is recorded before the
// request leaves (store.BeginAttempt); its answer decides:
//   - success: succeeded, with the ids Kombo gave and its warnings;
//   - a refusal (Kombo's 4xx): refused, with Kombo's code, message and log URL (after our own
//     unknown attempt, ATS.APPLICATION_ALREADY_EXISTS is looked up instead: it is probably ours);
//   - "not done, retry" (429, REMOTE.SERVICE_UNAVAILABLE, a bare 503): the attempt is cleared and
//     the activity fails retryably, after Retry-After or a back-off;
//   - anything else (a timeout, a reset connection, 5xx PLATFORM.UNKNOWN_ERROR or
//     TASK_TIMED_OUT): the outcome is unknown; the action stays in doubt and the workflow looks
//     for what the attempt did before anything is sent again (LookUpAction).
//
// A worker that dies after the request left leaves the action in doubt, so its retry looks too.
func (a *Activities) ExecuteAction(ctx context.Context, in ActionInput) (ActionStep, error) {
	run, err := a.Store.LoadActionRun(ctx, in.ActionID)
	if err != nil {
		return ActionStep{}, a.storeErr(err)
	}
	if store.Final(run.State) {
		return ActionStep{Outcome: StepFinal, State: run.State}, nil
	}
	if run.InDoubtSince != nil {
		return ActionStep{Outcome: StepInDoubt, LookAgainIn: time.Second}, nil
	}
	switch {
	case run.Request == nil:
		return a.finish(ctx, run, store.ActionFailed, nil, &store.ActionError{Code: store.CodePayloadErased,
			Message: "the request was erased (retention or an erasure) before it could be sent"})
	case run.CancelRequested:
		return a.finish(ctx, run, store.ActionRefused, nil, &store.ActionError{Code: store.CodeCancelled, Message: "cancelled before it was sent"})
	case run.Attempts >= a.Actions.maxAttempts():
		return a.finish(ctx, run, store.ActionFailed, nil, &store.ActionError{Code: store.CodeGaveUp,
			Message: fmt.Sprintf("sent %d times, each answer lost and nothing found afterwards", run.Attempts)})
	}
	if run.Kind == store.ActionCreateApplication {
		if _, err := a.Store.ApplicationJob(ctx, run.IntegrationID, run.AppJobID, run.Target); err != nil {
			var notOpen *store.JobNotOpenError
			switch {
			case errors.As(err, &notOpen):
				return a.finish(ctx, run, store.ActionRefused, nil, &store.ActionError{Code: store.CodeJobNotOpen,
					Message: "the job cannot take applications: " + notOpen.Reason})
			case errors.Is(err, store.ErrJobNotLinked):
				return a.finish(ctx, run, store.ActionRefused, nil, &store.ActionError{Code: store.CodeJobNotOpen,
					Message: "the application job's link is no longer confirmed"})
			}
			return ActionStep{}, a.storeErr(err)
		}
	}
	method, segments, err := writeRequest(run)
	if err != nil {
		return a.finish(ctx, run, store.ActionFailed, nil, &store.ActionError{Code: store.CodeGaveUp, Message: err.Error()})
	}

	stop := heartbeatEvery(ctx, nil)
	defer stop()
	holder := fmt.Sprintf("%s/%d", run.ID, run.Attempts+1)
	slot, err := a.acquireSlot(ctx, run.IntegrationID, holder)
	if err != nil {
		return ActionStep{}, err
	}
	release := func() {
		if err := a.Store.ReleaseActionSlot(context.WithoutCancel(ctx), run.IntegrationID, slot, holder); err != nil {
			activity.GetLogger(ctx).Warn("could not release an action slot (its lease ends it)", "action_id", run.ID, "error", err)
		}
	}
	since, ok, err := a.Store.BeginAttempt(ctx, run.ID)
	if err != nil || !ok {
		release()
		if err != nil {
			return ActionStep{}, err
		}
		return ActionStep{Outcome: StepInDoubt, LookAgainIn: time.Second}, nil // another attempt, or a cancel, came first
	}
	wctx, cancel := context.WithTimeout(ctx, a.Actions.timeout())
	answer, err := a.Kombo.Write(wctx, run.IntegrationID, method, run.Request, segments...)
	cancel()
	var apiErr *kombo.APIError
	switch {
	case err == nil:
		release()
		_ = a.Store.RecordActionLimit(ctx, run.IntegrationID, answer.ConcurrencyLimit, a.Actions.maxInFlight())
		return a.finish(ctx, run, store.ActionSucceeded, resultOf(run, answer, false), nil)
	case errors.As(err, &apiErr) && notDone(apiErr):
		release()
		if apiErr.Code == kombo.CodeConcurrencyLimitExceeded {
			_ = a.Store.RecordActionLimit(ctx, run.IntegrationID, apiErr.ConcurrencyLimit, a.Actions.maxInFlight())
		}
		if err := a.Store.ClearDoubt(ctx, run.ID, since); err != nil {
			return ActionStep{}, err // still in doubt: the retry looks before it sends
		}
		return ActionStep{}, temporal.NewApplicationErrorWithOptions(fmt.Sprintf("kombo did not do it: %d %s", apiErr.StatusCode, apiErr.Code),
			ErrActionRetry, temporal.ApplicationErrorOptions{NextRetryDelay: retryDelay(activity.GetInfo(ctx).Attempt, apiErr.RetryAfter)})
	case errors.As(err, &apiErr) && apiErr.StatusCode < 500:
		release()
		if apiErr.Code == kombo.CodeApplicationAlreadyExists && run.Attempts > 0 {
			// An earlier attempt of ours had an unknown outcome and was found to be nothing, yet
			// Kombo now says the application exists: most likely ours, visible late. Look again.
			if err := a.Store.NoteLookup(ctx, run.ID, true); err != nil {
				return ActionStep{}, err
			}
			return ActionStep{Outcome: StepInDoubt, LookAgainIn: time.Second}, nil
		}
		if apiErr.Code == kombo.CodeJobClosed {
			a.requestJobSync(ctx, run.IntegrationID)
		}
		return a.finish(ctx, run, store.ActionRefused, nil, &store.ActionError{Code: cmp.Or(apiErr.Code, fmt.Sprintf("HTTP_%d", apiErr.StatusCode)),
			Message: apiErr.Message, LogURL: apiErr.LogURL})
	default:
		// Unknown outcome: Kombo may have done it. A 5xx answer means Kombo is done with it; a
		// timeout or a lost connection may not: its slot stays leased a while longer.
		if errors.As(err, &apiErr) {
			release()
		} else if err := a.Store.LeaseActionSlot(context.WithoutCancel(ctx), run.IntegrationID, slot, holder, slotLeaseAfterTimeout); err != nil {
			activity.GetLogger(ctx).Warn("could not extend an action slot's lease", "action_id", run.ID, "error", err)
		}
		activity.GetLogger(ctx).Info("action outcome unknown; looking before sending again", "action_id", run.ID, "kind", run.Kind,
			"attempt", run.Attempts+1, "cause", errorKind(err))
		return ActionStep{Outcome: StepInDoubt, LookAgainIn: time.Second}, nil
	}
}

// errorKind names an error without its text, which may echo a request.
func errorKind(err error) string {
	var apiErr *kombo.APIError
	var transport *kombo.TransportError
	switch {
	case errors.As(err, &apiErr):
		return fmt.Sprintf("%d %s", apiErr.StatusCode, apiErr.Code)
	case errors.As(err, &transport) && transport.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &transport):
		return "connection lost"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return "other"
}

// notDone says whether Kombo's answer means the write was not done and may be sent again: its
// rate and concurrency limits, REMOTE.SERVICE_UNAVAILABLE, and a load balancer's bare 503 (the
// retries Kombo asks for).
func notDone(e *kombo.APIError) bool {
	switch {
	case e.Class == kombo.ClassRateLimited:
		return true
	case e.Code == kombo.CodeRemoteServiceUnavailable:
		return true
	case e.Code == "" && e.StatusCode == http.StatusServiceUnavailable:
		return true
	}
	return false
}

// retryDelay is Retry-After when Kombo sent one (capped at 5 minutes), otherwise about one
// second doubling per attempt up to 30 s, with jitter so the fleet's retries spread.
func retryDelay(attempt int32, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, 5*time.Minute)
	}
	d := time.Second
	for i := int32(1); i < attempt && d < 30*time.Second; i++ {
		d *= 2
	}
	d = min(d, 30*time.Second)
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64())) //nolint:gosec // jitter
}

// slotWait bounds one activity's wait for a free slot; the activity then fails retryably.
const slotWait = 5 * time.Minute

// acquireSlot waits for one of the integration's action slots (polling, jittered), for at most
// slotWait. The activity heartbeats meanwhile.
func (a *Activities) acquireSlot(ctx context.Context, integrationID, holder string) (int, error) {
	deadline := time.Now().Add(slotWait)
	lease := a.Actions.timeout() + slotLeaseAfterTimeout
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		slot, ok, err := a.Store.AcquireActionSlot(ctx, integrationID, a.Actions.maxInFlight(), holder, lease)
		if err != nil {
			return 0, err
		}
		if ok {
			return slot, nil
		}
		if time.Now().After(deadline) {
			return 0, temporal.NewApplicationErrorWithOptions("every action slot of the integration is busy", ErrActionRetry,
				temporal.ApplicationErrorOptions{NextRetryDelay: time.Second})
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Duration(float64(wait) * (0.5 + rand.Float64()))): //nolint:gosec // jitter
		}
	}
}

// writeRequest is the method and path of the action's Kombo request.
func writeRequest(run store.ActionRun) (string, []string, error) {
	switch run.Kind {
	case store.ActionCreateApplication:
		return http.MethodPost, []string{"ats", "jobs", run.Target, "applications"}, nil
	case store.ActionMoveStage:
		return http.MethodPut, []string{"ats", "applications", run.Target, "stage"}, nil
	case store.ActionReject:
		return http.MethodPost, []string{"ats", "applications", run.Target, "reject"}, nil
	case store.ActionAddNote:
		return http.MethodPost, []string{"ats", "applications", run.Target, "notes"}, nil
	case store.ActionAddAttachment:
		return http.MethodPost, []string{"ats", "applications", run.Target, "attachments"}, nil
	}
	return "", nil, fmt.Errorf("unknown action kind %q", run.Kind)
}

// actionResult is a succeeded action's result: ids and Kombo's warnings, never request contents.
type actionResult struct {
	ApplicationID string   `json:"application_id,omitempty"`
	CandidateID   string   `json:"candidate_id,omitempty"`
	JobID         string   `json:"job_id,omitempty"`
	Warnings      []string `json:"warnings"`
	// FoundByLookup: the attempt's answer was lost; this is what a look at Kombo found.
	FoundByLookup bool `json:"found_by_lookup"`
}

func resultOf(run store.ActionRun, answer kombo.WriteAnswer, found bool) json.RawMessage {
	r := actionResult{Warnings: answer.Warnings, FoundByLookup: found}
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	if run.Kind == store.ActionCreateApplication {
		var d struct {
			ID          string  `json:"id"`
			CandidateID *string `json:"candidate_id"`
			JobID       *string `json:"job_id"`
		}
		if json.Unmarshal(answer.Data, &d) == nil {
			r.ApplicationID = d.ID
			if d.CandidateID != nil {
				r.CandidateID = *d.CandidateID
			}
			if d.JobID != nil {
				r.JobID = *d.JobID
			}
		}
	} else {
		r.ApplicationID = run.Target
	}
	b, _ := json.Marshal(r)
	return b
}

// finish ends the action and wakes the subscriptions its event concerns.
func (a *Activities) finish(ctx context.Context, run store.ActionRun, state string, result json.RawMessage, e *store.ActionError) (ActionStep, error) {
	_, wake, err := a.Store.FinishAction(ctx, run.ID, store.ActionOutcome{State: state, Result: result, Error: e})
	if err != nil {
		return ActionStep{}, err
	}
	a.wake(ctx, wake, "action."+state)
	step := ActionStep{Outcome: StepFinal, State: state}
	if e != nil {
		step.Code = e.Code
	}
	activity.GetLogger(ctx).Info("action finished", "action_id", run.ID, "kind", run.Kind, "state", state, "code", step.Code)
	return step, nil
}

func (a *Activities) requestJobSync(ctx context.Context, integrationID string) {
	if a.Actions.RequestSync == nil {
		return
	}
	if err := a.Actions.RequestSync(ctx, integrationID, []string{"ats/jobs"}, "ATS.JOB_CLOSED answering an application"); err != nil {
		activity.GetLogger(ctx).Warn("could not ask for a sync of ats/jobs", "integration_id", integrationID, "error", err)
	}
}

// storeErr makes a missing action a non-retryable error (its row is gone: nothing to do).
func (a *Activities) storeErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("the action does not exist", ErrInvalidInput, nil)
	}
	return err
}

// LookUpAction looks at Kombo for what an attempt with an unknown outcome did, by the action's
// kind: the candidate's applications to the job (create_application), the application's stage
// (move_stage) or outcome (reject), its attachments (add_attachment). Found: the action
// succeeded (found_by_lookup). Not found while Kombo's reads may still lag (until the attempt's
// timeout and ACTION_LOOKUP_WINDOW have passed): look again later. Not found after that: the
// attempt did nothing, and the action may be sent again (StepResend), unless it was cancelled
// meanwhile or Kombo had said it exists. A note cannot be looked up (Kombo lists no notes): it
// fails with KOMBOSYNC.OUTCOME_UNKNOWN for a person to check.
func (a *Activities) LookUpAction(ctx context.Context, in ActionInput) (ActionStep, error) {
	run, err := a.Store.LoadActionRun(ctx, in.ActionID)
	if err != nil {
		return ActionStep{}, a.storeErr(err)
	}
	if store.Final(run.State) {
		return ActionStep{Outcome: StepFinal, State: run.State}, nil
	}
	if run.InDoubtSince == nil {
		return ActionStep{Outcome: StepResend}, nil
	}
	if run.Kind == store.ActionAddNote {
		return a.finish(ctx, run, store.ActionFailed, nil, &store.ActionError{Code: store.CodeOutcomeUnknown,
			Message: "the note's answer was lost and Kombo lists no notes: check the application in the ATS, then retry with resend if it is missing"})
	}
	if run.Request == nil {
		return a.finish(ctx, run, store.ActionFailed, nil, &store.ActionError{Code: store.CodeOutcomeUnknown,
			Message: "the request was erased while an attempt's outcome was unknown: check the ATS"})
	}
	if err := a.Store.NoteLookup(ctx, run.ID, false); err != nil {
		return ActionStep{}, err
	}
	found, result, err := a.lookUp(ctx, run)
	if err != nil {
		var apiErr *kombo.APIError
		if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
			return ActionStep{}, temporal.NewApplicationErrorWithOptions("kombo's read was limited", ErrActionRetry,
				temporal.ApplicationErrorOptions{NextRetryDelay: min(apiErr.RetryAfter, 5*time.Minute)})
		}
		return ActionStep{}, temporal.NewApplicationError("look for the action's outcome at kombo: "+errorKind(err), ErrKomboUnavailable)
	}
	if found {
		return a.finish(ctx, run, store.ActionSucceeded, result, nil)
	}
	settleAt := run.InDoubtSince.Add(a.Actions.timeout() + a.Actions.lookupWindow())
	if run.Now.Before(settleAt) {
		elapsed := run.Now.Sub(*run.InDoubtSince)
		wait := min(max(elapsed/2, time.Second), settleAt.Sub(run.Now)+100*time.Millisecond, time.Minute)
		return ActionStep{Outcome: StepInDoubt, LookAgainIn: wait}, nil
	}
	switch {
	case run.AlreadyExistsSeen:
		return a.finish(ctx, run, store.ActionFailed, nil, &store.ActionError{Code: store.CodeNotFoundAfter,
			Message: "Kombo said the application exists, but it was not found for the candidate's email and the job: check the ATS"})
	case run.CancelRequested:
		return a.finish(ctx, run, store.ActionRefused, nil, &store.ActionError{Code: store.CodeCancelled,
			Message: "cancelled; the attempt before the cancel did nothing"})
	}
	if err := a.Store.ClearDoubt(ctx, run.ID, *run.InDoubtSince); err != nil {
		return ActionStep{}, err
	}
	activity.GetLogger(ctx).Info("action attempt did nothing; sending again", "action_id", run.ID, "kind", run.Kind)
	return ActionStep{Outcome: StepResend}, nil
}

// lookUp asks Kombo whether the action's write happened, and with what result.
func (a *Activities) lookUp(ctx context.Context, run store.ActionRun) (bool, json.RawMessage, error) {
	var req struct {
		StageID   string `json:"stage_id"`
		Candidate struct {
			Email string `json:"email_address"`
		} `json:"candidate"`
		Attachment struct {
			Name string `json:"name"`
		} `json:"attachment"`
	}
	if err := json.Unmarshal(run.Request, &req); err != nil {
		return false, nil, fmt.Errorf("read the stored request: %w", err)
	}
	switch run.Kind {
	case store.ActionCreateApplication:
		apps, err := a.Kombo.FindApplications(ctx, run.IntegrationID, strings.TrimSpace(req.Candidate.Email), run.Target)
		if err != nil || len(apps) == 0 {
			return false, nil, err
		}
		data, _ := json.Marshal(map[string]any{"id": apps[0].ID, "candidate_id": apps[0].CandidateID, "job_id": apps[0].JobID})
		return true, resultOf(run, kombo.WriteAnswer{Data: data}, true), nil
	case store.ActionMoveStage, store.ActionReject:
		app, ok, err := a.Kombo.GetApplication(ctx, run.IntegrationID, run.Target)
		if err != nil || !ok {
			return false, nil, err
		}
		if (run.Kind == store.ActionMoveStage && app.StageID == req.StageID) || (run.Kind == store.ActionReject && app.Rejected) {
			return true, resultOf(run, kombo.WriteAnswer{}, true), nil
		}
		return false, nil, nil
	case store.ActionAddAttachment:
		atts, err := a.Kombo.ApplicationAttachments(ctx, run.IntegrationID, run.Target)
		if err != nil {
			return false, nil, err
		}
		for _, at := range atts {
			if at.FileName == req.Attachment.Name {
				return true, resultOf(run, kombo.WriteAnswer{}, true), nil
			}
		}
		return false, nil, nil
	}
	return false, nil, fmt.Errorf("no lookup for %s", run.Kind)
}

// GiveUpInput ends an action whose activity ran out of retries.
type GiveUpInput struct {
	ActionID string
	Cause    string // the last error's type, no message
}

// GiveUpAction fails an action its workflow could not finish (the activity's retries ran out):
// KOMBOSYNC.OUTCOME_UNKNOWN when an attempt's outcome is still unknown, KOMBOSYNC.GAVE_UP
// otherwise.
func (a *Activities) GiveUpAction(ctx context.Context, in GiveUpInput) (ActionStep, error) {
	run, err := a.Store.LoadActionRun(ctx, in.ActionID)
	if err != nil {
		return ActionStep{}, a.storeErr(err)
	}
	if store.Final(run.State) {
		return ActionStep{Outcome: StepFinal, State: run.State}, nil
	}
	e := &store.ActionError{Code: store.CodeGaveUp, Message: "retried until the workflow gave up; last error: " + in.Cause}
	if run.InDoubtSince != nil {
		e = &store.ActionError{Code: store.CodeOutcomeUnknown,
			Message: "an attempt's outcome is unknown and Kombo could not be asked (" + in.Cause + "): check the ATS, then retry"}
	}
	return a.finish(ctx, run, store.ActionFailed, nil, e)
}
