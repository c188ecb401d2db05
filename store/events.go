package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Outbound event types (README "Outbound webhooks"). Contract: names are only ever added.
const (
	// EventRecordsChanged: an integration's change feed has new rows in a range (RecordsChanged).
	EventRecordsChanged = "records.changed"
	// EventStateChanged: an integration's lasting sync state changed (StateChanged).
	EventStateChanged = "integration.state_changed"
	// EventAttention: an operator or the application should look at an integration (Attention).
	EventAttention = "attention"
	// EventJobLinkDeactivated and EventJobLinkReactivated: a linked job stopped or started again
	// taking applications (JobLinkTransition).
	EventJobLinkDeactivated = "job_link.deactivated"
	EventJobLinkReactivated = "job_link.reactivated"
	// EventActionSucceeded, EventActionRefused and EventActionFailed: an action ended
	// (ActionEvent).
	EventActionSucceeded = "action.succeeded"
	EventActionRefused   = "action.refused"
	EventActionFailed    = "action.failed"
)

// EventTypes are the types a subscription may ask for.
var EventTypes = []string{EventRecordsChanged, EventStateChanged, EventAttention, EventJobLinkDeactivated, EventJobLinkReactivated,
	EventActionSucceeded, EventActionRefused, EventActionFailed}

// FeedPosition is a position in the change feed, as the feed's cursor: (txid, seq). TxID is a
// string, as in the kombo_changes notification, so no JSON reader rounds it.
type FeedPosition struct {
	TxID string `json:"txid"`
	Seq  int64  `json:"seq"`
}

func (p FeedPosition) cursor() ChangeCursor {
	txid, _ := strconv.ParseUint(p.TxID, 10, 64)
	return ChangeCursor{TxID: txid, Seq: p.Seq}
}

// Less orders positions as the feed does.
func (p FeedPosition) Less(o FeedPosition) bool {
	a, b := p.cursor(), o.cursor()
	return a.TxID < b.TxID || a.TxID == b.TxID && a.Seq < b.Seq
}

// OpCounts counts an endpoint's change rows by op.
type OpCounts struct {
	Created  int `json:"created"`
	Updated  int `json:"updated"`
	Deleted  int `json:"deleted"`
	Restored int `json:"restored"`
	Erased   int `json:"erased"`
	// Job links' transitions (endpoint "job-links" only).
	Deactivated int `json:"deactivated,omitempty"`
	Reactivated int `json:"reactivated,omitempty"`
}

// plus sums two counts.
func (c OpCounts) plus(o OpCounts) OpCounts {
	return OpCounts{c.Created + o.Created, c.Updated + o.Updated, c.Deleted + o.Deleted, c.Restored + o.Restored,
		c.Erased + o.Erased, c.Deactivated + o.Deactivated, c.Reactivated + o.Reactivated}
}

func (c *OpCounts) add(op string, n int) {
	switch op {
	case "created":
		c.Created += n
	case "updated":
		c.Updated += n
	case "deleted":
		c.Deleted += n
	case "restored":
		c.Restored += n
	case "erased":
		c.Erased += n
	case "deactivated":
		c.Deactivated += n
	case "reactivated":
		c.Reactivated += n
	}
}

// RecordsChanged is the data of a records.changed event: the integration's change rows after
// From up to To (inclusive), counted per endpoint. Consecutive events of an integration have
// To = the next one's From, so together they cover its feed exactly; read the rows with the
// feed's query from From until past To.
type RecordsChanged struct {
	IntegrationID string              `json:"integration_id"`
	Tool          string              `json:"tool"`
	Category      string              `json:"category"`
	Mode          string              `json:"mode"` // delta, or full when a full pass wrote some of it
	Endpoints     map[string]OpCounts `json:"endpoints"`
	Changes       int                 `json:"changes"` // change rows in the range
	From          FeedPosition        `json:"from"`    // exclusive
	To            FeedPosition        `json:"to"`      // inclusive
	Rounds        int                 `json:"rounds"`  // fetch rounds reported (more than one when coalesced)
}

