package store_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/store"
)

func newAction(t *testing.T, s *store.Store, key, email string) store.Action {
	t.Helper()
	body := fmt.Sprintf(`{"candidate": {"first_name": "A", "last_name": "B", "email_address": %q}}`, email)
	a, created, err := s.CreateAction(t.Context(), store.NewAction{IntegrationID: "greenhouse:1", Kind: store.ActionCreateApplication,
		IdempotencyKey: key, RequestHash: []byte(body), Target: "j1", Request: json.RawMessage(body)})
	require.NoError(t, err)
	require.True(t, created)
	return a
}

// An attempt is refused while another's outcome is unknown, and after the action is final; a
// failure keeps the doubt (a retry looks first), success and refusal end it; retry with resend
// forgets it.
func TestActionAttemptsAndDoubt(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	a := newAction(t, s, "k1", "ada@example.com")
	since, ok, err := s.BeginAttempt(ctx, a.ID)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = s.BeginAttempt(ctx, a.ID)
	require.NoError(t, err)
	require.False(t, ok, "in doubt: nothing may be sent")
	require.NoError(t, s.ClearDoubt(ctx, a.ID, since.Add(time.Microsecond)))
	_, ok, _ = s.BeginAttempt(ctx, a.ID)
	require.False(t, ok, "clearing another attempt's doubt does nothing")
	require.NoError(t, s.ClearDoubt(ctx, a.ID, since))
	_, ok, _ = s.BeginAttempt(ctx, a.ID)
	require.True(t, ok)

	finished, _, err := s.FinishAction(ctx, a.ID, store.ActionOutcome{State: store.ActionFailed,
		Error: &store.ActionError{Code: store.CodeOutcomeUnknown, Message: "check"}})
	require.NoError(t, err)
	require.True(t, finished)
	got, err := s.GetAction(ctx, "", a.ID)
	require.NoError(t, err)
	require.Equal(t, store.ActionFailed, got.State)
	require.True(t, got.InDoubt, "a failed action whose outcome is unknown stays in doubt")
	require.Equal(t, 2, got.Attempts)
	require.NotNil(t, got.FinishedAt)
	finished, _, err = s.FinishAction(ctx, a.ID, store.ActionOutcome{State: store.ActionSucceeded})
	require.NoError(t, err)
	require.False(t, finished, "a final action is not finished twice")

	_, err = s.RetryAction(ctx, a.ID, false)
	require.NoError(t, err)
	got, _ = s.GetAction(ctx, "", a.ID)
	require.Equal(t, store.ActionPending, got.State)
	require.True(t, got.InDoubt, "retry without resend still looks first")
	_, ok, _ = s.BeginAttempt(ctx, a.ID)
	require.False(t, ok)
	_, _, _ = s.FinishAction(ctx, a.ID, store.ActionOutcome{State: store.ActionFailed, Error: &store.ActionError{Code: "X"}})
	_, err = s.RetryAction(ctx, a.ID, true)
	require.NoError(t, err)
	_, ok, _ = s.BeginAttempt(ctx, a.ID)
	require.True(t, ok, "resend: a person checked the ATS")
	finished, _, err = s.FinishAction(ctx, a.ID, store.ActionOutcome{State: store.ActionSucceeded, Result: json.RawMessage(`{"application_id": "app_1"}`)})
	require.NoError(t, err)
	require.True(t, finished)
	got, _ = s.GetAction(ctx, "", a.ID)
	require.False(t, got.InDoubt)
	require.Equal(t, "app_1", got.ApplicationID)
	_, err = s.RetryAction(ctx, a.ID, false)
	require.ErrorIs(t, err, store.ErrConflict, "a succeeded action is not retried")
	_, err = s.RequestCancel(ctx, a.ID)
	require.ErrorIs(t, err, store.ErrConflict)
}

// Finishing queues the action.* event for the subscriptions that want it, in the transaction,
// with ids and codes only.
func TestFinishedActionsAreEvents(t *testing.T) {
	s, pool := newStore(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, `insert into kombo.subscriptions (id, url, secrets, event_types) values
		('sub_a', 'https://a.example', '{whsec_x}', '{action.succeeded,action.failed}'), ('sub_b', 'https://b.example', '{whsec_x}', '{records.changed}')`)
	require.NoError(t, err)
	a := newAction(t, s, "k1", "ada@example.com")
	_, wake, err := s.FinishAction(ctx, a.ID, store.ActionOutcome{State: store.ActionSucceeded,
		Result: json.RawMessage(`{"application_id": "app_1", "candidate_id": "c_1", "warnings": ["gender is not supported by Greenhouse"]}`)})
	require.NoError(t, err)
	require.Equal(t, []string{"sub_a"}, wake)
	b := newAction(t, s, "k2", "bob@example.com")
	_, _, err = s.FinishAction(ctx, b.ID, store.ActionOutcome{State: store.ActionRefused, Error: &store.ActionError{Code: "ATS.JOB_CLOSED", Message: "closed"}})
	require.NoError(t, err)
	var types []string
	var data string
	require.NoError(t, pool.QueryRow(ctx, `select array_agg(type order by seq), min(data::text) from kombo.deliveries`).Scan(&types, &data))
	require.Equal(t, []string{"action.succeeded"}, types, "sub_a takes succeeded and failed only")
	var ev map[string]any
	require.NoError(t, json.Unmarshal([]byte(data), &ev))
	require.Equal(t, a.ID, ev["action_id"])
	require.Equal(t, "k1", ev["idempotency_key"])
	require.Equal(t, map[string]any{"application_id": "app_1", "candidate_id": "c_1"}, ev["result"], "no warnings: they may echo the request")
	require.NotContains(t, data, "ada@example.com")
}

