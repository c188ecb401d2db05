package backoffice

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

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
}

type lookupResult struct {
	Hints store.JobHints `json:"hints"`
	store.JobMatch
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
	out := struct {
		Results []lookupResult `json:"results"`
	}{Results: []lookupResult{}}
	for _, h := range req.Hints {
		m, err := a.store.MatchJob(r.Context(), mux.Vars(r)["integration_id"], h)
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
	}
	writeJSON(w, http.StatusOK, out)
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
	if len(appJob) > 200 {
		writeError(w, http.StatusBadRequest, "invalid", "app_job_id: at most 200 characters")
		return
	}
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
