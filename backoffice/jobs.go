package backoffice

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// The job routes (Kombo's ATS guide: let customers choose jobs, match them, stop using closed
// ones), under /v1/integrations/{integration_id}. Every route answers 404 for an integration
// kombosync does not know, and never returns another integration's rows.
func (a *API) mountJobs(v1 *mux.Router) {
	r := v1.PathPrefix("/integrations/{integration_id}").Subrouter()
	r.Use(a.knownIntegration)
	r.HandleFunc("/jobs", a.listJobs).Methods(http.MethodGet)
	r.HandleFunc("/jobs/lookup", a.lookupJobs).Methods(http.MethodPost)
	r.HandleFunc("/job-links", a.listLinks).Methods(http.MethodGet)
	r.HandleFunc("/job-links/{app_job_id}", a.getLink).Methods(http.MethodGet)
	r.HandleFunc("/job-links/{app_job_id}", a.putLink).Methods(http.MethodPut)
	r.HandleFunc("/job-links/{app_job_id}", a.deleteLink).Methods(http.MethodDelete)
	r.HandleFunc("/job-links/{app_job_id}/confirm", a.confirmLink).Methods(http.MethodPost)
	r.HandleFunc("/job-links/{app_job_id}/reject", a.rejectLink).Methods(http.MethodPost)
	a.mountActions(r)
}

