package backoffice_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/backoffice"
	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/store"
)

// browserClient uses the back-office page as a browser without script would: a cookie jar,
// forms, and no following of redirects (the test reads each 303).
type browserClient struct {
	t    *testing.T
	http *http.Client
	base string
}

func newBrowserClient(t *testing.T, base string) *browserClient {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browserClient{t: t, base: base, http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// send is a request with a form (nil for none) and extra headers ("Name: value"); it returns the
// status, the Location header and the body.
func (b *browserClient) send(method, path string, form url.Values, headers ...string) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.base+path, body)
	require.NoError(b.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Set(name, value)
	}
	resp, err := b.http.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp.StatusCode, resp.Header.Get("Location"), string(page)
}

func (b *browserClient) signIn(tok, name string) {
	b.t.Helper()
	status, loc, _ := b.send("POST", "/ui/login", url.Values{"token": {tok}, "name": {name}, "next": {"/ui/"}})
	require.Equal(b.t, http.StatusSeeOther, status)
	require.Equal(b.t, "/ui/", loc)
}

// linkRows is the integration's links as stored: app job → "state kombo_job decided_by".
func (c *apiClient) linkRows(integrationID string) map[string]string {
	c.t.Helper()
	rows, err := c.pool.Query(c.t.Context(), `select app_job_id, state || ' ' || coalesce(kombo_job_id, '-') || ' ' || coalesce(decided_by, '-')
		from kombo.job_links where integration_id = $1`, integrationID)
	require.NoError(c.t, err)
	out := map[string]string{}
	for rows.Next() {
		var app, v string
		require.NoError(c.t, rows.Scan(&app, &v))
		out[app] = v
	}
	require.NoError(c.t, rows.Err())
	return out
}

// seedJobsPage syncs an integration's jobs and links in every state the page shows: a linked
// job that closed, a title proposal, an ambiguous one, and another integration's link.
func seedJobsPage(c *apiClient) {
	c.t.Helper()
	c.syncJobs("greenhouse:acme",
		map[string]any{"id": "j1", "name": "Senior Backend Engineer", "job_code": "ENG-42", "post_url": "https://careers.acme.example/jobs/42"},
		map[string]any{"id": "j2", "name": "Backend Engineer", "job_code": "ENG-43", "post_url": "https://careers.acme.example/jobs/43"},
		map[string]any{"id": "j3", "name": "Head of Sales", "job_code": "SAL-1", "status": "CLOSED"},
		map[string]any{"id": "j4", "name": "Product Designer", "job_code": "DES-7"},
		map[string]any{"id": "j5", "name": "Data Analyst", "job_code": "DAT-2"},
		map[string]any{"id": "j6", "name": "Customer Success Manager", "job_code": "CS-11", "status": "DRAFT"},
		map[string]any{"id": "j7", "name": "Frontend Engineer", "job_code": "ENG-51"},
		map[string]any{"id": "j8", "name": "Office Manager", "job_code": "OPS-3", "status": "ARCHIVED"})
	c.syncJobs("greenhouse:other", map[string]any{"id": "x1", "name": "Secret Other Job", "job_code": "ENG-42"})
	st := store.New(c.pool)
	for _, l := range []struct {
		integration, app string
		h                store.JobHints
	}{
		{"greenhouse:acme", "app-sales", store.JobHints{JobCode: "SAL-1"}},
		{"greenhouse:acme", "app-design", store.JobHints{Title: "Designer (Product)"}},
		{"greenhouse:acme", "app-eng", store.JobHints{Title: "Backend Engineer"}},
		{"greenhouse:other", "app-other", store.JobHints{JobCode: "ENG-42"}},
	} {
		_, err := st.LinkJob(c.t.Context(), l.integration, l.app, l.h)
		require.NoError(c.t, err)
	}
}