// The fleet's slots: at most the cap leased at once, Kombo's lower limit respected, a lease
// that ran out taken again, a release by another holder ignored.
func TestActionSlotsCapTheFleet(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	var mu sync.Mutex
	got := map[int]bool{}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for k := range 20 {
		wg.Go(func() {
			slot, ok, err := s.AcquireActionSlot(ctx, "greenhouse:1", 5, fmt.Sprintf("h%d", k), time.Minute)
			errs[k] = err
			if ok {
				mu.Lock()
				got[slot] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, got, 5, "five holders at most, each its own slot")
	n, err := s.HeldActionSlots(ctx, "greenhouse:1")
	require.NoError(t, err)
	require.Equal(t, 5, n)
	_, ok, err := s.AcquireActionSlot(ctx, "greenhouse:2", 5, "other", time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "another integration has its own slots")

	require.NoError(t, s.ReleaseActionSlot(ctx, "greenhouse:1", 0, "not-the-holder"))
	_, ok, _ = s.AcquireActionSlot(ctx, "greenhouse:1", 5, "late", time.Minute)
	require.False(t, ok)

	// Kombo says this integration allows 2: only slots 0 and 1 are used from now on.
	require.NoError(t, s.RecordActionLimit(ctx, "greenhouse:3", 2, 5))
	for k := range 3 {
		_, ok, err := s.AcquireActionSlot(ctx, "greenhouse:3", 5, fmt.Sprint("x", k), time.Minute)
		require.NoError(t, err)
		require.Equal(t, k < 2, ok)
	}
	// A holder that died: its lease runs out and the slot is taken again.
	slot, ok, err := s.AcquireActionSlot(ctx, "greenhouse:4", 1, "dead", time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	require.Eventually(t, func() bool {
		again, ok, err := s.AcquireActionSlot(ctx, "greenhouse:4", 1, "alive", time.Minute)
		return err == nil && ok && again == slot
	}, 5*time.Second, 5*time.Millisecond)
}

// Requests leave with retention after the action finished, and with an erasure of the person;
// the outcome stays.
func TestActionPayloadsLeave(t *testing.T) {
	s, pool := newStore(t)
	ctx := t.Context()
	done := newAction(t, s, "k1", "ada@example.com")
	open := newAction(t, s, "k2", "bob@example.com")
	erased := newAction(t, s, "k3", "Carol@Example.com")
	_, _, err := s.FinishAction(ctx, done.ID, store.ActionOutcome{State: store.ActionSucceeded, Result: json.RawMessage(`{"application_id": "a1", "candidate_id": "c1"}`)})
	require.NoError(t, err)
	require.NoError(t, s.StartRetentionRun(ctx, "ret-1"))
	n, err := s.RetainActionPayloads(ctx, "ret-1", time.Now().Add(-time.Hour), 100)
	require.NoError(t, err)
	require.Zero(t, n, "finished less than the retention ago")
	n, err = s.RetainActionPayloads(ctx, "ret-1", time.Now().Add(time.Hour), 100)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the finished one")
	counts, err := s.FinishRetentionRun(ctx, "ret-1")
	require.NoError(t, err)
	require.EqualValues(t, 1, counts.ActionPayloadsRemoved)

	n, err = s.EraseActionPayloads(ctx, "greenhouse:1", " carol@example.COM ", nil)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	run, err := s.LoadActionRun(ctx, erased.ID)
	require.NoError(t, err)
	require.Nil(t, run.Request)
	run, err = s.LoadActionRun(ctx, open.ID)
	require.NoError(t, err)
	require.NotNil(t, run.Request, "another person's stays")
	var left int
	require.NoError(t, pool.QueryRow(ctx, `select count(*) from kombo.actions where request::text like '%ada@%' or request::text ilike '%carol@%'`).Scan(&left))
	require.Zero(t, left)
	got, err := s.GetAction(ctx, "", done.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"application_id": "a1", "candidate_id": "c1"}`, string(got.Result), "the outcome stays")
}

// The list pages in creation order and filters.
func TestListActions(t *testing.T) {
	s, _ := newStore(t)
	var ids []string
	for k := range 5 {
		ids = append(ids, newAction(t, s, fmt.Sprint("k", k), fmt.Sprintf("p%d@example.com", k)).ID)
	}
	page, err := s.ListActions(t.Context(), store.ActionFilter{IntegrationID: "greenhouse:1", Limit: 3})
	require.NoError(t, err)
	require.Len(t, page, 3)
	rest, err := s.ListActions(t.Context(), store.ActionFilter{IntegrationID: "greenhouse:1", After: page[2].Cursor()})
	require.NoError(t, err)
	var listed []string
	for _, a := range append(page, rest...) {
		listed = append(listed, a.ID)
	}
	require.Equal(t, ids, listed)
	none, err := s.ListActions(t.Context(), store.ActionFilter{IntegrationID: "greenhouse:1", State: store.ActionSucceeded})
	require.NoError(t, err)
	require.Empty(t, none)
	_, err = s.ListActions(t.Context(), store.ActionFilter{State: "nope"})
	require.ErrorIs(t, err, store.ErrInvalid)
}
