// Package config holds kombosync's typed configuration: every setting is declared once as a
// flag whose environment variable is derived from its name (database-url ↔ DATABASE_URL), read
// with the precedence defaults < environment < flags, and validated once at start-up.
//
// Parsing is done by github.com/peterbourgon/ff/v3: one declaration gives both the flag and the
// environment variable, flags take precedence, and it is the same library that drives the
// starter CLI's subcommands (ffcli), so every program reads its settings the same way.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"go.temporal.io/sdk/contrib/envconfig"

	"github.com/kombosync/kombosync/kombo"
)

// Defaults of docs/ARCHITECTURE.md section 6.
const (
	DefaultTemporalAddress   = "localhost:7233"
	DefaultTemporalNamespace = "default"
	DefaultTaskQueue         = "kombo-sync"
	DefaultKomboBaseURL      = "https://api.kombo.dev/v1"
	DefaultTriggers          = TriggerDataChanged
	DefaultDebounceQuiet     = 5 * time.Second
	DefaultDebounceMax       = 60 * time.Second
	DefaultWebhookListenAddr = ":8080"
	DefaultMetricsListenAddr = ":9090"
	DefaultFetchOverlap      = 2 * time.Minute
	DefaultFetchParallelism  = 4
	// DefaultMaxConcurrentFetches: a worker's activity slots (the SDK's default is 1,000).
	DefaultMaxConcurrentFetches = 32
	// DefaultFetchHeartbeatTimeout is how soon a fetch whose worker died is retried elsewhere.
	DefaultFetchHeartbeatTimeout = 30 * time.Second
	DefaultSweepMaxShare         = 0.2
	DefaultDeletedRetention      = 14 * 24 * time.Hour
	DefaultStateProbeInterval    = time.Minute
)

// Event types that may trigger a delta fetch (KOMBO_TRIGGERS).
const (
	TriggerDataChanged         = "data-changed"
	TriggerSyncFinished        = "sync-finished"
	TriggerRemoteEventReceived = "remote-event-received"
)

var knownTriggers = []string{TriggerDataChanged, TriggerSyncFinished, TriggerRemoteEventReceived}

// Part selects a group of settings; each program registers the parts it uses.
type Part int

const (
	PartDatabase Part = 1 << iota
	PartTemporal
	PartKomboAPI
	PartWebhook
	PartSync
	PartMetrics
	PartLog
	PartPrivacy
	PartOutbound
	PartAPI
	PartActions
)

// Config is the whole configuration. A program only reads the fields of the parts it registered.
type Config struct {
	parts Part

	DatabaseURL string

	TemporalAddress   string
	TemporalNamespace string
	TaskQueue         string
	temporal          map[string]Secret // Temporal's own client settings (temporal.go), as given
	temporalProfile   envconfig.ClientConfigProfile
	set               map[string]bool // the flags given by flag or environment

	KomboAPIKey  Secret
	KomboBaseURL string
	// KomboMaxRPS caps the requests per second to Kombo's API of every worker sharing the
	// database together (0: no cap).
	KomboMaxRPS float64

	WebhookSecrets    []Secret
	WebhookListenAddr string

	Triggers      []string
	Endpoints     []kombo.Endpoint
	DebounceQuiet time.Duration
	DebounceMax   time.Duration
	FetchOverlap  time.Duration
	// FetchParallelism bounds the endpoints one integration fetches at once.
	FetchParallelism int
	// FetchHeartbeatTimeout: a fetch that has not heartbeated for this long (its worker died) is
	// retried, resuming after its last committed page.
	FetchHeartbeatTimeout time.Duration
	// SweepMaxShare: a full pass may mark at most this share of an endpoint's rows deleted
	// without an operator's confirmation.
	SweepMaxShare float64
	// DeletedRetention: how long a deleted integration's rows are kept.
	DeletedRetention time.Duration
	// MaxConcurrentFetches caps the activities (fetches, almost all) one worker runs at once.
	MaxConcurrentFetches int
	// StateProbeInterval: the first wait before a workflow whose integration Kombo paused asks
	// Kombo for its state again; it doubles up to an hour.
	StateProbeInterval time.Duration

	Privacy  Privacy
	Outbound Outbound
	API      API
	Actions  Actions

	MetricsListenAddr string

	LogLevel  slog.Level
	LogFormat string
}

