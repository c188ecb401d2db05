package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Action kinds (README "Creating applications"). Contract: names are only ever added.
const (
	ActionCreateApplication = "create_application"
	ActionMoveStage         = "move_stage"
	ActionReject            = "reject"
	ActionAddNote           = "add_note"
	ActionAddAttachment     = "add_attachment"
)

// ActionKinds are every kind, in the order the README lists them.
var ActionKinds = []string{ActionCreateApplication, ActionMoveStage, ActionReject, ActionAddNote, ActionAddAttachment}

// Action states. pending and running are not final; the other three are, and only an operator's
// retry leaves them.
const (
	ActionPending   = "pending"
	ActionRunning   = "running"
	ActionSucceeded = "succeeded"
	ActionRefused   = "refused" // Kombo or our own gate said no: not retried
	ActionFailed    = "failed"  // given up: needs a person
)

// ActionStates are every state.
var ActionStates = []string{ActionPending, ActionRunning, ActionSucceeded, ActionRefused, ActionFailed}

// Codes of kombosync's own in an action's error (Kombo's are passed through as they are).
const (
	CodeJobNotOpen     = "KOMBOSYNC.JOB_NOT_OPEN"    // the job link's job no longer takes applications
	CodeCancelled      = "KOMBOSYNC.CANCELLED"       // an operator cancelled it before it was sent
	CodeOutcomeUnknown = "KOMBOSYNC.OUTCOME_UNKNOWN" // an attempt's answer was lost and Kombo cannot be asked what it did
	CodeGaveUp         = "KOMBOSYNC.GAVE_UP"         // retried for as long as the workflow retries
	CodePayloadErased  = "KOMBOSYNC.PAYLOAD_ERASED"  // its request was erased before it could be sent
	CodeNotFoundAfter  = "KOMBOSYNC.NOT_FOUND"       // Kombo says it exists, but it cannot be found
)

