package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Subscription states.
const (
	SubscriptionActive   = "active"
	SubscriptionPaused   = "paused"
	SubscriptionDisabled = "disabled"
)

// Subscription is a kombo.subscriptions row: where and what to deliver, and how it goes.
type Subscription struct {
	ID              string     `json:"id"`
	URL             string     `json:"url"`
	Secrets         []string   `json:"-"` // never printed but on creation and rotation
	EventTypes      []string   `json:"event_types"`
	IntegrationID   string     `json:"integration_id,omitempty"`
	Description     string     `json:"description"`
	State           string     `json:"state"`
	StateReason     string     `json:"state_reason,omitempty"`
	StateChangedAt  time.Time  `json:"state_changed_at"`
	Failures        int        `json:"failures"`
	FailingSince    *time.Time `json:"failing_since,omitempty"`
	LastAttemptAt   *time.Time `json:"last_attempt_at,omitempty"`
	LastStatus      *int       `json:"last_status,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
	Pending         int        `json:"pending"` // deliveries waiting
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

const subscriptionColumns = `s.id, s.url, s.secrets, s.event_types, coalesce(s.integration_id, ''), s.description, s.state,
	coalesce(s.state_reason, ''), s.state_changed_at, s.failures, s.failing_since, s.last_attempt_at, s.last_status,
	coalesce(s.last_error, ''), s.last_delivered_at,
	(select count(*)::int from kombo.deliveries d where d.subscription_id = s.id and d.delivered_at is null),
	s.created_at, s.updated_at`

func scanSubscription(row pgx.Row) (Subscription, error) {
	var s Subscription
	err := row.Scan(&s.ID, &s.URL, &s.Secrets, &s.EventTypes, &s.IntegrationID, &s.Description, &s.State, &s.StateReason,
		&s.StateChangedAt, &s.Failures, &s.FailingSince, &s.LastAttemptAt, &s.LastStatus, &s.LastError, &s.LastDeliveredAt,
		&s.Pending, &s.CreatedAt, &s.UpdatedAt)
	return s, err
}

// SubscriptionSpec is a new subscription. The caller checks the URL and the secret's form
// (outbound.Manager); the store checks the event types.
type SubscriptionSpec struct {
	URL           string
	Secret        string
	EventTypes    []string
	IntegrationID string
	Description   string
}

// ErrInvalid: a value the store refuses; the message says which.
var ErrInvalid = errors.New("invalid")

// CheckEventTypes refuses types that do not exist.
func CheckEventTypes(types []string) error {
	for _, t := range types {
		if !slices.Contains(EventTypes, t) {
			return fmt.Errorf("%w: unknown event type %q (known: %v)", ErrInvalid, t, EventTypes)
		}
	}
	return nil
}

// CreateSubscription adds an active subscription; it receives events from now on.
func (s *Store) CreateSubscription(ctx context.Context, spec SubscriptionSpec) (Subscription, error) {
	if err := CheckEventTypes(spec.EventTypes); err != nil {
		return Subscription{}, err
	}
	types := slices.Compact(slices.Sorted(slices.Values(spec.EventTypes)))
	if types == nil {
		types = []string{}
	}
	sub, err := scanSubscription(s.pool.QueryRow(ctx, `
		with s as (insert into kombo.subscriptions (id, url, secrets, event_types, integration_id, description)
			values ($1, $2, array[$3], $4, nullif($5, ''), $6) returning *)
		select `+subscriptionColumns+` from s`,
		newID("sub_"), spec.URL, spec.Secret, types, spec.IntegrationID, spec.Description))
	if err != nil {
		return Subscription{}, fmt.Errorf("create subscription: %w", err)
	}
	return sub, nil
}

// GetSubscription reads one subscription; ErrNotFound when there is none.
func (s *Store) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	sub, err := scanSubscription(s.pool.QueryRow(ctx, `select `+subscriptionColumns+` from kombo.subscriptions s where s.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Subscription{}, fmt.Errorf("subscription %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: %w", id, err)
	}
	return sub, nil
}

// ListSubscriptions lists every subscription, oldest first.
func (s *Store) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `select `+subscriptionColumns+` from kombo.subscriptions s order by s.created_at, s.id`)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	subs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Subscription, error) { return scanSubscription(row) })
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return subs, nil
}

// SubscriptionPatch changes what is set.
type SubscriptionPatch struct {
	URL           *string
	EventTypes    *[]string
	IntegrationID *string // "" for every integration
	Description   *string
	// Secrets replaces the signing secrets (rotation: the new one first, the old one kept until
	// receivers have the new one).
	Secrets *[]string
}