// LogValue is the configuration as it may be logged: no secrets, no database password.
func (c *Config) LogValue() slog.Value {
	db := "[invalid]"
	if u, err := url.Parse(c.DatabaseURL); err == nil {
		db = u.Redacted()
	}
	endpoints := make([]string, len(c.Endpoints))
	for i, e := range c.Endpoints {
		endpoints[i] = e.String()
	}
	attrs := []slog.Attr{
		slog.String("database_url", db),
		slog.String("temporal_address", c.TemporalAddress),
		slog.String("temporal_namespace", c.TemporalNamespace),
		slog.String("temporal_connection", TemporalMode(c.TemporalProfile())),
		slog.String("task_queue", c.TaskQueue),
		slog.String("kombo_base_url", c.KomboBaseURL),
		slog.Bool("kombo_api_key_set", c.KomboAPIKey != ""),
		slog.Int("webhook_secrets", len(c.WebhookSecrets)),
		slog.Any("triggers", c.Triggers),
		slog.Any("endpoints", endpoints),
		slog.Duration("debounce_quiet", c.DebounceQuiet),
		slog.Duration("debounce_max", c.DebounceMax),
		slog.Duration("fetch_overlap", c.FetchOverlap),
		slog.Int("fetch_parallelism", c.FetchParallelism),
		slog.Int("max_concurrent_fetches", c.MaxConcurrentFetches),
		slog.Float64("kombo_max_rps", c.KomboMaxRPS),
		slog.Duration("fetch_heartbeat_timeout", c.FetchHeartbeatTimeout),
		slog.Float64("sweep_max_share", c.SweepMaxShare),
		slog.Duration("deleted_retention", c.DeletedRetention),
		slog.Duration("state_probe_interval", c.StateProbeInterval),
	}
	if c.parts&PartPrivacy != 0 {
		attrs = append(attrs, c.Privacy.logAttrs())
	}
	if c.parts&PartOutbound != 0 {
		attrs = append(attrs, c.Outbound.logAttrs())
	}
	if c.parts&PartActions != 0 {
		attrs = append(attrs, c.Actions.logAttrs())
	}
	if c.parts&PartAPI != 0 {
		attrs = append(attrs, slog.String("api_listen_addr", c.API.ListenAddr), slog.Int("api_tokens", len(c.API.Tokens)))
	}
	return slog.GroupValue(attrs...)
}

// String prints the same safe view as LogValue, so %v of a Config never shows a secret.
func (c *Config) String() string { return c.LogValue().String() }

