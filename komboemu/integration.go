package komboemu

import (
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// integration is one emulated Kombo integration with its data.
type integration struct {
	id        string
	tool      string
	category  kombo.Category
	endUser   kombo.EndUser
	state     string // ACTIVE, INVALID, INACTIVE
	deleted   bool
	createdAt time.Time

	firstSyncPending bool
	pendingStatus    int  // 409 (since 2026-05-19) or 503 (before)
	legacyPending    bool // answer pending with the old message-only body

	queued *queuedSync // the sync Kombo runs or queued (force-sync), until its sync-finished

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
	if endpoint == "applications" {
		if c := i.get("candidates", strOf(r.fields["candidate_id"])); c != nil {
			if c.appliedTo == nil {
				c.appliedTo = map[string]bool{}
			}
			c.appliedTo[strOf(r.fields["job_id"])] = true
		}
	}
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