// The page's refusals: no session, a wrong token, a forged or foreign session, a cross-site
// form, an unknown integration, another integration's link, bad and conflicting forms. Each is
// answered with its status and writes nothing.
func TestBackOfficePageRefusesAndWritesNothing(t *testing.T) {
	t.Parallel()
	c := newAPI(t)
	seedJobsPage(c)
	b := newBrowserClient(t, c.srv.URL)
	page := "/ui/integrations/" + url.PathEscape("greenhouse:acme")
	before := c.linkRows("greenhouse:acme")

	status, loc, _ := b.send("GET", page+"?q=sales", nil)
	require.Equal(t, http.StatusSeeOther, status, "no session: to the sign-in")
	require.Equal(t, "/ui/login?next="+url.QueryEscape(page+"?q=sales"), loc)
	status, _, body := b.send("POST", page+"/links", url.Values{"app_job_id": {"app-new"}, "job_id": {"j5"}})
	require.Equal(t, http.StatusUnauthorized, status, "a form without a session")
	require.Contains(t, body, "sign in again")

	status, _, body = b.send("POST", "/ui/login", url.Values{"token": {"not-a-token-0123456789abcdef0123456789"}, "name": {"Ada"}})
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body, "not one of this server")
	status, _, body = b.send("POST", "/ui/login", url.Values{"token": {token}, "name": {"  "}})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "your name is required")
	status, _, _ = b.send("POST", "/ui/login", url.Values{"token": {token}, "name": {"Ada\x07"}})
	require.Equal(t, http.StatusBadRequest, status)
	status, loc, _ = b.send("POST", "/ui/login", url.Values{"token": {token}, "name": {"Ada"}, "next": {"//evil.example/"}})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/ui/", loc, "a sign-in only returns to this server's pages")

	status, _, body = b.send("GET", page, nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "Signed in as <strong>Ada</strong>")
	require.NotContains(t, body, "Secret Other Job")
	require.NotContains(t, body, "app-other")

	// Forged: the same cookie with another name.
	u, _ := url.Parse(c.srv.URL + "/ui/")
	cookies := b.http.Jar.Cookies(u)
	require.Len(t, cookies, 1)
	parts := strings.Split(cookies[0].Value, ".")
	forged := newBrowserClient(t, c.srv.URL)
	forged.http.Jar.SetCookies(u, []*http.Cookie{{Name: cookies[0].Name, Value: parts[0] + ".RXZl." + parts[2], Path: "/ui/"}})
	status, loc, _ = forged.send("GET", page, nil)
	require.Equal(t, http.StatusSeeOther, status, "a forged session")
	require.True(t, strings.HasPrefix(loc, "/ui/login"))
	// A session opened with a token the server no longer has (rotated out of API_TOKENS).
	rotated, err := backoffice.New(backoffice.Options{Tokens: []string{"new-token-0123456789abcdef0123456789"},
		Subscriptions: &outbound.Manager{Store: store.New(c.pool)}})
	require.NoError(t, err)
	req := httptest.NewRequestWithContext(t.Context(), "GET", page, nil)
	req.AddCookie(cookies[0])
	rec := httptest.NewRecorder()
	rotated.ServeHTTP(rec, req)
	require.Equal(t, http.StatusSeeOther, rec.Code, "a session of a removed token")

	status, _, _ = b.send("POST", page+"/links", url.Values{"app_job_id": {"app-new"}, "job_id": {"j5"}}, "Sec-Fetch-Site: cross-site")
	require.Equal(t, http.StatusForbidden, status, "a cross-site form (CSRF)")
	status, _, _ = b.send("POST", page+"/links", url.Values{"app_job_id": {"app-new"}, "job_id": {"j5"}}, "Origin: https://evil.example")
	require.Equal(t, http.StatusForbidden, status, "a form from another origin")

	status, _, body = b.send("GET", "/ui/integrations/greenhouse:nope", nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body, "no such integration")
	status, _, body = b.send("POST", page+"/links/app-other/unlink", url.Values{})
	require.Equal(t, http.StatusNotFound, status, "another integration's link is not found through this one")
	require.Contains(t, body, "not found")
	status, _, _ = b.send("POST", page+"/links/app-eng/confirm", url.Values{"job_id": {"x1"}})
	require.Equal(t, http.StatusNotFound, status, "another integration's job cannot be confirmed")
	status, _, body = b.send("POST", page+"/links", url.Values{"app_job_id": {""}, "job_id": {"j5"}})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "give the application&#39;s job id")
	status, _, body = b.send("POST", page+"/links", url.Values{"app_job_id": {"app-new"}})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "give a job code, a URL or a title")
	status, _, body = b.send("POST", page+"/links", url.Values{"app_job_id": {"app-sales"}, "job_code": {"DAT-2"}})
	require.Equal(t, http.StatusConflict, status)
	require.Contains(t, body, "linked with other hints")
	status, _, _ = b.send("POST", page+"/links/app-eng/confirm", url.Values{})
	require.Equal(t, http.StatusBadRequest, status, "a confirmation without its job")
	status, _, body = b.send("GET", page+"?status=SOLD", nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "status: one of OPEN")
	status, _, body = b.send("POST", page+"/links", url.Values{"app_job_id": {"app\x00new"}, "job_id": {"j5"}})
	require.Equal(t, http.StatusBadRequest, status, "a NUL byte")
	require.Contains(t, body, "not valid text")
	status, _, body = b.send("POST", page+"/links", url.Values{"app_job_id": {strings.Repeat("a", 201)}, "job_id": {"j5"}})
	require.Equal(t, http.StatusBadRequest, status, "a too long application job id")
	require.Contains(t, body, "at most 200 bytes")
	status, _, _ = b.send("GET", page+"?q=%00", nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, _, _ = b.send("GET", "/ui/integrations/greenhouse%00acme", nil)
	require.Equal(t, http.StatusBadRequest, status)
	status, loc, _ = b.send("GET", "/ui", nil)
	require.Equal(t, http.StatusMovedPermanently, status)
	require.Equal(t, "/ui/", loc)
	require.Equal(t, before, c.linkRows("greenhouse:acme"), "nothing refused was written")
	require.Equal(t, map[string]string{"app-other": "confirmed x1 kombosync"}, c.linkRows("greenhouse:other"))

	status, loc, _ = b.send("POST", "/ui/logout", url.Values{})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/ui/login", loc)
	status, _, _ = b.send("GET", page, nil)
	require.Equal(t, http.StatusSeeOther, status, "signed out")
}
