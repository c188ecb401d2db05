package komboemu

import (
	"encoding/json"
	"slices"
	"sort"
	"time"
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
	// broken, when set, is sent instead of the record (see MessBroken); duplicated records are
	// sent twice in their page (MessDuplicate).
	broken     []byte
	duplicated bool
	// hiddenUntil: a record a write created is not read before then (WriteFaults.ReadLag).
	hiddenUntil time.Time
	// appliedTo (candidates): the jobs the candidate has applications to, for the job_ids filter.
	appliedTo map[string]bool
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
	// Broken: the API sends Data, which is not a record a client can take (MessBroken).
	Broken bool
}

func (i *integration) truth(endpoint string) []TruthRecord {
	t := i.tables[endpoint]
	out := make([]TruthRecord, 0, len(t.records))
	for _, r := range t.records {
		out = append(out, TruthRecord{ID: r.id, RemoteDeletedAt: r.remoteDeletedAt, Data: slices.Clone(i.render(endpoint, r)),
			Broken: r.broken != nil})
	}
	return out
}
