package komboemu

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// record is one record of one endpoint. fields holds its own fields as rendered, except id,
// remote_id, changed_at and remote_deleted_at; keys starting with "_" are internal (relations
// kept as id lists) and never rendered. Nested objects are rendered from the related records at
// read time, so they are always current.
type record struct {
	seq             uint64
	id              string
	remoteID        *string
	fields          map[string]any
	changedAt       time.Time // own fields changed
	touchedAt       time.Time // own or nested data changed: what updated_after compares
	remoteDeletedAt *time.Time
	cache           []byte // rendered JSON; nil when stale
}

// table holds one endpoint's records in creation order (the pagination order).
type table struct {
	records []*record
	byID    map[string]*record
}

func (t *table) add(r *record) {
	t.records = append(t.records, r)
	t.byID[r.id] = r
}

// remove drops a record for good (hard removal after the retention period).
func (t *table) remove(r *record) {
	delete(t.byID, r.id)
	i := sort.Search(len(t.records), func(i int) bool { return t.records[i].seq >= r.seq })
	if i < len(t.records) && t.records[i] == r {
		t.records = slices.Delete(t.records, i, i+1)
	}
}

// relationKind says how a parent record embeds a child record.
type relationKind int

const (
	childRef   relationKind = iota // child.fields[field] == parent.id (employment.employee_id)
	parentRef                      // parent.fields[field] == child.id (employee.manager_id)
	parentList                     // parent.fields[field] ([]string) contains child.id (employee._group_ids)
)

// relation: records of parent embed records of child through field. Most embed the child's own
// fields only; deep relations also embed the child's nested data (an application's candidate
// carries its tags), so a nested change of the child changes the parent too.
type relation struct {
	parent, child string // endpoint names
	field         string
	kind          relationKind
	deep          bool
}

// relations of both categories; nested rendering (specs) and change propagation (touch) agree
// on them.
var relations = []relation{
	{"employees", "employments", "employee_id", childRef, false},
	{"employees", "time-off-balances", "employee_id", childRef, false},
	{"employees", "groups", "_group_ids", parentList, false},
	{"employees", "employees", "manager_id", parentRef, false},
	{"employees", "legal-entities", "legal_entity_id", parentRef, false},
	{"employees", "locations", "work_location_id", parentRef, false},
	{"time-off-balances", "absence-types", "type_id", parentRef, false},
	{"absences", "absence-types", "type_id", parentRef, false},
	{"performance-reviews", "employees", "_reviewee_id", parentRef, false},
	{"performance-reviews", "employees", "_reviewer_id", parentRef, false},
	{"performance-reviews", "performance-review-cycles", "_cycle_id", parentRef, false},
	{"staffing-entities", "locations", "_location_ids", parentList, false},
	{"staffing-entities", "legal-entities", "_legal_entity_ids", parentList, false},
	{"staffing-entities", "groups", "_group_ids", parentList, false},
	{"applications", "candidates", "candidate_id", parentRef, true},
	{"applications", "jobs", "job_id", parentRef, false},
	{"applications", "application-stages", "current_stage_id", parentRef, false},
	{"applications", "interviews", "application_id", childRef, false},
	{"applications", "offers", "application_id", childRef, false},
	{"candidates", "applications", "candidate_id", childRef, true},
	{"candidates", "tags", "_tag_ids", parentList, false},
	{"jobs", "application-stages", "_stage_ids", parentList, false},
	{"jobs", "users", "_hiring_team_ids", parentList, false},
	{"users", "roles", "_role_ids", parentList, false},
	{"interviews", "users", "_user_ids", parentList, false},
	{"interviews", "applications", "application_id", parentRef, true},
	{"offers", "applications", "application_id", parentRef, true},
}

