package kombo

import (
	"fmt"
	"slices"
	"strings"
)

// Category is Kombo's integration category, as webhooks spell it (HRIS, ATS, …).
type Category string

const (
	CategoryHRIS Category = "HRIS"
	CategoryATS  Category = "ATS"
)

// Path is the category's URL segment ("hris").
func (c Category) Path() string { return strings.ToLower(string(c)) }

// ParseCategory accepts any case ("hris", "HRIS").
func ParseCategory(s string) (Category, bool) {
	switch Category(strings.ToUpper(strings.TrimSpace(s))) {
	case CategoryHRIS:
		return CategoryHRIS, true
	case CategoryATS:
		return CategoryATS, true
	}
	return "", false
}

// Endpoint names one cursor-paginated list endpoint, e.g. {HRIS, "time-off-balances"}.
type Endpoint struct {
	Category Category `json:"category"`
	Name     string   `json:"name"`
}

// String is the "hris/employees" form used in config, logs and the UI.
func (e Endpoint) String() string { return e.Category.Path() + "/" + e.Name }

// URLPath is the path below the API base, e.g. "/hris/employees".
func (e Endpoint) URLPath() string { return "/" + e.String() }

// Relation is the Postgres relation holding the endpoint's records, e.g. "hris_time_off_balances"
// (schema kombo), per docs/ARCHITECTURE.md section 4.
func (e Endpoint) Relation() string {
	return e.Category.Path() + "_" + strings.ReplaceAll(e.Name, "-", "_")
}

type catalogueEntry struct {
	Endpoint
	models []string // a trailing * matches any suffix
}

func (c catalogueEntry) dirtiedBy(model string) bool {
	for _, m := range c.models {
		if m == model || (strings.HasSuffix(m, "*") && strings.HasPrefix(model, strings.TrimSuffix(m, "*"))) {
			return true
		}
	}
	return false
}

// catalogue: every cursor-paginated list endpoint in Kombo's OpenAPI document that
// supports updated_after and include_deleted, with the models whose change dirties it
// (API-NOTES.md, "Which endpoints a changed model dirties"), extended by the nesting Kombo's
// table leaves out: updated_after reports a record whose nested data changed (an application
// whose job was renamed), but data-changed names only the changed model (ats_jobs), so every
// model an endpoint embeds, directly or through deep nesting, dirties it. Fetching an endpoint
// too often costs a request; missing one leaves stale rows until the weekly reconciliation.
// komboemu's TestModelMappingCoversEveryNesting checks the table against the nesting. /hris/teams is left out: it is the
// deprecated alias of /hris/groups. /hris/skills and /hris/employee-skill-assignments are left
// out: they have no cursor, updated_after or include_deleted, so they cannot be synced this way.
var catalogue = []catalogueEntry{
	{Endpoint{CategoryHRIS, "employees"}, []string{"hris_employees", "hris_employments", "hris_join_employees_teams", "hris_legal_entities", "hris_locations", "hris_teams", "hris_time_off_balances"}},
	{Endpoint{CategoryHRIS, "employments"}, []string{"hris_employments"}},
	{Endpoint{CategoryHRIS, "groups"}, []string{"hris_teams"}},
	{Endpoint{CategoryHRIS, "absences"}, []string{"hris_absences", "hris_absence_types"}},
	{Endpoint{CategoryHRIS, "absence-types"}, []string{"hris_absence_types"}},
	{Endpoint{CategoryHRIS, "time-off-balances"}, []string{"hris_time_off_balances", "hris_absence_types"}},
	{Endpoint{CategoryHRIS, "timesheets"}, []string{"hris_timesheets"}},
	{Endpoint{CategoryHRIS, "legal-entities"}, []string{"hris_legal_entities"}},
	{Endpoint{CategoryHRIS, "locations"}, []string{"hris_locations"}},
	{Endpoint{CategoryHRIS, "employee-document-categories"}, []string{"hris_employee_document_categories"}},
	{Endpoint{CategoryHRIS, "performance-review-cycles"}, []string{"hris_performance_review_cycles"}},
	{Endpoint{CategoryHRIS, "performance-reviews"}, []string{"hris_performance_reviews", "hris_performance_review_cycles", "hris_employees"}},
	{Endpoint{CategoryHRIS, "staffing-entities"}, []string{"hris_staffing_entities", "hris_legal_entities", "hris_locations", "hris_teams",
		"hris_join_staffing_entities_locations", "hris_join_staffing_entities_legal_entities", "hris_join_staffing_entities_groups"}},
	{Endpoint{CategoryATS, "jobs"}, []string{"ats_jobs", "ats_job_postings", "ats_screening_questions", "ats_application_stages", "ats_join_jobs_*", "ats_join_user_job_role_assignments", "ats_users"}},
	{Endpoint{CategoryATS, "applications"}, []string{"ats_applications", "ats_candidates", "ats_application_stages", "ats_interviews", "ats_offers", "ats_jobs", "ats_tags", "ats_join_candidates_tags"}},
	{Endpoint{CategoryATS, "candidates"}, []string{"ats_candidates", "ats_applications", "ats_tags", "ats_join_candidates_tags", "ats_application_stages", "ats_jobs", "ats_interviews", "ats_offers"}},
	{Endpoint{CategoryATS, "application-stages"}, []string{"ats_application_stages"}},
	{Endpoint{CategoryATS, "users"}, []string{"ats_users", "ats_roles", "ats_join_users_roles"}},
	{Endpoint{CategoryATS, "tags"}, []string{"ats_tags"}},
	{Endpoint{CategoryATS, "interviews"}, []string{"ats_interviews", "ats_join_interviews_users", "ats_users", "ats_applications", "ats_candidates", "ats_tags", "ats_join_candidates_tags", "ats_application_stages", "ats_jobs", "ats_offers"}},
	{Endpoint{CategoryATS, "offers"}, []string{"ats_offers", "ats_applications", "ats_candidates", "ats_tags", "ats_join_candidates_tags", "ats_application_stages", "ats_jobs", "ats_interviews"}},
	{Endpoint{CategoryATS, "rejection-reasons"}, []string{"ats_rejection_reasons"}},
	{Endpoint{CategoryATS, "roles"}, []string{"ats_roles", "ats_join_users_roles"}},
}

