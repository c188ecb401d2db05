package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"
)

// Action defaults (README "Creating applications").
const (
	// DefaultMaxActionsInFlight leaves a third of Kombo's 30 to the application's own writes.
	DefaultMaxActionsInFlight = 10
	MaxActionsInFlight        = 30 // Kombo's limit per integration
	DefaultActionTimeout      = 60 * time.Second
	// DefaultActionLookupWindow: Kombo's reads lag its writes by seconds; two minutes after an
	// attempt's timeout, an application not found was not created.
	DefaultActionLookupWindow = 2 * time.Minute
	// DefaultActionPayloadRetention: a finished action's request (candidate data, attachments)
	// is kept a week, for a person looking into a failure, then removed.
	DefaultActionPayloadRetention = 7 * 24 * time.Hour
)

// Actions is the worker's settings of writes to Kombo (PartActions).
type Actions struct {
	MaxInFlight      int           // KOMBO_MAX_ACTIONS_IN_FLIGHT: per integration, the whole fleet together
	Timeout          time.Duration // KOMBO_ACTION_TIMEOUT: one write request
	LookupWindow     time.Duration // ACTION_LOOKUP_WINDOW
	PayloadRetention time.Duration // ACTION_PAYLOAD_RETENTION (0: never)
}

func registerActions(fs *flag.FlagSet, c *Config) {
	a := &c.Actions
	fs.IntVar(&a.MaxInFlight, "kombo-max-actions-in-flight", DefaultMaxActionsInFlight, "write requests (actions) of one integration in flight at once, all workers together; Kombo allows 30 (env KOMBO_MAX_ACTIONS_IN_FLIGHT)")
	fs.DurationVar(&a.Timeout, "kombo-action-timeout", DefaultActionTimeout, "bound of one write request to Kombo; an answer not received by then is looked for, never resent blindly (env KOMBO_ACTION_TIMEOUT)")
	fs.DurationVar(&a.LookupWindow, "action-lookup-window", DefaultActionLookupWindow, "how long after a write's timeout its result is looked for at Kombo before it is taken as not done (env ACTION_LOOKUP_WINDOW)")
	a.PayloadRetention = DefaultActionPayloadRetention
	fs.Var(durationDays{&a.PayloadRetention}, "action-payload-retention", "a finished action's request (candidate data, attachments) is removed this long after it finished, e.g. 7d; 0 never (env ACTION_PAYLOAD_RETENTION; default 7d)")
}

func (a *Actions) validate() error {
	var errs []error
	if a.MaxInFlight < 1 || a.MaxInFlight > MaxActionsInFlight {
		errs = append(errs, fmt.Errorf("KOMBO_MAX_ACTIONS_IN_FLIGHT must be between 1 and %d (Kombo's limit), not %d", MaxActionsInFlight, a.MaxInFlight))
	}
	if a.Timeout < 100*time.Millisecond || a.Timeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("KOMBO_ACTION_TIMEOUT must be between 100ms and 5m, not %s", a.Timeout))
	}
	if a.LookupWindow < 0 || a.LookupWindow > 24*time.Hour {
		errs = append(errs, fmt.Errorf("ACTION_LOOKUP_WINDOW must be between 0 and 24h, not %s", a.LookupWindow))
	}
	if a.PayloadRetention < 0 {
		errs = append(errs, errors.New("ACTION_PAYLOAD_RETENTION must not be negative"))
	}
	return errors.Join(errs...)
}

func (a *Actions) logAttrs() slog.Attr {
	return slog.Group("actions", slog.Int("max_in_flight", a.MaxInFlight), slog.Duration("timeout", a.Timeout),
		slog.Duration("lookup_window", a.LookupWindow), slog.Duration("payload_retention", a.PayloadRetention))
}