// integration is one emulated Kombo integration with its data.
type integration struct {
	id       string
	tool     string
	category kombo.Category
	endUser  kombo.EndUser
	state    string // ACTIVE, INVALID, INACTIVE
	deleted  bool

	firstSyncPending bool
	pendingStatus    int  // 409 (since 2026-05-19) or 503 (before)
	legacyPending    bool // answer pending with the old message-only body

	disabledModels     map[string]bool // endpoint names answering MODEL_NOT_AVAILABLE
	missingPermissions map[string]bool // endpoint names answering PERMISSION_MISSING

	gen *generator
	seq uint64
	// deletions in deletion order, so hard removal after the retention period pops expired ones
	// without scanning every table.
	deletions []deletion
	tables    map[string]*table
	// children indexes childRef relations: child endpoint → field → parent id → children.
	children map[string]map[string]map[string][]*record
}

func newIntegration(id, tool string, cat kombo.Category, seed uint64) *integration {
	i := &integration{
		id: id, tool: tool, category: cat, state: kombo.IntegrationActive,
		endUser:            kombo.EndUser{OrganizationName: "Org of " + id},
		pendingStatus:      409,
		disabledModels:     map[string]bool{},
		missingPermissions: map[string]bool{},
		gen:                newGenerator(seed, id),
		tables:             map[string]*table{},
		children:           map[string]map[string]map[string][]*record{},
	}
	for _, s := range specs {
		if s.endpoint.Category == cat {
			i.tables[s.endpoint.Name] = &table{byID: map[string]*record{}}
		}
	}
	return i
}

func (i *integration) table(endpoint string) *table { return i.tables[endpoint] }

func (i *integration) get(endpoint, id string) *record {
	t := i.tables[endpoint]
	if t == nil || id == "" {
		return nil
	}
	return t.byID[id]
}

// insert adds a new record and indexes its references.
func (i *integration) insert(endpoint string, r *record, now time.Time) {
	i.seq++
	r.seq = i.seq
	r.changedAt, r.touchedAt = now, now
	i.tables[endpoint].add(r)
	for _, rel := range relations {
		if rel.child == endpoint && rel.kind == childRef {
			parentID, _ := r.fields[rel.field].(string)
			byField := i.children[endpoint]
			if byField == nil {
				byField = map[string]map[string][]*record{}
				i.children[endpoint] = byField
			}
			if byField[rel.field] == nil {
				byField[rel.field] = map[string][]*record{}
			}
			byField[rel.field][parentID] = append(byField[rel.field][parentID], r)
		}
	}
}

// childrenOf returns the live (not remotely deleted) records of child endpoint whose field points
// at parentID, in creation order.
func (i *integration) childrenOf(child, field, parentID string) []*record {
	var out []*record
	for _, r := range i.children[child][field][parentID] {
		if r.remoteDeletedAt == nil && i.get(child, r.id) == r {
			out = append(out, r)
		}
	}
	return out
}

// related returns the live records of endpoint named by the ids, skipping unknown ones.
func (i *integration) related(endpoint string, ids []string) []*record {
	var out []*record
	for _, id := range ids {
		if r := i.get(endpoint, id); r != nil && r.remoteDeletedAt == nil {
			out = append(out, r)
		}
	}
	return out
}

// changed marks r's own fields as changed now, and the records embedding it as changed in
// nested data.
func (i *integration) changed(endpoint string, r *record, now time.Time) {
	r.changedAt = now
	i.touch(endpoint, r, now, true, map[*record]bool{})
}

// touch marks r as changed now: updated_after answers include it, its changed_at stays unless
// changed set it. The records embedding r change with it: all of them when r's own fields
// changed, through deep relations only when just r's nested data did.
func (i *integration) touch(endpoint string, r *record, now time.Time, own bool, seen map[*record]bool) {
	if seen[r] {
		return
	}
	seen[r] = true
	r.touchedAt = now
	r.cache = nil
	for _, rel := range relations {
		if rel.child != endpoint || !(own || rel.deep) {
			continue
		}
		for _, p := range i.parentsVia(rel, r) {
			i.touch(rel.parent, p, now, false, seen)
		}
	}
}