// Model is the Kombo model whose records the endpoint lists ("hris_employees"; groups list
// "hris_teams"), the name data-changed uses when such a record changes.
func (e Endpoint) Model() string {
	for _, c := range catalogue {
		if c.Endpoint == e {
			return c.models[0]
		}
	}
	return e.Category.Path() + "_" + strings.ReplaceAll(e.Name, "-", "_")
}

// DefaultEndpoints is every endpoint the client knows, in catalogue order.
func DefaultEndpoints() []Endpoint {
	out := make([]Endpoint, len(catalogue))
	for i, c := range catalogue {
		out[i] = c.Endpoint
	}
	return out
}

// LookupEndpoint finds a known endpoint by its "hris/employees" form.
func LookupEndpoint(s string) (Endpoint, bool) {
	cat, name, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Endpoint{}, false
	}
	c, ok := ParseCategory(cat)
	if !ok {
		return Endpoint{}, false
	}
	e := Endpoint{c, strings.ToLower(name)}
	if !slices.ContainsFunc(catalogue, func(c catalogueEntry) bool { return c.Endpoint == e }) {
		return Endpoint{}, false
	}
	return e, true
}

// ParseEndpoints reads a comma-separated list of "category/endpoint" items; a bare category
// stands for all of its endpoints. Duplicates are dropped; order follows the catalogue.
func ParseEndpoints(s string) ([]Endpoint, error) {
	want := map[Endpoint]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if c, ok := ParseCategory(item); ok {
			for _, e := range DefaultEndpoints() {
				if e.Category == c {
					want[e] = true
				}
			}
			continue
		}
		e, ok := LookupEndpoint(item)
		if !ok {
			return nil, fmt.Errorf("unknown endpoint %q (want category/endpoint, e.g. hris/employees)", item)
		}
		want[e] = true
	}
	var out []Endpoint
	for _, e := range DefaultEndpoints() {
		if want[e] {
			out = append(out, e)
		}
	}
	return out, nil
}

// DirtiedEndpoints returns the endpoints among configured that a change of the named model
// dirties, and whether the model is known. An unknown model dirties every configured endpoint of
// its category (the safe default); its category is read from the name's prefix ("ats_…"), and a
// name without a known prefix dirties every configured endpoint.
func DirtiedEndpoints(model string, configured []Endpoint) (dirtied []Endpoint, known bool) {
	for _, c := range catalogue {
		if c.dirtiedBy(model) {
			known = true
			if slices.Contains(configured, c.Endpoint) {
				dirtied = append(dirtied, c.Endpoint)
			}
		}
	}
	if known {
		return dirtied, true
	}
	prefix, _, _ := strings.Cut(model, "_")
	cat, catKnown := ParseCategory(prefix)
	for _, e := range configured {
		if !catKnown || e.Category == cat {
			dirtied = append(dirtied, e)
		}
	}
	return dirtied, false
}
