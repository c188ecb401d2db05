package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Job link states (kombo.job_links.state).
const (
	LinkUnresolved = "unresolved"
	LinkProposed   = "proposed"
	LinkConfirmed  = "confirmed"
	LinkRejected   = "rejected"
)

// JobHints are what the application knows of one of its jobs: any of Kombo's id, the ATS's
// remote id, the job code, a URL (a posting's or the job's), the title.
type JobHints struct {
	ID       string `json:"id,omitempty"`
	RemoteID string `json:"remote_id,omitempty"`
	JobCode  string `json:"job_code,omitempty"`
	URL      string `json:"url,omitempty"`
	Title    string `json:"title,omitempty"`
}

// Empty says no hint is given.
func (h JobHints) Empty() bool { return h == JobHints{} }

// JobCandidate is a synced job a hint matched.
type JobCandidate struct {
	JobID   string  `json:"job_id"`
	Method  string  `json:"method"` // id, remote_id, job_code, post_url, posting_url, title
	Score   float64 `json:"score"`  // 1 for an exact key, the title's trigram similarity otherwise
	Name    string  `json:"name"`
	Status  string  `json:"status"` // OPEN, CLOSED, DRAFT, ARCHIVED
	Deleted bool    `json:"deleted"`
}

// JobMatch is what the matcher found: exact key hits (several are ambiguous), else the closest
// titles (at most five, only ever proposals).
type JobMatch struct {
	Exact  []JobCandidate `json:"exact"`
	Titles []JobCandidate `json:"titles"`
}

// methodOf is the link method of a key kind.
func methodOf(kind string) string {
	switch kind {
	case KeyPostingRemoteID:
		return KeyRemoteID
	default:
		return kind
	}
}

// MatchJob looks a job up by its hints over the integration's synced ats/jobs: exact keys first
// (normalised as NormalizeCode and NormalizeURL), open jobs first; without an exact hit, the
// five titles most similar to the title hint (pg_trgm similarity ≥ 0.3, over NormalizeTitle).
func (s *Store) MatchJob(ctx context.Context, integrationID string, h JobHints) (JobMatch, error) {
	if err := checkText("hints", h.ID, h.RemoteID, h.JobCode, h.URL, h.Title); err != nil {
		return JobMatch{}, err
	}
	var kinds, keys []string
	add := func(k, v string) {
		if v != "" {
			kinds, keys = append(kinds, k), append(keys, v)
		}
	}
	add(KeyID, strings.TrimSpace(h.ID))
	add(KeyRemoteID, strings.TrimSpace(h.RemoteID))
	add(KeyPostingRemoteID, strings.TrimSpace(h.RemoteID))
	add(KeyJobCode, NormalizeCode(h.JobCode))
	add(KeyPostURL, NormalizeURL(h.URL))
	add(KeyPostingURL, NormalizeURL(h.URL))
	var m JobMatch
	if len(kinds) > 0 {
		rows, err := s.pool.Query(ctx, `
			select distinct on (k.job_id) k.job_id, k.kind, coalesce(j.data ->> 'name', ''), coalesce(j.data ->> 'status', ''),
				j.remote_deleted_at is not null or j.deleted_at is not null
			from unnest($2::text[], $3::text[]) as h(kind, key)
			join kombo.job_keys k on k.integration_id = $1 and k.kind = h.kind and k.key = h.key
			join kombo.ats_jobs j on j.integration_id = $1 and j.endpoint = 'ats/jobs' and j.id = k.job_id
			order by k.job_id, array_position(array['id', 'remote_id', 'job_code', 'post_url', 'posting_url', 'posting_remote_id'], k.kind)`,
			integrationID, kinds, keys)
		if err != nil {
			return m, fmt.Errorf("match job in %s: %w", integrationID, err)
		}
		m.Exact, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (JobCandidate, error) {
			c := JobCandidate{Score: 1}
			err := row.Scan(&c.JobID, &c.Method, &c.Name, &c.Status, &c.Deleted)
			c.Method = methodOf(c.Method)
			return c, err
		})
		if err != nil {
			return m, fmt.Errorf("match job in %s: %w", integrationID, err)
		}
		slices.SortStableFunc(m.Exact, func(a, b JobCandidate) int { return rank(a) - rank(b) })
	}
	if len(m.Exact) == 0 && strings.TrimSpace(h.Title) != "" {
		// The nearest titles by the trigram index (KNN on kombo.job_keys), then open jobs first
		// among equal scores: 20 nearest are enough for the five shown.
		rows, err := s.pool.Query(ctx, `
			select k.job_id, similarity(k.key, $2)::float8 as score, coalesce(j.data ->> 'name', ''),
				coalesce(j.data ->> 'status', ''), j.remote_deleted_at is not null or j.deleted_at is not null
			from (select job_id, key from kombo.job_keys
			      where integration_id = $1 and kind = 'title' and key % $2
			      order by key <-> $2 limit 20) k
			join kombo.ats_jobs j on j.integration_id = $1 and j.endpoint = 'ats/jobs' and j.id = k.job_id
			order by score desc, (j.data ->> 'status') = 'OPEN' desc, k.job_id
			limit 5`, integrationID, NormalizeTitle(h.Title))
		if err != nil {
			return m, fmt.Errorf("match job title in %s: %w", integrationID, err)
		}
		m.Titles, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (JobCandidate, error) {
			c := JobCandidate{Method: "title"}
			err := row.Scan(&c.JobID, &c.Score, &c.Name, &c.Status, &c.Deleted)
			return c, err
		})
		if err != nil {
			return m, fmt.Errorf("match job title in %s: %w", integrationID, err)
		}
	}
	return m, nil
}

