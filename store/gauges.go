package store

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Fleet-wide figures read from the database when Prometheus scrapes: every worker (and every
// gateway) exports the same values, so alert rules take max() over instances. A scrape that
// cannot read them in two seconds leaves them out (the rules' absent() cases), never fails.
var (
	integrationsDesc = prometheus.NewDesc("kombosync_integrations",
		"Integrations kombosync knows, not deleted, by the sync state their workflow last recorded.", []string{"sync_state"}, nil)
	needOperatorDesc = prometheus.NewDesc("kombosync_integrations_needing_operator",
		"Integrations waiting for an operator (a refused sweep: starter integration reconcile --confirm-sweep).", nil, nil)
	unsignaledDesc = prometheus.NewDesc("kombosync_webhooks_unsignaled",
		"Stored webhooks not yet signaled to their workflow (the relay retries them).", nil, nil)
	subscriptionsDesc = prometheus.NewDesc("kombosync_outbound_subscriptions",
		"Outbound webhook subscriptions by state (active, paused, disabled).", []string{"state"}, nil)
	failingDesc = prometheus.NewDesc("kombosync_outbound_subscriptions_failing",
		"Active outbound webhook subscriptions whose last delivery attempts failed (backing off).", nil, nil)
	retentionDesc = prometheus.NewDesc("kombosync_retention_last_finished_timestamp_seconds",
		"When the last retention run finished (Unix seconds; 0 when none has).", nil, nil)
)

// IntegrationGauges reports kombosync_integrations{sync_state},
// kombosync_integrations_needing_operator and kombosync_retention_last_finished_timestamp_seconds:
// the worker's.
func (s *Store) IntegrationGauges() prometheus.Collector {
	return gauges{descs: []*prometheus.Desc{integrationsDesc, needOperatorDesc, retentionDesc, subscriptionsDesc, failingDesc}, collect: func(ctx context.Context, ch chan<- prometheus.Metric) error {
		rows, err := s.pool.Query(ctx, `select coalesce(sync_state, 'unknown'), count(*) from kombo.integrations
			where deleted_at is null group by 1`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var state string
			var n float64
			if err := rows.Scan(&state, &n); err != nil {
				return err
			}
			ch <- prometheus.MustNewConstMetric(integrationsDesc, prometheus.GaugeValue, n, state)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var n float64
		if err := s.pool.QueryRow(ctx, `select count(*) from kombo.integrations where deleted_at is null and attention is not null`).Scan(&n); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(needOperatorDesc, prometheus.GaugeValue, n)
		var last float64
		if err := s.pool.QueryRow(ctx, `select coalesce(extract(epoch from max(finished_at)), 0)::float8 from kombo.retention_runs`).Scan(&last); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(retentionDesc, prometheus.GaugeValue, last)
		var active, paused, disabled, failing float64
		if err := s.pool.QueryRow(ctx, `select count(*) filter (where state = 'active'), count(*) filter (where state = 'paused'),
			count(*) filter (where state = 'disabled'), count(*) filter (where state = 'active' and failures > 0)
			from kombo.subscriptions`).Scan(&active, &paused, &disabled, &failing); err != nil {
			return err
		}
		for state, n := range map[string]float64{SubscriptionActive: active, SubscriptionPaused: paused, SubscriptionDisabled: disabled} {
			ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, n, state)
		}
		ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, failing)
		return nil
	}}
}

// WebhookGauges reports kombosync_webhooks_unsignaled: the gateway's.
func (s *Store) WebhookGauges() prometheus.Collector {
	return gauges{descs: []*prometheus.Desc{unsignaledDesc}, collect: func(ctx context.Context, ch chan<- prometheus.Metric) error {
		var n float64
		// The partial index webhook_events_unsignaled holds exactly these rows.
		if err := s.pool.QueryRow(ctx, `select count(*) from kombo.webhook_events where signaled_at is null`).Scan(&n); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(unsignaledDesc, prometheus.GaugeValue, n)
		return nil
	}}
}

type gauges struct {
	descs   []*prometheus.Desc
	collect func(context.Context, chan<- prometheus.Metric) error
}

func (g gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range g.descs {
		ch <- d
	}
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = g.collect(ctx, ch) // what was read before an error is reported; the rest is absent
}
