package backoffice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// The action routes (README "Creating applications"), under /v1/integrations/{integration_id}:
// every write to Kombo is an action, stored with the caller's Idempotency-Key and executed by an
// Action workflow exactly once. The first request answers 202 with the action; a replay of the
// same key and body 200 with the same action, whatever its state; the same key with another body
// 422. Refusals that need no request to Kombo (an unlinked or closed job, a stage or rejection
// reason kombosync does not know) are answered at once and store nothing.
func (a *API) mountActions(r *mux.Router) {
	r.HandleFunc("/applications", a.createApplication).Methods(http.MethodPost)
	r.HandleFunc("/applications/{application_id}/stage", a.moveStage).Methods(http.MethodPut)
	r.HandleFunc("/applications/{application_id}/reject", a.rejectApplication).Methods(http.MethodPost)
	r.HandleFunc("/applications/{application_id}/notes", a.addNote).Methods(http.MethodPost)
	r.HandleFunc("/applications/{application_id}/attachments", a.addAttachment).Methods(http.MethodPost)
	r.HandleFunc("/actions", a.listActions).Methods(http.MethodGet)
	r.HandleFunc("/actions/{action_id}", a.getAction).Methods(http.MethodGet)
}

// maxActionBody bounds a body carrying attachments (base64 CVs); the other action routes take
// maxBody.
const maxActionBody = 25 << 20

// maxID bounds the ids in paths and bodies.
const maxID = 200

type attachmentIn struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Type        string `json:"type"`
	Data        string `json:"data,omitempty"`
	DataURL     string `json:"data_url,omitempty"`
}

func (at attachmentIn) check(where string) error {
	switch {
	case strings.TrimSpace(at.Name) == "":
		return fmt.Errorf("%s.name is required", where)
	case !slices.Contains([]string{"CV", "COVER_LETTER", "OTHER"}, at.Type):
		return fmt.Errorf("%s.type must be CV, COVER_LETTER or OTHER", where)
	case strings.TrimSpace(at.ContentType) == "":
		return fmt.Errorf("%s.content_type is required (e.g. application/pdf)", where)
	case (at.Data == "") == (at.DataURL == ""):
		return fmt.Errorf("%s needs exactly one of data (base64) and data_url", where)
	}
	if at.Data != "" {
		if _, err := base64.StdEncoding.DecodeString(at.Data); err != nil {
			return fmt.Errorf("%s.data is not base64", where)
		}
	}
	if at.DataURL != "" {
		u, err := url.Parse(at.DataURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%s.data_url must be an http(s) URL Kombo can download", where)
		}
	}
	return nil
}

type createApplicationRequest struct {
	AppJobID                 string          `json:"app_job_id"`
	JobID                    string          `json:"job_id"`
	Candidate                map[string]any  `json:"candidate"`
	StageID                  string          `json:"stage_id"`
	Attachments              []attachmentIn  `json:"attachments"`
	ScreeningQuestionAnswers json.RawMessage `json:"screening_question_answers"`
	SourcedBy                json.RawMessage `json:"sourced_by"`
	GDPRConsent              json.RawMessage `json:"gdpr_consent"`
	RemoteFields             json.RawMessage `json:"remote_fields"`
	Source                   json.RawMessage `json:"source"`
}

// komboBody is what Kombo's POST /ats/jobs/{job_id}/applications takes.
func (c createApplicationRequest) komboBody() map[string]any {
	b := map[string]any{"candidate": c.Candidate}
	if c.StageID != "" {
		b["stage_id"] = c.StageID
	}
	if len(c.Attachments) > 0 {
		b["attachments"] = c.Attachments
	}
	for k, v := range map[string]json.RawMessage{"screening_question_answers": c.ScreeningQuestionAnswers, "sourced_by": c.SourcedBy,
		"gdpr_consent": c.GDPRConsent, "remote_fields": c.RemoteFields, "source": c.Source} {
		if len(v) > 0 && string(v) != "null" {
			b[k] = v
		}
	}
	return b
}

