package komboemu

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// Handler serves the API under /v1, GET /healthz, and the control API under /_emulator
// (see control.go).
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/{category}/{endpoint}", e.counted(e.serveList))
	mux.HandleFunc("GET /v1/integrations/{integration_id}", e.counted(e.serveIntegration))
	mux.HandleFunc("POST /v1/force-sync", e.counted(e.serveForceSync))
	e.writeRoutes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	e.controlRoutes(mux)
	return mux
}

// counted records each API request's arrival (RequestTimes).
func (e *Emulator) counted(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		arrived := time.Now() // before the lock, which a test's setup may hold for a while
		e.mu.Lock()
		if len(e.requestTimes) >= 100_000 { // a long-running emulator keeps the recent ones
			e.requestTimes = slices.Delete(e.requestTimes, 0, 50_000)
		}
		e.requestTimes = append(e.requestTimes, arrived)
		e.inFlight++
		e.maxInFlight = max(e.maxInFlight, e.inFlight)
		e.mu.Unlock()
		defer func() {
			e.mu.Lock()
			e.inFlight--
			e.mu.Unlock()
		}()
		h(w, r)
	}
}

// MaxInFlight is the most API requests the emulator was answering at once so far.
func (e *Emulator) MaxInFlight() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.maxInFlight
}

// apiError is an error answer in Kombo's envelope.
type apiError struct {
	status     int
	code       string // empty: code null
	message    string
	retryAfter time.Duration
	legacy     bool // the old {"message"} body
}

var errorTitles = map[string]string{
	kombo.CodeSetupSyncPending:         "Setup sync pending",
	kombo.CodePlatformAuthInvalid:      "Authentication invalid",
	kombo.CodeIntegrationNotFound:      "Integration not found",
	kombo.CodeInputInvalid:             "Input invalid",
	kombo.CodeRateLimitExceeded:        "Rate limit exceeded",
	kombo.CodeConcurrencyLimitExceeded: "Concurrency limit exceeded",
	kombo.CodePlatformUnknownError:     "Unknown error",
	kombo.CodeRemoteServiceUnavailable: "Remote service unavailable",
	kombo.CodeIntegrationInactive:      "Integration inactive",
	kombo.CodeIntegrationAuthInvalid:   "Integration authentication invalid",
	kombo.CodePermissionMissing:        "Permission missing",
	kombo.CodeModelNotAvailable:        "Model not available",
	kombo.CodeTaskTimedOut:             "Task timed out",
	kombo.CodeRemoteUnknownHTTPError:   "Remote HTTP error",
	kombo.CodeRemoteRateLimitExceeded:  "Remote rate limit exceeded",
}

var paramsOfEveryList = []string{"cursor", "page_size", "updated_after", "include_deleted", "ignore_unsupported_filters", "ids", "remote_ids"}

func (a *apiError) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	if a.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(a.retryAfter.Round(time.Second)/time.Second)))
	}
	w.WriteHeader(a.status)
	if a.legacy {
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "error": map[string]any{"message": a.message}})
		return
	}
	var code, title any
	if a.code != "" {
		code = a.code
		if t, ok := errorTitles[a.code]; ok {
			title = t
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "error": map[string]any{
		"code": code, "title": title, "message": a.message, "log_url": nil}})
}

// listRequest is a parsed list request.
type listRequest struct {
	integration    *integration
	endpoint       string
	spec           *spec
	pageSize       int
	after          uint64 // the cursor's last seq
	updatedAfter   time.Time
	includeDeleted bool
	ignoreUnsupp   bool
	ids, remoteIDs []string
	filters        map[string][]string // implemented endpoint filters
	unsupported    bool                // a filter this endpoint cannot apply
	queryHash      uint64              // of every parameter but the cursor
	now            time.Time           // records a write created are hidden until their read lag passed
}

