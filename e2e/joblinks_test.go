package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/browser"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
	"github.com/kombosync/kombosync/store"
)

// The guide's flows with the real programs and the emulator: a multiposter's job with its code
// is confirmed, a job sent by e-mail with its URL is confirmed, a title-only job is proposed and
// then confirmed by a person; the first job then closes in the emulator and the second is
// deleted: their links turn inactive (closed, deleted_in_ats) within a round, each transition a
// row of the feed.
func TestJobLinksFollowTheATS(t *testing.T) {
	t.Parallel()
	s := newStack(t, teststack.Options{WorkerEnv: teststack.Env("KOMBO_ENDPOINTS", "ats/jobs")})
	const id = "greenhouse:e2e-jobs"
	jobs := kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryATS, Records: 300, Seed: 8, Notify: true}))
	inSync := func() {
		teststack.Eventually(t, 2*time.Minute, func() string { return s.Diff(t, id, jobs) })
	}
	inSync()

	var listed struct{ Jobs []store.SyncedJob }
	s.StarterJSON(t, &listed, "jobs", "list", id, "--status", "OPEN")
	require.GreaterOrEqual(t, len(listed.Jobs), 3)
	multi, mailed, titled := listed.Jobs[0], listed.Jobs[1], listed.Jobs[2]

	link := func(appJob string, args ...string) store.JobLink {
		var out store.JobLink
		s.StarterJSON(t, &out, append([]string{"jobs", "link", id, appJob}, args...)...)
		return out
	}
	got := link("app-multi", "--code", " "+multi.JobCode+" ")
	require.Equal(t, store.LinkConfirmed, got.State, "a multiposter's job code")
	require.Equal(t, multi.ID, got.KomboJobID)
	// The e-mail flow through the back-office API program: look the URL up, then link it.
	api := backoffice{base: s.StartBackoffice(t)}
	base := "/v1/integrations/" + url.PathEscape(id)
	mailedURL := mailed.PostURL + "?utm_source=email"
	var found struct {
		Results []struct{ Exact []store.JobCandidate }
	}
	require.Equal(t, http.StatusOK, api.do(t, "POST", base+"/jobs/lookup", `{"hints": [{"url": "`+mailedURL+`"}]}`, &found))
	require.Len(t, found.Results, 1)
	require.Len(t, found.Results[0].Exact, 1)
	require.Equal(t, mailed.ID, found.Results[0].Exact[0].JobID)
	require.Equal(t, http.StatusCreated, api.do(t, "PUT", base+"/job-links/app-mail", `{"hints": {"url": "`+mailedURL+`"}}`, &got))
	require.Equal(t, store.LinkConfirmed, got.State, "a URL sent by e-mail")
	require.Equal(t, mailed.ID, got.KomboJobID)
	require.Equal(t, "post_url", got.Method)
	got = link("app-title", "--title", titled.Name)
	require.Equal(t, store.LinkProposed, got.State, "a title is only proposed")
	var confirmed store.JobLink
	s.StarterJSON(t, &confirmed, "jobs", "confirm", id, "app-title", titled.ID, "--by", "ada")
	require.Equal(t, store.LinkConfirmed, confirmed.State)

	_, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: jobs, Op: komboemu.OpUpdate, ID: multi.ID, Fields: map[string]any{"status": "CLOSED"}},
		komboemu.Mutation{Endpoint: jobs, Op: komboemu.OpDelete, ID: mailed.ID})
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	inSync()
	teststack.Eventually(t, time.Minute, func() string {
		var links struct{ Links []store.LinkView }
		s.StarterJSON(t, &links, "jobs", "links", id, "--needs-person")
		reasons := map[string]string{}
		for _, v := range links.Links {
			reasons[v.AppJobID] = v.Reason
		}
		if reasons["app-multi"] != "closed" || reasons["app-mail"] != "deleted_in_ats" {
			return fmt.Sprintf("links needing a person: %v", reasons)
		}
		return ""
	})
	teststack.Eventually(t, time.Minute, func() string { // the round's report writes the transitions
		n := s.Count(t, `select count(*) from kombo.changes where integration_id = $1 and endpoint = 'job-links' and op = 'deactivated'
			and ((record_id = 'app-multi' and diff -> 'reason' ->> 1 = 'closed') or (record_id = 'app-mail' and diff -> 'reason' ->> 1 = 'deleted_in_ats'))`, id)
		if n != 2 {
			return fmt.Sprintf("%d of 2 transitions in the feed", n)
		}
		return ""
	})
	require.Zero(t, s.Count(t, `select count(*) from kombo.changes where endpoint = 'job-links' and record_id = 'app-title'`),
		"the open job's link made no transition")
	// A job the application knows before kombosync does (its data-changed lost): linked early,
	// unresolved; a live lookup finds it at Kombo and asks for a sync of ats/jobs, after which
	// the link resolves itself.
	s.Emu.SetFaults(komboemu.Faults{Webhooks: komboemu.WebhookFaults{LossRate: 1}})
	created, err := s.Emu.Mutate(id, komboemu.Mutation{Endpoint: jobs, Op: komboemu.OpCreate})
	require.NoError(t, err)
	late := created[0].ID
	_, err = s.Emu.Mutate(id, komboemu.Mutation{Endpoint: jobs, Op: komboemu.OpUpdate, ID: late, Fields: map[string]any{"job_code": "LATE-7", "status": "OPEN"}})
	require.NoError(t, err)
	require.NoError(t, s.Emu.WaitWebhooks(t.Context()))
	s.Emu.SetFaults(komboemu.Faults{})
	require.Equal(t, http.StatusCreated, api.do(t, "PUT", base+"/job-links/app-late", `{"hints": {"job_code": "late-7"}}`, &got))
	require.Equal(t, store.LinkUnresolved, got.State, "not synced yet")
	var live struct {
		Results []struct {
			Exact   []store.JobCandidate
			AtKombo []store.JobCandidate `json:"at_kombo"`
		}
		SyncRequested bool `json:"sync_requested"`
	}
	require.Equal(t, http.StatusOK, api.do(t, "POST", base+"/jobs/lookup", `{"hints": [{"job_code": "late-7"}], "live": true}`, &live))
	require.Empty(t, live.Results[0].Exact)
	require.Len(t, live.Results[0].AtKombo, 1)
	require.Equal(t, late, live.Results[0].AtKombo[0].JobID)
	require.True(t, live.SyncRequested)
	teststack.Eventually(t, time.Minute, func() string {
		var l store.JobLink
		api.do(t, "GET", base+"/job-links/app-late", "", &l)
		if l.State != store.LinkConfirmed || l.KomboJobID != late {
			return fmt.Sprintf("app-late is %s %s", l.State, l.KomboJobID)
		}
		return ""
	})

	var can bool
	require.NoError(t, s.Pool.QueryRow(t.Context(), `select kombo.job_can_take_applications($1, 'app-title')`, id).Scan(&can))
	require.True(t, can)
	require.NoError(t, s.Pool.QueryRow(t.Context(), `select kombo.job_can_take_applications($1, 'app-multi')`, id).Scan(&can))
	require.False(t, can)

	checkPageInChromium(t, api.base, id) // last: KOMBOSYNC_SKIP_BROWSER=1 skips from there
}

// checkPageInChromium signs in to the back-office page of the real program and checks that the
// links whose jobs closed and were deleted are highlighted with their reasons.
func checkPageInChromium(t *testing.T, base, integrationID string) {
	t.Helper()
	ctx, stop := browser.Start(t.Context(), browser.ForTest(t), 1400, 900)
	defer stop()
	page := base + "/ui/integrations/" + url.PathEscape(integrationID)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(page)))
	resp, err := chromedp.RunResponse(ctx, chromedp.SendKeys(`input[name=token]`, teststack.APIToken),
		chromedp.SendKeys(`input[name=name]`, "Ada"), chromedp.Click(`button[type=submit]`))
	require.NoError(t, err)
	require.EqualValues(t, http.StatusOK, resp.Status)
	reasons, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("article.card.inactive"))
		.map(a => a.dataset.appJob + "=" + a.querySelector(".badge").innerText).sort().join(" ")`))
	require.NoError(t, err)
	require.Equal(t, "app-mail=deleted_in_ats app-multi=closed", reasons)
}
