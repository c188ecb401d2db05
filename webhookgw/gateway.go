// Package webhookgw is kombosync's webhook gateway: it receives Kombo's webhooks, verifies their
// signatures, stores them in the kombo.webhook_events inbox and signals the integration's
// IntegrationSync workflow (docs/ARCHITECTURE.md section 5). A relay signals events that were stored
// but could not be signaled, so no verified event is lost while Temporal is down. It also serves
// /healthz, /readyz and /metrics.
package webhookgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// Path is where Kombo posts webhooks.
const Path = "/webhooks/kombo"

// MaxBody is the largest webhook body accepted (1 MiB).
const MaxBody = 1 << 20

// Options are the gateway's dependencies and settings.
type Options struct {
	Logger    *slog.Logger
	Probes    service.Probes
	Registry  prometheus.Registerer // where the gateway's metrics go; none when nil
	Secrets   []string              // webhook secrets; several during a rotation
	Store     *store.Store
	Temporal  client.Client
	TaskQueue string
	// SignalTimeout bounds one signal-with-start (5 s when zero).
	SignalTimeout time.Duration
	// RelayInterval is how often the relay looks for unsignaled events (5 s when zero);
	// RelayAge is how old an unsignaled event must be before the relay takes it over from the
	// request still handling it (10 s when zero).
	RelayInterval time.Duration
	RelayAge      time.Duration
}

// Gateway is the webhook gateway's HTTP handler and relay.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	router  *mux.Router
	metrics metrics
	marks   marks
}