func (c createApplicationRequest) check() error {
	if (c.AppJobID == "") == (c.JobID == "") {
		return errors.New("give exactly one of app_job_id (your job, through its confirmed job link) and job_id (Kombo's, or remote:<id>)")
	}
	if len(c.AppJobID) > store.MaxAppJobID || len(c.JobID) > maxID {
		return errors.New("app_job_id or job_id is too long")
	}
	if c.Candidate == nil {
		return errors.New("candidate is required")
	}
	for _, f := range []string{"first_name", "last_name", "email_address"} {
		s, _ := c.Candidate[f].(string)
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("candidate.%s is required (a non-empty string)", f)
		}
	}
	email, _ := c.Candidate["email_address"].(string)
	if at := strings.LastIndex(email, "@"); at < 1 || at == len(email)-1 || strings.ContainsAny(email, " \t\r\n,;<>") {
		return errors.New("candidate.email_address is not an email address")
	}
	for k, at := range c.Attachments {
		if err := at.check(fmt.Sprintf("attachments[%d]", k)); err != nil {
			return err
		}
	}
	return nil
}

// actionRequest is one write route's request as the store keeps it.
type actionRequest struct {
	kind, target, appJobID string
	body                   any // Kombo's request body
}

func (a *API) createApplication(w http.ResponseWriter, r *http.Request) {
	iid := mux.Vars(r)["integration_id"]
	raw, key, ok := a.actionPreamble(w, r, maxActionBody)
	if !ok {
		return
	}
	var req createApplicationRequest
	if !decodeBytes(w, raw, &req) {
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	ar := actionRequest{kind: store.ActionCreateApplication, target: req.JobID, appJobID: req.AppJobID, body: req.komboBody()}
	a.submit(w, r, key, raw, ar, func(ctx context.Context) (string, int, error) {
		job, err := a.store.ApplicationJob(ctx, iid, req.AppJobID, req.JobID)
		if err != nil {
			return "", 0, err
		}
		if req.StageID != "" {
			stages, synced, err := a.store.JobStages(ctx, iid, job)
			if err != nil {
				return "", 0, err
			}
			if synced && !slices.Contains(stages, req.StageID) {
				return "", http.StatusBadRequest, fmt.Errorf("stage_id %q is not a stage of job %s", req.StageID, job)
			}
		}
		return job, 0, nil
	})
}

func (a *API) moveStage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		StageID      string          `json:"stage_id"`
		RemoteFields json.RawMessage `json:"remote_fields,omitempty"`
	}
	a.applicationAction(w, r, store.ActionMoveStage, maxBody, &req, func(ctx context.Context, iid, appID, job string) error {
		if strings.TrimSpace(req.StageID) == "" || len(req.StageID) > maxID {
			return fmt.Errorf("%w: stage_id is required", store.ErrInvalid)
		}
		stages, synced, err := a.store.JobStages(ctx, iid, job)
		if err != nil {
			return err
		}
		if synced && !slices.Contains(stages, req.StageID) {
			return fmt.Errorf("%w: stage_id %q is not a stage of the application's job %s", store.ErrInvalid, req.StageID, job)
		}
		return nil
	}, &req)
}

func (a *API) rejectApplication(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RejectionReasonID string          `json:"rejection_reason_id"`
		Note              string          `json:"note,omitempty"`
		RemoteFields      json.RawMessage `json:"remote_fields,omitempty"`
	}
	a.applicationAction(w, r, store.ActionReject, maxBody, &req, func(ctx context.Context, iid, _, _ string) error {
		if strings.TrimSpace(req.RejectionReasonID) == "" || len(req.RejectionReasonID) > maxID {
			return fmt.Errorf("%w: rejection_reason_id is required", store.ErrInvalid)
		}
		ok, err := a.store.RejectionReasonSynced(ctx, iid, req.RejectionReasonID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: rejection_reason_id %q is not a synced rejection reason of this integration (GET /ats/rejection-reasons)",
				store.ErrInvalid, req.RejectionReasonID)
		}
		return nil
	}, &req)
}

func (a *API) addNote(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Content      string          `json:"content"`
		ContentType  string          `json:"content_type"`
		RemoteFields json.RawMessage `json:"remote_fields,omitempty"`
	}
	a.applicationAction(w, r, store.ActionAddNote, maxBody, &req, func(context.Context, string, string, string) error {
		if strings.TrimSpace(req.Content) == "" {
			return fmt.Errorf("%w: content is required", store.ErrInvalid)
		}
		if req.ContentType == "" {
			req.ContentType = "PLAIN_TEXT"
		}
		if req.ContentType != "PLAIN_TEXT" {
			return fmt.Errorf("%w: content_type must be PLAIN_TEXT", store.ErrInvalid)
		}
		return nil
	}, &req)
}

