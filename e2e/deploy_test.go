package e2e

import (
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

// The alert rules (deploy/prometheus) and the dashboard (deploy/grafana) parse with Prometheus's
// own rule and PromQL parsers, and every metric they name is one the programs export: scraped
// from a worker and a gateway that have synced an integration and taken its webhooks.
func TestAlertRulesAndDashboardNameExportedMetrics(t *testing.T) {
	t.Parallel()
	promql := parser.NewParser(parser.Options{})
	var exprs []string
	groups, errs := rulefmt.ParseFile("../deploy/prometheus/kombosync-rules.yml", false, model.UTF8Validation, promql,
		slog.New(slog.DiscardHandler))
	require.Empty(t, errs, "the rules parse")
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "only alerting rules")
			require.NotEmpty(t, r.Annotations["runbook"], "%s says what to do", r.Alert)
			exprs = append(exprs, r.Expr)
			alerts++
		}
	}
	require.GreaterOrEqual(t, alerts, 6, "auth failures, sync lag, Kombo errors, unsignaled webhooks, sweeps, no worker")

	b, err := os.ReadFile("../deploy/grafana/kombosync.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	require.NotEmpty(t, dash.Panels)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, "panel %q queries something", p.Title)
		for _, target := range p.Targets {
			// Grafana's interval variable is not PromQL: put in what Grafana would.
			exprs = append(exprs, strings.ReplaceAll(target.Expr, "$__rate_interval", "5m"))
		}
	}

	named := map[string]bool{}
	for _, e := range exprs {
		expr, err := promql.ParseExpr(e)
		require.NoError(t, err, "%s", e)
		for _, matchers := range parser.ExtractSelectors(expr) {
			for _, m := range matchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					named[m.Value] = true
				}
			}
		}
	}

	// A stack that has done the work every series stands for.
	s := newStack(t, teststack.Options{WorkerMetrics: true})
	const id = "personio:e2e-deploy"
	s.terminateAtEnd(t, id)
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 30, Seed: 4, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	_, err = s.Emu.MutateRandom(id, 5)
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	exported := map[string]bool{}
	for _, url := range []string{s.MetricsURL + "/metrics", s.GatewayURL + "/metrics"} {
		for name, f := range scrape(t, url) {
			exported[name] = true
			if t := f.GetType().String(); t == "HISTOGRAM" || t == "SUMMARY" {
				exported[name+"_bucket"], exported[name+"_count"], exported[name+"_sum"] = true, true, true
			}
		}
	}
	var missing []string
	for name := range named {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	require.Empty(t, missing, "metrics the rules or the dashboard name that no program exports")
	require.GreaterOrEqual(t, len(named), 10)
}
