package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Outbound webhook defaults (README "Outbound webhooks").
const (
	DefaultOutboundTimeout = 10 * time.Second
	// Back-off doubles from 5 s to 6 h, so a receiver down for three days gets about 20 attempts
	// before the subscription is disabled.
	DefaultOutboundMaxBackoff  = 6 * time.Hour
	DefaultOutboundGiveUpAfter = 72 * time.Hour
	DefaultAPIListenAddr       = ":8088"
)

// Outbound is the outbound webhook settings (PartOutbound): what a subscription's URL may be,
// and how deliveries are retried.
type Outbound struct {
	// AllowHTTP lets subscriptions use http:// URLs (the demo and tests); https only otherwise.
	AllowHTTP bool
	// AllowPrivate lets deliveries reach loopback and private addresses (the demo and tests).
	AllowPrivate bool
	Timeout      time.Duration
	MaxBackoff   time.Duration
	GiveUpAfter  time.Duration
}

func registerOutbound(fs *flag.FlagSet, c *Config) {
	o := &c.Outbound
	fs.BoolVar(&o.AllowHTTP, "outbound-allow-http", false, "let webhook subscriptions use http:// URLs; https only otherwise (env OUTBOUND_ALLOW_HTTP)")
	fs.BoolVar(&o.AllowPrivate, "outbound-allow-private", false, "let webhook deliveries reach loopback, private and link-local addresses; refused otherwise (env OUTBOUND_ALLOW_PRIVATE)")
	fs.DurationVar(&o.Timeout, "outbound-timeout", DefaultOutboundTimeout, "bound of one webhook delivery, connection to answer (env OUTBOUND_TIMEOUT)")
	fs.Var(durationDays{&o.MaxBackoff}, "outbound-max-backoff", "longest wait between two failed deliveries, before ±20% jitter (env OUTBOUND_MAX_BACKOFF; default 6h)")
	fs.Var(durationDays{&o.GiveUpAfter}, "outbound-give-up-after", "a subscription whose deliveries have failed this long is disabled, e.g. 3d (env OUTBOUND_GIVE_UP_AFTER; default 3d)")
	o.MaxBackoff, o.GiveUpAfter = DefaultOutboundMaxBackoff, DefaultOutboundGiveUpAfter
}

func (o *Outbound) validate() error {
	var errs []error
	if o.Timeout < 100*time.Millisecond || o.Timeout > 2*time.Minute {
		errs = append(errs, fmt.Errorf("OUTBOUND_TIMEOUT must be between 100ms and 2m, not %s", o.Timeout))
	}
	if o.MaxBackoff < time.Second {
		errs = append(errs, fmt.Errorf("OUTBOUND_MAX_BACKOFF must be at least 1s, not %s", o.MaxBackoff))
	}
	if o.GiveUpAfter < time.Minute {
		errs = append(errs, fmt.Errorf("OUTBOUND_GIVE_UP_AFTER must be at least 1m, not %s", o.GiveUpAfter))
	}
	return errors.Join(errs...)
}

func (o *Outbound) logAttrs() slog.Attr {
	return slog.Group("outbound",
		slog.Bool("allow_http", o.AllowHTTP), slog.Bool("allow_private", o.AllowPrivate),
		slog.Duration("timeout", o.Timeout), slog.Duration("max_backoff", o.MaxBackoff),
		slog.Duration("give_up_after", o.GiveUpAfter))
}

// API is the back-office API's settings (PartAPI).
type API struct {
	ListenAddr string
	Tokens     []Secret // bearer tokens; several for rotation
}

func registerAPI(fs *flag.FlagSet, c *Config) {
	c.API.ListenAddr = DefaultAPIListenAddr
	fs.StringVar(&c.API.ListenAddr, "api-listen-addr", DefaultAPIListenAddr, "back-office API listen address, never the webhook port (env API_LISTEN_ADDR)")
	fs.Func("api-tokens", "bearer tokens of the back-office API, comma-separated for rotation, each at least 32 characters; prefer the env var API_TOKENS (never logged)", func(v string) error {
		c.API.Tokens = nil
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				c.API.Tokens = append(c.API.Tokens, Secret(t))
			}
		}
		return nil
	})
}

func (a *API) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(a.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("API_LISTEN_ADDR must be [host]:port, not %q", a.ListenAddr))
	}
	if len(a.Tokens) == 0 {
		errs = append(errs, errors.New("API_TOKENS is required (comma-separate several for rotation)"))
	}
	for i, t := range a.Tokens {
		if len(t) < 32 {
			errs = append(errs, fmt.Errorf("API_TOKENS: token %d is shorter than 32 characters", i+1))
		}
	}
	return errors.Join(errs...)
}