func (a *API) addAttachment(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Attachment   *attachmentIn   `json:"attachment"`
		RemoteFields json.RawMessage `json:"remote_fields,omitempty"`
	}
	a.applicationAction(w, r, store.ActionAddAttachment, maxActionBody, &req, func(context.Context, string, string, string) error {
		if req.Attachment == nil {
			return fmt.Errorf("%w: attachment is required", store.ErrInvalid)
		}
		if err := req.Attachment.check("attachment"); err != nil {
			return fmt.Errorf("%w: %s", store.ErrInvalid, err.Error())
		}
		return nil
	}, &req)
}

// applicationAction is the common path of the actions on an existing application: the
// application must be one kombosync knows (synced, or created by an action), check validates the
// body against what is synced, and body is what Kombo is sent.
func (a *API) applicationAction(w http.ResponseWriter, r *http.Request, kind string, limit int64, req any,
	check func(ctx context.Context, integrationID, applicationID, jobID string) error, body any) {
	iid, appID := mux.Vars(r)["integration_id"], mux.Vars(r)["application_id"]
	if len(appID) > maxID || !utf8.ValidString(appID) || strings.ContainsRune(appID, 0) {
		writeError(w, http.StatusBadRequest, "invalid", "application_id: not an id")
		return
	}
	raw, key, ok := a.actionPreamble(w, r, limit)
	if !ok {
		return
	}
	if !decodeBytes(w, raw, req) {
		return
	}
	ar := actionRequest{kind: kind, target: appID, body: body}
	a.submit(w, r, key, raw, ar, func(ctx context.Context) (string, int, error) {
		job, found, err := a.store.ApplicationsJob(ctx, iid, appID)
		if err != nil {
			return "", 0, err
		}
		if !found {
			return "", 0, fmt.Errorf("application %s: %w", appID, store.ErrNotFound)
		}
		return appID, 0, check(ctx, iid, appID, job)
	})
}

// actionPreamble reads what every write route needs: an ATS integration, a valid
// Idempotency-Key, and a body of at most limit bytes that is text.
func (a *API) actionPreamble(w http.ResponseWriter, r *http.Request, limit int64) (raw []byte, key string, ok bool) {
	key = r.Header.Get("Idempotency-Key")
	if err := checkIdempotencyKey(key); err != nil {
		writeError(w, http.StatusBadRequest, "idempotency_key_invalid", err.Error())
		return nil, "", false
	}
	in, found, err := a.store.Integration(r.Context(), mux.Vars(r)["integration_id"])
	if err != nil {
		a.fail(w, r, err)
		return nil, "", false
	}
	if found && !strings.EqualFold(in.Category, string(kombo.CategoryATS)) && in.Category != "" {
		writeError(w, http.StatusConflict, "action_not_available", "applications are written to ATS integrations; this one is "+in.Category)
		return nil, "", false
	}
	raw, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", limit))
		return nil, "", false
	}
	if !utf8.Valid(raw) || bytes.Contains(raw, []byte(`\u0000`)) {
		writeError(w, http.StatusBadRequest, "invalid", "the body is not valid text (broken UTF-8 or a NUL character)")
		return nil, "", false
	}
	return raw, key, true
}

// checkIdempotencyKey: 1 to 255 printable ASCII characters.
func checkIdempotencyKey(key string) error {
	if key == "" {
		return errors.New("the Idempotency-Key header is required on every write: 1 to 255 printable ASCII characters, one per intended write")
	}
	if len(key) > 255 {
		return errors.New("the Idempotency-Key header is longer than 255 characters")
	}
	for _, c := range []byte(key) {
		if c < 0x20 || c > 0x7e {
			return errors.New("the Idempotency-Key header holds a character that is not printable ASCII")
		}
	}
	return nil
}

// decodeBytes is decode on a body already read.
func decodeBytes(w http.ResponseWriter, raw []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is not the expected JSON object: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body holds more than one JSON value")
		return false
	}
	return true
}

