package komboemu

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// Kombo's ATS writes ("actions"), answered as openapi.json says: create an application (and its
// candidate) for a job, move it to a stage, reject it, add a note or an attachment, list its
// attachments. They write into the emulated ATS, so the change appears in reads and in a
// data-changed webhook. Writes take no idempotency key, as at Kombo: a request sent twice writes
// twice (ATS.APPLICATION_ALREADY_EXISTS stops a second application of one email to one job).
//
// Their faults and counts are in writefaults.go; the integration's cap on concurrent writes is
// answered here (429 PLATFORM.CONCURRENCY_LIMIT_EXCEEDED with Concurrency-Limit and
// Concurrency-Remaining).

// ApplicationOf is one application of the emulated ATS, for tests counting what writes made.
type ApplicationOf struct {
	ID          string `json:"id"`
	CandidateID string `json:"candidate_id"`
	JobID       string `json:"job_id"`
	Email       string `json:"email"` // the candidate's first email
	StageID     string `json:"stage_id"`
	Outcome     string `json:"outcome"`
	Notes       int    `json:"notes"`
	Attachments int    `json:"attachments"`
}

// Applications lists the integration's applications (not deleted) with their candidate's email.
func (e *Emulator) Applications(integrationID string) ([]ApplicationOf, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, err := e.integration(integrationID)
	if err != nil {
		return nil, err
	}
	var out []ApplicationOf
	for _, a := range i.table("applications").records {
		if a.remoteDeletedAt != nil {
			continue
		}
		ao := ApplicationOf{ID: a.id, CandidateID: strOf(a.fields["candidate_id"]), JobID: strOf(a.fields["job_id"]),
			StageID: strOf(a.fields["current_stage_id"]), Outcome: strOf(a.fields["outcome"]),
			Notes: len(notesOf(a)), Attachments: len(attachmentsOf(a))}
		if c := i.get("candidates", ao.CandidateID); c != nil {
			ao.Email = firstEmail(c)
		}
		out = append(out, ao)
	}
	return out, nil
}

func notesOf(r *record) []string {
	n, _ := r.fields["_notes"].([]string)
	return n
}

type attachment struct {
	ID, Name, Type, ContentType string
	At                          time.Time
}

func attachmentsOf(r *record) []attachment {
	a, _ := r.fields["_attachments"].([]attachment)
	return a
}

func firstEmail(c *record) string {
	es, _ := c.fields["email_addresses"].([]any)
	for _, x := range es {
		if m, ok := x.(map[string]any); ok {
			if s, ok := m["email_address"].(string); ok {
				return s
			}
		}
	}
	return ""
}

func (e *Emulator) writeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/ats/jobs/{job_id}/applications", e.counted(e.write(e.createApplication)))
	mux.HandleFunc("PUT /v1/ats/applications/{application_id}/stage", e.counted(e.write(e.moveStage)))
	mux.HandleFunc("POST /v1/ats/applications/{application_id}/reject", e.counted(e.write(e.rejectApplication)))
	mux.HandleFunc("POST /v1/ats/applications/{application_id}/notes", e.counted(e.write(e.addNote)))
	mux.HandleFunc("POST /v1/ats/applications/{application_id}/attachments", e.counted(e.write(e.addAttachment)))
	mux.HandleFunc("GET /v1/ats/applications/{application_id}/attachments", e.counted(e.listAttachments))
}

// writeFunc applies one write to the integration (called with e.mu held) and returns the answer's
// data and warnings, the models it changed, or Kombo's refusal.
type writeFunc func(i *integration, r *http.Request, body map[string]any, now time.Time) (data any, models []string, apiErr *apiError)

