package store

import (
	"context"
	"fmt"
)

// ChangesChannel is the PostgreSQL notification channel kombosync notifies once per committed
// fetch round: LISTEN kombo_changes. The payload is a RoundNotice as JSON.
const ChangesChannel = "kombo_changes"

// RoundNotice is what a kombo_changes notification says: this integration's feed has changes up
// to (TxID, Seq). It is a wake-up, not the data: a reader that missed one loses nothing, since
// it reads kombo.changes from its own cursor (README "Reading the change feed").
type RoundNotice struct {
	IntegrationID string   `json:"integration_id"`
	Endpoints     []string `json:"endpoints"` // the endpoints the round fetched
	// Written counts the change rows the round wrote (created, updated, deleted, restored).
	Written int `json:"written"`
	// Round numbers the integration's rounds within its workflow run (it restarts at 1 after a
	// continue-as-new); with RunID it names the round.
	Round int    `json:"round"`
	RunID string `json:"run_id"`
	// TxID and Seq are the feed position of the integration's newest change row when the round
	// ended: read up to at least there.
	TxID string `json:"txid,omitempty"`
	Seq  int64  `json:"seq,omitempty"`
}

// NotifyRound sends one kombo_changes notification for a finished fetch round, with the
// integration's newest feed position, read in the same statement.
func (s *Store) NotifyRound(ctx context.Context, n RoundNotice) error {
	_, err := s.pool.Exec(ctx, `
		select pg_notify($1, json_build_object(
			'integration_id', $2::text, 'endpoints', $3::text[], 'written', $4::int, 'round', $5::int, 'run_id', $6::text,
			'txid', c.txid::text, 'seq', c.seq)::text)
		from (select null) as one
		left join lateral (
			select txid, seq from kombo.changes where integration_id = $2 order by txid desc, seq desc limit 1
		) c on true`,
		ChangesChannel, n.IntegrationID, n.Endpoints, n.Written, n.Round, n.RunID)
	if err != nil {
		return fmt.Errorf("notify %s of %s's round: %w", ChangesChannel, n.IntegrationID, err)
	}
	return nil
}