// rank orders candidates: open and not deleted first.
func rank(c JobCandidate) int {
	switch {
	case c.Deleted:
		return 2
	case c.Status == "OPEN":
		return 0
	default:
		return 1
	}
}

// JobLink is a kombo.job_links row.
type JobLink struct {
	IntegrationID string         `json:"integration_id"`
	AppJobID      string         `json:"app_job_id"`
	KomboJobID    string         `json:"kombo_job_id,omitempty"`
	State         string         `json:"state"`
	Method        string         `json:"method,omitempty"`
	Score         *float64       `json:"score,omitempty"`
	Hints         JobHints       `json:"hints"`
	Proposals     []JobCandidate `json:"proposals"`
	DecidedBy     string         `json:"decided_by,omitempty"`
	DecidedAt     *time.Time     `json:"decided_at,omitempty"`
}

// checkText refuses text PostgreSQL cannot store or compare (a NUL byte, broken UTF-8): an input
// error (ErrInvalid), not a failure of the database.
func checkText(what string, values ...string) error {
	for _, v := range values {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: %s: not valid text (a NUL byte or broken UTF-8)", ErrInvalid, what)
		}
	}
	return nil
}

// MaxAppJobID bounds an application's job id.
const MaxAppJobID = 200

// DecidedByMatcher is the decided_by of a link kombosync's matcher confirmed (one exact key).
const DecidedByMatcher = "kombosync"

// ErrConflict: the request contradicts what is stored (a second, different link for the same
// application job).
var ErrConflict = errors.New("conflict")

// decide turns a match into a link: one exact hit is confirmed by kombosync; several are
// proposed (the best first, the others as proposals); titles are only ever proposed; nothing
// leaves the link unresolved (tried again when ats/jobs changes).
func decide(l *JobLink, m JobMatch) {
	l.KomboJobID, l.Method, l.Score, l.DecidedBy, l.Proposals = "", "", nil, "", []JobCandidate{}
	switch {
	case len(m.Exact) == 1:
		c := m.Exact[0]
		l.State, l.KomboJobID, l.Method, l.Score, l.DecidedBy = LinkConfirmed, c.JobID, c.Method, &c.Score, DecidedByMatcher
	case len(m.Exact) > 1:
		c := m.Exact[0]
		l.State, l.KomboJobID, l.Method, l.Score, l.Proposals = LinkProposed, c.JobID, c.Method, &c.Score, m.Exact
	case len(m.Titles) > 0:
		c := m.Titles[0]
		l.State, l.KomboJobID, l.Method, l.Score, l.Proposals = LinkProposed, c.JobID, c.Method, &c.Score, m.Titles
	default:
		l.State = LinkUnresolved
	}
}