// merge widens r by a later event of the same integration.
func (r *RecordsChanged) merge(later RecordsChanged) {
	for ep, c := range later.Endpoints {
		r.Endpoints[ep] = r.Endpoints[ep].plus(c)
	}
	r.Changes += later.Changes
	r.To = later.To
	r.Rounds += later.Rounds
	if later.Mode == "full" {
		r.Mode = "full"
	}
}

// StateChanged is the data of an integration.state_changed event.
type StateChanged struct {
	IntegrationID string `json:"integration_id"`
	Tool          string `json:"tool"`
	Category      string `json:"category"`
	// State is kombosync's lasting sync state: waiting_first_sync, idle, auth_failed, paused,
	// deleted. PreviousState is empty for a new integration.
	State         string `json:"state"`
	PreviousState string `json:"previous_state"`
	KomboState    string `json:"kombo_state"` // Kombo's: ACTIVE, INVALID, INACTIVE
}

// Attention is the data of an attention event: why someone should look at an integration.
type Attention struct {
	IntegrationID string   `json:"integration_id"`
	Tool          string   `json:"tool"`
	Category      string   `json:"category"`
	Kind          string   `json:"kind"` // sweep_refused, records_rejected
	Message       string   `json:"message"`
	Endpoints     []string `json:"endpoints,omitempty"`
	Count         int      `json:"count,omitempty"`
}

// event is one event to queue for every subscription that wants it.
type event struct {
	Type          string
	IntegrationID string
	Data          any
	RangeTo       *FeedPosition // records.changed only
}

// newID returns prefix and 24 random base-32 characters.
func newID(prefix string) string {
	return prefix + rand.Text()[:24]
}

// enqueue queues ev for every subscription that wants it, in tx, and returns the active ones,
// to be woken after the commit. A records.changed event is merged into its integration's
// newest pending delivery when that is a records.changed never attempted: the message no
// receiver has seen grows instead of the queue.
func enqueue(ctx context.Context, tx pgx.Tx, ev event) ([]string, error) {
	rows, err := tx.Query(ctx, `select id, state from kombo.subscriptions
		where (cardinality(event_types) = 0 or $1 = any(event_types)) and (integration_id is null or integration_id = $2)
		order by id`, ev.Type, ev.IntegrationID)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", ev.Type, err)
	}
	type sub struct{ ID, State string }
	subs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sub])
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", ev.Type, err)
	}
	var active []string
	for _, sb := range subs {
		if sb.State == SubscriptionActive {
			active = append(active, sb.ID)
		}
		merged, err := mergePending(ctx, tx, sb.ID, ev)
		if err != nil {
			return nil, err
		}
		if merged {
			continue
		}
		data, err := json.Marshal(ev.Data)
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", ev.Type, err)
		}
		var txid *string
		var seq *int64
		if ev.RangeTo != nil {
			txid, seq = &ev.RangeTo.TxID, &ev.RangeTo.Seq
		}
		if _, err := tx.Exec(ctx, `insert into kombo.deliveries (subscription_id, id, type, integration_id, data, range_to_txid, range_to_seq)
			values ($1, $2, $3, nullif($4, ''), $5, $6::text::xid8, $7)`,
			sb.ID, newID("msg_"), ev.Type, ev.IntegrationID, data, txid, seq); err != nil {
			return nil, fmt.Errorf("queue %s for %s: %w", ev.Type, sb.ID, err)
		}
	}
	return active, nil
}

// mergePending merges a records.changed event into the subscription's newest pending delivery
// of the integration when that is a records.changed no receiver has seen.
func mergePending(ctx context.Context, tx pgx.Tx, subID string, ev event) (bool, error) {
	later, ok := ev.Data.(RecordsChanged)
	if !ok {
		return false, nil
	}
	var (
		seq      int64
		typ      string
		attempts int
		data     []byte
	)
	err := tx.QueryRow(ctx, `select seq, type, attempts, data from kombo.deliveries
		where subscription_id = $1 and integration_id = $2 and delivered_at is null
		order by seq desc limit 1 for update`, subID, ev.IntegrationID).Scan(&seq, &typ, &attempts, &data)
	if err == pgx.ErrNoRows || err == nil && (typ != EventRecordsChanged || attempts > 0) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue %s for %s: %w", ev.Type, subID, err)
	}
	var pending RecordsChanged
	if err := json.Unmarshal(data, &pending); err != nil {
		return false, fmt.Errorf("queue %s for %s: pending delivery %d: %w", ev.Type, subID, seq, err)
	}
	if pending.Endpoints == nil {
		pending.Endpoints = map[string]OpCounts{}
	}
	pending.merge(later)
	if data, err = json.Marshal(pending); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `update kombo.deliveries set data = $2, events = events + 1,
		range_to_txid = $3::text::xid8, range_to_seq = $4 where seq = $1`,
		seq, data, later.To.TxID, later.To.Seq); err != nil {
		return false, fmt.Errorf("queue %s for %s: %w", ev.Type, subID, err)
	}
	return true, nil
}