// write wraps a write: authentication, the integration's state, the concurrency cap, faults
// before and after the commit, and the data-changed webhook of what it changed.
func (e *Emulator) write(apply writeFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !e.authorized(r) {
			(&apiError{status: 401, code: kombo.CodePlatformAuthInvalid, message: "The API key is invalid."}).write(w)
			return
		}
		iid := r.Header.Get("X-Integration-Id")
		e.mu.Lock()
		e.writeStats.Requests++
		i, apiErr := e.usableIntegration(iid)
		if apiErr == nil && i.category != kombo.CategoryATS {
			apiErr = invalid("This endpoint is only available for ATS integrations, but %s is a %s integration.", iid, i.category)
		}
		if apiErr != nil {
			e.mu.Unlock()
			apiErr.write(w)
			return
		}
		limit := e.writeFaults.ConcurrencyCap
		if limit <= 0 {
			limit = defaultConcurrencyCap
		}
		e.writeInFlight[iid]++
		n := e.writeInFlight[iid]
		if e.writeStats.MaxInFlight == nil {
			e.writeStats.MaxInFlight = map[string]int{}
		}
		e.writeStats.MaxInFlight[iid] = max(e.writeStats.MaxInFlight[iid], n)
		defer func() {
			e.mu.Lock()
			e.writeInFlight[iid]--
			e.mu.Unlock()
		}()
		w.Header().Set("Concurrency-Limit", strconv.Itoa(limit))
		w.Header().Set("Concurrency-Remaining", strconv.Itoa(max(0, limit-n)))
		if n > limit {
			e.writeStats.ConcurrencyHit++
			e.mu.Unlock()
			(&apiError{status: 429, code: kombo.CodeConcurrencyLimitExceeded,
				message: fmt.Sprintf("Too many concurrent actions for this integration (limit %d).", limit)}).write(w)
			return
		}
		fault := e.pickWriteFault()
		faults := e.writeFaults
		e.mu.Unlock()

		// The body is read first: only then does net/http notice a client that went away, which
		// ends a latency or a held answer.
		var body map[string]any
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			invalid("The request body is not a JSON object: %v", err).write(w)
			return
		}

		if faults.Latency > 0 {
			select {
			case <-time.After(faults.Latency):
			case <-r.Context().Done():
				return
			}
		}
		switch fault {
		case WriteFailBeforeCommit:
			faultError(FaultServerError).write(w)
			return
		case WriteUnavailable:
			faultError(FaultRemoteUnavailable).write(w)
			return
		}
		e.mu.Lock()
		now := e.now()
		data, models, apiErr := apply(i, r, body, now)
		if apiErr == nil {
			e.writeStats.Committed++
			e.announce(i, models, faults.ReadLag)
		}
		e.mu.Unlock()
		if apiErr != nil {
			apiErr.write(w)
			return
		}
		switch fault {
		case WriteResetAfterCommit:
			resetConnection(w)
			return
		case WriteTimedOutAfterCommit:
			faultError(FaultTimeoutTask).write(w)
			return
		case WriteHoldAfterCommit:
			hold := faults.HoldFor
			if hold <= 0 {
				hold = 2 * time.Minute
			}
			select {
			case <-time.After(hold):
			case <-r.Context().Done():
				return
			}
		}
		b, err := json.Marshal(map[string]any{"status": "success", "data": data, "warnings": []any{}})
		if err != nil {
			panic("komboemu: write answer: " + err.Error())
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}
}

// announce sends data-changed for the models a write changed, after the read lag (when the
// records it created become readable). Call with e.mu held.
func (e *Emulator) announce(i *integration, models []string, lag time.Duration) {
	if len(models) == 0 {
		return
	}
	if lag <= 0 {
		e.hooks.dataChanged(i, models)
		return
	}
	time.AfterFunc(lag, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if !i.deleted {
			e.hooks.dataChanged(i, models)
		}
	})
}

// findJob resolves a job id of a write: a Kombo id, or remote:<id>.
func (i *integration) findJob(id string) *record {
	if rid, ok := strings.CutPrefix(id, "remote:"); ok {
		for _, j := range i.table("jobs").records {
			if j.remoteID != nil && *j.remoteID == rid {
				return j
			}
		}
		return nil
	}
	return i.get("jobs", id)
}

func str(m map[string]any, k string) string { return strings.TrimSpace(strOf(m[k])) }