// New returns the gateway. It refuses to work without a webhook secret.
func New(opts Options) (*Gateway, error) {
	secrets := opts.Secrets[:0:0]
	for _, s := range opts.Secrets {
		if s != "" {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) == 0 {
		return nil, errors.New("webhook gateway: a webhook secret is required")
	}
	if opts.Store == nil || opts.Temporal == nil || opts.TaskQueue == "" {
		return nil, errors.New("webhook gateway: store, temporal client and task queue are required")
	}
	opts.Secrets = secrets
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SignalTimeout == 0 {
		opts.SignalTimeout = 5 * time.Second
	}
	if opts.RelayInterval == 0 {
		opts.RelayInterval = 5 * time.Second
	}
	if opts.RelayAge == 0 {
		opts.RelayAge = 10 * time.Second
	}
	g := &Gateway{opts: opts, log: opts.Logger, metrics: newMetrics(opts.Registry), marks: marks{write: opts.Store.MarkSignaled}}
	r := mux.NewRouter()
	r.Handle(Path, http.HandlerFunc(g.receive)) // every method: receive answers 405 with Allow
	if opts.Probes.Healthz != nil {
		r.Handle("/healthz", opts.Probes.Healthz).Methods(http.MethodGet)
		r.Handle("/readyz", opts.Probes.Readyz).Methods(http.MethodGet)
		r.Handle("/metrics", opts.Probes.Metrics).Methods(http.MethodGet)
	}
	g.router = r
	return g, nil
}

// ServeHTTP serves the webhook route and the probes.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.router.ServeHTTP(w, r) }

// Outcomes of a webhook request, as answered, logged and counted.
const (
	outcomeAccepted    = "accepted"
	outcomeDuplicate   = "duplicate"
	outcomeIgnored     = "ignored" // verified, stored, nothing to act on
	outcomeBadMethod   = "method_not_allowed"
	outcomeTooLarge    = "too_large"
	outcomeUnsigned    = "unauthorized"
	outcomeMalformed   = "malformed"
	outcomeUnavailable = "unavailable"
)

// statusOf is the one place that maps an outcome to its HTTP status.
var statusOf = map[string]int{
	outcomeAccepted: http.StatusOK, outcomeDuplicate: http.StatusOK, outcomeIgnored: http.StatusOK,
	outcomeBadMethod: http.StatusMethodNotAllowed, outcomeTooLarge: http.StatusRequestEntityTooLarge,
	outcomeUnsigned: http.StatusUnauthorized, outcomeMalformed: http.StatusBadRequest,
	outcomeUnavailable: http.StatusServiceUnavailable,
}

// answer writes an outcome's status and a safe JSON body.
func answer(w http.ResponseWriter, outcome, detail string) {
	status := statusOf[outcome]
	body := map[string]string{"status": outcome}
	if detail != "" {
		body["detail"] = detail
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// receive handles one POST /webhooks/kombo: verify, parse, store, signal, answer. Nothing is
// written before the signature is verified and the body parsed.
func (g *Gateway) receive(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	typ, outcome := "", ""
	log := g.log.With("remote_addr", r.RemoteAddr)
	defer func() { g.metrics.observe(typ, outcome, time.Since(start)) }()
	fail := func(o, detail string) {
		outcome = o
		log.WarnContext(r.Context(), "webhook rejected", "outcome", o, "detail", detail)
		answer(w, o, detail)
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(outcomeBadMethod, "use POST")
		return
	}
	if r.ContentLength > MaxBody {
		fail(outcomeTooLarge, fmt.Sprintf("the body exceeds %d bytes", MaxBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			fail(outcomeTooLarge, fmt.Sprintf("the body exceeds %d bytes", MaxBody))
		} else {
			fail(outcomeMalformed, "could not read the body")
		}
		return
	}
	sig := r.Header.Get(kombo.SignatureHeader)
	if sig == "" {
		fail(outcomeUnsigned, "missing "+kombo.SignatureHeader)
		return
	}
	if !kombo.Verify(body, sig, g.opts.Secrets...) {
		fail(outcomeUnsigned, "invalid signature")
		return
	}
	ev, err := kombo.ParseEvent(body)
	if err != nil {
		fail(outcomeMalformed, err.Error())
		return
	}
	typ = ev.Type
	log = log.With("event_id", ev.ID, "type", ev.Type, "integration_id", ev.IntegrationID())

	// The work goes on if Kombo hangs up: a stored event should also be signaled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), g.opts.SignalTimeout+5*time.Second)
	defer cancel()
	now := time.Now().UTC()
	signal, act := workflows.EventFromWebhook(ev, now)
	found, err := g.opts.Store.InsertWebhookEvent(ctx, store.InboxEvent{ID: ev.ID, Type: ev.Type,
		IntegrationID: signal.IntegrationID, Payload: body, ReceivedAt: now}, act)
	if err != nil {
		outcome = outcomeUnavailable
		log.ErrorContext(ctx, "could not store the webhook", "error", err)
		answer(w, outcome, "could not store the event; retry later")
		return
	}
	switch {
	case found == store.InsertedDuplicate:
		outcome = outcomeDuplicate
	case !act, found == store.InsertedForDeleted: // a deleted integration stays deleted
		outcome = outcomeIgnored
	default: // new, or stored earlier without being signaled: signal it now
		if err := g.signal(ctx, signal); err != nil {
			outcome = outcomeUnavailable
			if recErr := g.opts.Store.RecordSignalFailure(ctx, ev.ID, err); recErr != nil {
				log.ErrorContext(ctx, "could not record the signal failure", "error", recErr)
			}
			log.ErrorContext(ctx, "could not signal the workflow; the relay will retry", "error", err)
			answer(w, outcome, "stored, but the workflow could not be signaled; retry later")
			return
		}
		if err := g.marks.mark(ctx, ev.ID); err != nil {
			// Signaled all the same: the relay may signal it again, which the workflow ignores.
			log.WarnContext(ctx, "could not mark the webhook signaled", "error", err)
		}
		outcome = outcomeAccepted
	}
	log.InfoContext(ctx, "webhook received", "outcome", outcome, "duration", time.Since(start))
	answer(w, outcome, "")
}

// signal delivers an event to its integration's workflow, starting the workflow if none runs.
func (g *Gateway) signal(ctx context.Context, ev workflows.KomboEvent) error {
	ctx, cancel := context.WithTimeout(ctx, g.opts.SignalTimeout)
	defer cancel()
	return workflows.SignalWithStart(ctx, g.opts.Temporal, g.opts.TaskQueue, ev.IntegrationID, ev.Tool, ev.Category,
		workflows.SignalKomboEvent, ev)
}

// RunRelay signals stored but unsignaled events until ctx ends: the events a request stored
// while Temporal was unreachable, which Kombo may never send again.
func (g *Gateway) RunRelay(ctx context.Context) error {
	t := time.NewTicker(g.opts.RelayInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := g.Relay(ctx); err != nil && ctx.Err() == nil {
			g.log.WarnContext(ctx, "relay failed; retrying", "error", err)
		}
	}
}

// Relay signals the unsignaled events old enough to be abandoned by their request, in batches
// of 100 until none is left or one fails. It returns how many it signaled.
func (g *Gateway) Relay(ctx context.Context) (int, error) {
	total := 0
	for {
		signaled, failed, err := g.opts.Store.RelayUnsignaled(ctx, g.opts.RelayAge, 100,
			func(ctx context.Context, stored store.InboxEvent) error {
				ctx, cancel := context.WithTimeout(ctx, g.opts.SignalTimeout)
				defer cancel()
				_, _, err := SignalStored(ctx, g.opts.Temporal, g.opts.TaskQueue, g.opts.Store, stored)
				return err
			})
		total += signaled
		g.metrics.relayed(signaled, failed)
		if signaled > 0 || failed > 0 {
			g.log.InfoContext(ctx, "relayed stored webhooks", "signaled", signaled, "failed", failed)
		}
		if err != nil || failed > 0 || signaled < 100 {
			return total, err
		}
	}
}

// SignalStored signals a stored webhook event to its integration's workflow, as the gateway does
// when one arrives: the relay and starter webhook replay use it. signaled is false when there is
// nothing to signal: the event concerns no integration, or the integration was deleted.
func SignalStored(ctx context.Context, tc client.Client, taskQueue string, st *store.Store, stored store.InboxEvent) (
	ev workflows.KomboEvent, signaled bool, err error) {
	parsed, err := kombo.ParseEvent(stored.Payload)
	if err != nil {
		return workflows.KomboEvent{}, false, err
	}
	ev, act := workflows.EventFromWebhook(parsed, stored.ReceivedAt)
	if !act {
		return ev, false, nil
	}
	if deleted, err := st.IntegrationDeleted(ctx, ev.IntegrationID); err != nil || deleted {
		return ev, false, err // deleted: handled, nothing to signal
	}
	err = workflows.SignalWithStart(ctx, tc, taskQueue, ev.IntegrationID, ev.Tool, ev.Category, workflows.SignalKomboEvent, ev)
	return ev, err == nil, err
}