// LinkJob links an application job by its hints (MatchJob, then decide). Linking the same job
// again with the same hints returns the link as it is; with other hints it is ErrConflict (delete
// it first).
func (s *Store) LinkJob(ctx context.Context, integrationID, appJobID string, h JobHints) (JobLink, error) {
	if strings.TrimSpace(appJobID) == "" || h.Empty() {
		return JobLink{}, fmt.Errorf("%w: an application job id and at least one hint are required", ErrInvalid)
	}
	if len(appJobID) > MaxAppJobID {
		return JobLink{}, fmt.Errorf("%w: the application job id: at most %d bytes", ErrInvalid, MaxAppJobID)
	}
	if err := checkText("the application job id", appJobID); err != nil {
		return JobLink{}, err
	}
	if existing, err := s.JobLink(ctx, integrationID, appJobID); err == nil {
		if existing.Hints == h {
			return existing, nil
		}
		return existing, fmt.Errorf("%w: application job %s is linked with other hints; delete its link first", ErrConflict, appJobID)
	} else if !errors.Is(err, ErrNotFound) {
		return JobLink{}, err
	}
	m, err := s.MatchJob(ctx, integrationID, h)
	if err != nil {
		return JobLink{}, err
	}
	l := JobLink{IntegrationID: integrationID, AppJobID: appJobID, Hints: h}
	decide(&l, m)
	if err := s.saveLink(ctx, &l, true); err != nil {
		return JobLink{}, err
	}
	return l, nil
}

// saveLink writes the link and sets its DecidedAt (now, when someone decided; nil otherwise).
func (s *Store) saveLink(ctx context.Context, l *JobLink, insert bool) error {
	hints, _ := json.Marshal(l.Hints)
	proposals, _ := json.Marshal(l.Proposals)
	q := `insert into kombo.job_links (integration_id, app_job_id, kombo_job_id, state, method, score, hints, proposals, decided_by, decided_at)
		values ($1, $2, nullif($3, ''), $4, nullif($5, ''), $6, $7, $8, nullif($9, ''), case when $9 <> '' then now() end)
		returning decided_at`
	if !insert {
		q = `update kombo.job_links set kombo_job_id = nullif($3, ''), state = $4, method = nullif($5, ''), score = $6, hints = $7,
			proposals = $8, decided_by = nullif($9, ''), decided_at = case when $9 <> '' then now() end, updated_at = now()
			where integration_id = $1 and app_job_id = $2
			returning decided_at`
	}
	err := s.pool.QueryRow(ctx, q, l.IntegrationID, l.AppJobID, l.KomboJobID, l.State, l.Method, l.Score, hints, proposals, l.DecidedBy).
		Scan(&l.DecidedAt)
	if err != nil {
		return fmt.Errorf("save job link %s in %s: %w", l.AppJobID, l.IntegrationID, err)
	}
	return nil
}

