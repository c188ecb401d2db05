package komboemu

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// generator makes deterministic data: the same seed and integration id give the same records.
type generator struct{ rng *rand.Rand }

func newGenerator(seed uint64, integrationID string) *generator {
	h := fnv.New64a()
	h.Write([]byte(integrationID))
	return &generator{rng: rand.New(rand.NewPCG(seed, h.Sum64()))}
}

const idAlphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// id is a 24-character Kombo-style id.
func (g *generator) id() string {
	var b [24]byte
	for i := range b {
		b[i] = idAlphabet[g.rng.IntN(len(idAlphabet))]
	}
	return string(b[:])
}

func (g *generator) remoteID() *string {
	s := fmt.Sprintf("%d", 100000+g.rng.IntN(900000))
	return &s
}

func (g *generator) pick(xs ...string) string { return xs[g.rng.IntN(len(xs))] }

// orNull is v, or JSON null one time in five.
func (g *generator) orNull(v string) any {
	if g.chance(0.2) {
		return nil
	}
	return v
}
func (g *generator) intn(n int) int        { return g.rng.IntN(n) }
func (g *generator) chance(p float64) bool { return g.rng.Float64() < p }

// day is a date-only HR field: midnight UTC, up to maxDays after 2020-01-01.
func (g *generator) day(maxDays int) string { return g.dayFrom(2020, maxDays) }

// dayFrom is a date-only HR field up to maxDays after January 1 of year.
func (g *generator) dayFrom(year, maxDays int) string {
	return kombo.FormatTime(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.rng.IntN(maxDays)))
}

var (
	firstNames = []string{"Ada", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kwame", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quinn", "Rosa", "Sven", "Tala", "Uma", "Viktor", "Wen", "Yusuf", "Zoë"}
	lastNames  = []string{"Müller", "Schmidt", "Okafor", "Nakamura", "García", "Rossi", "Novak", "Larsen", "Dubois", "Kowalski", "Silva", "Haddad", "Brown", "Chen", "Singh", "Andersen"}
	jobTitles  = []string{"Software Engineer", "Product Manager", "Designer", "Recruiter", "Accountant", "Sales Manager", "Support Specialist", "Data Analyst", "HR Business Partner", "Office Manager"}
	cities     = []struct{ city, country string }{{"Berlin", "DE"}, {"Munich", "DE"}, {"Paris", "FR"}, {"Amsterdam", "NL"}, {"London", "GB"}, {"New York", "US"}, {"Vienna", "AT"}}
	groupNames = []string{"Engineering", "Sales", "Marketing", "Finance", "People", "Support", "Operations", "Legal", "Platform", "Growth"}
)

func (g *generator) address() map[string]any {
	c := cities[g.intn(len(cities))]
	street := fmt.Sprintf("%s %d", g.pick("Hauptstraße", "Main Street", "Rue de la Paix", "Keizersgracht", "Ringstraße"), 1+g.intn(200))
	zip := fmt.Sprintf("%05d", g.intn(99999))
	return map[string]any{"city": c.city, "country": c.country, "raw": street + ", " + zip + " " + c.city,
		"state": nil, "street_1": street, "street_2": nil, "zip_code": zip}
}

func (g *generator) person() (first, last string) {
	return firstNames[g.intn(len(firstNames))], lastNames[g.intn(len(lastNames))]
}

func email(first, last, domain string, n uint64) string {
	clean := strings.NewReplacer("é", "e", "ë", "e", "ü", "ue", "ö", "oe", "ä", "ae", "í", "i", " ", "")
	return strings.ToLower(clean.Replace(first)+"."+clean.Replace(last)) + fmt.Sprintf("%d@%s", n, domain)
}

// pickIDs returns up to n distinct live ids of endpoint, chosen by g.
func (g *generator) pickIDs(i *integration, endpoint string, n int) []string {
	t := i.table(endpoint)
	ids := []string{}
	if t == nil || len(t.records) == 0 {
		return ids
	}
	for range n * 3 {
		r := t.records[g.intn(len(t.records))]
		if r.remoteDeletedAt == nil && !containsStr(ids, r.id) {
			ids = append(ids, r.id)
		}
		if len(ids) == n {
			break
		}
	}
	return ids
}

// cycleID picks the parent of the next child record of childEndpoint in turn, so that seeding
// gives every parent a child before any gets a second (every employee an employment).
func (g *generator) cycleID(i *integration, parentEndpoint, childEndpoint string) any {
	parents := i.table(parentEndpoint).records
	if len(parents) == 0 {
		return nil
	}
	return parents[len(i.table(childEndpoint).records)%len(parents)].id
}

