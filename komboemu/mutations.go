package komboemu

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// Op is a kind of change in the remote system.
type Op string

const (
	OpCreate  Op = "create"
	OpUpdate  Op = "update"
	OpDelete  Op = "delete"  // soft: remote_deleted_at is set; removed after the retention period
	OpRestore Op = "restore" // a deleted record comes back
)

// Mutation is one change. ID picks the record (a random fitting one when empty); Fields, for
// updates, sets these own fields instead of a random change.
type Mutation struct {
	Endpoint kombo.Endpoint
	Op       Op
	ID       string
	Fields   map[string]any
	mess     Mess // see Make
}

// Change is what a mutation did.
type Change struct {
	Endpoint kombo.Endpoint
	Op       Op
	ID       string
}

// Mutate applies the mutations in order and sends data-changed for the models they changed
// (coalesced per the webhook window).
func (e *Emulator) Mutate(integrationID string, ms ...Mutation) ([]Change, error) {
	return e.mutateEach(integrationID, len(ms), func(_ *integration, k int) Mutation { return ms[k] })
}

// mutateEach applies n mutations, each chosen by next just before it is applied, so that it sees
// the effect of the ones before.
func (e *Emulator) mutateEach(integrationID string, n int, next func(i *integration, k int) Mutation) ([]Change, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, err := e.integration(integrationID)
	if err != nil {
		return nil, err
	}
	now := e.now()
	changes := make([]Change, 0, n)
	models := map[string]bool{}
	defer func() {
		if len(models) > 0 {
			e.hooks.dataChanged(i, slices.Sorted(maps.Keys(models)))
		}
	}()
	for k := range n {
		c, err := i.mutate(next(i, k), now)
		if err != nil {
			return changes, err
		}
		changes = append(changes, c)
		models[c.Endpoint.Model()] = true
	}
	return changes, nil
}

func (i *integration) mutate(m Mutation, now time.Time) (Change, error) {
	if m.Endpoint.Category != i.category || i.table(m.Endpoint.Name) == nil {
		return Change{}, fmt.Errorf("komboemu: %s has no endpoint %s", i.id, m.Endpoint)
	}
	name := m.Endpoint.Name
	if m.Op == OpCreate {
		r := i.create(name, now, true, nil)
		return Change{m.Endpoint, OpCreate, r.id}, nil
	}
	r := i.get(name, m.ID)
	if m.ID == "" {
		r = i.randomRecord(name, m.Op == OpRestore)
	}
	if r == nil {
		return Change{}, fmt.Errorf("komboemu: no record to %s in %s %s", m.Op, i.id, m.Endpoint)
	}
	switch m.Op {
	case OpUpdate:
		if m.mess != "" {
			if err := r.mess(m.mess, kombo.FormatTime(now)); err != nil {
				return Change{}, err
			}
		} else if m.Fields != nil {
			for k, v := range m.Fields {
				r.fields[k] = v
			}
		} else {
			specByName(i.category, name).update(i.gen, i, r)
		}
	case OpDelete:
		if r.remoteDeletedAt != nil {
			return Change{}, fmt.Errorf("komboemu: %s %s is already deleted", m.Endpoint, r.id)
		}
		at := now
		r.remoteDeletedAt = &at
		i.deletions = append(i.deletions, deletion{name, r, at})
	case OpRestore:
		if r.remoteDeletedAt == nil {
			return Change{}, fmt.Errorf("komboemu: %s %s is not deleted", m.Endpoint, r.id)
		}
		r.remoteDeletedAt = nil
	default:
		return Change{}, fmt.Errorf("komboemu: unknown op %q", m.Op)
	}
	i.changed(name, r, now)
	return Change{m.Endpoint, m.Op, r.id}, nil
}

// randomRecord picks a live record, or a deleted one when deleted is set.
func (i *integration) randomRecord(endpoint string, deleted bool) *record {
	rs := i.table(endpoint).records
	for range 50 {
		if len(rs) == 0 {
			return nil
		}
		r := rs[i.gen.intn(len(rs))]
		if (r.remoteDeletedAt != nil) == deleted {
			return r
		}
	}
	for _, r := range rs {
		if (r.remoteDeletedAt != nil) == deleted {
			return r
		}
	}
	return nil
}

// MutateRandom applies n random mutations among endpoints (all of the integration's when none):
// mostly updates, some creations and deletions, the odd restore; nested changes (an employment
// changing under an employee) and job status changes come with them.
func (e *Emulator) MutateRandom(integrationID string, n int, endpoints ...kombo.Endpoint) ([]Change, error) {
	return e.mutateEach(integrationID, n, func(i *integration, _ int) Mutation {
		eps := endpoints
		if len(eps) == 0 {
			for _, s := range specs {
				if s.endpoint.Category == i.category {
					eps = append(eps, s.endpoint)
				}
			}
		}
		ep := eps[i.gen.intn(len(eps))]
		op := OpUpdate
		switch x := i.gen.intn(100); {
		case x < 15:
			op = OpCreate
		case x < 27:
			op = OpDelete
		case x < 30:
			op = OpRestore
		}
		if op == OpRestore && i.randomRecord(ep.Name, true) == nil {
			op = OpUpdate
		}
		if op != OpCreate && op != OpRestore && i.randomRecord(ep.Name, false) == nil {
			op = OpCreate
		}
		return Mutation{Endpoint: ep, Op: op}
	})
}

// Churn mutates the integration continuously, perSecond random mutations a second, until ctx
// ends. It returns at once; errors end the churn.
func (e *Emulator) Churn(ctx context.Context, integrationID string, perSecond float64, endpoints ...kombo.Endpoint) {
	if perSecond <= 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / perSecond)
	go func() {
		t := time.NewTicker(max(interval, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := e.MutateRandom(integrationID, 1, endpoints...); err != nil {
					e.log.Warn("churn stopped", "integration_id", integrationID, "error", err)
					return
				}
			}
		}
	}()
}
