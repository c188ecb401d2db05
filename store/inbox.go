package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// InboxEvent is a verified webhook in the kombo.webhook_events inbox.
type InboxEvent struct {
	ID            string
	Type          string
	IntegrationID string // empty for events about no integration (connection-flow-failed)
	Payload       []byte // the whole event, {"id", "type", "data"}
	ReceivedAt    time.Time
	SignaledAt    *time.Time
	Attempts      int
}

// Inserted says what InsertWebhookEvent found.
type Inserted int

const (
	// InsertedNew: the event is new and stored.
	InsertedNew Inserted = iota
	// InsertedDuplicate: the event was stored before and has been signaled (or needs no signal),
	// or another request is storing it right now.
	InsertedDuplicate
	// InsertedUnsignaled: the event was stored before but never signaled (Temporal was down).
	InsertedUnsignaled
	// InsertedForDeleted: the event is about a deleted integration. It is stored as handled:
	// nothing is signaled, so a late event does not start the integration's workflow again.
	InsertedForDeleted
)

// InsertWebhookEvent stores a verified event unless its id is already in the inbox, in one
// statement that also looks up whether its integration was deleted. An event that needs no
// signal (no integration, a type nobody acts on, a deleted integration) is stored as handled at
// once, so the relay leaves it alone.
func (s *Store) InsertWebhookEvent(ctx context.Context, ev InboxEvent, needsSignal bool) (Inserted, error) {
	var inserted, deleted bool
	var signaledAt *time.Time
	err := s.pool.QueryRow(ctx, `
		with gone as (
			select exists(select from kombo.integrations where id = $3 and deleted_at is not null) as deleted
		), ins as (
			insert into kombo.webhook_events (id, type, integration_id, payload, received_at, signaled_at)
			select $1, $2, nullif($3, ''), $4, $5, case when $6 and not gone.deleted then null else $5::timestamptz end
			from gone
			on conflict (id) do nothing
			returning id
		)
		select true, null::timestamptz, (select deleted from gone) from ins
		union all
		select false, signaled_at, (select deleted from gone) from kombo.webhook_events
		where id = $1 and not exists (select from ins)`,
		ev.ID, ev.Type, ev.IntegrationID, ev.Payload, ev.ReceivedAt, needsSignal).Scan(&inserted, &signaledAt, &deleted)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// A concurrent request inserted it and has not committed: it will signal it.
		return InsertedDuplicate, nil
	case err != nil:
		return 0, fmt.Errorf("store webhook event %s: %w", ev.ID, err)
	case inserted && deleted && needsSignal:
		return InsertedForDeleted, nil
	case inserted:
		return InsertedNew, nil
	case signaledAt == nil && deleted:
		// Stored while the integration lived, never signaled, and deleted since: handled now.
		return InsertedForDeleted, markSignaled(ctx, s.pool, ev.ID)
	case signaledAt == nil:
		return InsertedUnsignaled, nil
	}
	return InsertedDuplicate, nil
}

// MarkSignaled records that the events reached their workflows (or needed no signal), in one
// statement however many there are: the gateway marks the events of concurrent requests together.
func (s *Store) MarkSignaled(ctx context.Context, ids ...string) error {
	_, err := s.pool.Exec(ctx, `update kombo.webhook_events set signaled_at = coalesce(signaled_at, now()),
		signal_attempts = signal_attempts + 1, last_error = null where id = any($1)`, ids)
	if err != nil {
		return fmt.Errorf("mark %d webhook event(s) signaled: %w", len(ids), err)
	}
	return nil
}

func markSignaled(ctx context.Context, db DBTX, id string) error {
	_, err := db.Exec(ctx, `update kombo.webhook_events set signaled_at = coalesce(signaled_at, now()),
		signal_attempts = signal_attempts + 1, last_error = null where id = $1`, id)
	if err != nil {
		return fmt.Errorf("mark webhook event %s signaled: %w", id, err)
	}
	return nil
}

// RecordSignalFailure counts a failed attempt to signal the event, for the relay and operators.
func (s *Store) RecordSignalFailure(ctx context.Context, id string, cause error) error {
	return recordSignalFailure(ctx, s.pool, id, cause)
}

func recordSignalFailure(ctx context.Context, db DBTX, id string, cause error) error {
	_, err := db.Exec(ctx, `update kombo.webhook_events set signal_attempts = signal_attempts + 1, last_error = $2
		where id = $1 and signaled_at is null`, id, cause.Error())
	if err != nil {
		return fmt.Errorf("record signal failure of webhook event %s: %w", id, err)
	}
	return nil
}

// WebhookEvent reads one stored event.
func (s *Store) WebhookEvent(ctx context.Context, id string) (InboxEvent, error) {
	var ev InboxEvent
	var integrationID *string
	err := s.pool.QueryRow(ctx, `select id, type, integration_id, payload, received_at, signaled_at, signal_attempts
		from kombo.webhook_events where id = $1`, id).
		Scan(&ev.ID, &ev.Type, &integrationID, &ev.Payload, &ev.ReceivedAt, &ev.SignaledAt, &ev.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return InboxEvent{}, fmt.Errorf("webhook event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return InboxEvent{}, fmt.Errorf("read webhook event %s: %w", id, err)
	}
	ev.IntegrationID = deref(integrationID)
	return ev, nil
}

// ErrNotFound: no such row.
var ErrNotFound = errors.New("not found")

// RelayUnsignaled hands events stored at least olderThan ago but never signaled to signal, oldest
// first, at most limit of them, and records each outcome. Rows are claimed with SKIP LOCKED, so
// several gateways relay side by side without signaling an event twice at once. It returns how
// many were signaled and how many failed.
func (s *Store) RelayUnsignaled(ctx context.Context, olderThan time.Duration, limit int,
	signal func(context.Context, InboxEvent) error) (signaled, failed int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			select id, type, integration_id, payload, received_at, signal_attempts
			from kombo.webhook_events
			where signaled_at is null and received_at < now() - make_interval(secs => $1)
			order by received_at
			limit $2
			for update skip locked`, olderThan.Seconds(), limit)
		if err != nil {
			return err
		}
		var events []InboxEvent
		for rows.Next() {
			var ev InboxEvent
			var integrationID *string
			if err := rows.Scan(&ev.ID, &ev.Type, &integrationID, &ev.Payload, &ev.ReceivedAt, &ev.Attempts); err != nil {
				rows.Close()
				return err
			}
			ev.IntegrationID = deref(integrationID)
			events = append(events, ev)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, ev := range events {
			if sigErr := signal(ctx, ev); sigErr != nil {
				failed++
				err = recordSignalFailure(ctx, tx, ev.ID, sigErr)
			} else {
				signaled++
				err = markSignaled(ctx, tx, ev.ID)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return signaled, failed, fmt.Errorf("relay unsignaled webhook events: %w", err)
	}
	return signaled, failed, nil
}