// ChangeReport asks for the report of an integration's fetch round (workflows' PublishRound).
type ChangeReport struct {
	IntegrationID string
	Tool          string
	Category      string
	Full          bool // a full pass wrote some of the round
	Notice        RoundNotice
}

// ReportResult is what a report did.
type ReportResult struct {
	Event bool // a records.changed event was queued (the round's rows were not empty)
	// Endpoints are those with change rows in the reported range.
	Endpoints []string
	// To is the position reported up to.
	To FeedPosition
	// Behind: committed change rows of the integration lie past To, held back by a transaction
	// still running elsewhere (the feed's horizon). Report again later.
	Behind bool
	// HeldBy names the oldest running transaction when Behind (pid, database, application,
	// state, age), for the operator's log; never its query text.
	HeldBy string
	// Wake are the active subscriptions that have something new.
	Wake []string
}

// ReportChanges reports an integration's change rows not reported yet, in one transaction: the
// range from the last reported position to the newest settled one (rows of transactions older
// than every one still running, the feed's rule, so no row can later appear inside it), counted
// per endpoint and op, queued as one records.changed event for the subscriptions that want it;
// rejected records first seen since the last report, as an attention event; the new position;
// and the round's kombo_changes notification, which PostgreSQL sends when this commits.
// Nothing is lost to a crash: rows not reported are reported by the next call.
func (s *Store) ReportChanges(ctx context.Context, r ChangeReport) (ReportResult, error) {
	var res ReportResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `insert into kombo.change_reports (integration_id, txid, seq, rejected_until)
			values ($1, '0', 0, null) on conflict do nothing`, r.IntegrationID); err != nil {
			return err
		}
		var from FeedPosition
		var rejectedUntil *time.Time
		if err := tx.QueryRow(ctx, `select txid::text, seq, rejected_until from kombo.change_reports
			where integration_id = $1 for update`, r.IntegrationID).Scan(&from.TxID, &from.Seq, &rejectedUntil); err != nil {
			return err
		}
		res.To = from
		// (The text column needs its own name: "order by txid" would sort it as text.)
		err := tx.QueryRow(ctx, `select c.txid::text as txid_text, c.seq from kombo.changes c
			where c.integration_id = $1 and c.txid < pg_snapshot_xmin(pg_current_snapshot())
			order by c.txid desc, c.seq desc limit 1`, r.IntegrationID).Scan(&res.To.TxID, &res.To.Seq)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		if !from.Less(res.To) {
			res.To = from
		} else {
			ev, err := countRange(ctx, tx, r, from, res.To)
			if err != nil {
				return err
			}
			wake, err := enqueue(ctx, tx, event{Type: EventRecordsChanged, IntegrationID: r.IntegrationID, Data: ev, RangeTo: &res.To})
			if err != nil {
				return err
			}
			res.Event, res.Wake = true, wake
			for ep := range ev.Endpoints {
				res.Endpoints = append(res.Endpoints, ep)
			}
			slices.Sort(res.Endpoints)
			if _, err := tx.Exec(ctx, `update kombo.change_reports set txid = $2::text::xid8, seq = $3, reported_at = now()
				where integration_id = $1`, r.IntegrationID, res.To.TxID, res.To.Seq); err != nil {
				return err
			}
		}
		wake, err := s.reportRejected(ctx, tx, r, rejectedUntil)
		if err != nil {
			return err
		}
		res.Wake = appendNew(res.Wake, wake...)
		if wake, err = reportJobLinks(ctx, tx, r); err != nil {
			return err
		}
		res.Wake = appendNew(res.Wake, wake...)
		if err := tx.QueryRow(ctx, `select exists (select 1 from kombo.changes
			where integration_id = $1 and (integration_id, txid, seq) > ($1, $2::text::xid8, $3)
			  and pg_xact_status(txid) = 'committed')`, r.IntegrationID, res.To.TxID, res.To.Seq).Scan(&res.Behind); err != nil {
			return err
		}
		if res.Behind {
			if err := tx.QueryRow(ctx, `select coalesce((select format('pid %s, database %s, application %s, %s for %s',
					pid, datname, coalesce(nullif(application_name, ''), '?'), state, date_trunc('second', now() - xact_start))
				from pg_stat_activity where backend_xid = pg_snapshot_xmin(pg_current_snapshot())::text::xid limit 1), 'unknown')`).
				Scan(&res.HeldBy); err != nil {
				return err
			}
		}
		n := r.Notice
		n.IntegrationID, n.TxID, n.Seq = r.IntegrationID, res.To.TxID, res.To.Seq
		if n.TxID == "0" {
			n.TxID, n.Seq = "", 0
		}
		payload, err := json.Marshal(n)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `select pg_notify($1, $2)`, ChangesChannel, string(payload))
		return err
	})
	if err != nil {
		return ReportResult{}, fmt.Errorf("report %s's changes: %w", r.IntegrationID, err)
	}
	return res, nil
}