// JobLink reads one link; ErrNotFound when there is none.
func (s *Store) JobLink(ctx context.Context, integrationID, appJobID string) (JobLink, error) {
	var l JobLink
	if err := checkText("the application job id", appJobID); err != nil {
		return l, err
	}
	var hints, proposals []byte
	err := s.pool.QueryRow(ctx, `select integration_id, app_job_id, coalesce(kombo_job_id, ''), state, coalesce(method, ''),
		score::float8, hints, proposals, coalesce(decided_by, ''), decided_at from kombo.job_links where integration_id = $1 and app_job_id = $2`,
		integrationID, appJobID).Scan(&l.IntegrationID, &l.AppJobID, &l.KomboJobID, &l.State, &l.Method, &l.Score, &hints, &proposals, &l.DecidedBy, &l.DecidedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("job link %s in %s: %w", appJobID, integrationID, ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("job link %s in %s: %w", appJobID, integrationID, err)
	}
	if err := json.Unmarshal(hints, &l.Hints); err != nil {
		return l, err
	}
	return l, json.Unmarshal(proposals, &l.Proposals)
}

// ConfirmLink is a person's decision: the application job is Kombo's job komboJobID (a synced
// job of the integration; a proposal or any other).
func (s *Store) ConfirmLink(ctx context.Context, integrationID, appJobID, komboJobID, by string) (JobLink, error) {
	if strings.TrimSpace(by) == "" {
		return JobLink{}, fmt.Errorf("%w: say who decides (a person's handle)", ErrInvalid)
	}
	if err := checkText("the job id and who decides", komboJobID, by); err != nil {
		return JobLink{}, err
	}
	l, err := s.JobLink(ctx, integrationID, appJobID)
	if err != nil {
		return l, err
	}
	var n int
	if err := s.pool.QueryRow(ctx, `select count(*) from kombo.ats_jobs where integration_id = $1 and id = $2`,
		integrationID, komboJobID).Scan(&n); err != nil {
		return l, err
	}
	if n == 0 {
		return l, fmt.Errorf("job %s in %s: %w", komboJobID, integrationID, ErrNotFound)
	}
	if l.KomboJobID != komboJobID || l.Method == "" {
		l.Method = LinkMethodPerson
		for _, p := range l.Proposals {
			if p.JobID == komboJobID {
				l.Method, l.Score = p.Method, &p.Score
			}
		}
	}
	l.KomboJobID, l.State, l.DecidedBy = komboJobID, LinkConfirmed, by
	return l, s.saveLink(ctx, &l, false)
}

// LinkMethodPerson is the method of a link a person chose outside the proposals: recorded as a
// title match, the weakest, since no key said so.
const LinkMethodPerson = "title"

// RejectLink is a person's decision that the proposed job is not the application's.
func (s *Store) RejectLink(ctx context.Context, integrationID, appJobID, by string) (JobLink, error) {
	if strings.TrimSpace(by) == "" {
		return JobLink{}, fmt.Errorf("%w: say who decides (a person's handle)", ErrInvalid)
	}
	if err := checkText("who decides", by); err != nil {
		return JobLink{}, err
	}
	l, err := s.JobLink(ctx, integrationID, appJobID)
	if err != nil {
		return l, err
	}
	l.State, l.DecidedBy = LinkRejected, by
	return l, s.saveLink(ctx, &l, false)
}

// DeleteLink forgets a link.
func (s *Store) DeleteLink(ctx context.Context, integrationID, appJobID string) error {
	if err := checkText("the application job id", appJobID); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `delete from kombo.job_links where integration_id = $1 and app_job_id = $2`, integrationID, appJobID)
	if err != nil {
		return fmt.Errorf("delete job link %s in %s: %w", appJobID, integrationID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("job link %s in %s: %w", appJobID, integrationID, ErrNotFound)
	}
	return nil
}

// RetryUnresolved matches the integration's unresolved links again (after ats/jobs changed): a
// back-office job created before its ATS job links itself when that job appears. It returns how
// many links changed.
func (s *Store) RetryUnresolved(ctx context.Context, integrationID string) (int, error) {
	rows, err := s.pool.Query(ctx, `select app_job_id from kombo.job_links where integration_id = $1 and state = 'unresolved'`, integrationID)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, id := range ids {
		l, err := s.JobLink(ctx, integrationID, id)
		if err != nil {
			return changed, err
		}
		m, err := s.MatchJob(ctx, integrationID, l.Hints)
		if err != nil {
			return changed, err
		}
		decide(&l, m)
		if l.State == LinkUnresolved {
			continue
		}
		if err := s.saveLink(ctx, &l, false); err != nil {
			return changed, err
		}
		changed++
	}
	return changed, nil
}
