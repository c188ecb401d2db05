// Package service is the process plumbing kombosync's long-running programs (worker, gateway)
// share: connecting to Postgres and Temporal, the health and metrics endpoints, and serving HTTP
// until the context ends.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	tlog "go.temporal.io/sdk/log"

	"github.com/kombosync/kombosync/config"
)

// OpenPostgres opens a pool and checks that the database answers.
func OpenPostgres(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		// pgx's parse errors do not echo the password, but say only what is safe.
		return nil, errors.New("open postgres: DATABASE_URL is not a valid connection string")
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return pool, nil
}

// DialTemporal connects to the Temporal frontend, logging through logger. With a registry, the
// SDK's own metrics (see TemporalMetrics) are reported into it.
func DialTemporal(ctx context.Context, cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (client.Client, error) {
	opts := client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.TemporalNamespace,
		Logger:    tlog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
		// kombosync's requests are small (a signal, a heartbeat's cursor, a run's counts): gzip
		// saves a few hundred bytes of each and cost a third of the gateway's gRPC CPU per
		// webhook (BENCHMARKS.md figure 5). Compressed answers are still accepted.
		ConnectionOptions: client.ConnectionOptions{GrpcCompression: &client.GrpcCompressionNone{}},
	}
	if reg != nil {
		opts.MetricsHandler = TemporalMetrics(reg)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to temporal at %s: %w", cfg.TemporalAddress, err)
	}
	return c, nil
}

// TemporalMetrics is a Temporal SDK metrics handler reporting into reg, through tally, the SDK's
// supported bridge to Prometheus: temporal_request*, temporal_workflow_task_*, temporal_activity_*
// (schedule-to-start and execution latencies), pollers, sticky cache and more, as histograms.
// The SDK keeps workflow code's metrics quiet during replay.
func TemporalMetrics(reg prometheus.Registerer) client.MetricsHandler {
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       reg,
		DefaultTimerType: tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
			300},
	})
	// The scope reports every second and lives as long as the process.
	scope, _ := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	return sdktally.NewMetricsHandler(scope)
}

// Check is one readiness probe.
type Check struct {
	Name string
	Func func(context.Context) error
}

// PostgresCheck pings the pool.
func PostgresCheck(pool *pgxpool.Pool) Check {
	return Check{"postgres", pool.Ping}
}

// TemporalCheck asks the frontend for its health.
func TemporalCheck(c client.Client) Check {
	return Check{"temporal", func(ctx context.Context) error {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}}
}

// NewRegistry is a Prometheus registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Probes are the operational endpoints every long-running program serves.
type Probes struct {
	Healthz http.Handler // GET /healthz: the process is up
	Readyz  http.Handler // GET /readyz: every check passes within two seconds
	Metrics http.Handler // GET /metrics: Prometheus
}

// NewProbes builds the probes. A failing readiness check is logged; the answer names only the
// dependency, never the error text.
func NewProbes(reg *prometheus.Registry, logger *slog.Logger, checks ...Check) Probes {
	return Probes{
		Healthz: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		}),
		Readyz: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			var failed []string
			for _, c := range checks {
				if err := c.Func(ctx); err != nil {
					logger.WarnContext(ctx, "readiness check failed", "check", c.Name, "error", err)
					failed = append(failed, c.Name)
				}
			}
			if len(failed) > 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %s unreachable\n", strings.Join(failed, ", "))
				return
			}
			fmt.Fprintln(w, "ready")
		}),
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
	}
}

// Mount adds the probes to a standard library mux under GET /healthz, /readyz and /metrics.
func (p Probes) Mount(mux *http.ServeMux) {
	mux.Handle("GET /healthz", p.Healthz)
	mux.Handle("GET /readyz", p.Readyz)
	mux.Handle("GET /metrics", p.Metrics)
}

// Serve runs an HTTP server on addr with conservative timeouts until ctx ends, then shuts it
// down gracefully (up to ten seconds for requests in flight).
func Serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, l, h, logger)
}

// ServeListener is Serve on a listener the caller opened.
func ServeListener(ctx context.Context, l net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	logger.InfoContext(ctx, "http server listening", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("http server on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}

// ExitCode reports err on stderr, prefixed with the program's name, and returns the process exit
// code: 0 for success and -h, 2 for a configuration error, 1 for anything else.
func ExitCode(program string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(config.UsageError)):
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return 1
	}
}