// UpdateSubscription applies a patch.
func (s *Store) UpdateSubscription(ctx context.Context, id string, p SubscriptionPatch) (Subscription, error) {
	var types []string
	if p.EventTypes != nil {
		if err := CheckEventTypes(*p.EventTypes); err != nil {
			return Subscription{}, err
		}
		types = slices.Compact(slices.Sorted(slices.Values(*p.EventTypes)))
		if types == nil {
			types = []string{}
		}
	}
	var secrets []string
	if p.Secrets != nil {
		secrets = *p.Secrets
		if len(secrets) < 1 || len(secrets) > 5 {
			return Subscription{}, fmt.Errorf("%w: a subscription has 1 to 5 secrets, not %d", ErrInvalid, len(secrets))
		}
	}
	sub, err := scanSubscription(s.pool.QueryRow(ctx, `
		with s as (update kombo.subscriptions set
			url = coalesce($2, url),
			event_types = coalesce($3, event_types),
			integration_id = case when $4::text is null then integration_id else nullif($4, '') end,
			description = coalesce($5, description),
			secrets = coalesce($6, secrets),
			updated_at = now()
		where id = $1 returning *)
		select `+subscriptionColumns+` from s`, id, p.URL, types, p.IntegrationID, p.Description, secrets))
	if errors.Is(err, pgx.ErrNoRows) {
		return Subscription{}, fmt.Errorf("subscription %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("update subscription %s: %w", id, err)
	}
	return sub, nil
}

// DeleteSubscription deletes a subscription and its deliveries.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `delete from kombo.subscriptions where id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("subscription %s: %w", id, ErrNotFound)
	}
	return nil
}

// SetSubscriptionState pauses, disables or resumes a subscription. Resuming (active) forgets the
// run of failures, so delivery starts again at once.
func (s *Store) SetSubscriptionState(ctx context.Context, id, state, reason string) (Subscription, error) {
	if !slices.Contains([]string{SubscriptionActive, SubscriptionPaused, SubscriptionDisabled}, state) {
		return Subscription{}, fmt.Errorf("%w: unknown subscription state %q", ErrInvalid, state)
	}
	sub, err := scanSubscription(s.pool.QueryRow(ctx, `
		with s as (update kombo.subscriptions set state = $2, state_reason = nullif($3, ''),
			state_changed_at = case when state = $2 then state_changed_at else now() end,
			failures = case when $2 = 'active' then 0 else failures end,
			failing_since = case when $2 = 'active' then null else failing_since end,
			updated_at = now()
		where id = $1 returning *)
		select `+subscriptionColumns+` from s`, id, state, reason))
	if errors.Is(err, pgx.ErrNoRows) {
		return Subscription{}, fmt.Errorf("subscription %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("set subscription %s %s: %w", id, state, err)
	}
	return sub, nil
}

// ReplayFrom says what a replay re-sends: the deliveries created at or after Since, or the
// records.changed deliveries covering feed rows after After. One of the two is set.
type ReplayFrom struct {
	Since *time.Time
	After *FeedPosition
}

// ReplaySubscription queues the subscription's past deliveries again, with their ids and bodies
// unchanged (a receiver that has them drops them by webhook-id), in their order, and returns how
// many. Deliveries kept: those not removed by retention.
func (s *Store) ReplaySubscription(ctx context.Context, id string, from ReplayFrom) (int64, error) {
	if (from.Since == nil) == (from.After == nil) {
		return 0, fmt.Errorf("%w: replay from a time or from a feed position, one of the two", ErrInvalid)
	}
	var tag interface{ RowsAffected() int64 }
	var err error
	if from.Since != nil {
		tag, err = s.pool.Exec(ctx, `update kombo.deliveries set delivered_at = null, replays = replays + 1
			where subscription_id = $1 and created_at >= $2 and delivered_at is not null`, id, *from.Since)
	} else {
		tag, err = s.pool.Exec(ctx, `update kombo.deliveries set delivered_at = null, replays = replays + 1
			where subscription_id = $1 and type = 'records.changed' and delivered_at is not null
			  and (range_to_txid, range_to_seq) > ($2::text::xid8, $3::bigint)`, id, from.After.TxID, from.After.Seq)
	}
	if err != nil {
		return 0, fmt.Errorf("replay subscription %s: %w", id, err)
	}
	return tag.RowsAffected(), nil
}

// Delivery is one message to one subscription.
type Delivery struct {
	Seq            int64           `json:"seq"`
	SubscriptionID string          `json:"subscription_id"`
	ID             string          `json:"id"` // the webhook-id
	Type           string          `json:"type"`
	IntegrationID  string          `json:"integration_id,omitempty"`
	Data           json.RawMessage `json:"data"`
	CreatedAt      time.Time       `json:"created_at"`
	Events         int             `json:"events"` // events coalesced into it
	Attempts       int             `json:"attempts"`
	LastAttemptAt  *time.Time      `json:"last_attempt_at,omitempty"`
	LastStatus     *int            `json:"last_status,omitempty"`
	LastError      string          `json:"last_error,omitempty"`
	DeliveredAt    *time.Time      `json:"delivered_at,omitempty"`
	Replays        int             `json:"replays"`
}

// Body is the message's JSON body, by the Standard Webhooks convention: the same bytes for
// every attempt and replay.
func (d Delivery) Body() []byte {
	body, _ := json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{d.Type, d.CreatedAt.UTC().Format(time.RFC3339Nano), d.Data})
	return body
}