// Register declares the flags of the given parts on fs and returns the Config they fill.
// Call Parse afterwards.
func Register(fs *flag.FlagSet, parts Part) *Config {
	c := &Config{parts: parts}
	if parts&PartDatabase != 0 {
		fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL connection string (env DATABASE_URL, required)")
	}
	if parts&PartTemporal != 0 {
		fs.StringVar(&c.TemporalAddress, "temporal-address", DefaultTemporalAddress, "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
		fs.StringVar(&c.TemporalNamespace, "temporal-namespace", DefaultTemporalNamespace, "Temporal namespace (env TEMPORAL_NAMESPACE)")
		fs.StringVar(&c.TaskQueue, "temporal-task-queue", DefaultTaskQueue, "Temporal task queue of the sync workflows (env TEMPORAL_TASK_QUEUE)")
		registerTemporal(fs, c)
	}
	if parts&PartKomboAPI != 0 {
		fs.Func("kombo-api-key", "Kombo API key; prefer the env var KOMBO_API_KEY (never logged)", func(v string) error {
			c.KomboAPIKey = Secret(strings.TrimSpace(v))
			return nil
		})
		fs.StringVar(&c.KomboBaseURL, "kombo-base-url", DefaultKomboBaseURL, "Kombo API base URL, e.g. https://api.us.kombo.dev/v1 (env KOMBO_BASE_URL)")
		fs.Float64Var(&c.KomboMaxRPS, "kombo-max-rps", 0, "cap on Kombo API requests per second of all workers together, paced through the database; 0 for none (env KOMBO_MAX_RPS)")
	}
	if parts&PartWebhook != 0 {
		fs.Func("kombo-webhook-secret", "webhook secret(s), comma-separated for rotation; prefer the env var KOMBO_WEBHOOK_SECRET (never logged)", func(v string) error {
			c.WebhookSecrets = nil
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					c.WebhookSecrets = append(c.WebhookSecrets, Secret(s))
				}
			}
			return nil
		})
		fs.StringVar(&c.WebhookListenAddr, "webhook-listen-addr", DefaultWebhookListenAddr, "gateway listen address (env WEBHOOK_LISTEN_ADDR)")
	}
	if parts&PartSync != 0 {
		c.Triggers = []string{DefaultTriggers}
		fs.Func("kombo-triggers", "comma-separated events that start a delta: data-changed, sync-finished, remote-event-received (env KOMBO_TRIGGERS; default data-changed)", func(v string) error {
			ts, err := parseTriggers(v)
			c.Triggers = ts
			return err
		})
		c.Endpoints = kombo.DefaultEndpoints()
		fs.Func("kombo-endpoints", "comma-separated endpoints to sync as category/endpoint, e.g. hris/employees,ats/jobs; a bare category (hris) means all of it (env KOMBO_ENDPOINTS; default all)", func(v string) error {
			eps, err := kombo.ParseEndpoints(v)
			c.Endpoints = eps
			return err
		})
		fs.DurationVar(&c.DebounceQuiet, "debounce-quiet", DefaultDebounceQuiet, "quiet window after the last data-changed before fetching (env DEBOUNCE_QUIET)")
		fs.DurationVar(&c.DebounceMax, "debounce-max", DefaultDebounceMax, "longest a steady stream of events may postpone a fetch (env DEBOUNCE_MAX)")
		fs.DurationVar(&c.FetchOverlap, "fetch-overlap", DefaultFetchOverlap, "safety overlap subtracted from each watermark for clock skew (env FETCH_OVERLAP)")
		fs.IntVar(&c.FetchParallelism, "fetch-parallelism", DefaultFetchParallelism, "endpoints of one integration fetched at once (env FETCH_PARALLELISM)")
		fs.IntVar(&c.MaxConcurrentFetches, "max-concurrent-fetches", DefaultMaxConcurrentFetches, "fetches (activities) one worker runs at once; more wait on the task queue for any worker (env MAX_CONCURRENT_FETCHES)")
		fs.DurationVar(&c.FetchHeartbeatTimeout, "fetch-heartbeat-timeout", DefaultFetchHeartbeatTimeout, "a fetch silent this long (its worker died) is retried from its last committed page (env FETCH_HEARTBEAT_TIMEOUT)")
		fs.Float64Var(&c.SweepMaxShare, "sweep-max-share", DefaultSweepMaxShare, "largest share of an endpoint's rows a full pass marks deleted without confirmation (env SWEEP_MAX_SHARE)")
		fs.DurationVar(&c.DeletedRetention, "deleted-retention", DefaultDeletedRetention, "how long a deleted integration's rows are kept before the purge (env DELETED_RETENTION)")
		fs.DurationVar(&c.StateProbeInterval, "state-probe-interval", DefaultStateProbeInterval, "first wait before asking Kombo again for the state of an integration it paused; doubles up to an hour (env STATE_PROBE_INTERVAL)")
	}
	if parts&PartPrivacy != 0 {
		registerPrivacy(fs, c)
	}
	if parts&PartOutbound != 0 {
		registerOutbound(fs, c)
	}
	if parts&PartAPI != 0 {
		registerAPI(fs, c)
	}
	if parts&PartActions != 0 {
		registerActions(fs, c)
	}
	if parts&PartMetrics != 0 {
		c.MetricsListenAddr = DefaultMetricsListenAddr
		fs.Func("metrics-listen-addr", "address of the worker's /metrics, /healthz and /readyz; off disables (env METRICS_LISTEN_ADDR; default :9090)", func(v string) error {
			// An empty environment variable counts as unset, so "off" is the way to disable.
			if v = strings.TrimSpace(v); v == "off" || v == "" {
				v = ""
			}
			c.MetricsListenAddr = v
			return nil
		})
	}
	if parts&PartLog != 0 {
		c.LogFormat = "json"
		fs.Func("log-level", "debug, info, warn or error (env LOG_LEVEL; default info)", func(v string) error {
			return c.LogLevel.UnmarshalText([]byte(v))
		})
		fs.Func("log-format", "json or text (env LOG_FORMAT; default json)", func(v string) error {
			if v != "json" && v != "text" {
				return fmt.Errorf("must be json or text, not %q", v)
			}
			c.LogFormat = v
			return nil
		})
	}
	return c
}

// UsageError is a configuration error: the program was started wrongly (exit code 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Parse reads the environment and then args into the flags of fs, and validates the result.
// Errors are UsageErrors, except flag.ErrHelp for -h.
func (c *Config) Parse(fs *flag.FlagSet, args []string) error {
	if err := ff.Parse(fs, args, ff.WithEnvVars()); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err}
	}
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	if err := c.Validate(); err != nil {
		return UsageError{err}
	}
	return nil
}

