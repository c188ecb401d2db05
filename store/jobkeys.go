package store

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kombosync/kombosync/kombo"
)

// Job key kinds (kombo.job_keys.kind), and the link methods they match by.
const (
	KeyID              = "id"
	KeyRemoteID        = "remote_id"
	KeyJobCode         = "job_code"
	KeyPostURL         = "post_url"    // a job's post_url and remote_url
	KeyPostingURL      = "posting_url" // job_postings[].url
	KeyPostingRemoteID = "posting_remote_id"
	KeyTitle           = "title" // the job's name (NormalizeTitle), matched by trigram similarity only
)

// maxKeyBytes bounds a stored key: a B-tree entry holds at most about 2.7 KB, and one job's
// huge post_url must not fail its page. No one types a code or a URL that long; it is not kept.
const maxKeyBytes = 1000

// maxTitleRunes bounds a title key: a longer name is cut (it still ranks by its beginning).
const maxTitleRunes = 200

// atsJobs is the endpoint whose pages carry job keys.
var atsJobs = kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}

// NormalizeCode is a job code as matched: trimmed and case-folded.
func NormalizeCode(code string) string { return strings.ToLower(strings.TrimSpace(code)) }

// NormalizeTitle is a job name as compared: lower-cased, runs of white space as one space, at
// most maxTitleRunes.
func NormalizeTitle(name string) string {
	t := strings.Join(strings.Fields(strings.ToLower(name)), " ")
	if r := []rune(t); len(r) > maxTitleRunes {
		t = strings.TrimSpace(string(r[:maxTitleRunes]))
	}
	return t
}

// trackingParams are query parameters that say where a visitor came from, not which job.
var trackingParams = []string{"gclid", "fbclid", "msclkid", "gh_src", "mc_cid", "mc_eid", "_hsenc", "_hsmi", "ref", "source", "src"}

// NormalizeURL is a URL as matched: no scheme, host lower-cased (and no "www."), no default
// port, no fragment, no tracking parameters (utm_* and the like), the rest sorted, no trailing
// slash. "" when it is not a URL with a host.
func NormalizeURL(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	host := strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
	if p := u.Port(); p != "" && p != "80" && p != "443" {
		host += ":" + p
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(strings.ToLower(k), "utm_") || slices.Contains(trackingParams, strings.ToLower(k)) {
			q.Del(k)
		}
	}
	path := strings.TrimRight(u.EscapedPath(), "/")
	key := host + path
	if enc := q.Encode(); enc != "" { // Encode sorts by key
		key += "?" + enc
	}
	return key
}

// jobKey is one row of kombo.job_keys.
type jobKey struct{ JobID, Kind, Key string }

// jobKeys extracts a synced job's lookup keys from its record.
func jobKeys(id string, raw []byte) []jobKey {
	var j struct {
		Name        *string `json:"name"`
		RemoteID    *string `json:"remote_id"`
		JobCode     *string `json:"job_code"`
		PostURL     *string `json:"post_url"`
		RemoteURL   *string `json:"remote_url"`
		JobPostings []struct {
			URL      *string `json:"url"`
			RemoteID *string `json:"remote_id"`
		} `json:"job_postings"`
	}
	keys := []jobKey{{id, KeyID, id}}
	if err := json.Unmarshal(raw, &j); err != nil {
		return keys
	}
	add := func(kind string, v *string, norm func(string) string) {
		if v == nil {
			return
		}
		if k := norm(*v); k != "" && len(k) <= maxKeyBytes && !slices.Contains(keys, jobKey{id, kind, k}) {
			keys = append(keys, jobKey{id, kind, k})
		}
	}
	add(KeyRemoteID, j.RemoteID, strings.TrimSpace)
	add(KeyTitle, j.Name, NormalizeTitle)
	add(KeyJobCode, j.JobCode, NormalizeCode)
	add(KeyPostURL, j.PostURL, NormalizeURL)
	add(KeyPostURL, j.RemoteURL, NormalizeURL)
	for _, p := range j.JobPostings {
		add(KeyPostingURL, p.URL, NormalizeURL)
		add(KeyPostingRemoteID, p.RemoteID, strings.TrimSpace)
	}
	return keys
}

// queueJobKeys queues the replacement of the page's jobs' keys, for every job of the page
// (changed or not, so a full pass rebuilds keys of jobs synced before they existed).
func queueJobKeys(b *pgx.Batch, run Run, recs []kombo.Record) {
	if run.Endpoint != atsJobs || len(recs) == 0 {
		return
	}
	ids := make([]string, 0, len(recs))
	var jobIDs, kinds, keys []string
	for _, r := range recs {
		ids = append(ids, r.ID)
		for _, k := range jobKeys(r.ID, r.Raw) {
			jobIDs, kinds, keys = append(jobIDs, k.JobID), append(kinds, k.Kind), append(keys, k.Key)
		}
	}
	b.Queue(`delete from kombo.job_keys where integration_id = $1 and job_id = any($2::text[])`, run.IntegrationID, ids)
	b.Queue(`insert into kombo.job_keys (integration_id, job_id, kind, key)
		select $1, j, k, v from unnest($2::text[], $3::text[], $4::text[]) as u(j, k, v)
		on conflict do nothing`, run.IntegrationID, jobIDs, kinds, keys)
}

// MatchRecords matches hints against job records fetched from Kombo (not synced yet), with the
// same keys and normalisation as MatchJob: the exact candidates per hint, open jobs first.
func MatchRecords(h JobHints, recs []kombo.Record) []JobCandidate {
	want := map[jobKey]bool{}
	for kind, v := range map[string]string{KeyID: strings.TrimSpace(h.ID), KeyRemoteID: strings.TrimSpace(h.RemoteID),
		KeyPostingRemoteID: strings.TrimSpace(h.RemoteID), KeyJobCode: NormalizeCode(h.JobCode),
		KeyPostURL: NormalizeURL(h.URL), KeyPostingURL: NormalizeURL(h.URL)} {
		if v != "" {
			want[jobKey{Kind: kind, Key: v}] = true
		}
	}
	var out []JobCandidate
	for _, r := range recs {
		for _, k := range jobKeys(r.ID, r.Raw) {
			if !want[jobKey{Kind: k.Kind, Key: k.Key}] {
				continue
			}
			var j struct{ Name, Status string }
			_ = json.Unmarshal(r.Raw, &j)
			out = append(out, JobCandidate{JobID: r.ID, Method: methodOf(k.Kind), Score: 1, Name: j.Name, Status: j.Status,
				Deleted: r.RemoteDeletedAt != nil})
			break
		}
	}
	slices.SortStableFunc(out, func(a, b JobCandidate) int { return rank(a) - rank(b) })
	return out
}
