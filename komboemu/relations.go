package komboemu

import (
	"slices"
	"time"
)

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
