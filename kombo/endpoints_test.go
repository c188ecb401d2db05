package kombo_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
)

func ep(cat kombo.Category, name string) kombo.Endpoint {
	return kombo.Endpoint{Category: cat, Name: name}
}

func TestEndpointNames(t *testing.T) {
	e := ep(kombo.CategoryHRIS, "time-off-balances")
	require.Equal(t, "hris/time-off-balances", e.String())
	require.Equal(t, "/hris/time-off-balances", e.URLPath())
	require.Equal(t, "hris_time_off_balances", e.Relation())
}

func TestParseEndpoints(t *testing.T) {
	got, err := kombo.ParseEndpoints("ats/jobs, HRIS/employees,ats/jobs,")
	require.NoError(t, err)
	require.Equal(t, []kombo.Endpoint{ep(kombo.CategoryHRIS, "employees"), ep(kombo.CategoryATS, "jobs")}, got)

	all, err := kombo.ParseEndpoints("hris")
	require.NoError(t, err)
	require.Contains(t, all, ep(kombo.CategoryHRIS, "timesheets"))
	require.NotContains(t, all, ep(kombo.CategoryATS, "jobs"))

	_, err = kombo.ParseEndpoints("hris/teams")
	require.ErrorContains(t, err, `unknown endpoint "hris/teams"`, "teams is the deprecated alias of groups")
}

func TestDirtiedEndpointsFollowKombosTable(t *testing.T) {
	all := kombo.DefaultEndpoints()
	got, known := kombo.DirtiedEndpoints("hris_absence_types", all)
	require.True(t, known)
	require.Equal(t, []kombo.Endpoint{
		ep(kombo.CategoryHRIS, "absences"), ep(kombo.CategoryHRIS, "absence-types"), ep(kombo.CategoryHRIS, "time-off-balances"),
	}, got)

	got, known = kombo.DirtiedEndpoints("hris_teams", all)
	require.True(t, known)
	require.Equal(t, []kombo.Endpoint{ep(kombo.CategoryHRIS, "employees"), ep(kombo.CategoryHRIS, "groups"),
		ep(kombo.CategoryHRIS, "staffing-entities")}, got, "staffing entities nest their groups (beyond Kombo's table)")

	got, _ = kombo.DirtiedEndpoints("ats_jobs", all)
	require.Contains(t, got, ep(kombo.CategoryATS, "applications"), "an application embeds its job: a renamed job changes it")

	got, known = kombo.DirtiedEndpoints("ats_join_jobs_hiring_team", all)
	require.True(t, known, "ats_join_jobs_* is a pattern")
	require.Equal(t, []kombo.Endpoint{ep(kombo.CategoryATS, "jobs")}, got)
}

func TestDirtiedEndpointsOnlyAmongConfigured(t *testing.T) {
	configured := []kombo.Endpoint{ep(kombo.CategoryHRIS, "absences")}
	got, known := kombo.DirtiedEndpoints("hris_employees", configured)
	require.True(t, known)
	require.Empty(t, got, "a known model whose endpoints are not configured dirties nothing")
}

func TestUnknownModelDirtiesItsWholeCategory(t *testing.T) {
	configured := []kombo.Endpoint{ep(kombo.CategoryHRIS, "employees"), ep(kombo.CategoryHRIS, "groups"), ep(kombo.CategoryATS, "jobs")}
	got, known := kombo.DirtiedEndpoints("hris_brand_new_model", configured)
	require.False(t, known)
	require.Equal(t, configured[:2], got)

	got, known = kombo.DirtiedEndpoints("mystery", configured)
	require.False(t, known)
	require.Equal(t, configured, got, "no category prefix: everything configured")
}

// Every model that Kombo's data-changed webhook may name (the enum of its OpenAPI document) in a
// category kombosync syncs is in the model table, so none dirties a whole category by surprise.
// When Kombo adds a model, refreshing testdata/openapi.json makes this test name it.
func TestModelTableKnowsEveryModelOfKombosDataChangedEnum(t *testing.T) {
	raw, err := os.ReadFile("testdata/openapi.json")
	require.NoError(t, err)
	var doc struct {
		Components struct {
			Schemas struct {
				DataChanged struct {
					Properties struct {
						Data struct {
							Properties struct {
								ChangedModels struct {
									Items struct {
										Properties struct {
											Name struct {
												Enum []string `json:"enum"`
											} `json:"name"`
										} `json:"properties"`
									} `json:"items"`
								} `json:"changed_models"`
							} `json:"properties"`
						} `json:"data"`
					} `json:"properties"`
				} `json:"DataChangedWebhookPayload"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	models := doc.Components.Schemas.DataChanged.Properties.Data.Properties.ChangedModels.Items.Properties.Name.Enum
	require.NotEmpty(t, models)
	synced := 0
	for _, m := range models {
		prefix, _, _ := strings.Cut(m, "_")
		if _, ok := kombo.ParseCategory(prefix); !ok {
			continue // LMS and other categories kombosync does not sync
		}
		synced++
		dirtied, known := kombo.DirtiedEndpoints(m, kombo.DefaultEndpoints())
		require.True(t, known, "model %s is not in kombo's model table", m)
		require.NotEmpty(t, dirtied, m)
	}
	require.Greater(t, synced, 30)
	dirtied, _ := kombo.DirtiedEndpoints("hris_join_staffing_entities_groups", kombo.DefaultEndpoints())
	require.Equal(t, []kombo.Endpoint{ep(kombo.CategoryHRIS, "staffing-entities")}, dirtied)
}