func (e *Emulator) createApplication(i *integration, r *http.Request, body map[string]any, now time.Time) (any, []string, *apiError) {
	job := i.findJob(r.PathValue("job_id"))
	if job == nil {
		return nil, nil, &apiError{status: 404, code: kombo.CodeInputInvalid, message: "No job with ID " + r.PathValue("job_id") + " exists."}
	}
	if job.remoteDeletedAt != nil || strOf(job.fields["status"]) != "OPEN" {
		return nil, nil, &apiError{status: 400, code: kombo.CodeJobClosed, message: "The job is not open for applications."}
	}
	cand, _ := body["candidate"].(map[string]any)
	first, last, email := str(cand, "first_name"), str(cand, "last_name"), strings.ToLower(str(cand, "email_address"))
	if cand == nil || first == "" || last == "" || !strings.Contains(email, "@") {
		return nil, nil, invalid("candidate.first_name, candidate.last_name and candidate.email_address are required.")
	}
	stage := str(body, "stage_id")
	stages := idsOf(job.fields["_stage_ids"])
	if stage != "" && !slices.Contains(stages, stage) {
		return nil, nil, invalid("The stage %s is not a stage of this job.", stage)
	}
	if stage == "" && len(stages) > 0 {
		stage = stages[0]
	}
	atts, apiErr := parseAttachments(body["attachments"], now)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	var candidate *record
	for _, c := range i.table("candidates").records {
		if c.remoteDeletedAt == nil && strings.EqualFold(firstEmail(c), email) {
			candidate = c
			break
		}
	}
	if candidate != nil {
		for _, a := range i.childrenOf("applications", "candidate_id", candidate.id) {
			if strOf(a.fields["job_id"]) == job.id {
				return nil, nil, &apiError{status: 400, code: kombo.CodeApplicationAlreadyExists,
					message: "The candidate has already applied to this job."}
			}
		}
	}
	hidden := now.Add(e.writeFaults.ReadLag)
	models := []string{"ats_applications"}
	if candidate == nil {
		candidate = i.create("candidates", now, true, func(c *record) {
			c.fields["first_name"], c.fields["last_name"] = first, last
			c.fields["email_addresses"] = []any{map[string]any{"email_address": email, "type": "PERSONAL"}}
			c.fields["company"], c.fields["title"] = nilIfEmpty(str(cand, "company")), nilIfEmpty(str(cand, "title"))
			c.fields["source"] = "kombosync"
			c.fields["phone_numbers"] = []any{}
			if p := str(cand, "phone_number"); p != "" {
				c.fields["phone_numbers"] = []any{map[string]any{"phone_number": p, "type": "MOBILE"}}
			}
			c.fields["_tag_ids"] = []string{}
			c.fields["remote_created_at"] = kombo.FormatTime(now)
			c.hiddenUntil = hidden
		})
		models = append(models, "ats_candidates")
	}
	app := i.create("applications", now, true, func(a *record) {
		a.fields["candidate_id"], a.fields["job_id"], a.fields["current_stage_id"] = candidate.id, job.id, nilIfEmpty(stage)
		a.fields["outcome"], a.fields["rejection_reason_name"], a.fields["rejected_at"] = "PENDING", nil, nil
		a.fields["remote_created_at"] = kombo.FormatTime(now)
		a.fields["_attachments"] = atts
		a.hiddenUntil = hidden
	})
	out := i.object("applications", app)
	full := i.flat(candidate)
	full["tags"] = []any{}
	out["candidate"] = full
	return out, models, nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func parseAttachments(v any, now time.Time) ([]attachment, *apiError) {
	list, _ := v.([]any)
	if v != nil && list == nil {
		return nil, invalid("attachments must be an array.")
	}
	var out []attachment
	for _, x := range list {
		m, _ := x.(map[string]any)
		a, apiErr := parseAttachment(m, now)
		if apiErr != nil {
			return nil, apiErr
		}
		out = append(out, a)
	}
	return out, nil
}

func parseAttachment(m map[string]any, now time.Time) (attachment, *apiError) {
	name, typ := str(m, "name"), str(m, "type")
	if m == nil || name == "" || !slices.Contains([]string{"CV", "COVER_LETTER", "OTHER"}, typ) {
		return attachment{}, invalid("An attachment needs a name and a type (CV, COVER_LETTER or OTHER).")
	}
	data, dataURL := str(m, "data"), str(m, "data_url")
	if (data == "") == (dataURL == "") {
		return attachment{}, invalid("An attachment needs one of data and data_url.")
	}
	if data != "" {
		if _, err := base64.StdEncoding.DecodeString(data); err != nil {
			return attachment{}, invalid("An attachment's data must be base64.")
		}
	}
	return attachment{Name: name, Type: typ, ContentType: str(m, "content_type"), At: now}, nil
}

// liveApplication is the application of a write's path, or Kombo's 404.
func (i *integration) liveApplication(r *http.Request) (*record, *apiError) {
	a := i.get("applications", r.PathValue("application_id"))
	if a == nil || a.remoteDeletedAt != nil {
		return nil, &apiError{status: 404, code: kombo.CodeInputInvalid, message: "No application with ID " + r.PathValue("application_id") + " exists."}
	}
	return a, nil
}

func (e *Emulator) moveStage(i *integration, r *http.Request, body map[string]any, now time.Time) (any, []string, *apiError) {
	a, apiErr := i.liveApplication(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	stage := str(body, "stage_id")
	job := i.get("jobs", strOf(a.fields["job_id"]))
	if stage == "" || job == nil || !slices.Contains(idsOf(job.fields["_stage_ids"]), stage) {
		return nil, nil, invalid("stage_id must be a stage of the application's job.")
	}
	a.fields["current_stage_id"] = stage
	i.changed("applications", a, now)
	return map[string]any{}, []string{"ats_applications"}, nil
}

func (e *Emulator) rejectApplication(i *integration, r *http.Request, body map[string]any, now time.Time) (any, []string, *apiError) {
	a, apiErr := i.liveApplication(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	reason := i.get("rejection-reasons", str(body, "rejection_reason_id"))
	if reason == nil || reason.remoteDeletedAt != nil {
		return nil, nil, invalid("rejection_reason_id must be a rejection reason of this integration.")
	}
	a.fields["outcome"], a.fields["rejection_reason_name"], a.fields["rejected_at"] = "DECLINED", reason.fields["name"], kombo.FormatTime(now)
	if note := str(body, "note"); note != "" {
		a.fields["_notes"] = append(slices.Clone(notesOf(a)), note)
	}
	i.changed("applications", a, now)
	return map[string]any{}, []string{"ats_applications"}, nil
}

func (e *Emulator) addNote(i *integration, r *http.Request, body map[string]any, _ time.Time) (any, []string, *apiError) {
	a, apiErr := i.liveApplication(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	if str(body, "content") == "" || str(body, "content_type") != "PLAIN_TEXT" {
		return nil, nil, invalid("content and content_type (PLAIN_TEXT) are required.")
	}
	// Notes are not part of any model Kombo reads: nothing changes for a sync.
	a.fields["_notes"] = append(slices.Clone(notesOf(a)), str(body, "content"))
	return map[string]any{}, nil, nil
}

func (e *Emulator) addAttachment(i *integration, r *http.Request, body map[string]any, now time.Time) (any, []string, *apiError) {
	a, apiErr := i.liveApplication(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	m, _ := body["attachment"].(map[string]any)
	att, apiErr := parseAttachment(m, now)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	att.ID = i.gen.id()
	a.fields["_attachments"] = append(slices.Clone(attachmentsOf(a)), att)
	return map[string]any{}, nil, nil
}

func (e *Emulator) listAttachments(w http.ResponseWriter, r *http.Request) {
	e.answer(w, r, func(r *http.Request) ([]byte, *apiError) {
		if !e.authorized(r) {
			return nil, &apiError{status: 401, code: kombo.CodePlatformAuthInvalid, message: "The API key is invalid."}
		}
		i, apiErr := e.usableIntegration(r.Header.Get("X-Integration-Id"))
		if apiErr != nil {
			return nil, apiErr
		}
		a, apiErr := i.liveApplication(r)
		if apiErr != nil {
			return nil, apiErr
		}
		now := e.now()
		results := []any{}
		for k, att := range attachmentsOf(a) {
			if now.Before(a.hiddenUntil) {
				break
			}
			id := att.ID
			if id == "" {
				id = fmt.Sprintf("%s%04d", a.id[:20], k)
			}
			ct := att.ContentType
			if ct == "" {
				ct = "application/octet-stream"
			}
			results = append(results, map[string]any{"type": att.Type, "id": id, "remote_id": id, "file_name": att.Name,
				"content_type": ct, "data_url": "https://files.emulator.example/" + id, "remote_created_at": kombo.FormatTime(att.At),
				"remote_updated_at": nil})
		}
		b, err := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"results": results}, "warnings": []any{}})
		if err != nil {
			panic("komboemu: attachments answer: " + err.Error())
		}
		return b, nil
	})
}

// candidateFilters are the filters of GET /ats/candidates that finding a written application
// needs: email (any of the candidate's addresses, case-insensitive), job_ids (an application to
// one of them), first_name and last_name. Set in specs.go; the list's filters have no integration,
// so job_ids reads the candidate's applications through the record's own index.
var candidateFilters = map[string]func(*record, []string) bool{
	"email": func(r *record, values []string) bool {
		es, _ := r.fields["email_addresses"].([]any)
		for _, x := range es {
			if m, ok := x.(map[string]any); ok {
				for _, v := range values {
					if strings.EqualFold(strOf(m["email_address"]), v) {
						return true
					}
				}
			}
		}
		return false
	},
	"job_ids": func(r *record, values []string) bool {
		return slices.ContainsFunc(values, func(v string) bool { return r.appliedTo[v] })
	},
	"first_name": fieldIn("first_name"),
	"last_name":  fieldIn("last_name"),
}