const deliveryColumns = `seq, subscription_id, id, type, coalesce(integration_id, ''), data, created_at, events, attempts,
	last_attempt_at, last_status, coalesce(last_error, ''), delivered_at, replays`

func collectDeliveries(rows pgx.Rows) ([]Delivery, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		err := row.Scan(&d.Seq, &d.SubscriptionID, &d.ID, &d.Type, &d.IntegrationID, &d.Data, &d.CreatedAt, &d.Events,
			&d.Attempts, &d.LastAttemptAt, &d.LastStatus, &d.LastError, &d.DeliveredAt, &d.Replays)
		return d, err
	})
}

// PendingDeliveries returns the subscription's next deliveries, in order.
func (s *Store) PendingDeliveries(ctx context.Context, subID string, limit int) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `select `+deliveryColumns+` from kombo.deliveries
		where subscription_id = $1 and delivered_at is null order by seq limit $2`, subID, limit)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries of %s: %w", subID, err)
	}
	ds, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries of %s: %w", subID, err)
	}
	return ds, nil
}

// DeliveryLog returns the subscription's deliveries, newest first, before the given seq (0: from
// the newest).
func (s *Store) DeliveryLog(ctx context.Context, subID string, before int64, limit int) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `select `+deliveryColumns+` from kombo.deliveries
		where subscription_id = $1 and ($2 = 0 or seq < $2) order by seq desc limit $3`, subID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s: %w", subID, err)
	}
	ds, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s: %w", subID, err)
	}
	return ds, nil
}

// Attempt is the outcome of sending one delivery.
type Attempt struct {
	At        time.Time
	Status    int // 0: no answer
	Delivered bool
	Gone      bool // 410: the receiver asks to be unsubscribed
	Error     string
	// GiveUpAfter disables the subscription when its failures have lasted this long.
	GiveUpAfter time.Duration
}

// RecordAttempt records an attempt on the delivery and its subscription in one transaction: a
// success ends the subscription's run of failures, a failure extends it; a 410, or failures
// lasting GiveUpAfter, disable the subscription with the reason. It returns the subscription.
func (s *Store) RecordAttempt(ctx context.Context, subID string, seq int64, a Attempt) (Subscription, error) {
	var status *int
	if a.Status != 0 {
		status = &a.Status
	}
	var sub Subscription
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `update kombo.deliveries set attempts = attempts + 1, last_attempt_at = $3,
			last_status = $4, last_error = nullif($5, ''), delivered_at = case when $6 then $3 else delivered_at end
			where subscription_id = $1 and seq = $2`, subID, seq, a.At, status, a.Error, a.Delivered); err != nil {
			return err
		}
		var err error
		sub, err = scanSubscription(tx.QueryRow(ctx, `
			with s as (update kombo.subscriptions set
				last_attempt_at = $2, last_status = $3, last_error = nullif($4, ''),
				last_delivered_at = case when $5 then $2 else last_delivered_at end,
				failures = case when $5 then 0 else failures + 1 end,
				failing_since = case when $5 then null else coalesce(failing_since, $2) end,
				updated_at = now()
			where id = $1 returning *)
			select `+subscriptionColumns+` from s`, subID, a.At, status, a.Error, a.Delivered))
		if err != nil {
			return err
		}
		reason := ""
		switch {
		case a.Gone:
			reason = "the receiver answered 410 Gone"
		case !a.Delivered && a.GiveUpAfter > 0 && sub.FailingSince != nil && a.At.Sub(*sub.FailingSince) >= a.GiveUpAfter:
			reason = fmt.Sprintf("%d failed attempts since %s (last: %s); fix the receiver, then resume",
				sub.Failures, sub.FailingSince.UTC().Format(time.RFC3339), a.Error)
		}
		if reason != "" && sub.State != SubscriptionDisabled {
			if _, err := tx.Exec(ctx, `update kombo.subscriptions set state = 'disabled', state_reason = $2,
				state_changed_at = now() where id = $1`, subID, reason); err != nil {
				return err
			}
			sub.State, sub.StateReason = SubscriptionDisabled, reason
		}
		return nil
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Subscription{}, fmt.Errorf("subscription %s: %w", subID, ErrNotFound)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("record attempt %d of %s: %w", seq, subID, err)
	}
	return sub, nil
}
