package backoffice_test

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/internal/browser"
)

// The reference page in headless Chromium, as a person uses it: signs in (a wrong token first),
// sees the linked job that closed highlighted and the proposals, searches the open jobs, links
// one from the list, confirms a title proposal, rejects an ambiguous one, links by a job code,
// is refused a conflicting link, and unlinks the closed job. Each step is checked on the page
// and in Postgres. With KOMBOSYNC_SCREENSHOTS=1 it refreshes the README's screenshot.
func TestBackOfficePageInChromium(t *testing.T) {
	t.Parallel()
	exe := browser.ForTest(t)
	c := newAPI(t)
	seedJobsPage(c)
	ctx, stop := browser.Start(t.Context(), exe, 1400, 900)
	defer stop()
	page := c.srv.URL + "/ui/integrations/" + url.PathEscape("greenhouse:acme")

	// submit runs steps that load a page and returns its HTTP status.
	submit := func(steps ...chromedp.Action[chromedp.Void]) int64 {
		t.Helper()
		resp, err := chromedp.RunResponse(ctx, steps...)
		require.NoError(t, err)
		return resp.Status
	}
	js := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		require.NoError(t, err)
		return v
	}
	text := func() string { return js(`document.body.innerText`) }
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(ctx, chromedp.Location())
		require.NoError(t, err)
		return loc
	}

	require.EqualValues(t, 200, submit(chromedp.Navigate(page)))
	require.True(t, strings.HasPrefix(location(), c.srv.URL+"/ui/login?next="), location())
	require.EqualValues(t, 401, submit(chromedp.SendKeys(`input[name=token]`, "wrong-token-0123456789abcdef0123456789"),
		chromedp.SendKeys(`input[name=name]`, "Ada Lovelace"), chromedp.Click(`button[type=submit]`)))
	require.Contains(t, text(), "that is not one of this server's API tokens")
	require.EqualValues(t, 200, submit(chromedp.SendKeys(`input[name=token]`, token), chromedp.Click(`button[type=submit]`)))
	require.Equal(t, page, location(), "back to the page asked for")

	body := text()
	for _, want := range []string{"Signed in as Ada Lovelace", "Needs a person", "app-sales", "closed", "Head of Sales",
		"app-design", "Product Designer", "app-eng", "Senior Backend Engineer", "ENG-42", "Customer Success Manager"} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "Secret Other Job", "another integration's job")
	require.NotContains(t, body, "app-other")
	// The closed job's link is highlighted in all three places, and the style sheet applies.
	require.Equal(t, "1 1 1", js(`["article.card.inactive[data-app-job='app-sales']", "tr.inactive[data-link='app-sales']", "tr.inactive[data-job='j3']"]
		.map(s => document.querySelectorAll(s).length).join(" ")`))
	require.Equal(t, "rgb(253, 236, 234)", js(`getComputedStyle(document.querySelector("tr.inactive[data-link='app-sales'] td")).backgroundColor`))
	require.Equal(t, "rgb(253, 236, 234)", js(`getComputedStyle(document.querySelector("article.card.inactive")).backgroundColor`))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(shot, []byte("\x89PNG")))
	if os.Getenv("KOMBOSYNC_SCREENSHOTS") == "1" {
		require.NoError(t, os.WriteFile(filepath.Join("..", "docs", "screenshots", "backoffice-jobs.png"), shot, 0o644))
	}

	// Search the open jobs about "backend", then link one from the list.
	require.EqualValues(t, 200, submit(chromedp.SendKeys(`input[name=q]`, "backend"), chromedp.SetValue(`select[name=status]`, "OPEN"),
		chromedp.Click(`#jobs form.row button`)))
	require.Equal(t, "j1 j2", js(`Array.from(document.querySelectorAll("tr[data-job]")).map(r => r.dataset.job).join(" ")`))
	require.EqualValues(t, 200, submit(chromedp.SendKeys(`tr[data-job=j2] input[name=app_job_id]`, "app-backend"),
		chromedp.Click(`tr[data-job=j2] form.inline button`)))
	require.Contains(t, text(), "app-backend is linked to job j2 (matched by id, decided by Ada Lovelace).")
	require.Contains(t, location(), "q=backend", "back to the same search")
	require.Equal(t, "app-backend", js(`document.querySelector("tr[data-job=j2] form.chip span").innerText`))
	require.Equal(t, "confirmed j2 Ada Lovelace", c.linkRows("greenhouse:acme")["app-backend"])

	// A person confirms the title proposal, and rejects the ambiguous one.
	require.EqualValues(t, 200, submit(chromedp.Click(`article[data-app-job=app-design] form:has(input[name=job_id][value=j4]) button`)))
	require.Contains(t, text(), "app-design is linked to job j4, confirmed by Ada Lovelace.")
	require.EqualValues(t, 200, submit(chromedp.Click(`article[data-app-job=app-eng] > form button`)))
	require.Contains(t, text(), "The proposals for app-eng were rejected by Ada Lovelace.")

	// The guide's multiposter flow: a job code, typed loosely.
	require.EqualValues(t, 200, submit(chromedp.SendKeys(`#link input[name=app_job_id]`, "app-data"),
		chromedp.SendKeys(`#link input[name=job_code]`, " dat-2 "), chromedp.Click(`#link button`)))
	require.Contains(t, text(), "app-data is linked to job j5 (matched by job_code, decided by kombosync).")
	// The same application job with other hints is refused, and nothing changes.
	require.EqualValues(t, 409, submit(chromedp.SendKeys(`#link input[name=app_job_id]`, "app-data"),
		chromedp.SendKeys(`#link input[name=title]`, "Data"), chromedp.Click(`#link button`)))
	require.Contains(t, text(), "application job app-data is linked with other hints; delete its link first")

	// The closed job's link is unlinked from its card: nothing is left to decide.
	require.EqualValues(t, 200, submit(chromedp.Navigate(page)))
	require.EqualValues(t, 200, submit(chromedp.Click(`article[data-app-job=app-sales] button`)))
	require.Contains(t, text(), "app-sales is no longer linked.")
	require.Contains(t, text(), "Nothing to decide")
	require.Equal(t, map[string]string{
		"app-backend": "confirmed j2 Ada Lovelace",
		"app-design":  "confirmed j4 Ada Lovelace",
		"app-eng":     "rejected j2 Ada Lovelace",
		"app-data":    "confirmed j5 kombosync",
	}, c.linkRows("greenhouse:acme"))
}
