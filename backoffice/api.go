// Package backoffice is the back-office API: an HTTP API for the application's back office, on
// its own listener (API_LISTEN_ADDR), never on the webhook gateway's port. Every /v1 route needs
// a bearer token of API_TOKENS; errors are JSON in one shape ({"error": {"code", "message"}});
// lists are paginated with an opaque cursor; the OpenAPI document (openapi.json, embedded) is
// served at /openapi.json and checked against the routes and the answers in the tests.
//
// It manages outbound webhook subscriptions (README "Outbound webhooks") and job links (README
// "Job links"; jobs.go).
package backoffice

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/store"
)

//go:embed openapi.json
var OpenAPI []byte

// Options are the API's dependencies.
type Options struct {
	Logger        *slog.Logger
	Tokens        []string // bearer tokens, several for rotation
	Subscriptions *outbound.Manager
	// Kombo, when set, answers live lookups of job keys not synced yet; SyncJobs then asks the
	// integration's workflow to sync ats/jobs (sync-now).
	Kombo    *kombo.Client
	SyncJobs func(ctx context.Context, integrationID string) error
	// StartAction starts an action's workflow (workflows.StartAction); actions are stored but
	// left to the relay when nil.
	StartAction func(ctx context.Context, actionID, kind, integrationID string) error
	Healthz     http.Handler // optional probes
	Readyz      http.Handler
	Metrics     http.Handler
}

// API is the back-office API's handler.
type API struct {
	log    *slog.Logger
	tokens [][32]byte // sha256 of each token: compared in constant time, whatever their lengths
	subs   *outbound.Manager
	store  *store.Store
	kombo  *kombo.Client
	sync   func(ctx context.Context, integrationID string) error
	router *mux.Router

	startWorkflow func(ctx context.Context, actionID, kind, integrationID string) error
}

// New builds the handler.
func New(o Options) (*API, error) {
	if len(o.Tokens) == 0 {
		return nil, errors.New("back-office API: at least one token is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{log: o.Logger, subs: o.Subscriptions, kombo: o.Kombo, sync: o.SyncJobs, startWorkflow: o.StartAction}
	if o.Subscriptions != nil {
		a.store = o.Subscriptions.Store
	}
	for _, t := range o.Tokens {
		a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
	}
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route")
	})
	r.HandleFunc("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	}).Methods(http.MethodGet)
	for path, h := range map[string]http.Handler{"/healthz": o.Healthz, "/readyz": o.Readyz, "/metrics": o.Metrics} {
		if h != nil {
			r.Handle(path, h).Methods(http.MethodGet)
		}
	}
	v1 := r.PathPrefix("/v1").Subrouter()
	v1.Use(a.authenticate)
	v1.HandleFunc("/subscriptions", a.listSubscriptions).Methods(http.MethodGet)
	v1.HandleFunc("/subscriptions", a.createSubscription).Methods(http.MethodPost)
	v1.HandleFunc("/subscriptions/{id}", a.getSubscription).Methods(http.MethodGet)
	v1.HandleFunc("/subscriptions/{id}", a.updateSubscription).Methods(http.MethodPatch)
	v1.HandleFunc("/subscriptions/{id}", a.deleteSubscription).Methods(http.MethodDelete)
	v1.HandleFunc("/subscriptions/{id}/pause", a.pauseSubscription).Methods(http.MethodPost)
	v1.HandleFunc("/subscriptions/{id}/resume", a.resumeSubscription).Methods(http.MethodPost)
	v1.HandleFunc("/subscriptions/{id}/replay", a.replaySubscription).Methods(http.MethodPost)
	v1.HandleFunc("/subscriptions/{id}/rotate-secret", a.rotateSecret).Methods(http.MethodPost)
	v1.HandleFunc("/subscriptions/{id}/deliveries", a.listDeliveries).Methods(http.MethodGet)
	a.mountJobs(v1)
	a.mountUI(r)
	a.router = r
	return a, nil
}

// Router is the API's router, for tests that walk its routes.
func (a *API) Router() *mux.Router { return a.router }

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

// authenticate lets a request through with a valid "Authorization: Bearer <token>"; 401 otherwise.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || a.tokenIndex(token) < 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kombosync"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// errorBody is the one shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Reason  string `json:"reason,omitempty"` // job_not_open: the synced job's reason
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeErrorReason(w, status, code, message, "")
}

func writeErrorReason(w http.ResponseWriter, status int, code, message, reason string) {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Reason = code, message, reason
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// classify is the one mapping of an error to an answer, for the API and the page: its status, code
// and a message safe to show; 500 with no message for anything unexpected (the caller logs it).
func classify(err error) (status int, code, message string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not_found", err.Error()
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "conflict", strings.TrimPrefix(err.Error(), store.ErrConflict.Error()+": ")
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, "invalid", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": ")
	}
	return http.StatusInternalServerError, "internal", ""
}

// fail answers a store or manager error (classify); a 500 is logged, its cause not shown.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, message := classify(err)
	if status == http.StatusInternalServerError {
		a.log.ErrorContext(r.Context(), "back-office request failed", "method", r.Method, "route", routeOf(r), "error", err)
		message = "the request failed; the server's log says why"
	}
	writeError(w, status, code, message)
}

func routeOf(r *http.Request) string {
	if route := mux.CurrentRoute(r); route != nil {
		if t, err := route.GetPathTemplate(); err == nil {
			return t
		}
	}
	return ""
}

// maxBody bounds a request body.
const maxBody = 64 << 10

// decode reads a JSON body strictly: one object, no unknown fields, at most maxBody bytes. An
// empty body decodes to the zero value when allowEmpty.
func decode(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", maxBody))
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 && allowEmpty {
		return true
	}
	return decodeBytes(w, body, v)
}

// page is a list answer: its items and the cursor of the next page ("" at the end).
type page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// pageOf is a list answer of items read with limit: a full page has a next cursor, the last
// item's (cursorOf).
func pageOf[T any](items []T, limit int, cursorOf func(T) string) page[T] {
	out := page[T]{Data: items}
	if out.Data == nil {
		out.Data = []T{}
	}
	if len(items) == limit && limit > 0 {
		out.NextCursor = cursorOf(items[len(items)-1])
	}
	return out
}

// limitParam reads ?limit= (1 to 500, default 100).
func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 0, fmt.Errorf("%w: limit must be a whole number from 1 to 500, not %q", store.ErrInvalid, v)
	}
	return n, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
