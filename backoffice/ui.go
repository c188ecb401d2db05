package backoffice

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/kombosync/kombosync/store"
)

// The reference back-office page (Kombo's ATS guide, "import UI"): server-rendered HTML under
// /ui/, no script and no front-end build, for an application team to copy. It shows an
// integration's synced jobs with search and a status filter, links an application job to one of
// them (or by a code, URL or title), lists the proposals a person must confirm or reject, and
// highlights linked jobs that closed or were deleted. It calls the same store functions as the
// JSON API; a refused form changes nothing and says why.

//go:embed ui
var uiFiles embed.FS

var uiTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"path":    url.PathEscape,
	"percent": func(f *float64) string { return fmt.Sprintf("%.0f%%", deref(f)*100) },
	"score":   func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"action": func(integrationID, appJobID, action string) string {
		return "/ui/integrations/" + url.PathEscape(integrationID) + "/links/" + url.PathEscape(appJobID) + "/" + action
	},
	"statusClass": func(status string, deleted bool) string {
		switch {
		case deleted || status == "CLOSED" || status == "ARCHIVED":
			return "bad"
		case status == "OPEN":
			return "ok"
		}
		return "warn"
	},
	"stateClass": func(state string) string {
		return map[string]string{store.LinkConfirmed: "ok", store.LinkProposed: "warn", store.LinkRejected: "bad"}[state]
	},
}).ParseFS(uiFiles, "ui/*.html"))

func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}

const (
	noticeCookie = "kombosync_notice"
	uiPageSize   = 50
)

func (a *API) mountUI(r *mux.Router) {
	r.Handle("/ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently)).Methods(http.MethodGet)
	ui := r.PathPrefix("/ui").Subrouter()
	ui.Use(uiHeaders, http.NewCrossOriginProtection().Handler)
	ui.HandleFunc("/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		http.ServeFileFS(w, r, uiFiles, "ui/style.css")
	}).Methods(http.MethodGet)
	ui.HandleFunc("/login", a.loginPage).Methods(http.MethodGet)
	ui.HandleFunc("/login", a.login).Methods(http.MethodPost)
	ui.HandleFunc("/logout", a.logout).Methods(http.MethodPost)
	in := ui.NewRoute().Subrouter()
	in.Use(a.signedIn)
	in.HandleFunc("/", a.integrationsPage).Methods(http.MethodGet)
	in.HandleFunc("/integrations/{integration_id}", a.jobsPage).Methods(http.MethodGet)
	in.HandleFunc("/integrations/{integration_id}/links", a.uiLink).Methods(http.MethodPost)
	in.HandleFunc("/integrations/{integration_id}/links/{app_job_id}/{action:confirm|reject|unlink}", a.uiDecide).Methods(http.MethodPost)
}

// uiHeaders: no caching of pages with job data, no framing, no script, forms only to this server.
func uiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type nameKey struct{}

func contextWithName(r *http.Request, name string) context.Context {
	return context.WithValue(r.Context(), nameKey{}, name)
}

// nameOf is the signed-in person's name: recorded on the links they confirm or reject.
func nameOf(r *http.Request) string {
	name, _ := r.Context().Value(nameKey{}).(string)
	return name
}

// signedIn sends a browser without a valid session to the sign-in (a form is refused with 401).
func (a *API) signedIn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := a.session(r, time.Now())
		if !ok {
			if r.Method != http.MethodGet {
				a.render(w, http.StatusUnauthorized, "login.html", loginView{Next: "/ui/", Error: "your session ended: sign in again"})
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(contextWithName(r, name)))
	})
}