// Validate reports every missing or malformed setting at once, one per line.
func (c *Config) Validate() error {
	var errs []error
	if c.parts&PartDatabase != 0 {
		if c.DatabaseURL == "" {
			errs = append(errs, errors.New("DATABASE_URL is required"))
		} else if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// The parse error would echo the URL, password included.
			errs = append(errs, errors.New("DATABASE_URL must be a postgres:// URL"))
		}
	}
	if c.parts&PartTemporal != 0 {
		if err := c.loadTemporalProfile(c.set); err != nil {
			errs = append(errs, err)
		}
		if c.TaskQueue == "" {
			errs = append(errs, errors.New("TEMPORAL_TASK_QUEUE must not be empty"))
		}
	}
	if c.parts&PartKomboAPI != 0 {
		if c.KomboAPIKey == "" {
			errs = append(errs, errors.New("KOMBO_API_KEY is required"))
		}
		if u, err := url.Parse(c.KomboBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("KOMBO_BASE_URL must be an http(s) URL, not %q", c.KomboBaseURL))
		}
		if c.KomboMaxRPS < 0 || c.KomboMaxRPS > 10_000 {
			errs = append(errs, fmt.Errorf("KOMBO_MAX_RPS must be between 0 (no cap) and 10000, not %g", c.KomboMaxRPS))
		}
	}
	if c.parts&PartWebhook != 0 {
		if len(c.WebhookSecrets) == 0 {
			errs = append(errs, errors.New("KOMBO_WEBHOOK_SECRET is required (comma-separate several for rotation)"))
		}
		if _, _, err := net.SplitHostPort(c.WebhookListenAddr); err != nil {
			errs = append(errs, fmt.Errorf("WEBHOOK_LISTEN_ADDR must be [host]:port, not %q", c.WebhookListenAddr))
		}
	}
	if c.parts&PartSync != 0 {
		if len(c.Triggers) == 0 {
			errs = append(errs, errors.New("KOMBO_TRIGGERS must name at least one event type"))
		}
		if len(c.Endpoints) == 0 {
			errs = append(errs, errors.New("KOMBO_ENDPOINTS must name at least one endpoint"))
		}
		if c.DebounceQuiet <= 0 {
			errs = append(errs, fmt.Errorf("DEBOUNCE_QUIET must be positive, not %s", c.DebounceQuiet))
		}
		if c.DebounceMax < c.DebounceQuiet {
			errs = append(errs, fmt.Errorf("DEBOUNCE_MAX (%s) must not be shorter than DEBOUNCE_QUIET (%s)", c.DebounceMax, c.DebounceQuiet))
		}
		if c.FetchParallelism < 1 || c.FetchParallelism > 32 {
			errs = append(errs, fmt.Errorf("FETCH_PARALLELISM must be between 1 and 32, not %d", c.FetchParallelism))
		}
		if c.MaxConcurrentFetches < 1 || c.MaxConcurrentFetches > 1000 {
			errs = append(errs, fmt.Errorf("MAX_CONCURRENT_FETCHES must be between 1 and 1000, not %d", c.MaxConcurrentFetches))
		}
		if c.FetchHeartbeatTimeout < time.Second || c.FetchHeartbeatTimeout > 10*time.Minute {
			errs = append(errs, fmt.Errorf("FETCH_HEARTBEAT_TIMEOUT must be between 1s and 10m, not %s", c.FetchHeartbeatTimeout))
		}
		if c.SweepMaxShare < 0 || c.SweepMaxShare > 1 {
			errs = append(errs, fmt.Errorf("SWEEP_MAX_SHARE must be between 0 and 1, not %g", c.SweepMaxShare))
		}
		if c.StateProbeInterval < time.Second || c.StateProbeInterval > time.Hour {
			errs = append(errs, fmt.Errorf("STATE_PROBE_INTERVAL must be between 1s and 1h, not %s", c.StateProbeInterval))
		}
		if c.DeletedRetention < 0 {
			errs = append(errs, fmt.Errorf("DELETED_RETENTION must not be negative, not %s", c.DeletedRetention))
		}
		if c.FetchOverlap < 0 {
			errs = append(errs, fmt.Errorf("FETCH_OVERLAP must not be negative, not %s", c.FetchOverlap))
		}
	}
	if c.parts&PartPrivacy != 0 {
		if err := c.Privacy.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.parts&PartOutbound != 0 {
		if err := c.Outbound.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.parts&PartAPI != 0 {
		if err := c.API.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.parts&PartActions != 0 {
		if err := c.Actions.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.parts&PartMetrics != 0 && c.MetricsListenAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListenAddr); err != nil {
			errs = append(errs, fmt.Errorf("METRICS_LISTEN_ADDR must be [host]:port, not %q", c.MetricsListenAddr))
		}
	}
	return errors.Join(errs...)
}

// HasTrigger reports whether events of type t start a delta.
func (c *Config) HasTrigger(t string) bool { return slices.Contains(c.Triggers, t) }

func parseTriggers(v string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(knownTriggers, t) {
			return nil, fmt.Errorf("unknown trigger %q (want %s)", t, strings.Join(knownTriggers, ", "))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Logger builds the process's one structured logger, writing to w.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// EnvVars lists the environment variables a program with these parts reads, as ff derives them
// from flag names (database-url → DATABASE_URL).
func EnvVars(parts Part) []string {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	Register(fs, parts)
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		out = append(out, strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(f.Name)))
	})
	return out
}
