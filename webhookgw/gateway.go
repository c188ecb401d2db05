// Package webhookgw is kombosync's webhook gateway: it receives Kombo's webhooks, verifies their
// signatures, stores them in the kombo.webhook_events inbox and signals the integration's
// IntegrationSync workflow (ARCHITECTURE.md section 5). It also serves /healthz, /readyz and
// /metrics.
package webhookgw

import (
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/kombosync/kombosync/internal/service"
)

// Options are the gateway's dependencies.
type Options struct {
	Logger *slog.Logger
	Probes service.Probes
}

// New returns the gateway's HTTP handler.
func New(opts Options) http.Handler {
	r := mux.NewRouter()
	r.Handle("/healthz", opts.Probes.Healthz).Methods(http.MethodGet)
	r.Handle("/readyz", opts.Probes.Readyz).Methods(http.MethodGet)
	r.Handle("/metrics", opts.Probes.Metrics).Methods(http.MethodGet)
	return r
}
