package store_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

var atsJobs = kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}

var jobRuns int

// writeJobs writes ats/jobs records through a run, as a fetch does.
func writeJobs(t *testing.T, s *store.Store, jobs ...map[string]any) {
	t.Helper()
	jobRuns++
	run := store.Run{ID: fmt.Sprintf("jobs-%d", jobRuns), IntegrationID: "greenhouse:1", Endpoint: atsJobs, Kind: store.KindDelta}
	_, err := s.StartRun(t.Context(), run)
	require.NoError(t, err)
	page := &kombo.Page{}
	for _, j := range jobs {
		obj := map[string]any{"remote_id": "r-" + j["id"].(string), "changed_at": kombo.FormatTime(t0), "remote_deleted_at": nil,
			"status": "OPEN", "job_postings": []any{}}
		for k, v := range j {
			obj[k] = v
		}
		raw, err := json.Marshal(obj)
		require.NoError(t, err)
		r := kombo.Record{ID: j["id"].(string), RemoteID: obj["remote_id"].(string), ChangedAt: t0, Raw: raw}
		if obj["remote_deleted_at"] != nil {
			r.RemoteDeletedAt = &t0
		}
		page.Records = append(page.Records, r)
	}
	_, err = s.ApplyPage(t.Context(), run, page, t0)
	require.NoError(t, err)
}

func TestNormalisationIsWhatAUserExpects(t *testing.T) {
	for in, want := range map[string]string{
		"https://Jobs.ACME.example/Engineering/123/":                                  "jobs.acme.example/Engineering/123",
		"http://www.acme.example/jobs/123?utm_source=linkedin&gh_src=abc&lang=de#top": "acme.example/jobs/123?lang=de",
		"acme.example/jobs/123?b=2&a=1":                                               "acme.example/jobs/123?a=1&b=2",
		"https://acme.example:443/jobs/123":                                           "acme.example/jobs/123",
		"  ":                                                                          "",
		"not a url at all":                                                            "",
	} {
		require.Equal(t, want, store.NormalizeURL(in), in)
	}
	require.Equal(t, "eng-42", store.NormalizeCode("  ENG-42 "))
	require.Equal(t, "senior backend engineer (go)", store.NormalizeTitle(" Senior\tBackend  Engineer\n(Go) "))
	require.Len(t, []rune(store.NormalizeTitle(strings.Repeat("Ingénieur ", 100))), 199, "cut at 200 runes, then trimmed")
}

// Real ATS data has fields no one would type: a 10 KB post_url, job code or name must not fail
// the page that carries it (a B-tree entry holds about 2.7 KB). The job is stored, found by its
// id, and by the beginning of its name.
func TestHugeJobFieldsDoNotFailThePage(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rng := rand.New(rand.NewPCG(1, 2)) // random text: PostgreSQL compresses a repeated one into an index entry
	letters := make([]byte, 10_000)
	for i := range letters {
		letters[i] = 'a' + byte(rng.IntN(26))
	}
	huge := string(letters)
	writeJobs(t, s,
		map[string]any{"id": "j-huge", "name": "Data Engineer " + huge, "job_code": huge, "post_url": "https://acme.example/" + huge},
		map[string]any{"id": "j-fine", "name": "Data Engineer", "job_code": "DAT-1"})
	m, err := s.MatchJob(t.Context(), "greenhouse:1", store.JobHints{ID: "j-huge"})
	require.NoError(t, err)
	require.Len(t, m.Exact, 1)
	m, err = s.MatchJob(t.Context(), "greenhouse:1", store.JobHints{JobCode: huge})
	require.NoError(t, err)
	require.Zero(t, len(m.Exact), "a code too long to be a key is not kept")
	m, err = s.MatchJob(t.Context(), "greenhouse:1", store.JobHints{Title: "data engineer"})
	require.NoError(t, err)
	require.Equal(t, "j-fine", m.Titles[0].JobID)
	m, err = s.MatchJob(t.Context(), "greenhouse:1", store.JobHints{Title: "data engineer " + huge[:185]})
	require.NoError(t, err)
	require.Equal(t, "j-huge", m.Titles[0].JobID, "a long name ranks by its beginning")
}

