package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/localstack"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

// The worker's and the gateway's /metrics report what the stack did: records by endpoint and
// op, pages, Kombo requests by outcome, fetch durations, sync lag, webhooks by type and outcome,
// and the Temporal SDK's own series; no label carries an integration id. The worker's JSON log
// has one line per pass with the integration and workflow ids.
func TestMetricsAndLogsReportWhatTheStackDid(t *testing.T) {
	t.Parallel()
	port, err := localstack.FreePort()
	require.NoError(t, err)
	workerMetrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("METRICS_LISTEN_ADDR", fmt.Sprintf("127.0.0.1:%d", port), "LOG_FORMAT", "json")})
	const id = "personio:e2e-metrics"
	employees := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 30, Seed: 3, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	_, err = s.Emu.Mutate(id, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpUpdate}, komboemu.Mutation{Endpoint: employees, Op: komboemu.OpDelete})
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.WaitInSync(t, id, kombo.CategoryHRIS, 30*time.Second)

	var w metricFamilies
	teststack.Eventually(t, 10*time.Second, func() string {
		w = scrape(t, workerMetrics)
		if w.sum("kombosync_records_total", "endpoint", "hris/employees", "op", "deleted") < 1 {
			return "the deletion is not counted yet"
		}
		return ""
	})
	require.Equal(t, 30.0, w.sum("kombosync_records_total", "endpoint", "hris/employees", "op", "inserted"), "the backfill")
	require.GreaterOrEqual(t, w.sum("kombosync_records_total", "endpoint", "hris/employees", "op", "updated"), 1.0)
	require.GreaterOrEqual(t, w.sum("kombosync_pages_total", "endpoint", "hris/employees", "kind", "delta"), 2.0)
	require.GreaterOrEqual(t, w.sum("kombosync_kombo_requests_total", "endpoint", "hris/employees", "outcome", "ok"), 2.0)
	require.GreaterOrEqual(t, w.count("kombosync_kombo_request_duration_seconds", "endpoint", "hris/employees"), 2.0)
	require.GreaterOrEqual(t, w.count("kombosync_fetch_duration_seconds", "endpoint", "hris/employees", "kind", "delta", "outcome", "succeeded"), 2.0)
	require.GreaterOrEqual(t, w.count("kombosync_sync_lag_seconds", "endpoint", "hris/employees"), 2.0)
	require.Positive(t, w.count("temporal_workflow_task_execution_latency"), "the SDK's metrics, through tally")
	require.Positive(t, w.count("temporal_activity_execution_latency", "activity_type", "FetchEndpoint"))

	g := scrape(t, s.GatewayURL+"/metrics")
	require.GreaterOrEqual(t, g.sum("kombosync_webhooks_total", "type", "data-changed", "outcome", "accepted"), 1.0)
	require.GreaterOrEqual(t, g.sum("temporal_request", "operation", "SignalWithStartWorkflowExecution"), 1.0)

	for _, url := range []string{workerMetrics, s.GatewayURL + "/metrics"} {
		require.NotContains(t, get(t, url), "e2e-metrics", "%s: integration ids are not labels", url)
	}

	// The worker logs one JSON line per pass, with the integration and workflow ids.
	var pass map[string]any
	for line := range strings.Lines(s.Worker.Output()) {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "pass finished" && l["endpoint"] == "hris/employees" {
			pass = l
		}
	}
	require.NotNil(t, pass, "a pass finished line for hris/employees")
	require.Equal(t, id, pass["integration_id"])
	require.Equal(t, "kombo-integration:"+id, pass["WorkflowID"])
	require.Equal(t, "FetchEndpoint", pass["ActivityType"])
	require.Contains(t, pass, "fetched")
}

// metricFamilies is one scrape, by metric family name.
type metricFamilies map[string]*dto.MetricFamily

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func scrape(t *testing.T, url string) metricFamilies {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(get(t, url)))
	require.NoError(t, err)
	return fams
}

// matching are the series of the family whose labels include every name, value pair given.
func (m metricFamilies) matching(name string, labels ...string) []*dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
	for _, metric := range f.Metric {
		have := map[string]string{}
		for _, l := range metric.Label {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && have[labels[i]] == labels[i+1]
		}
		if ok {
			out = append(out, metric)
		}
	}
	return out
}

// sum adds the matching counters' or gauges' values.
func (m metricFamilies) sum(name string, labels ...string) float64 {
	var v float64
	for _, metric := range m.matching(name, labels...) {
		v += metric.GetCounter().GetValue() + metric.GetGauge().GetValue() + metric.GetUntyped().GetValue()
	}
	return v
}

// count adds the matching histograms' observation counts.
func (m metricFamilies) count(name string, labels ...string) float64 {
	var v float64
	for _, metric := range m.matching(name, labels...) {
		v += float64(metric.GetHistogram().GetSampleCount())
	}
	return v
}
