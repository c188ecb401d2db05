package komboemu

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// render returns the record's JSON as the API sends it, cached until it changes.
func (i *integration) render(endpoint string, r *record) []byte {
	if r.broken != nil {
		return r.broken
	}
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