// Titles are ranked by similarity, open jobs first among equal ones, and never from another
// integration.
func TestTitlesRankOpenJobsFirstWithinTheIntegration(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	writeJobs(t, s,
		map[string]any{"id": "a-closed", "name": "Site Reliability Engineer", "status": "CLOSED"},
		map[string]any{"id": "b-open", "name": "Site  reliability engineer", "status": "OPEN"},
		map[string]any{"id": "c-open", "name": "Reliability Engineer", "status": "OPEN"})
	other := store.Run{ID: "other-jobs", IntegrationID: "greenhouse:2", Endpoint: atsJobs, Kind: store.KindDelta}
	_, err := s.StartRun(t.Context(), other)
	require.NoError(t, err)
	_, err = s.ApplyPage(t.Context(), other, &kombo.Page{Records: []kombo.Record{{ID: "x", ChangedAt: t0,
		Raw: []byte(`{"id": "x", "name": "Site Reliability Engineer", "status": "OPEN", "changed_at": "2026-01-01T00:00:00Z"}`)}}}, t0)
	require.NoError(t, err)
	m, err := s.MatchJob(t.Context(), "greenhouse:1", store.JobHints{Title: "site reliability engineer"})
	require.NoError(t, err)
	var got []string
	for _, c := range m.Titles {
		got = append(got, c.JobID)
	}
	require.Equal(t, []string{"b-open", "a-closed", "c-open"}, got)
	require.Equal(t, 1.0, m.Titles[0].Score)
}