// Action is one write to Kombo, as the back-office API shows it. Request bodies (personal data)
// are never part of it.
type Action struct {
	ID             string          `json:"id"`
	Kind           string          `json:"kind"`
	IntegrationID  string          `json:"integration_id"`
	IdempotencyKey string          `json:"idempotency_key"`
	State          string          `json:"state"`
	Attempts       int             `json:"attempts"`
	Result         json.RawMessage `json:"result"`
	Error          *ActionError    `json:"error"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	FinishedAt     *time.Time      `json:"finished_at"`
	// Additions to the contract's fields: what it acts on, and whether the application it made or
	// acted on has reached kombo.ats_applications through the sync.
	JobID         string `json:"job_id,omitempty"`         // create_application: Kombo's job id (or remote:<id>)
	AppJobID      string `json:"app_job_id,omitempty"`     // create_application through a job link
	ApplicationID string `json:"application_id,omitempty"` // the application acted on, or the one created
	Synced        bool   `json:"synced"`
	InDoubt       bool   `json:"in_doubt"` // an attempt's outcome is unknown (being looked for, or for a person to check)

	seq     int64
	started bool
}

// Started says whether the action's workflow has been started.
func (a Action) Started() bool { return a.started }

// ActionError is why an action was refused or failed: Kombo's error.code, message and log_url,
// or one of kombosync's KOMBOSYNC.* codes.
type ActionError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	LogURL  string `json:"log_url,omitempty"`
}

// Final says whether the state is one an action ends in.
func Final(state string) bool {
	return state == ActionSucceeded || state == ActionRefused || state == ActionFailed
}

// ErrIdempotencyKeyReused: the key was used before with another request.
var ErrIdempotencyKeyReused = errors.New("idempotency key reused")

// NewAction is an action to create.
type NewAction struct {
	IntegrationID  string
	Kind           string
	IdempotencyKey string
	RequestHash    []byte // of the kind, the target and the canonical body
	Target         string // Kombo's job id (create_application) or the application id
	AppJobID       string
	Request        json.RawMessage // the body to send to Kombo
}

const actionColumns = `a.seq, a.id, a.kind, a.integration_id, a.idempotency_key, a.state, a.attempts, a.result, a.error,
	a.created_at, a.updated_at, a.finished_at, a.target, coalesce(a.app_job_id, ''),
	coalesce(a.result ->> 'application_id', case when a.kind <> 'create_application' then a.target end, ''),
	exists (select from kombo.ats_applications x where x.integration_id = a.integration_id
		and x.id = coalesce(a.result ->> 'application_id', case when a.kind <> 'create_application' then a.target end)),
	a.in_doubt_since is not null, a.workflow_started_at is not null`

func scanAction(row pgx.Row) (Action, error) {
	var a Action
	var result, errJSON []byte
	var target string
	err := row.Scan(&a.seq, &a.ID, &a.Kind, &a.IntegrationID, &a.IdempotencyKey, &a.State, &a.Attempts, &result, &errJSON,
		&a.CreatedAt, &a.UpdatedAt, &a.FinishedAt, &target, &a.AppJobID, &a.ApplicationID, &a.Synced, &a.InDoubt, &a.started)
	if err != nil {
		return a, err
	}
	if a.Kind == ActionCreateApplication {
		a.JobID = target
	}
	a.Result = json.RawMessage("null")
	if len(result) > 0 {
		a.Result = result
	}
	if len(errJSON) > 0 {
		a.Error = &ActionError{}
		if err := json.Unmarshal(errJSON, a.Error); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Cursor is the action's position in lists (ListActions' after).
func (a Action) Cursor() string { return strconv.FormatInt(a.seq, 10) }

// CreateAction stores an action, or finds the one stored before under the same idempotency key:
// created says which. The same key with another request is ErrIdempotencyKeyReused. Concurrent
// calls with one key store one action: the unique index makes the second wait for the first.
func (s *Store) CreateAction(ctx context.Context, n NewAction) (a Action, created bool, err error) {
	if err := checkText("the action", n.IntegrationID, n.IdempotencyKey, n.Target, n.AppJobID); err != nil {
		return Action{}, false, err
	}
	var id string
	err = s.pool.QueryRow(ctx, `insert into kombo.actions (id, integration_id, kind, idempotency_key, request_hash, target, app_job_id, request)
		values ($1, $2, $3, $4, $5, $6, nullif($7, ''), $8)
		on conflict (integration_id, idempotency_key) do nothing
		returning id`, newID("act_"), n.IntegrationID, n.Kind, n.IdempotencyKey, n.RequestHash, n.Target, n.AppJobID, []byte(n.Request)).Scan(&id)
	switch {
	case err == nil:
		created = true
	case errors.Is(err, pgx.ErrNoRows):
		var hash []byte
		if err := s.pool.QueryRow(ctx, `select id, request_hash from kombo.actions where integration_id = $1 and idempotency_key = $2`,
			n.IntegrationID, n.IdempotencyKey).Scan(&id, &hash); err != nil {
			return Action{}, false, fmt.Errorf("find action of key: %w", err)
		}
		if string(hash) != string(n.RequestHash) {
			return Action{}, false, fmt.Errorf("%w: the key was used for another request (action %s)", ErrIdempotencyKeyReused, id)
		}
	default:
		return Action{}, false, fmt.Errorf("store action: %w", err)
	}
	a, err = s.GetAction(ctx, n.IntegrationID, id)
	return a, created, err
}

// ActionByKey finds the action stored under an idempotency key; a different request hash is
// ErrIdempotencyKeyReused.
func (s *Store) ActionByKey(ctx context.Context, integrationID, key string, hash []byte) (Action, bool, error) {
	if err := checkText("the idempotency key", integrationID, key); err != nil {
		return Action{}, false, err
	}
	var id string
	var stored []byte
	err := s.pool.QueryRow(ctx, `select id, request_hash from kombo.actions where integration_id = $1 and idempotency_key = $2`,
		integrationID, key).Scan(&id, &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return Action{}, false, nil
	}
	if err != nil {
		return Action{}, false, fmt.Errorf("find action of key: %w", err)
	}
	if string(stored) != string(hash) {
		return Action{}, false, fmt.Errorf("%w: the key was used for another request (action %s)", ErrIdempotencyKeyReused, id)
	}
	a, err := s.GetAction(ctx, integrationID, id)
	return a, err == nil, err
}

// GetAction reads an action of an integration; an empty integration id reads any.
func (s *Store) GetAction(ctx context.Context, integrationID, id string) (Action, error) {
	if err := checkText("the action id", integrationID, id); err != nil {
		return Action{}, err
	}
	a, err := scanAction(s.pool.QueryRow(ctx, `select `+actionColumns+` from kombo.actions a
		where a.id = $1 and ($2 = '' or a.integration_id = $2)`, id, integrationID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Action{}, fmt.Errorf("action %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Action{}, fmt.Errorf("read action %s: %w", id, err)
	}
	return a, nil
}

// ActionFilter selects actions for ListActions; empty fields select all.
type ActionFilter struct {
	IntegrationID string
	State         string
	Kind          string
	After         string // a cursor (Action.Cursor) of the previous page
	Limit         int
}

// ListActions lists actions in creation order after the cursor.
func (s *Store) ListActions(ctx context.Context, f ActionFilter) ([]Action, error) {
	if err := checkText("the filter", f.IntegrationID, f.State, f.Kind, f.After); err != nil {
		return nil, err
	}
	var after int64
	if f.After != "" {
		n, err := strconv.ParseInt(f.After, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: cursor: not one this API gave", ErrInvalid)
		}
		after = n
	}
	if f.State != "" && !slices.Contains(ActionStates, f.State) {
		return nil, fmt.Errorf("%w: state: one of %s", ErrInvalid, strings.Join(ActionStates, ", "))
	}
	if f.Kind != "" && !slices.Contains(ActionKinds, f.Kind) {
		return nil, fmt.Errorf("%w: kind: one of %s", ErrInvalid, strings.Join(ActionKinds, ", "))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `select `+actionColumns+` from kombo.actions a
		where ($1 = '' or a.integration_id = $1) and ($2 = '' or a.state = $2) and ($3 = '' or a.kind = $3) and a.seq > $4
		order by a.seq limit $5`, f.IntegrationID, f.State, f.Kind, after, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	defer rows.Close()
	var out []Action
	for rows.Next() {
		a, err := scanAction(rows)
		if err != nil {
			return nil, fmt.Errorf("list actions: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// MarkActionStarted records that the action's workflow was started.
func (s *Store) MarkActionStarted(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `update kombo.actions set workflow_started_at = coalesce(workflow_started_at, now()) where id = $1`, id)
	return err
}

// UnstartedActions are actions older than minAge whose workflow was never started (Temporal
// was unreachable when they were created): the relay starts them.
func (s *Store) UnstartedActions(ctx context.Context, minAge time.Duration, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `select id from kombo.actions
		where workflow_started_at is null and created_at < now() - $1::interval order by created_at limit $2`, minAge, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ActionRun is what executing an action needs: the stored row with its request body. It never
// leaves the worker's process (the workflow carries the action's id only).
type ActionRun struct {
	ID, IntegrationID, Kind, State, Target, AppJobID string
	Attempts                                         int
	InDoubtSince                                     *time.Time
	AlreadyExistsSeen                                bool
	CancelRequested                                  bool
	Request                                          json.RawMessage // nil once removed
	Now                                              time.Time       // the database's clock when read
}

// LoadActionRun reads an action for its workflow's activities.
func (s *Store) LoadActionRun(ctx context.Context, id string) (ActionRun, error) {
	var r ActionRun
	var req []byte
	err := s.pool.QueryRow(ctx, `select id, integration_id, kind, state, target, coalesce(app_job_id, ''), attempts, in_doubt_since,
		already_exists_seen, cancel_requested_at is not null, request, clock_timestamp()
		from kombo.actions where id = $1`, id).Scan(&r.ID, &r.IntegrationID, &r.Kind, &r.State, &r.Target, &r.AppJobID,
		&r.Attempts, &r.InDoubtSince, &r.AlreadyExistsSeen, &r.CancelRequested, &req, &r.Now)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("action %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read action %s: %w", id, err)
	}
	if len(req) > 0 {
		r.Request = req
	}
	return r, nil
}

// BeginAttempt records, before a request leaves, that it may reach Kombo: attempts+1, the action
// running and in doubt until its answer is recorded. It refuses (false) when the action is final,
// already in doubt (another attempt's outcome is unknown), or cancelled: then nothing may be sent.
// A crash after it leaves the action in doubt, so the next attempt looks before it sends.
func (s *Store) BeginAttempt(ctx context.Context, id string) (since time.Time, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `update kombo.actions set attempts = attempts + 1, state = 'running', in_doubt_since = clock_timestamp(),
			updated_at = clock_timestamp()
		where id = $1 and state in ('pending', 'running') and in_doubt_since is null and cancel_requested_at is null
		returning in_doubt_since`, id).Scan(&since)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("begin attempt of %s: %w", id, err)
	}
	return since, true, nil
}

// ClearDoubt records that the attempt begun at since surely did nothing (Kombo refused it before
// acting, or a look found nothing after the reads settled), so the action may be sent again. It
// is a no-op when another attempt has begun since.
func (s *Store) ClearDoubt(ctx context.Context, id string, since time.Time) error {
	_, err := s.pool.Exec(ctx, `update kombo.actions set in_doubt_since = null, updated_at = clock_timestamp()
		where id = $1 and in_doubt_since = $2`, id, since)
	if err != nil {
		return fmt.Errorf("clear doubt of %s: %w", id, err)
	}
	return nil
}

// NoteLookup counts a look at Kombo for an attempt's outcome; alreadyExists records that Kombo
// answered ATS.APPLICATION_ALREADY_EXISTS to a resend after an unknown outcome.
func (s *Store) NoteLookup(ctx context.Context, id string, alreadyExists bool) error {
	_, err := s.pool.Exec(ctx, `update kombo.actions set lookups = lookups + 1, already_exists_seen = already_exists_seen or $2,
		updated_at = clock_timestamp() where id = $1`, id, alreadyExists)
	return err
}

// ActionEvent is the data of an action.succeeded, action.refused or action.failed event: ids,
// the state and the error's code and log URL, never request contents or Kombo's message (which
// may echo them: read the action).
type ActionEvent struct {
	ActionID       string          `json:"action_id"`
	Kind           string          `json:"kind"`
	IntegrationID  string          `json:"integration_id"`
	IdempotencyKey string          `json:"idempotency_key"`
	State          string          `json:"state"`
	Attempts       int             `json:"attempts"`
	Result         json.RawMessage `json:"result,omitempty"`
	ErrorCode      string          `json:"error_code,omitempty"`
	LogURL         string          `json:"log_url,omitempty"`
}

// ActionOutcome finishes an action.
type ActionOutcome struct {
	State  string          // succeeded, refused or failed
	Result json.RawMessage // succeeded: application_id, candidate_id, warnings, …
	Error  *ActionError
}

// FinishAction ends an action in a final state and queues its action.* event for the
// subscriptions that want it, in one transaction; it returns whether it finished it (false: it was
// final already, and nothing is queued) and the active subscriptions to wake.
func (s *Store) FinishAction(ctx context.Context, id string, o ActionOutcome) (finished bool, wake []string, err error) {
	if !Final(o.State) {
		return false, nil, fmt.Errorf("finish action %s: %q is not a final state", id, o.State)
	}
	var errJSON []byte
	if o.Error != nil {
		if errJSON, err = json.Marshal(o.Error); err != nil {
			return false, nil, err
		}
	}
	var result []byte
	if len(o.Result) > 0 {
		result = o.Result
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var ev ActionEvent
		var res []byte
		err := tx.QueryRow(ctx, `update kombo.actions set state = $2, result = coalesce($3, result), error = $4,
				in_doubt_since = case when $2 = 'failed' then in_doubt_since end, -- a failure may leave the outcome unknown: a retry looks first
				finished_at = clock_timestamp(), updated_at = clock_timestamp()
			where id = $1 and state in ('pending', 'running')
			returning id, kind, integration_id, idempotency_key, state, attempts, result - 'warnings'`, id, o.State, result, errJSON).
			Scan(&ev.ActionID, &ev.Kind, &ev.IntegrationID, &ev.IdempotencyKey, &ev.State, &ev.Attempts, &res)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		finished = true
		ev.Result = res
		if o.Error != nil {
			ev.ErrorCode, ev.LogURL = o.Error.Code, o.Error.LogURL
		}
		wake, err = enqueue(ctx, tx, event{Type: "action." + o.State, IntegrationID: ev.IntegrationID, Data: ev})
		return err
	})
	if err != nil {
		return false, nil, fmt.Errorf("finish action %s: %w", id, err)
	}
	return finished, wake, nil
}

// RequestCancel asks that the action not be sent (again): an action not sent yet is refused
// with KOMBOSYNC.CANCELLED at its next step; one whose attempt is in doubt is still looked for,
// and is refused only if that attempt surely did nothing. A final action is not changed.
func (s *Store) RequestCancel(ctx context.Context, id string) (Action, error) {
	tag, err := s.pool.Exec(ctx, `update kombo.actions set cancel_requested_at = coalesce(cancel_requested_at, clock_timestamp()),
		updated_at = clock_timestamp() where id = $1 and state in ('pending', 'running')`, id)
	if err != nil {
		return Action{}, fmt.Errorf("cancel action %s: %w", id, err)
	}
	a, err := s.GetAction(ctx, "", id)
	if err == nil && tag.RowsAffected() == 0 {
		return a, fmt.Errorf("%w: action %s is %s already", ErrConflict, id, a.State)
	}
	return a, err
}

// RetryAction puts a refused or failed action back to pending, for its workflow to run again;
// attempts are kept. With resend, an attempt in doubt is forgotten: a person has checked the
// ATS and found that it did nothing (otherwise the workflow looks for it first, as always).
func (s *Store) RetryAction(ctx context.Context, id string, resend bool) (Action, error) {
	tag, err := s.pool.Exec(ctx, `update kombo.actions set state = 'pending', error = null, finished_at = null, cancel_requested_at = null,
			in_doubt_since = case when $2 then null else in_doubt_since end, already_exists_seen = already_exists_seen and not $2,
			updated_at = clock_timestamp()
		where id = $1 and state in ('refused', 'failed') and request is not null`, id, resend)
	if err != nil {
		return Action{}, fmt.Errorf("retry action %s: %w", id, err)
	}
	a, err := s.GetAction(ctx, "", id)
	if err == nil && tag.RowsAffected() == 0 {
		if Final(a.State) && a.State != ActionSucceeded {
			return a, fmt.Errorf("%w: action %s has no request any more (retention or erasure)", ErrConflict, id)
		}
		return a, fmt.Errorf("%w: action %s is %s; only refused and failed actions are retried", ErrConflict, id, a.State)
	}
	return a, err
}