func (i *integration) parentsVia(rel relation, child *record) []*record {
	switch rel.kind {
	case childRef:
		parentID, _ := child.fields[rel.field].(string)
		if p := i.get(rel.parent, parentID); p != nil {
			return []*record{p}
		}
		return nil
	default:
		var out []*record
		for _, p := range i.tables[rel.parent].records {
			switch v := p.fields[rel.field].(type) {
			case string:
				if v == child.id {
					out = append(out, p)
				}
			case []string:
				if slices.Contains(v, child.id) {
					out = append(out, p)
				}
			}
		}
		return out
	}
}

// render returns the record's JSON as the API sends it, cached until it changes.
func (i *integration) render(endpoint string, r *record) []byte {
	if r.cache != nil {
		return r.cache
	}
	b, err := json.Marshal(i.object(endpoint, r))
	if err != nil {
		panic("komboemu: render " + endpoint + ": " + err.Error()) // only our own values are in it
	}
	r.cache = b
	return b
}

// object is the record as a JSON object: its own fields, its meta fields and its nested objects.
func (i *integration) object(endpoint string, r *record) map[string]any {
	out := i.flat(r)
	if s := specByName(i.category, endpoint); s.nest != nil {
		s.nest(i, r, out)
	}
	return out
}

// flat is the record's own and meta fields without nested objects: how records appear nested
// inside others (deeper nesting is added by the nest function that needs it).
func (i *integration) flat(r *record) map[string]any {
	out := make(map[string]any, len(r.fields)+8)
	for k, v := range r.fields {
		if !strings.HasPrefix(k, "_") {
			out[k] = v
		}
	}
	out["id"] = r.id
	out["remote_id"] = r.remoteID
	out["changed_at"] = kombo.FormatTime(r.changedAt)
	out["remote_deleted_at"] = formatTimePtr(r.remoteDeletedAt)
	return out
}

// pick copies the named keys of obj.
func pick(obj map[string]any, keys ...string) map[string]any {
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		out[k] = obj[k]
	}
	return out
}

// objects renders records flat, narrowed to keys (all keys when none).
func (i *integration) objects(endpoint string, rs []*record, keys ...string) []map[string]any {
	out := make([]map[string]any, 0, len(rs))
	for _, r := range rs {
		o := i.flat(r)
		if len(keys) > 0 {
			o = pick(o, keys...)
		}
		out = append(out, o)
	}
	return out
}

// one renders the live record of endpoint with that id flat, narrowed to keys, or nil.
func (i *integration) one(endpoint, id string, keys ...string) map[string]any {
	r := i.get(endpoint, id)
	if r == nil || r.remoteDeletedAt != nil {
		return nil
	}
	o := i.flat(r)
	if len(keys) > 0 {
		o = pick(o, keys...)
	}
	return o
}

func formatTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return kombo.FormatTime(*t)
}

type deletion struct {
	endpoint string
	r        *record
	at       time.Time
}

// purgeExpired removes records whose remote deletion is older than retention, for good.
func (i *integration) purgeExpired(now time.Time, retention time.Duration) {
	for len(i.deletions) > 0 && now.Sub(i.deletions[0].at) >= retention {
		d := i.deletions[0]
		i.deletions = i.deletions[1:]
		// A record restored (or deleted again) since has a different or no deletion time.
		if d.r.remoteDeletedAt != nil && d.r.remoteDeletedAt.Equal(d.at) {
			i.tables[d.endpoint].remove(d.r)
		}
	}
}

// TruthRecord is a record as the emulator holds it now.
type TruthRecord struct {
	ID              string
	RemoteDeletedAt *time.Time
	Data            json.RawMessage // exactly what the API would send
}

func (i *integration) truth(endpoint string) []TruthRecord {
	t := i.tables[endpoint]
	out := make([]TruthRecord, 0, len(t.records))
	for _, r := range t.records {
		out = append(out, TruthRecord{ID: r.id, RemoteDeletedAt: r.remoteDeletedAt, Data: slices.Clone(i.render(endpoint, r))})
	}
	return out
}

// endpointNames lists the integration's endpoints in catalogue order.
func (i *integration) endpointNames() []string {
	return slices.Sorted(maps.Keys(i.tables))
}