func (e *Emulator) serveList(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.requests++
	fault, retryAfter := e.pickFault()
	latency := e.faults.Latency
	e.mu.Unlock()

	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	switch fault {
	case "":
	case FaultDrop:
		dropConnection(w)
		return
	case FaultGarbage:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"next":null,"results":[{"id":"x",,,]}}`)
		return
	case FaultBareGateway:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
		return
	default:
		a := faultError(fault)
		if retryAfter > 0 {
			a.retryAfter = retryAfter
		}
		a.write(w)
		return
	}

	e.answer(w, r, e.list)
}

// answer writes what answer (called with e.mu held) makes of the request: the JSON body, or the
// error in Kombo's envelope.
func (e *Emulator) answer(w http.ResponseWriter, r *http.Request, answer func(*http.Request) ([]byte, *apiError)) {
	e.mu.Lock()
	body, apiErr := answer(r)
	e.mu.Unlock()
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// list answers a list request. Call with e.mu held.
func (e *Emulator) list(r *http.Request) ([]byte, *apiError) {
	if !e.authorized(r) {
		return nil, &apiError{status: 401, code: kombo.CodePlatformAuthInvalid, message: "The API key is invalid."}
	}
	cat, ok := kombo.ParseCategory(r.PathValue("category"))
	if !ok || specByName(cat, r.PathValue("endpoint")) == nil {
		return nil, &apiError{status: 404, message: "Route not found: " + r.URL.Path}
	}
	name := r.PathValue("endpoint")
	iid := r.Header.Get("X-Integration-Id")
	if iid == "" {
		return nil, &apiError{status: 400, code: kombo.CodeInputInvalid, message: "The X-Integration-Id header is required."}
	}
	i, apiErr := e.usableIntegration(iid)
	if apiErr != nil {
		return nil, apiErr
	}
	if i.firstSyncPending {
		msg := "The first sync of this integration didn't finish yet! You can keep polling this until you get a successful response or react to our webhooks."
		return nil, &apiError{status: i.pendingStatus, code: kombo.CodeSetupSyncPending, message: msg, legacy: i.legacyPending}
	}
	if i.category != cat {
		return nil, &apiError{status: 400, code: kombo.CodeInputInvalid,
			message: fmt.Sprintf("This endpoint is only available for %s integrations, but %s is a %s integration.", cat, iid, i.category)}
	}
	if i.missingPermissions[name] {
		return nil, &apiError{status: 403, code: kombo.CodePermissionMissing, message: "The integration lacks the permission to read " + name + "."}
	}
	if i.disabledModels[name] {
		return nil, &apiError{status: 403, code: kombo.CodeModelNotAvailable, message: "The model " + name + " is not available for this integration."}
	}
	req, apiErr := e.parseList(r, i, name)
	if apiErr != nil {
		return nil, apiErr
	}
	i.purgeExpired(e.now(), e.opts.Retention)
	return e.page(req)
}

// usableIntegration is the integration a request names, or Kombo's answer when it does not
// exist or its state refuses reads: 404, or 403 for INACTIVE and INVALID. Call with e.mu held.
func (e *Emulator) usableIntegration(iid string) (*integration, *apiError) {
	i, ok := e.integrations[iid]
	if !ok || i.deleted {
		return nil, &apiError{status: 404, code: kombo.CodeIntegrationNotFound, message: "No integration with ID " + iid + " exists."}
	}
	switch i.state {
	case kombo.IntegrationInactive:
		return nil, &apiError{status: 403, code: kombo.CodeIntegrationInactive, message: "The integration is inactive."}
	case kombo.IntegrationInvalid:
		return nil, &apiError{status: 403, code: kombo.CodeIntegrationAuthInvalid, message: "The integration's credentials are invalid."}
	}
	return i, nil
}

func (e *Emulator) authorized(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && e.opts.APIKey != "" && subtle.ConstantTimeCompare([]byte(token), []byte(e.opts.APIKey)) == 1
}

func invalid(format string, args ...any) *apiError {
	return &apiError{status: 400, code: kombo.CodeInputInvalid, message: fmt.Sprintf(format, args...)}
}

func (e *Emulator) parseList(r *http.Request, i *integration, name string) (*listRequest, *apiError) {
	q := r.URL.Query()
	req := &listRequest{integration: i, endpoint: name, spec: specByName(i.category, name), pageSize: 100, filters: map[string][]string{},
		now: e.now()}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > kombo.MaxPageSize {
			return nil, invalid("page_size must be an integer from 1 to %d, got %q.", kombo.MaxPageSize, v)
		}
		req.pageSize = n
	}
	if v := q.Get("updated_after"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, invalid("updated_after must be an ISO 8601 date-time, got %q.", v)
		}
		req.updatedAfter = t
	}
	var err *apiError
	if req.includeDeleted, err = boolParam(q, "include_deleted"); err != nil {
		return nil, err
	}
	if req.ignoreUnsupp, err = boolParam(q, "ignore_unsupported_filters"); err != nil {
		return nil, err
	}
	req.ids = splitList(q.Get("ids"))
	req.remoteIDs = splitList(q.Get("remote_ids"))
	for k := range q {
		if slices.Contains(paramsOfEveryList, k) {
			continue
		}
		if _, ok := req.spec.filters[k]; ok {
			req.filters[k] = splitList(q.Get(k))
		} else {
			req.unsupported = true // a filter of Kombo's this emulator (like some tools) cannot apply
		}
	}
	req.queryHash = queryHash(q)
	if c := q.Get("cursor"); c != "" {
		seq, ok := e.decodeCursor(c, iidHash(i.id)^req.queryHash)
		if !ok {
			return nil, invalid("The cursor is invalid or has expired. Restart pagination without a cursor.")
		}
		req.after = seq
	}
	for _, id := range req.ids {
		if i.table(name).byID[id] == nil {
			return nil, &apiError{status: 404, code: kombo.CodeInputInvalid, message: fmt.Sprintf("No %s with ID %s exists.", name, id)}
		}
	}
	return req, nil
}

func boolParam(q url.Values, name string) (bool, *apiError) {
	switch v := q.Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, invalid("%s must be true or false, got %q.", name, v)
	}
}

func splitList(v string) []string {
	if v == "" {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// page renders one page: the matching records after the cursor, in creation order.
func (e *Emulator) page(req *listRequest) ([]byte, *apiError) {
	i := req.integration
	t := i.table(req.endpoint)
	start := sort.Search(len(t.records), func(k int) bool { return t.records[k].seq > req.after })
	var (
		hits []*record
		more bool
	)
	if !req.unsupported || req.ignoreUnsupp {
		for _, r := range t.records[start:] {
			if !req.matches(r) {
				continue
			}
			if len(hits) == req.pageSize {
				more = true
				break
			}
			hits = append(hits, r)
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"status":"success","data":{"next":`)
	if more {
		next := e.encodeCursor(hits[len(hits)-1].seq, iidHash(i.id)^req.queryHash)
		b.WriteString(strconv.Quote(next))
	} else {
		b.WriteString("null")
	}
	b.WriteString(`,"results":[`)
	for k, r := range hits {
		if k > 0 {
			b.WriteByte(',')
		}
		b.Write(i.render(req.endpoint, r))
		if r.duplicated {
			b.WriteByte(',')
			b.Write(i.render(req.endpoint, r))
		}
	}
	b.WriteString("]}}")
	return b.Bytes(), nil
}

func (req *listRequest) matches(r *record) bool {
	if req.now.Before(r.hiddenUntil) {
		return false
	}
	if r.remoteDeletedAt != nil && !req.includeDeleted {
		return false
	}
	if !req.updatedAfter.IsZero() && r.touchedAt.Before(req.updatedAfter) {
		return false
	}
	if len(req.ids) > 0 && !slices.Contains(req.ids, r.id) {
		return false
	}
	if len(req.remoteIDs) > 0 && (r.remoteID == nil || !slices.Contains(req.remoteIDs, *r.remoteID)) {
		return false
	}
	for k, vs := range req.filters {
		if !req.spec.filters[k](r, vs) {
			return false
		}
	}
	return true
}