func (a *API) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := uiTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		a.log.Error("render back-office page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered; the server's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

type integrationsView struct {
	User         string
	Integrations []store.IntegrationRef
	Next         string
}

func (a *API) integrationsPage(w http.ResponseWriter, r *http.Request) {
	list, err := a.store.ActiveIntegrations(r.Context(), r.URL.Query().Get("after"), uiPageSize)
	if err != nil {
		a.uiError(w, r, err)
		return
	}
	v := integrationsView{User: nameOf(r), Integrations: list}
	if len(list) == uiPageSize {
		v.Next = "/ui/?after=" + url.QueryEscape(list[len(list)-1].ID)
	}
	a.render(w, http.StatusOK, "integrations.html", v)
}

// jobsView is an integration's page.
type jobsView struct {
	User        string
	Integration store.Integration
	Notice      string
	Error       string
	// The jobs list and its filter.
	Q, Status   string
	WithDeleted bool
	Statuses    []string
	Jobs        []store.SyncedJob
	NextJobs    string
	// Links: those needing a person, then all of them.
	NeedsPerson []store.LinkView
	MorePeople  bool // more links need a person than the page shows: decide these, the next come
	Links       []store.LinkView
	NextLinks   string
	// Return is the filter to come back to after a form.
	Return string
}

func (a *API) jobsPage(w http.ResponseWriter, r *http.Request) {
	a.showJobs(w, r, http.StatusOK, consumeNotice(w, r), "")
}

// showJobs renders the integration's page with a notice or an error (and its status).
func (a *API) showJobs(w http.ResponseWriter, r *http.Request, status int, notice, failure string) {
	ctx, id := r.Context(), mux.Vars(r)["integration_id"]
	in, found, err := a.store.Integration(ctx, id)
	if err == nil && (!found || in.DeletedAt != nil) {
		err = fmt.Errorf("integration %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		a.uiError(w, r, err)
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost { // a refused form shows the filter it came from
		q, _ = url.ParseQuery(r.PostForm.Get("return"))
	}
	v := jobsView{User: nameOf(r), Integration: in, Notice: notice, Error: failure, Statuses: jobStatuses,
		Q: strings.TrimSpace(q.Get("q")), Status: strings.ToUpper(q.Get("status")), WithDeleted: q.Get("deleted") == "1"}
	v.Return = filterQuery(v.Q, v.Status, v.WithDeleted).Encode()
	var statuses []string
	if v.Status != "" {
		if !slices.Contains(jobStatuses, v.Status) {
			v.Status, v.Error = "", "status: one of OPEN, CLOSED, DRAFT, ARCHIVED"
		} else {
			statuses = []string{v.Status}
		}
	}
	if len(v.Q) > 200 {
		v.Q, v.Error = "", "search: at most 200 characters"
	}
	if v.Error != "" && status == http.StatusOK {
		status = http.StatusBadRequest
	}
	if v.Jobs, err = a.store.ListJobs(ctx, id, statuses, v.Q, q.Get("cursor"), uiPageSize, v.WithDeleted); err != nil {
		a.uiError(w, r, err)
		return
	}
	if len(v.Jobs) == uiPageSize {
		next := filterQuery(v.Q, v.Status, v.WithDeleted)
		next.Set("cursor", v.Jobs[len(v.Jobs)-1].ID)
		v.NextJobs = "?" + next.Encode()
	}
	if v.NeedsPerson, err = a.store.ListLinks(ctx, id, "", uiPageSize, true); err != nil {
		a.uiError(w, r, err)
		return
	}
	v.MorePeople = len(v.NeedsPerson) == uiPageSize
	if v.Links, err = a.store.ListLinks(ctx, id, q.Get("links_after"), uiPageSize, false); err != nil {
		a.uiError(w, r, err)
		return
	}
	if len(v.Links) == uiPageSize {
		next := filterQuery(v.Q, v.Status, v.WithDeleted)
		next.Set("links_after", v.Links[len(v.Links)-1].AppJobID)
		v.NextLinks = "?" + next.Encode() + "#links"
	}
	a.render(w, status, "jobs.html", v)
}

func filterQuery(q, status string, withDeleted bool) url.Values {
	v := url.Values{}
	if q != "" {
		v.Set("q", q)
	}
	if status != "" {
		v.Set("status", status)
	}
	if withDeleted {
		v.Set("deleted", "1")
	}
	return v
}

// uiLink links an application job: to the synced job chosen in the list (job_id), or by the
// hints typed in (a code, a URL, a title), matched as the API's PUT does.
func (a *API) uiLink(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	f := r.PostForm
	appJob := strings.TrimSpace(f.Get("app_job_id"))
	h := store.JobHints{ID: strings.TrimSpace(f.Get("job_id")), JobCode: strings.TrimSpace(f.Get("job_code")),
		URL: strings.TrimSpace(f.Get("url")), Title: strings.TrimSpace(f.Get("title"))}
	switch {
	case appJob == "":
		a.showJobs(w, r, http.StatusBadRequest, "", "give the application's job id to link")
		return
	case h.Empty():
		a.showJobs(w, r, http.StatusBadRequest, "", "give a job code, a URL or a title to match (or link from the jobs list)")
		return
	}
	id := mux.Vars(r)["integration_id"]
	l, err := a.store.LinkJob(r.Context(), id, appJob, h)
	if err == nil && h == (store.JobHints{ID: h.ID}) && l.State == store.LinkConfirmed && l.DecidedBy == store.DecidedByMatcher {
		// A person chose the job in the list: the decision is theirs, not the matcher's.
		l, err = a.store.ConfirmLink(r.Context(), id, appJob, h.ID, nameOf(r))
	}
	if err != nil {
		a.uiRefuse(w, r, err)
		return
	}
	a.done(w, r, describeLink(l))
}

func describeLink(l store.JobLink) string {
	switch l.State {
	case store.LinkConfirmed:
		return fmt.Sprintf("%s is linked to job %s (matched by %s, decided by %s).", l.AppJobID, l.KomboJobID, l.Method, l.DecidedBy)
	case store.LinkProposed:
		return fmt.Sprintf("%s has %d proposal(s) for a person to confirm or reject.", l.AppJobID, max(len(l.Proposals), 1))
	default:
		return fmt.Sprintf("%s matches no synced job yet; it will link itself when its job is synced.", l.AppJobID)
	}
}

// uiDecide is a person's decision on a link: confirm a job, reject the proposals, or unlink.
func (a *API) uiDecide(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	vars := mux.Vars(r)
	id, appJob, by := vars["integration_id"], vars["app_job_id"], nameOf(r)
	var err error
	var notice string
	switch vars["action"] {
	case "confirm":
		jobID := strings.TrimSpace(r.PostForm.Get("job_id"))
		if jobID == "" {
			a.showJobs(w, r, http.StatusBadRequest, "", "choose the job to confirm")
			return
		}
		_, err = a.store.ConfirmLink(r.Context(), id, appJob, jobID, by)
		notice = fmt.Sprintf("%s is linked to job %s, confirmed by %s.", appJob, jobID, by)
	case "reject":
		_, err = a.store.RejectLink(r.Context(), id, appJob, by)
		notice = fmt.Sprintf("The proposals for %s were rejected by %s.", appJob, by)
	case "unlink":
		err = a.store.DeleteLink(r.Context(), id, appJob)
		notice = fmt.Sprintf("%s is no longer linked.", appJob)
	}
	if err != nil {
		a.uiRefuse(w, r, err)
		return
	}
	a.done(w, r, notice)
}

func (a *API) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		a.showJobs(w, r, http.StatusBadRequest, "", "the form could not be read")
		return false
	}
	return true
}

// done sends the browser back to the page (post/redirect/get) with a one-time notice.
func (a *API) done(w http.ResponseWriter, r *http.Request, notice string) {
	setCookie(w, r, noticeCookie, base64.RawURLEncoding.EncodeToString([]byte(notice)), 60)
	target := "/ui/integrations/" + url.PathEscape(mux.Vars(r)["integration_id"])
	if q, err := url.ParseQuery(r.PostForm.Get("return")); err == nil && len(q) > 0 {
		target += "?" + filterQuery(q.Get("q"), q.Get("status"), q.Get("deleted") == "1").Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func consumeNotice(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(noticeCookie)
	if err != nil {
		return ""
	}
	setCookie(w, r, noticeCookie, "", -1)
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return ""
	}
	return string(b)
}

// uiRefuse shows the page again with why a form was refused (classify: 400, 404, 409).
func (a *API) uiRefuse(w http.ResponseWriter, r *http.Request, err error) {
	status, _, message := classify(err)
	if status == http.StatusInternalServerError {
		a.uiError(w, r, err)
		return
	}
	a.showJobs(w, r, status, "", message)
}

type errorView struct {
	User, Message string
}

// uiError is a page that could not be shown (classify): 404 for an unknown integration, 400 for
// input that is not text, 500 otherwise (logged, not shown).
func (a *API) uiError(w http.ResponseWriter, r *http.Request, err error) {
	status, _, message := classify(err)
	switch status {
	case http.StatusNotFound:
		message = "kombosync knows no such integration."
	case http.StatusInternalServerError:
		a.log.ErrorContext(r.Context(), "back-office page failed", "method", r.Method, "route", routeOf(r), "error", err)
		message = "The page failed; the server's log says why."
	}
	a.render(w, status, "error.html", errorView{User: nameOf(r), Message: message})
}
