// Package service is the process plumbing kombosync's long-running programs (worker, gateway)
// share: connecting to Postgres and Temporal, the health and metrics endpoints, and serving HTTP
// until the context ends.
package service

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdktally "go.temporal.io/sdk/contrib/tally"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// DialTemporal connects to the Temporal frontend as cfg's Temporal profile says (plaintext, TLS,
// mutual TLS or an API key; see config.TemporalProfile), logging through logger and saying
// which mode it uses, never a key. With a registry, the SDK's own metrics (see TemporalMetrics)
// are reported into it. A client certificate read from files is read again when they change,
// on the next TLS handshake: a rotated certificate needs no restart.
func DialTemporal(ctx context.Context, cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (client.Client, error) {
	prof := cfg.TemporalProfile()
	opts, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return nil, fmt.Errorf("temporal connection settings: %w", err)
	}
	mode := config.TemporalMode(prof)
	if t := prof.TLS; t != nil && !t.Disabled && t.ClientCertPath != "" && opts.ConnectionOptions.TLS != nil {
		r := &certReloader{certPath: t.ClientCertPath, keyPath: t.ClientKeyPath, logger: logger}
		if _, err := r.get(nil); err != nil {
			return nil, err
		}
		opts.ConnectionOptions.TLS.Certificates = nil
		opts.ConnectionOptions.TLS.GetClientCertificate = r.get
	}
	opts.Logger = tlog.NewStructuredLogger(logger.With("component", "temporal-sdk"))
	// kombosync's requests are small (a signal, a heartbeat's cursor, a run's counts): gzip
	// saves a few hundred bytes of each and cost a third of the gateway's gRPC CPU per webhook
	// (BENCHMARKS.md figure 10). Compressed answers are still accepted.
	opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	if reg != nil {
		opts.MetricsHandler = TemporalMetrics(reg)
	}
	logger.InfoContext(ctx, "connecting to temporal", "address", opts.HostPort, "namespace", opts.Namespace,
		"mode", mode)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to temporal at %s (%s): %w", opts.HostPort, mode, explainDial(err, mode))
	}
	return c, nil
}

// ExplainTemporalError says in plain words when a Temporal call failed because the TLS handshake
// failed or the server refused the credentials (a *ConnectionError); other errors are returned
// as they are.
func ExplainTemporalError(err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return &ConnectionError{"credentials refused", "the server refused the credentials (API key or client certificate)", err}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "tls:"), strings.Contains(msg, "x509:"), strings.Contains(msg, "authentication handshake failed"):
		return &ConnectionError{"TLS handshake failed", "the TLS handshake failed (check TEMPORAL_TLS_* and the client certificate)", err}
	case strings.Contains(msg, "server preface"), strings.Contains(msg, "frame too large"):
		return &ConnectionError{"no plaintext gRPC answer",
			"the server did not answer as plaintext gRPC; does it expect TLS (TEMPORAL_TLS=true)?", err}
	}
	return err
}

// explainDial is ExplainTemporalError knowing the mode: over TLS 1.3 a server that refuses the
// client's certificate (or its absence) does so only after the client's side of the handshake
// completed, so the client often sees its connection closed (a broken pipe, a reset, EOF), not
// an alert; the advice then names the certificate as the likely cause.
func explainDial(err error, mode string) error {
	err = ExplainTemporalError(err)
	if ce := (*ConnectionError)(nil); errors.As(err, &ce) || (mode != "tls" && mode != "mtls") {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, "broken pipe") && !strings.Contains(msg, "connection reset") && !strings.Contains(msg, "EOF") {
		return err
	}
	advice := "the server closed the connection right after the TLS handshake; does it require a client certificate " +
		"(TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)?"
	if mode == "mtls" {
		advice = "the server closed the connection right after the TLS handshake; does it accept this client certificate " +
			"(its CA, its expiry)?"
	}
	// Not certain (a server restarting also closes connections), so the words say what was seen.
	return &ConnectionError{"connection closed after the TLS handshake", advice, err}
}

// ConnectionError is a failure to talk to a dependency for a reason an operator can act on.
type ConnectionError struct {
	Reason string // short, for the readiness answer: "TLS handshake failed"
	Advice string // the sentence for logs and start-up errors
	Err    error
}

func (e *ConnectionError) Error() string { return e.Advice + ": " + e.Err.Error() }
func (e *ConnectionError) Unwrap() error { return e.Err }

// certReloader serves the TLS client certificate from its files, read again whenever their
// size or modification time changes. A pair that does not load (a rotation half written) keeps
// the previous one until the next handshake.
type certReloader struct {
	certPath, keyPath string
	logger            *slog.Logger

	mu    sync.Mutex
	stamp string
	cert  *tls.Certificate
}

func (r *certReloader) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := fileStamp(r.certPath, r.keyPath)
	if err == nil && stamp == r.stamp {
		return r.cert, nil
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.LoadX509KeyPair(r.certPath, r.keyPath)
	}
	if err != nil {
		if r.cert == nil {
			return nil, fmt.Errorf("temporal client certificate: %w", err)
		}
		r.logger.Warn("could not read the temporal client certificate again; keeping the one loaded", "error", err)
		return r.cert, nil
	}
	if r.cert != nil {
		r.logger.Info("temporal client certificate reloaded", "path", r.certPath, "not_after", cert.Leaf.NotAfter)
	}
	r.cert, r.stamp = &cert, stamp
	return r.cert, nil
}

func fileStamp(paths ...string) (string, error) {
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d:%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
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

// TemporalCheck asks the frontend for its health; mode (config.TemporalMode) lets a failure of
// the TLS handshake be named as one.
func TemporalCheck(c client.Client, mode string) Check {
	return Check{"temporal", func(ctx context.Context) error {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		if err == nil {
			return nil
		}
		return explainDial(err, mode)
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
					what := c.Name + " unreachable"
					if ce := (*ConnectionError)(nil); errors.As(err, &ce) {
						what = c.Name + ": " + ce.Reason
					}
					failed = append(failed, what)
				}
			}
			if len(failed) > 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %s\n", strings.Join(failed, "; "))
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