// countRange builds the records.changed event of the integration's rows in (from, to].
func countRange(ctx context.Context, tx pgx.Tx, r ChangeReport, from, to FeedPosition) (RecordsChanged, error) {
	ev := RecordsChanged{IntegrationID: r.IntegrationID, Tool: r.Tool, Category: r.Category, Mode: "delta",
		Endpoints: map[string]OpCounts{}, From: from, To: to, Rounds: 1}
	if r.Full {
		ev.Mode = "full"
	}
	rows, err := tx.Query(ctx, `select endpoint, op, count(*)::int from kombo.changes
		where integration_id = $1
		  and (integration_id, txid, seq) > ($1, $2::text::xid8, $3)
		  and (integration_id, txid, seq) <= ($1, $4::text::xid8, $5)
		group by endpoint, op`, r.IntegrationID, from.TxID, from.Seq, to.TxID, to.Seq)
	if err != nil {
		return ev, err
	}
	var (
		endpoint, op string
		n            int
	)
	_, err = pgx.ForEachRow(rows, []any{&endpoint, &op, &n}, func() error {
		c := ev.Endpoints[endpoint]
		c.add(op, n)
		ev.Endpoints[endpoint] = c
		ev.Changes += n
		return nil
	})
	return ev, err
}

// reportRejected queues an attention event for the records of the integration first rejected
// since the last report.
func (s *Store) reportRejected(ctx context.Context, tx pgx.Tx, r ChangeReport, since *time.Time) ([]string, error) {
	var (
		count     int
		newest    *time.Time
		endpoints []string
	)
	if err := tx.QueryRow(ctx, `select count(*)::int, max(first_seen_at), coalesce(array_agg(distinct endpoint), '{}')
		from kombo.rejected_records where integration_id = $1 and first_seen_at > coalesce($2, '-infinity'::timestamptz)`,
		r.IntegrationID, since).Scan(&count, &newest, &endpoints); err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, nil
	}
	wake, err := enqueue(ctx, tx, event{Type: EventAttention, IntegrationID: r.IntegrationID, Data: Attention{
		IntegrationID: r.IntegrationID, Tool: r.Tool, Category: r.Category, Kind: "records_rejected",
		Message:   fmt.Sprintf("%d records could not be taken (see kombo.rejected_records)", count),
		Endpoints: endpoints, Count: count}})
	if err != nil {
		return nil, err
	}
	_, err = tx.Exec(ctx, `update kombo.change_reports set rejected_until = $2 where integration_id = $1`, r.IntegrationID, newest)
	return wake, err
}

func appendNew(list []string, more ...string) []string {
	for _, m := range more {
		found := false
		for _, l := range list {
			found = found || l == m
		}
		if !found {
			list = append(list, m)
		}
	}
	return list
}