func TestExactKeysMatchAndAmbiguityIsOnlyProposed(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	writeJobs(t, s,
		map[string]any{"id": "j1", "name": "Senior Backend Engineer", "job_code": "ENG-42", "post_url": "https://careers.acme.example/jobs/42/",
			"job_postings": []any{map[string]any{"url": "https://boards.example/acme/42?utm_campaign=x", "remote_id": "p-42"}}},
		map[string]any{"id": "j2", "name": "Account Executive", "job_code": "SAL-7", "remote_url": "https://ats.example/jobs/7"},
		map[string]any{"id": "j3", "name": "Account Executive (old)", "job_code": "sal-7", "status": "CLOSED"},
		map[string]any{"id": "j4", "name": "Office Manager", "job_code": "OPS-1"},
	)
	for _, tc := range []struct {
		hints  store.JobHints
		job    string
		method string
	}{
		{store.JobHints{ID: "j1"}, "j1", "id"},
		{store.JobHints{RemoteID: "r-j4"}, "j4", "remote_id"},
		{store.JobHints{RemoteID: "p-42"}, "j1", "remote_id"},
		{store.JobHints{JobCode: " eng-42"}, "j1", "job_code"},
		{store.JobHints{URL: "HTTPS://careers.acme.example/jobs/42"}, "j1", "post_url"},
		{store.JobHints{URL: "https://ats.example/jobs/7/"}, "j2", "post_url"},
		{store.JobHints{URL: "https://boards.example/acme/42?utm_source=mail"}, "j1", "posting_url"},
	} {
		m, err := s.MatchJob(ctx, "greenhouse:1", tc.hints)
		require.NoError(t, err)
		require.Len(t, m.Exact, 1, "%+v", tc.hints)
		require.Equal(t, tc.job, m.Exact[0].JobID, "%+v", tc.hints)
		require.Equal(t, tc.method, m.Exact[0].Method, "%+v", tc.hints)
	}
	m, err := s.MatchJob(ctx, "greenhouse:2", store.JobHints{ID: "j1"})
	require.NoError(t, err)
	require.Empty(t, m.Exact, "another integration's jobs never match")

	// Two jobs share a code (case-folded): ambiguous, proposed with the open one first.
	l, err := s.LinkJob(ctx, "greenhouse:1", "app-sales", store.JobHints{JobCode: "SAL-7"})
	require.NoError(t, err)
	require.Equal(t, store.LinkProposed, l.State)
	require.Equal(t, "j2", l.KomboJobID, "the OPEN job first")
	require.Len(t, l.Proposals, 2)
	require.Equal(t, "j3", l.Proposals[1].JobID)

	one, err := s.LinkJob(ctx, "greenhouse:1", "app-eng", store.JobHints{JobCode: "ENG-42"})
	require.NoError(t, err)
	require.Equal(t, store.LinkConfirmed, one.State, "one exact hit is confirmed")
	require.Equal(t, "kombosync", one.DecidedBy)
	again, err := s.LinkJob(ctx, "greenhouse:1", "app-eng", store.JobHints{JobCode: "ENG-42"})
	require.NoError(t, err)
	require.Equal(t, one, again, "the same link again is the same")
	_, err = s.LinkJob(ctx, "greenhouse:1", "app-eng", store.JobHints{JobCode: "OPS-1"})
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = s.LinkJob(ctx, "greenhouse:1", "app-x", store.JobHints{})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func TestTitlesAreOnlyProposedUntilAPersonConfirms(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	writeJobs(t, s,
		map[string]any{"id": "j1", "name": "Senior Backend Engineer (Go)"},
		map[string]any{"id": "j2", "name": "Backend Engineer"},
		map[string]any{"id": "j3", "name": "Head of Marketing"},
	)
	l, err := s.LinkJob(ctx, "greenhouse:1", "app-1", store.JobHints{Title: "senior backend engineer"})
	require.NoError(t, err)
	require.Equal(t, store.LinkProposed, l.State, "a title is never confirmed without a person")
	require.Equal(t, "title", l.Method)
	require.Equal(t, "j1", l.KomboJobID)
	for _, p := range l.Proposals {
		require.NotEqual(t, "j3", p.JobID, "dissimilar titles are not proposed")
		require.Less(t, p.Score, 1.0)
	}
	_, err = s.ConfirmLink(ctx, "greenhouse:1", "app-1", "j2", "")
	require.ErrorIs(t, err, store.ErrInvalid, "a decision names who made it")
	_, err = s.ConfirmLink(ctx, "greenhouse:1", "app-1", "j-none", "ada")
	require.ErrorIs(t, err, store.ErrNotFound)
	c, err := s.ConfirmLink(ctx, "greenhouse:1", "app-1", "j2", "ada")
	require.NoError(t, err)
	require.Equal(t, store.LinkConfirmed, c.State)
	require.Equal(t, "j2", c.KomboJobID)
	require.Equal(t, "ada", c.DecidedBy)
	require.Nil(t, l.DecidedAt, "no one decided a proposal")
	require.NotNil(t, c.DecidedAt, "when a person decided")
	require.WithinDuration(t, time.Now(), *c.DecidedAt, time.Minute)
	read, err := s.JobLink(ctx, "greenhouse:1", "app-1")
	require.NoError(t, err)
	require.Equal(t, c.DecidedAt.UTC(), read.DecidedAt.UTC(), "as stored")
	views, err := s.ListLinks(ctx, "greenhouse:1", "", 10, false)
	require.NoError(t, err)
	require.Equal(t, c.DecidedAt.UTC(), views[0].DecidedAt.UTC())
	r, err := s.RejectLink(ctx, "greenhouse:1", "app-1", "ada")
	require.NoError(t, err)
	require.Equal(t, store.LinkRejected, r.State)
	require.NoError(t, s.DeleteLink(ctx, "greenhouse:1", "app-1"))
	require.ErrorIs(t, s.DeleteLink(ctx, "greenhouse:1", "app-1"), store.ErrNotFound)
}

func TestAnUnresolvedLinkResolvesWhenItsJobAppears(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	l, err := s.LinkJob(ctx, "greenhouse:1", "app-early", store.JobHints{JobCode: "NEW-1", URL: "https://careers.acme.example/new-1"})
	require.NoError(t, err)
	require.Equal(t, store.LinkUnresolved, l.State)
	n, err := s.RetryUnresolved(ctx, "greenhouse:1")
	require.NoError(t, err)
	require.Zero(t, n)
	writeJobs(t, s, map[string]any{"id": "j9", "name": "New role", "job_code": "NEW-1"})
	n, err = s.RetryUnresolved(ctx, "greenhouse:1")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	l, err = s.JobLink(ctx, "greenhouse:1", "app-early")
	require.NoError(t, err)
	require.Equal(t, store.LinkConfirmed, l.State)
	require.Equal(t, "j9", l.KomboJobID)
	require.Equal(t, "job_code", l.Method)

	// A job's keys follow the job: a changed code no longer matches the old one.
	writeJobs(t, s, map[string]any{"id": "j9", "name": "New role", "job_code": "NEW-2"})
	m, err := s.MatchJob(ctx, "greenhouse:1", store.JobHints{JobCode: "NEW-1"})
	require.NoError(t, err)
	require.Empty(t, m.Exact)
}

// A confirmed link's job closing, being deleted and reopening are transitions in the feed (endpoint
// job-links) and events, each once; kombo.job_can_take_applications says so before an application.
func TestLinkedJobTransitionsAreInTheFeed(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := t.Context()
	sub := subscribe(t, s, store.EventJobLinkDeactivated, store.EventJobLinkReactivated)
	writeJobs(t, s, map[string]any{"id": "j1", "name": "Engineer", "job_code": "ENG-1",
		"job_postings": []any{map[string]any{"url": "https://b.example/1", "status": "ACTIVE"}}})
	_, err := s.LinkJob(ctx, "greenhouse:1", "app-1", store.JobHints{JobCode: "ENG-1"})
	require.NoError(t, err)
	canApply := func() bool {
		var ok bool
		require.NoError(t, pool.QueryRow(ctx, `select kombo.job_can_take_applications('greenhouse:1', 'app-1')`).Scan(&ok))
		return ok
	}
	reportJobs := func() {
		_, err := s.ReportChanges(ctx, store.ChangeReport{IntegrationID: "greenhouse:1"})
		require.NoError(t, err)
	}
	transitions := func() []string {
		rows, err := pool.Query(ctx, `select op || ' ' || coalesce(diff -> 'reason' ->> 1, '') from kombo.changes
			where endpoint = 'job-links' and record_id = 'app-1' order by seq`)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}
	require.True(t, canApply())
	reportJobs()
	require.Empty(t, transitions(), "a new link to an open job is no transition")

	for _, step := range []struct {
		job    map[string]any
		can    bool
		expect []string
	}{
		{map[string]any{"id": "j1", "name": "Engineer", "job_code": "ENG-1", "status": "CLOSED"}, false, []string{"deactivated closed"}},
		{map[string]any{"id": "j1", "name": "Engineer", "job_code": "ENG-1", "status": "CLOSED", "remote_deleted_at": kombo.FormatTime(t0)}, false,
			[]string{"deactivated closed", "deactivated deleted_in_ats"}},
		{map[string]any{"id": "j1", "name": "Engineer", "job_code": "ENG-1",
			"job_postings": []any{map[string]any{"url": "https://b.example/1", "status": "ACTIVE"}}}, true,
			[]string{"deactivated closed", "deactivated deleted_in_ats", "reactivated "}},
		{map[string]any{"id": "j1", "name": "Engineer", "job_code": "ENG-1",
			"job_postings": []any{map[string]any{"url": "https://b.example/1", "status": "INACTIVE"}}}, false,
			[]string{"deactivated closed", "deactivated deleted_in_ats", "reactivated ", "deactivated posting_inactive"}},
	} {
		writeJobs(t, s, step.job)
		require.Equal(t, step.can, canApply(), "%v", step.job)
		reportJobs()
		reportJobs() // once each
		require.Equal(t, step.expect, transitions())
	}
	ds := pending(t, s, sub.ID)
	require.Len(t, ds, 4)
	var last store.JobLinkTransition
	require.NoError(t, json.Unmarshal(ds[3].Data, &last))
	require.Equal(t, store.JobLinkTransition{IntegrationID: "greenhouse:1", AppJobID: "app-1", KomboJobID: "j1", Reason: "posting_inactive"}, last)
	require.Equal(t, store.EventJobLinkReactivated, ds[2].Type)
}
