package webhookgw

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kombosync/kombosync/kombo"
)

// metrics are the gateway's own Prometheus series.
type metrics struct {
	webhooks *prometheus.CounterVec
	duration *prometheus.HistogramVec
	relay    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_webhooks_total",
			Help: "Webhook requests by event type and outcome (accepted, duplicate, ignored, unauthorized, malformed, too_large, method_not_allowed, unavailable).",
		}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kombosync_webhook_duration_seconds",
			Help:    "Time to answer a webhook request, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"outcome"}),
		relay: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_webhook_relay_total",
			Help: "Stored webhooks the relay signaled late, by outcome (signaled, failed).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.webhooks, m.duration, m.relay)
	}
	// Both outcomes exist from the start (at 0), so rate() and the alert rules see them.
	m.relay.WithLabelValues("signaled")
	m.relay.WithLabelValues("failed")
	return m
}

var knownTypes = map[string]bool{
	kombo.EventDataChanged: true, kombo.EventSyncFinished: true, kombo.EventRemoteEventReceived: true,
	kombo.EventIntegrationCreated: true, kombo.EventIntegrationDeleted: true,
	kombo.EventIntegrationStateChanged: true, kombo.EventConnectionFlowFailed: true,
}

func (m metrics) observe(typ, outcome string, d time.Duration) {
	switch {
	case typ == "":
		typ = "unknown" // rejected before parsing
	case !knownTypes[typ]:
		typ = "other" // bounded label values, whatever Kombo adds
	}
	m.webhooks.WithLabelValues(typ, outcome).Inc()
	m.duration.WithLabelValues(outcome).Observe(d.Seconds())
}

func (m metrics) relayed(signaled, failed int) {
	m.relay.WithLabelValues("signaled").Add(float64(signaled))
	m.relay.WithLabelValues("failed").Add(float64(failed))
}
