package activities

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// Metrics are the worker's own Prometheus series. Labels are bounded: endpoints come from
// Kombo's catalogue (anything else is "other"); integration ids are never labels.
type Metrics struct {
	records   *prometheus.CounterVec
	sanitized *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	pages     *prometheus.CounterVec
	fetches   *prometheus.HistogramVec
	lag       *prometheus.HistogramVec
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	retention *prometheus.CounterVec
}

// NewMetrics registers the worker's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_records_total",
			Help: "Records written from Kombo pages, by endpoint and op (inserted, updated, unchanged, deleted, restored).",
		}, []string{"endpoint", "op"}),
		sanitized: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_records_sanitized_total",
			Help: "Records stored with text PostgreSQL cannot hold replaced (U+0000 removed, unpaired surrogates and bytes that are not UTF-8 made U+FFFD), by endpoint.",
		}, []string{"endpoint"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_records_rejected_total",
			Help: "Page elements that are not records kombosync can take (not an object, no id, no parsable changed_at), set aside in kombo.rejected_records, by endpoint.",
		}, []string{"endpoint"}),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_pages_total",
			Help: "Kombo pages committed to Postgres, by endpoint and kind (delta, full).",
		}, []string{"endpoint", "kind"}),
		fetches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kombosync_fetch_duration_seconds",
			Help:    "Time of one FetchEndpoint attempt, by endpoint, kind and outcome (succeeded, model_unavailable, or the error type).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}, []string{"endpoint", "kind", "outcome"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kombosync_sync_lag_seconds",
			Help:    "Freshness: from the first change the integration's workflow heard of (a webhook or a signal) to the commit of the delta that fetched it, by endpoint.",
			Buckets: []float64{0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300, 900, 3600},
		}, []string{"endpoint"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_kombo_requests_total",
			Help: "Requests to Kombo's API, by endpoint and outcome (ok, rate_limited, client_error, server_error, network_error).",
		}, []string{"endpoint", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kombosync_kombo_request_duration_seconds",
			Help:    "Time to Kombo's answer headers, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"endpoint"}),
		retention: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kombosync_retention_rows_total",
			Help: "Rows the retention run changed, by what (policy_rows, policy_changes, tombstoned, changes_redacted, webhooks_deleted).",
		}, []string{"what"}),
	}
	reg.MustRegister(m.records, m.sanitized, m.rejected, m.pages, m.fetches, m.lag, m.requests, m.latency, m.retention)
	return m
}

// page counts one committed page.
func (m *Metrics) page(ep kombo.Endpoint, kind string, c store.Counts) {
	if m == nil {
		return
	}
	name := ep.String()
	m.pages.WithLabelValues(name, kind).Inc()
	for _, op := range [...]struct {
		name string
		n    int
	}{{"inserted", c.Inserted}, {"updated", c.Updated}, {"unchanged", c.Unchanged}, {"deleted", c.Deleted}, {"restored", c.Restored}} {
		if op.n > 0 {
			m.records.WithLabelValues(name, op.name).Add(float64(op.n))
		}
	}
	// Added even when zero: the series exist from an endpoint's first page, so rate() and the
	// alert rules see a 0 rather than nothing.
	m.sanitized.WithLabelValues(name).Add(float64(c.Sanitized))
	m.rejected.WithLabelValues(name).Add(float64(c.Rejected))
}

// fetched observes one FetchEndpoint attempt, and the freshness of a succeeded delta.
func (m *Metrics) fetched(in FetchEndpointInput, started time.Time, outcome string, err error) {
	if m == nil {
		return
	}
	if err != nil {
		outcome = "error"
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() != "" {
			outcome = appErr.Type()
		}
	}
	now := time.Now()
	m.fetches.WithLabelValues(in.Endpoint.String(), in.Kind, outcome).Observe(now.Sub(started).Seconds())
	if err == nil && outcome == store.OutcomeSucceeded && in.Kind == store.KindDelta && in.ChangedSince != nil {
		m.lag.WithLabelValues(in.Endpoint.String()).Observe(now.Sub(*in.ChangedSince).Seconds())
	}
}

// Transport counts and times the requests base sends to Kombo.
func (m *Metrics) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := base.RoundTrip(r)
		ep := endpointLabel(r.URL.Path)
		m.latency.WithLabelValues(ep).Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(ep, requestOutcome(resp, err)).Inc()
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func requestOutcome(resp *http.Response, err error) string {
	switch {
	case err != nil:
		return "network_error"
	case resp.StatusCode == http.StatusTooManyRequests:
		return "rate_limited"
	case resp.StatusCode >= 500:
		return "server_error"
	case resp.StatusCode >= 400:
		return "client_error"
	default:
		return "ok"
	}
}

// endpointLabel is the catalogue endpoint a request path ends in ("/v1/hris/employees"), or
// "other".
func endpointLabel(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) >= 2 {
		if ep, ok := kombo.LookupEndpoint(parts[len(parts)-2] + "/" + parts[len(parts)-1]); ok {
			return ep.String()
		}
	}
	return "other"
}

// retained counts what a retention batch changed.
func (m *Metrics) retained(c store.RetentionCounts) {
	if m == nil {
		return
	}
	for _, x := range [...]struct {
		what string
		n    int64
	}{{"policy_rows", c.PolicyRows}, {"policy_changes", c.PolicyChanges}, {"tombstoned", c.Tombstoned},
		{"changes_redacted", c.ChangesRedacted}, {"webhooks_deleted", c.WebhooksDeleted},
		{"deliveries_deleted", c.DeliveriesDeleted}} {
		m.retention.WithLabelValues(x.what).Add(float64(x.n))
	}
}