func (a *API) knownIntegration(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.store.IntegrationKnown(r.Context(), mux.Vars(r)["integration_id"]); err != nil {
			a.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var jobStatuses = []string{"OPEN", "CLOSED", "DRAFT", "ARCHIVED"}

func (a *API) listJobs(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var statuses []string
	if v := r.URL.Query().Get("status"); v != "" {
		for _, s := range strings.Split(v, ",") {
			s = strings.ToUpper(strings.TrimSpace(s))
			if !slices.Contains(jobStatuses, s) {
				writeError(w, http.StatusBadRequest, "invalid", "status: a comma-separated list of OPEN, CLOSED, DRAFT, ARCHIVED")
				return
			}
			statuses = append(statuses, s)
		}
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 200 {
		writeError(w, http.StatusBadRequest, "invalid", "q: at most 200 characters")
		return
	}
	jobs, err := a.store.ListJobs(r.Context(), mux.Vars(r)["integration_id"], statuses, q, r.URL.Query().Get("cursor"), limit,
		r.URL.Query().Get("include_deleted") == "true")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pageOf(jobs, limit, func(j store.SyncedJob) string { return j.ID }))
}

type lookupRequest struct {
	Hints []store.JobHints `json:"hints"`
	// Live asks Kombo for the keys no synced job has (one batched request per key kind, post_url
	// one at a time, as Kombo's guide asks), then a sync of ats/jobs so they are stored.
	Live bool `json:"live"`
}

type lookupResult struct {
	Hints store.JobHints `json:"hints"`
	store.JobMatch
	// AtKombo are the jobs Kombo has for a hint no synced job matched (live lookups only).
	AtKombo []store.JobCandidate `json:"at_kombo,omitempty"`
}

// maxLookup bounds one lookup's hints.
const maxLookup = 100

func (a *API) lookupJobs(w http.ResponseWriter, r *http.Request) {
	var req lookupRequest
	if !decode(w, r, &req, false) {
		return
	}
	if len(req.Hints) == 0 || len(req.Hints) > maxLookup {
		writeError(w, http.StatusBadRequest, "invalid", "hints: 1 to 100 of them")
		return
	}
	for i, h := range req.Hints {
		if h.Empty() {
			writeError(w, http.StatusBadRequest, "invalid", "hints["+itoa(i)+"]: give at least one of id, remote_id, job_code, url, title")
			return
		}
	}
	if req.Live && a.kombo == nil {
		writeError(w, http.StatusBadRequest, "invalid", "live: this server has no Kombo API key (KOMBO_API_KEY)")
		return
	}
	integrationID := mux.Vars(r)["integration_id"]
	out := struct {
		Results       []lookupResult `json:"results"`
		SyncRequested bool           `json:"sync_requested"`
	}{Results: []lookupResult{}}
	var unmatched []store.JobHints
	for _, h := range req.Hints {
		m, err := a.store.MatchJob(r.Context(), integrationID, h)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if m.Exact == nil {
			m.Exact = []store.JobCandidate{}
		}
		if m.Titles == nil {
			m.Titles = []store.JobCandidate{}
		}
		out.Results = append(out.Results, lookupResult{Hints: h, JobMatch: m})
		if len(m.Exact) == 0 && (h.ID != "" || h.RemoteID != "" || h.JobCode != "" || h.URL != "") {
			unmatched = append(unmatched, h)
		}
	}
	if req.Live && len(unmatched) > 0 {
		recs, err := a.askKombo(r.Context(), integrationID, unmatched)
		if err != nil {
			a.log.WarnContext(r.Context(), "live job lookup failed", "integration_id", integrationID, "error", err)
			writeError(w, http.StatusBadGateway, "kombo_unavailable", "Kombo did not answer the lookup; try again later")
			return
		}
		found := false
		for i := range out.Results {
			if len(out.Results[i].Exact) == 0 {
				out.Results[i].AtKombo = store.MatchRecords(out.Results[i].Hints, recs)
				found = found || len(out.Results[i].AtKombo) > 0
			}
		}
		if found && a.sync != nil {
			if err := a.sync(r.Context(), integrationID); err != nil {
				a.log.WarnContext(r.Context(), "could not ask for a sync of ats/jobs", "integration_id", integrationID, "error", err)
			} else {
				out.SyncRequested = true
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// askKombo fetches the jobs Kombo has for the hints' keys: one request per key kind with the
// values comma-joined (ids, remote_ids, job_codes), one per URL form (post_url), deleted ones
// included; the answers are matched to the hints with the synced jobs' normalisation.
func (a *API) askKombo(ctx context.Context, integrationID string, hints []store.JobHints) ([]kombo.Record, error) {
	var ids, remoteIDs, codes, urls []string
	add := func(list *[]string, values ...string) {
		for _, v := range values {
			if v = strings.TrimSpace(v); v != "" && !slices.Contains(*list, v) {
				*list = append(*list, v)
			}
		}
	}
	for _, h := range hints {
		add(&ids, h.ID)
		add(&remoteIDs, h.RemoteID)
		// Kombo may compare codes exactly: the code as given, and in upper and lower case.
		add(&codes, h.JobCode, strings.ToUpper(h.JobCode), strings.ToLower(h.JobCode))
		// And URLs: as given, and cleaned of tracking parameters, with and without the slash.
		if n := store.NormalizeURL(h.URL); n != "" {
			add(&urls, h.URL, "https://"+n, "https://"+n+"/")
		}
	}
	var filters []map[string][]string
	for _, f := range []struct {
		name   string
		values []string
	}{{"ids", ids}, {"remote_ids", remoteIDs}, {"job_codes", codes}} {
		if len(f.values) > 0 {
			filters = append(filters, map[string][]string{f.name: f.values})
		}
	}
	for _, u := range urls {
		filters = append(filters, map[string][]string{"post_url": {u}})
	}
	jobs := kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}
	var recs []kombo.Record
	seen := map[string]bool{}
	for _, f := range filters {
		for page, err := range a.kombo.Pages(ctx, integrationID, jobs, kombo.ListParams{IncludeDeleted: true, Filters: f}) {
			if err != nil {
				return nil, err
			}
			for _, r := range page.Records {
				if !seen[r.ID] { // a job found by its code and its URL is one job
					seen[r.ID] = true
					recs = append(recs, r)
				}
			}
		}
	}
	return recs, nil
}

func (a *API) listLinks(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	links, err := a.store.ListLinks(r.Context(), mux.Vars(r)["integration_id"], r.URL.Query().Get("cursor"), limit,
		r.URL.Query().Get("needs_person") == "true")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pageOf(links, limit, func(l store.LinkView) string { return l.AppJobID }))
}

func (a *API) getLink(w http.ResponseWriter, r *http.Request) {
	l, err := a.store.JobLink(r.Context(), mux.Vars(r)["integration_id"], mux.Vars(r)["app_job_id"])
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, linkOut(l))
}

func linkOut(l store.JobLink) store.JobLink {
	if l.Proposals == nil {
		l.Proposals = []store.JobCandidate{}
	}
	return l
}

type putLinkRequest struct {
	Hints store.JobHints `json:"hints"`
}

// putLink links an application job by its hints: 201 when new, 200 when the same link exists,
// 409 when the job is linked with other hints.
func (a *API) putLink(w http.ResponseWriter, r *http.Request) {
	var req putLinkRequest
	if !decode(w, r, &req, false) {
		return
	}
	id, appJob := mux.Vars(r)["integration_id"], mux.Vars(r)["app_job_id"]
	_, existedErr := a.store.JobLink(r.Context(), id, appJob)
	l, err := a.store.LinkJob(r.Context(), id, appJob, req.Hints)
	switch {
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case err != nil:
		a.fail(w, r, err)
	case existedErr == nil:
		writeJSON(w, http.StatusOK, linkOut(l))
	default:
		writeJSON(w, http.StatusCreated, linkOut(l))
	}
}

type decisionRequest struct {
	KomboJobID string `json:"kombo_job_id"`
	DecidedBy  string `json:"decided_by"`
}

func (a *API) confirmLink(w http.ResponseWriter, r *http.Request) {
	var req decisionRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.KomboJobID == "" {
		writeError(w, http.StatusBadRequest, "invalid", "kombo_job_id is required")
		return
	}
	l, err := a.store.ConfirmLink(r.Context(), mux.Vars(r)["integration_id"], mux.Vars(r)["app_job_id"], req.KomboJobID, req.DecidedBy)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, linkOut(l))
}

func (a *API) rejectLink(w http.ResponseWriter, r *http.Request) {
	var req decisionRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.KomboJobID != "" {
		writeError(w, http.StatusBadRequest, "invalid", "kombo_job_id: a rejection rejects the link's job; give decided_by only")
		return
	}
	l, err := a.store.RejectLink(r.Context(), mux.Vars(r)["integration_id"], mux.Vars(r)["app_job_id"], req.DecidedBy)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, linkOut(l))
}

func (a *API) deleteLink(w http.ResponseWriter, r *http.Request) {
	if err := a.store.DeleteLink(r.Context(), mux.Vars(r)["integration_id"], mux.Vars(r)["app_job_id"]); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