// requestHash identifies a request for its idempotency key: the route's kind, its path target
// and the body's JSON with object keys sorted (white space and key order do not make a request
// another one).
func requestHash(kind, target string, raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	canonical, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", kind, target)
	h.Write(canonical)
	return h.Sum(nil), nil
}

// submit answers a write: a replay of the key with its action (200, whatever the gate would say
// now), else the gate (gate returns the action's target, or a refusal), then the new action
// (202), whose workflow is started. A start that fails is left to the relay: the action is stored.
func (a *API) submit(w http.ResponseWriter, r *http.Request, key string, raw []byte, ar actionRequest,
	gate func(ctx context.Context) (target string, status int, err error)) {
	ctx := r.Context()
	iid := mux.Vars(r)["integration_id"]
	pathTarget := ar.target
	if ar.kind == store.ActionCreateApplication {
		pathTarget = "" // the job is in the body
	}
	hash, err := requestHash(ar.kind, pathTarget, raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is not JSON")
		return
	}
	if existing, found, err := a.store.ActionByKey(ctx, iid, key, hash); err != nil || found {
		a.answerAction(w, r, existing, false, err)
		return
	}
	target, status, err := gate(ctx)
	var notOpen *store.JobNotOpenError
	switch {
	case errors.As(err, &notOpen):
		writeErrorReason(w, http.StatusConflict, "job_not_open", notOpen.Error(), notOpen.Reason)
		return
	case errors.Is(err, store.ErrJobNotLinked):
		writeError(w, http.StatusConflict, "job_not_linked", strings.TrimPrefix(err.Error(), store.ErrJobNotLinked.Error()+": "))
		return
	case err != nil && status != 0:
		writeError(w, status, "invalid", err.Error())
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	body, err := json.Marshal(ar.body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	act, created, err := a.store.CreateAction(ctx, store.NewAction{IntegrationID: iid, Kind: ar.kind, IdempotencyKey: key,
		RequestHash: hash, Target: target, AppJobID: ar.appJobID, Request: body})
	a.answerAction(w, r, act, created, err)
}

// answerAction starts the action's workflow when it has not been started and answers it.
func (a *API) answerAction(w http.ResponseWriter, r *http.Request, act store.Action, created bool, err error) {
	if errors.Is(err, store.ErrIdempotencyKeyReused) {
		writeError(w, http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was used for another request; use a new key for a new write")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !act.Started() {
		a.startAction(r.Context(), act)
	}
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
	}
	writeJSON(w, status, act)
}

// startAction starts an action's workflow and records it; a failure is logged (the relay
// starts it later).
func (a *API) startAction(ctx context.Context, act store.Action) {
	if a.startWorkflow == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := a.startWorkflow(sctx, act.ID, act.Kind, act.IntegrationID); err != nil {
		a.log.WarnContext(ctx, "could not start an action's workflow; the relay will", "action_id", act.ID, "error", err)
		return
	}
	if err := a.store.MarkActionStarted(sctx, act.ID); err != nil {
		a.log.WarnContext(ctx, "could not record an action's start", "action_id", act.ID, "error", err)
	}
}

// RunActionRelay starts, every interval, the workflows of actions stored while Temporal could
// not be reached, until ctx ends. Every back-office instance may run it: a start is idempotent
// (the workflow ID is the action's).
func (a *API) RunActionRelay(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids, err := a.store.UnstartedActions(ctx, 2*interval, 100)
		if err != nil {
			a.log.WarnContext(ctx, "action relay: could not list unstarted actions", "error", err)
			continue
		}
		for _, id := range ids {
			act, err := a.store.GetAction(ctx, "", id)
			if err == nil {
				a.startAction(ctx, act)
			}
		}
	}
}

func (a *API) getAction(w http.ResponseWriter, r *http.Request) {
	act, err := a.store.GetAction(r.Context(), mux.Vars(r)["integration_id"], mux.Vars(r)["action_id"])
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, act)
}

func (a *API) listActions(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	acts, err := a.store.ListActions(r.Context(), store.ActionFilter{IntegrationID: mux.Vars(r)["integration_id"],
		State: q.Get("state"), Kind: q.Get("kind"), After: q.Get("cursor"), Limit: limit})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pageOf(acts, limit, func(x store.Action) string { return x.Cursor() }))
}