func (g *generator) pickID(i *integration, endpoint string) any {
	ids := g.pickIDs(i, endpoint, 1)
	if len(ids) == 0 {
		return nil
	}
	return ids[0]
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func strOf(v any) string { s, _ := v.(string); return s }

func idsOf(v any) []string { s, _ := v.([]string); return s }

// spec is how the emulator makes, nests and changes the records of one endpoint.
type spec struct {
	endpoint kombo.Endpoint
	// gen fills the own fields of a new record; it may refer to records of endpoints created
	// before it (seeding follows specs order).
	gen func(g *generator, i *integration, r *record)
	// update changes some own fields, as the remote system would.
	update func(g *generator, i *integration, r *record)
	// nest adds the nested objects to a rendered record.
	nest func(i *integration, r *record, out map[string]any)
	// perMain is how many records seeding makes per record of the category's main endpoint
	// (employees, candidates); min is the least it makes.
	perMain float64
	min     int
	// filters this endpoint implements (besides ids and remote_ids), as field matchers.
	filters map[string]func(r *record, values []string) bool
}

func hris(name string) kombo.Endpoint {
	return kombo.Endpoint{Category: kombo.CategoryHRIS, Name: name}
}
func ats(name string) kombo.Endpoint { return kombo.Endpoint{Category: kombo.CategoryATS, Name: name} }

func specByName(cat kombo.Category, name string) *spec {
	for i := range specs {
		if specs[i].endpoint.Category == cat && specs[i].endpoint.Name == name {
			return &specs[i]
		}
	}
	return nil
}

func fieldIn(field string) func(r *record, values []string) bool {
	return func(r *record, values []string) bool { return containsStr(values, strOf(r.fields[field])) }
}

var noRemoteData = map[string]any{"remote_data": nil}

func withBase(fields map[string]any, extra map[string]any) map[string]any {
	for k, v := range extra {
		fields[k] = v
	}
	return fields
}

// specs in seeding order: an endpoint's records may refer only to endpoints above it. It is
// filled in init because rendering a record looks specs up again (nested records).
var specs []spec

func init() { specs = allSpecs() }

func allSpecs() []spec {
	return []spec{
		// ---- HRIS ----
		{endpoint: hris("legal-entities"), min: 2, perMain: 0.002,
			gen: func(g *generator, _ *integration, r *record) {
				r.fields = withBase(map[string]any{"name": g.pick("Acme", "Globex", "Initech", "Umbrella") + " " + g.pick("GmbH", "SAS", "Ltd", "Inc"), "address": g.address()}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) { r.fields["address"] = g.address() },
		},
		{endpoint: hris("locations"), min: 3, perMain: 0.005,
			gen: func(g *generator, _ *integration, r *record) {
				a := g.address()
				r.fields = withBase(map[string]any{"name": strOf(a["city"]) + " office", "address": a, "type": g.pick("OFFICE", "REMOTE", "WAREHOUSE")}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) { r.fields["address"] = g.address() },
		},
		{endpoint: hris("groups"), min: 4, perMain: 0.05,
			gen: func(g *generator, i *integration, r *record) {
				r.fields = withBase(map[string]any{"name": g.pick(groupNames...) + " " + g.pick("North", "South", "Core", "Labs", "EMEA", "US"),
					"type": g.pick("DEPARTMENT", "TEAM", "COST_CENTER"), "parent_id": nil}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["name"] = g.pick(groupNames...) + " " + g.pick("Renamed", "New", "2.0")
			},
		},
		{endpoint: hris("absence-types"), min: 4,
			gen: func(g *generator, _ *integration, r *record) {
				r.fields = withBase(map[string]any{"name": g.pick("Vacation", "Sick leave", "Parental leave", "Home office", "Training"),
					"unit": g.pick("DAYS", "HOURS"), "half_days_supported": g.chance(0.5), "exact_times_supported": g.chance(0.3)}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) { r.fields["half_days_supported"] = g.chance(0.5) },
		},
		{endpoint: hris("employees"), min: 1, perMain: 1,
			gen: genEmployee,
			update: func(g *generator, i *integration, r *record) {
				switch g.intn(4) {
				case 0:
					r.fields["job_title"] = g.pick(jobTitles...)
				case 1:
					r.fields["employment_status"] = g.pick("ACTIVE", "LEAVE", "INACTIVE", "PENDING")
				case 2:
					r.fields["mobile_phone_number"] = fmt.Sprintf("+49 151 %07d", g.intn(9999999))
				default:
					r.fields["home_address"] = g.address()
				}
			},
			nest: nestEmployee,
			filters: map[string]func(*record, []string) bool{
				"employment_statuses": fieldIn("employment_status"),
				"employment_status":   fieldIn("employment_status"),
				"work_emails":         fieldIn("work_email"),
				"group_ids": func(r *record, values []string) bool {
					for _, id := range idsOf(r.fields["_group_ids"]) {
						if containsStr(values, id) {
							return true
						}
					}
					return false
				},
				"legal_entity_ids":  fieldIn("legal_entity_id"),
				"work_location_ids": fieldIn("work_location_id"),
			},
		},
		{endpoint: hris("employments"), perMain: 1.2,
			gen: func(g *generator, i *integration, r *record) {
				r.fields = withBase(map[string]any{"employee_id": g.cycleID(i, "employees", "employments")}, employmentFields(g))
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["pay_rate"] = float64(30000 + g.intn(90000))
				r.fields["effective_date"] = g.day(2000)
			},
		},
		{endpoint: hris("time-off-balances"), perMain: 1,
			gen: func(g *generator, i *integration, r *record) {
				unit := g.pick("DAYS", "HOURS")
				r.fields = withBase(map[string]any{"employee_id": g.cycleID(i, "employees", "time-off-balances"), "type_id": g.pickID(i, "absence-types"),
					"balance": float64(g.intn(300)) / 10, "balance_unit": unit, "used": float64(g.intn(100)) / 10, "used_unit": unit}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["balance"] = float64(g.intn(300)) / 10
				r.fields["used"] = float64(g.intn(100)) / 10
			},
			nest: func(i *integration, r *record, out map[string]any) {
				// The schema requires the type object: a type deleted meanwhile is still shown.
				if t := i.get("absence-types", strOf(r.fields["type_id"])); t != nil {
					out["type"] = i.object("absence-types", t)
				} else {
					out["type"] = deletedAbsenceType(strOf(r.fields["type_id"]))
				}
			},
		},
		{endpoint: hris("absences"), perMain: 0.25,
			gen: func(g *generator, i *integration, r *record) {
				start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.intn(500))
				days := 1 + g.intn(10)
				r.fields = withBase(map[string]any{
					"employee_id": g.pickID(i, "employees"), "approver_id": g.pickID(i, "employees"),
					"start_date": start.Format("2006-01-02"), "end_date": start.AddDate(0, 0, days-1).Format("2006-01-02"),
					"start_half_day": false, "end_half_day": g.chance(0.2), "start_time": nil, "end_time": nil,
					"amount": float64(days), "unit": "DAYS", "status": g.pick("REQUESTED", "APPROVED", "DECLINED", "CANCELLED"),
					"employee_note": nil, "type_id": g.pickID(i, "absence-types"),
					"remote_created_at": kombo.FormatTime(start.AddDate(0, 0, -14)), "remote_updated_at": nil,
				}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["status"] = g.pick("APPROVED", "DECLINED", "CANCELLED")
			},
			nest: func(i *integration, r *record, out map[string]any) {
				out["type"] = i.one("absence-types", strOf(r.fields["type_id"]))
			},
		},
		{endpoint: hris("timesheets"), perMain: 0.25,
			gen: func(g *generator, i *integration, r *record) {
				start := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC).AddDate(0, 0, g.intn(400)).Add(time.Duration(g.intn(120)) * time.Minute)
				end := start.Add(time.Duration(6+g.intn(4)) * time.Hour)
				r.fields = withBase(map[string]any{
					"employee_id": g.pickID(i, "employees"), "started_at": kombo.FormatTime(start), "ended_at": kombo.FormatTime(end),
					"timezone": g.pick("+01:00", "+02:00", "-05:00", "+00:00"), "payable_hours": end.Sub(start).Hours() - 0.5, "unpaid_break_minutes": 30.0,
					"breaks":          []any{map[string]any{"started_at": kombo.FormatTime(start.Add(3 * time.Hour)), "ended_at": kombo.FormatTime(start.Add(3*time.Hour + 30*time.Minute)), "paid": false}},
					"approval_status": g.pick("APPROVED", "PENDING"), "approved_at": nil, "comment": nil,
					"custom_fields": map[string]any{}, "integration_fields": []any{},
				}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["approval_status"] = g.pick("APPROVED", "REJECTED")
				r.fields["comment"] = g.pick("checked", "please fix", "ok")
			},
		},
		{endpoint: hris("employee-document-categories"), min: 3,
			gen: func(g *generator, _ *integration, r *record) {
				r.fields = withBase(map[string]any{"name": g.pick("Contracts", "Payslips", "Certificates", "Reviews")}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["name"] = g.pick("Contracts", "Documents", "Other")
			},
		},
		{endpoint: hris("performance-review-cycles"), min: 2,
			gen: func(g *generator, _ *integration, r *record) {
				r.fields = withBase(map[string]any{"name": fmt.Sprintf("Review %d H%d", 2024+g.intn(3), 1+g.intn(2)), "review_period_start_date": g.day(1500)}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) { r.fields["review_period_start_date"] = g.day(1500) },
		},
		{endpoint: hris("performance-reviews"), perMain: 0.1,
			gen: func(g *generator, i *integration, r *record) {
				r.fields = withBase(map[string]any{
					"type": g.pick("MANAGER", "PEER", "SELF", "DIRECT_REPORT"), "summary_comment": g.pick("Strong year", "Solid", "Needs support"),
					"summary_rating": nil, "_reviewee_id": g.pickID(i, "employees"), "_reviewer_id": g.pickID(i, "employees"),
					"_cycle_id": g.pickID(i, "performance-review-cycles"),
				}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["summary_comment"] = g.pick("Exceeded expectations", "Met expectations")
			},
			nest: func(i *integration, r *record, out map[string]any) {
				// People are shown even when deleted since: the schema carries their remote_deleted_at.
				person := func(id string) any {
					if e := i.get("employees", id); e != nil {
						return pick(i.flat(e), "id", "remote_id", "first_name", "last_name", "display_full_name", "work_email", "remote_deleted_at")
					}
					return nil
				}
				out["reviewee"] = person(strOf(r.fields["_reviewee_id"]))
				if out["reviewee"] == nil {
					id := strOf(r.fields["_reviewee_id"])
					out["reviewee"] = map[string]any{"id": id, "remote_id": id, "first_name": nil, "last_name": nil, "display_full_name": nil, "work_email": nil, "remote_deleted_at": nil}
				}
				out["reviewer"] = person(strOf(r.fields["_reviewer_id"]))
				out["review_cycle"] = i.one("performance-review-cycles", strOf(r.fields["_cycle_id"]))
			},
		},
		{endpoint: hris("staffing-entities"), perMain: 0.05, min: 1,
			gen: func(g *generator, i *integration, r *record) {
				r.fields = withBase(map[string]any{
					"name": g.pick(jobTitles...) + " position", "model_type": g.pick("JOB", "POSITION", "REQUISITION"), "description": nil,
					"status":             g.pick("OPEN_LIMITED", "OPEN_UNLIMITED", "PENDING", "FROZEN", "FILLED"),
					"employment_types":   []any{map[string]any{"remote_label": "Full-time", "unified_type": "FULL_TIME"}},
					"number_of_openings": float64(1 + g.intn(3)), "parent_id": nil, "remote_url": nil,
					"remote_created_at": g.day(1500), "remote_updated_at": nil, "custom_fields": map[string]any{}, "integration_fields": []any{},
					"_location_ids": g.pickIDs(i, "locations", 1), "_legal_entity_ids": g.pickIDs(i, "legal-entities", 1), "_group_ids": g.pickIDs(i, "groups", 2),
				}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["status"] = g.pick("OPEN_LIMITED", "FROZEN", "FILLED")
			},
			nest: func(i *integration, r *record, out map[string]any) {
				out["locations"] = i.objects("locations", i.related("locations", idsOf(r.fields["_location_ids"])), "id", "remote_id", "name", "type")
				out["legal_entities"] = i.objects("legal-entities", i.related("legal-entities", idsOf(r.fields["_legal_entity_ids"])), "id", "remote_id", "name")
				out["groups"] = i.objects("groups", i.related("groups", idsOf(r.fields["_group_ids"])), "id", "remote_id", "name", "type")
			},
		},

		// ---- ATS ----
		{endpoint: ats("roles"), min: 3,
			gen: func(g *generator, _ *integration, r *record) {
				t := g.pick("HIRING_MANAGER", "RECRUITER", "COORDINATOR", "SOURCER", "INTERVIEWER")
				r.fields = withBase(map[string]any{"remote_label": strings.ToLower(strings.ReplaceAll(t, "_", " ")), "scope": g.pick("SYSTEM", "JOB"), "unified_type": t}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["remote_label"] = g.pick("Admin", "Hiring lead", "Helper")
			},
		},
		{endpoint: ats("users"), min: 5, perMain: 0.02,
			gen: func(g *generator, i *integration, r *record) {
				first, last := g.person()
				r.fields = withBase(map[string]any{"first_name": first, "last_name": last, "email": email(first, last, "acme.example", i.seq+1),
					"status": "ACTIVE", "_role_ids": g.pickIDs(i, "roles", 1)}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) { r.fields["status"] = g.pick("ACTIVE", "INACTIVE") },
			nest: func(i *integration, r *record, out map[string]any) {
				out["system_roles"] = i.objects("roles", i.related("roles", idsOf(r.fields["_role_ids"])), "remote_id", "remote_label", "scope", "unified_type")
			},
		},
		{endpoint: ats("tags"), min: 5,
			gen: func(g *generator, _ *integration, r *record) {
				r.fields = withBase(map[string]any{"name": g.pick("Referral", "Senior", "Remote", "Top talent", "Relocation", "Silver medalist")}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) { r.fields["name"] = g.pick("VIP", "Priority", "Later") },
		},
		{endpoint: ats("application-stages"), min: 5,
			gen: func(g *generator, i *integration, r *record) {
				n := len(i.table("application-stages").records)
				r.fields = withBase(map[string]any{"name": []string{"Applied", "Screening", "Interview", "Offer", "Hired", "Rejected"}[n%6]}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["name"] = g.pick("Phone screen", "Onsite", "Case study")
			},
		},
		{endpoint: ats("rejection-reasons"), min: 3,
			gen: func(g *generator, _ *integration, r *record) {
				r.fields = withBase(map[string]any{"name": g.pick("Not qualified", "Withdrew", "Position filled", "Salary expectations")}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) { r.fields["name"] = g.pick("Other", "Timing") },
		},
		{endpoint: ats("jobs"), min: 2, perMain: 0.05,
			gen: genJob,
			update: func(g *generator, _ *integration, r *record) {
				status := g.pick("OPEN", "CLOSED", "DRAFT", "ARCHIVED")
				r.fields["status"] = status
				if status == "CLOSED" || status == "ARCHIVED" {
					r.fields["closed_at"] = g.day(2000)
				}
			},
			nest: nestJob,
			filters: map[string]func(*record, []string) bool{
				"statuses":  fieldIn("status"),
				"status":    fieldIn("status"),
				"job_codes": fieldIn("job_code"),
				"post_url":  fieldIn("post_url"),
				"name_contains": func(r *record, values []string) bool {
					return len(values) > 0 && strings.Contains(strings.ToLower(strOf(r.fields["name"])), strings.ToLower(values[0]))
				},
			},
		},
		{endpoint: ats("candidates"), min: 1, perMain: 1,
			gen: func(g *generator, i *integration, r *record) {
				first, last := g.person()
				c := cities[g.intn(len(cities))]
				r.fields = withBase(map[string]any{
					"first_name": first, "last_name": last, "company": g.orNull(g.pick("Initech", "Hooli", "Pied Piper")), "title": g.pick(jobTitles...),
					"confidential": false, "source": g.pick("LinkedIn", "Referral", "Career site", "Agency"),
					"phone_numbers":   []any{map[string]any{"phone_number": fmt.Sprintf("+49 170 %07d", g.intn(9999999)), "type": "MOBILE"}},
					"email_addresses": []any{map[string]any{"email_address": email(first, last, "mail.example", i.seq+1), "type": "PERSONAL"}},
					"social_media":    []any{},
					"location":        map[string]any{"city": c.city, "country": c.country, "raw": c.city, "state": nil, "street_1": nil, "street_2": nil, "zip_code": nil},
					"custom_fields":   map[string]any{}, "integration_fields": []any{}, "remote_url": nil,
					"remote_created_at": g.day(1500), "remote_updated_at": nil, "_tag_ids": g.pickIDs(i, "tags", g.intn(3)),
				}, noRemoteData)
			},
			update:  func(g *generator, _ *integration, r *record) { r.fields["title"] = g.pick(jobTitles...) },
			filters: candidateFilters,
			nest: func(i *integration, r *record, out map[string]any) {
				apps := []map[string]any{}
				for _, a := range i.childrenOf("applications", "candidate_id", r.id) {
					o := pick(i.flat(a), "id", "remote_id", "outcome", "rejection_reason_name", "rejected_at", "remote_url",
						"changed_at", "remote_created_at", "remote_updated_at")
					o["current_stage"] = i.nestedStage(strOf(a.fields["current_stage_id"]))
					o["job"] = i.one("jobs", strOf(a.fields["job_id"]), "id", "remote_id", "name")
					apps = append(apps, o)
				}
				out["applications"] = apps
				out["tags"] = i.objects("tags", i.related("tags", idsOf(r.fields["_tag_ids"])), "id", "name", "remote_id")
			},
		},
		{endpoint: ats("applications"), perMain: 1.3,
			gen: func(g *generator, i *integration, r *record) {
				r.fields = withBase(map[string]any{
					"outcome": "PENDING", "rejection_reason_name": nil, "rejected_at": nil,
					"current_stage_id": g.pickID(i, "application-stages"), "job_id": g.pickID(i, "jobs"), "candidate_id": g.cycleID(i, "candidates", "applications"),
					"screening_question_answers": []any{}, "custom_fields": map[string]any{}, "integration_fields": []any{},
					"remote_url": nil, "remote_created_at": g.day(1500), "remote_updated_at": nil,
				}, noRemoteData)
			},
			update: func(g *generator, i *integration, r *record) {
				if g.chance(0.7) {
					r.fields["current_stage_id"] = g.pickID(i, "application-stages")
					return
				}
				r.fields["outcome"] = g.pick("HIRED", "DECLINED")
				if r.fields["outcome"] == "DECLINED" {
					r.fields["rejection_reason_name"] = g.pick("Not qualified", "Withdrew")
					r.fields["rejected_at"] = g.day(2000)
				}
			},
			nest: func(i *integration, r *record, out map[string]any) {
				out["candidate"] = i.nestedCandidate(strOf(r.fields["candidate_id"]))
				out["current_stage"] = i.nestedStage(strOf(r.fields["current_stage_id"]))
				out["job"] = i.one("jobs", strOf(r.fields["job_id"]), "id", "remote_id", "name")
				out["interviews"] = i.objects("interviews", i.childrenOf("interviews", "application_id", r.id),
					"id", "remote_id", "title", "starting_at", "ending_at", "location", "canceled")
				out["offers"] = i.objects("offers", i.childrenOf("offers", "application_id", r.id), "id", "remote_id", "status")
			},
			filters: map[string]func(*record, []string) bool{
				"job_ids":  fieldIn("job_id"),
				"outcomes": fieldIn("outcome"),
				"outcome":  fieldIn("outcome"),
			},
		},
		{endpoint: ats("interviews"), perMain: 0.3,
			gen: func(g *generator, i *integration, r *record) {
				start := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC).AddDate(0, 0, g.intn(300))
				r.fields = withBase(map[string]any{
					"title":       g.pick("Phone screen", "Technical interview", "Culture fit", "Final round"),
					"starting_at": kombo.FormatTime(start), "ending_at": kombo.FormatTime(start.Add(time.Hour)), "location": nil,
					"video_conferencing_url": "https://meet.example/" + g.id()[:8], "application_id": g.pickID(i, "applications"),
					"stage_id": g.pickID(i, "application-stages"), "canceled": false,
					"remote_created_at": g.day(1500), "remote_updated_at": nil, "_user_ids": g.pickIDs(i, "users", 2),
				}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) { r.fields["canceled"] = g.chance(0.5) },
			nest: func(i *integration, r *record, out map[string]any) {
				out["users"] = i.objects("users", i.related("users", idsOf(r.fields["_user_ids"])), "id", "remote_id", "first_name", "last_name", "email")
				out["application"] = i.nestedApplication(strOf(r.fields["application_id"]), "id", "remote_id", "outcome", "rejection_reason_name")
			},
		},
		{endpoint: ats("offers"), perMain: 0.1,
			gen: func(g *generator, i *integration, r *record) {
				r.fields = withBase(map[string]any{
					"status": g.pick("DRAFT", "SENT", "APPROVED", "ACCEPTED", "DECLINED"), "employment_start_date": g.day(2000),
					"application_id": g.pickID(i, "applications"), "custom_fields": map[string]any{}, "integration_fields": []any{},
					"remote_created_at": g.day(1500), "remote_updated_at": nil,
				}, noRemoteData)
			},
			update: func(g *generator, _ *integration, r *record) {
				r.fields["status"] = g.pick("ACCEPTED", "DECLINED", "SENT")
			},
			nest: func(i *integration, r *record, out map[string]any) {
				out["application"] = i.nestedApplication(strOf(r.fields["application_id"]))
			},
		},
	}
}

func employmentFields(g *generator) map[string]any {
	return withBase(map[string]any{
		"job_title": g.pick(jobTitles...), "pay_rate": float64(30000 + g.intn(90000)), "pay_period": "YEAR",
		"pay_frequency": "MONTHLY", "employment_type": g.pick("FULL_TIME", "PART_TIME", "CONTRACT", "INTERNSHIP"),
		"pay_currency": "EUR", "effective_date": g.day(2000), "custom_fields": map[string]any{}, "integration_fields": []any{},
	}, noRemoteData)
}

func genEmployee(g *generator, i *integration, r *record) {
	first, last := g.person()
	n := i.seq + 1
	r.fields = withBase(map[string]any{
		"employee_number": fmt.Sprintf("E%06d", n), "first_name": first, "last_name": last, "nationality": g.orNull(g.pick("German", "French", "Dutch", "British")),
		"display_full_name": first + " " + last, "job_title": g.pick(jobTitles...),
		"work_email": email(first, last, "acme.example", n), "personal_email": nil,
		"mobile_phone_number": fmt.Sprintf("+49 151 %07d", g.intn(9999999)), "ssn": nil, "tax_id": nil,
		"gender": g.pick("MALE", "FEMALE", "NON_BINARY", "NOT_SPECIFIED"), "ethnicity": nil, "marital_status": g.orNull(g.pick("SINGLE", "MARRIED")),
		"employment_status": g.pick("ACTIVE", "ACTIVE", "ACTIVE", "LEAVE", "PENDING"), "employment_type": g.pick("FULL_TIME", "PART_TIME", "CONTRACT"),
		"weekly_hours": float64(20 + g.intn(21)), "avatar": nil,
		"work_location_id": g.pickID(i, "locations"), "legal_entity_id": g.pickID(i, "legal-entities"), "manager_id": g.pickID(i, "employees"),
		"home_address": g.address(), "bank_accounts": []any{},
		"date_of_birth": g.dayFrom(1960, 14000), "start_date": g.day(2000), "termination_date": nil, "remote_created_at": g.day(2000),
		"custom_fields": map[string]any{"shirt_size": g.pick("S", "M", "L")}, "integration_fields": []any{},
		"_group_ids": g.pickIDs(i, "groups", 1+g.intn(2)),
	}, noRemoteData)
}

func nestEmployee(i *integration, r *record, out map[string]any) {
	out["employments"] = i.objects("employments", i.childrenOf("employments", "employee_id", r.id))
	balances := i.objects("time-off-balances", i.childrenOf("time-off-balances", "employee_id", r.id),
		"id", "remote_id", "employee_id", "type_id", "balance", "balance_unit", "changed_at", "remote_deleted_at", "used", "used_unit", "remote_data")
	out["time_off_balances"] = balances
	out["manager"] = i.one("employees", strOf(r.fields["manager_id"]), "first_name", "last_name", "display_full_name", "id",
		"employee_number", "work_email", "remote_id", "employment_status", "termination_date")
	groups := i.objects("groups", i.related("groups", idsOf(r.fields["_group_ids"])), "id", "remote_id", "name", "type")
	out["groups"] = groups
	out["teams"] = groups // the deprecated name of the same list
	out["legal_entity"] = i.one("legal-entities", strOf(r.fields["legal_entity_id"]), "id", "remote_id", "name", "address")
	out["work_location"] = i.one("locations", strOf(r.fields["work_location_id"]), "id", "remote_id", "name", "address", "type",
		"changed_at", "remote_deleted_at", "remote_data")
}

// jobURLs are a job's public posting page at the customer's careers site and its page in the ATS,
// made from its code (no random draw, so the records of a seed stay the same).
func jobURLs(i *integration, code string) (post, remote string) {
	site := strings.NewReplacer(":", "-", "_", "-").Replace(strings.ToLower(i.id))
	return "https://careers." + site + ".example/jobs/" + strings.ToLower(code) + "/", "https://ats.example/" + site + "/jobs/" + code
}

func genJob(g *generator, i *integration, r *record) {
	title := g.pick(jobTitles...)
	c := cities[g.intn(len(cities))]
	code := fmt.Sprintf("JOB-%04d", i.seq+1)
	post, remote := jobURLs(i, code)
	r.fields = withBase(map[string]any{
		"name": title, "job_code": code, "description": "<p>Join us as " + title + ".</p>", "confidential": false,
		"weekly_hours": 40.0, "employment_type": g.pick("FULL_TIME", "PART_TIME", "CONTRACT", "INTERNSHIP"),
		"status": g.pick("OPEN", "OPEN", "DRAFT", "CLOSED"), "visibility": g.pick("PUBLIC", "INTERNAL", "UNLISTED"),
		"category": g.orNull(g.pick("Engineering", "Sales")), "department": g.pick(groupNames...), "post_url": post, "experience_level": nil,
		"remote_work_status": g.pick("REMOTE", "HYBRID", "ON_SITE"), "salary_amount": nil,
		"salary_amount_from": float64(40000 + g.intn(40000)), "salary_amount_to": float64(80000 + g.intn(40000)), "salary_currency": "EUR",
		"salary_period": "YEAR",
		"location":      map[string]any{"city": c.city, "country": c.country, "raw": c.city, "state": nil, "street_1": nil, "street_2": nil, "zip_code": nil},
		"custom_fields": map[string]any{}, "integration_fields": []any{}, "remote_url": remote,
		"opened_at": g.day(1500), "closed_at": nil, "remote_created_at": g.day(1500), "remote_updated_at": nil, "contact_id": nil,
		"_stage_ids": g.pickIDs(i, "application-stages", 4), "_hiring_team_ids": g.pickIDs(i, "users", 2),
	}, noRemoteData)
}

func nestJob(i *integration, r *record, out map[string]any) {
	stages := i.objects("application-stages", i.related("application-stages", idsOf(r.fields["_stage_ids"])), "id", "remote_id", "name", "remote_data")
	for n, s := range stages {
		s["index"] = n
	}
	out["stages"] = stages
	out["screening_questions"] = []any{}
	out["job_postings"] = []any{map[string]any{
		"id": r.id[:12] + "posting0000", "remote_id": nil, "title": r.fields["name"], "description_html": r.fields["description"],
		"status": map[string]any{"OPEN": "ACTIVE", "DRAFT": "DRAFT"}[strOf(r.fields["status"])], "visibility": "PUBLIC",
		"url": nil, "remote_data": nil,
	}}
	if code := strOf(r.fields["job_code"]); code != "" { // a multiposter's copy of the job: its own URL and id
		p := out["job_postings"].([]any)[0].(map[string]any)
		p["remote_id"] = "posting-" + strings.ToLower(code)
		p["url"] = "https://jobs.multiposter.example/" + strings.ToLower(code) + "?utm_source=kombo&utm_medium=feed"
	}
	if p := out["job_postings"].([]any)[0].(map[string]any); p["status"] == nil {
		p["status"] = "INACTIVE"
	}
	team := i.objects("users", i.related("users", idsOf(r.fields["_hiring_team_ids"])), "id", "remote_id", "first_name", "last_name", "email")
	for _, u := range team {
		u["hiring_team_roles"] = []string{"RECRUITER"}
		u["job_roles"] = []any{}
	}
	out["hiring_team"] = team
}

func (i *integration) nestedCandidate(id string) map[string]any {
	c := i.one("candidates", id, "id", "remote_id", "first_name", "last_name", "email_addresses", "phone_numbers", "social_media", "source", "remote_url")
	if c != nil {
		c["tags"] = i.objects("tags", i.related("tags", idsOf(i.get("candidates", id).fields["_tag_ids"])), "id", "name", "remote_id")
	}
	return c
}

func (i *integration) nestedApplication(id string, keys ...string) map[string]any {
	a := i.get("applications", id)
	if a == nil || a.remoteDeletedAt != nil {
		return nil
	}
	o := map[string]any{}
	if len(keys) > 0 {
		o = pick(i.flat(a), keys...)
	}
	o["candidate"] = i.one("candidates", strOf(a.fields["candidate_id"]), "id", "remote_id", "first_name", "last_name")
	o["job"] = i.one("jobs", strOf(a.fields["job_id"]), "id", "remote_id", "name")
	return o
}

// nestedStage is an application's current stage with its index in the pipeline, or nil.
func (i *integration) nestedStage(id string) any {
	s := i.one("application-stages", id, "id", "remote_id", "name")
	if s == nil {
		return nil
	}
	s["index"] = nil
	for n, r := range i.table("application-stages").records {
		if r.id == id {
			s["index"] = n
		}
	}
	return s
}

func deletedAbsenceType(id string) map[string]any {
	return map[string]any{"id": id, "remote_id": "", "name": nil, "unit": nil, "half_days_supported": nil,
		"exact_times_supported": nil, "remote_data": nil, "changed_at": kombo.FormatTime(time.Unix(0, 0)), "remote_deleted_at": nil}
}
