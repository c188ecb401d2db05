package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// subscriptionParts are what every subscription command reads: Postgres for the subscription,
// Temporal to wake its delivery workflow, the outbound rules for URLs.
const subscriptionParts = config.PartDatabase | config.PartTemporal | config.PartOutbound

// withManager opens the store and Temporal and runs f with a subscription manager, the same the
// back-office API uses.
func withManager(ctx context.Context, cfg *config.Config, f func(*outbound.Manager) (result, error)) (result, error) {
	st, pool, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	m := &outbound.Manager{Store: st,
		Client: outbound.NewClient(outbound.Options{AllowHTTP: cfg.Outbound.AllowHTTP, AllowPrivate: cfg.Outbound.AllowPrivate})}
	m.Wake = func(ctx context.Context, id string, now bool, reason string) error {
		tc, err := dial(ctx, cfg)
		if err != nil {
			return err
		}
		defer tc.Close()
		return workflows.WakeSubscription(ctx, tc, cfg.TaskQueue, id, workflows.DeliverSignal{Reason: "starter " + reason, Now: now})
	}
	res, err := f(m)
	if isWake(err) {
		// The change is saved; the workflow looks again on its own. Say so, and succeed.
		fmt.Fprintf(os.Stderr, "starter: %v\n", err)
		return res, nil
	}
	return res, err
}

// isWake: only the delivery workflow's wake-up failed (outbound.WakeError).
func isWake(err error) bool {
	var we *outbound.WakeError
	return errors.As(err, &we)
}

// usageOf turns a store.ErrInvalid into a usage error (exit 2).
func usageOf(err error) error {
	if errors.Is(err, store.ErrInvalid) {
		return config.UsageError{Err: err}
	}
	return err
}

func splitList(v string) []string {
	out := []string{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// subscriptionCommand: outbound webhook subscriptions.
func (c *cli) subscriptionCommand() *ffcli.Command {
	var (
		events, integration, description, secret, url string
		keepOld                                       bool
		since, after                                  string
		limit                                         int
	)
	specFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&events, "events", "", "comma-separated event types: records.changed, integration.state_changed, attention, job_link.deactivated, job_link.reactivated (default every type)")
		fs.StringVar(&integration, "integration", "", "only this integration's events (default every integration)")
		fs.StringVar(&description, "description", "", "what the subscription is for")
	}
	create := c.commandWith("create", "subscription create <url> [--events T,…] [--integration ID] [--description D] [--secret whsec_…]",
		"subscribe a URL to events; prints its signing secret once", subscriptionParts,
		func(fs *flag.FlagSet) {
			specFlags(fs)
			fs.StringVar(&secret, "secret", "", "the signing secret (whsec_…); a new one is made when absent")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription create", args, 1, "a URL"); err != nil {
				return nil, err
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				sub, s, err := m.Create(ctx, store.SubscriptionSpec{URL: args[0], Secret: secret, EventTypes: splitList(events),
					IntegrationID: integration, Description: description})
				if err != nil {
					return nil, usageOf(err)
				}
				return subscriptionSecret{Subscription: subView(sub), Secret: s}, nil
			})
		})
	list := c.command("list", "subscription list", "list the subscriptions and how their deliveries go", subscriptionParts,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription list", args, 0, "no arguments"); err != nil {
				return nil, err
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				subs, err := m.Store.ListSubscriptions(ctx)
				if err != nil {
					return nil, err
				}
				out := subscriptionList{Subscriptions: []subscriptionView{}}
				for _, s := range subs {
					out.Subscriptions = append(out.Subscriptions, subView(s))
				}
				return out, nil
			})
		})
	show := c.command("show", "subscription show <id>", "one subscription, with its last deliveries", subscriptionParts,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription show", args, 1, "a subscription id"); err != nil {
				return nil, err
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				sub, err := m.Store.GetSubscription(ctx, args[0])
				if err != nil {
					return nil, err
				}
				ds, err := m.Store.DeliveryLog(ctx, args[0], 0, 10)
				if err != nil {
					return nil, err
				}
				return subscriptionDetail{Subscription: subView(sub), Deliveries: ds}, nil
			})
		})
	update := c.commandWith("update", "subscription update <id> [--url U] [--events T,…] [--integration ID] [--description D]",
		"change a subscription (only the flags given)", subscriptionParts,
		func(fs *flag.FlagSet) {
			specFlags(fs)
			fs.StringVar(&url, "url", "", "the new URL")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription update", args, 1, "a subscription id"); err != nil {
				return nil, err
			}
			var p store.SubscriptionPatch // an empty flag is a flag not given
			if url != "" {
				p.URL = &url
			}
			if events != "" {
				ts := splitList(events)
				p.EventTypes = &ts
			}
			if integration != "" {
				p.IntegrationID = &integration
			}
			if description != "" {
				p.Description = &description
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				sub, err := m.Update(ctx, args[0], p)
				if err != nil {
					return nil, usageOf(err)
				}
				return subView(sub), nil
			})
		})
	var reason string
	reasonFlag := func(fs *flag.FlagSet) { fs.StringVar(&reason, "reason", "", "why (a ticket, not personal data)") }
	pause := c.commandWith("pause", "subscription pause <id> [--reason R]", "stop deliveries; events keep queuing, coalesced", subscriptionParts, reasonFlag,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription pause", args, 1, "a subscription id"); err != nil {
				return nil, err
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				sub, err := m.Pause(ctx, args[0], reason)
				if err != nil && !isWake(err) {
					return nil, usageOf(err)
				}
				return subView(sub), err
			})
		})
	resume := c.commandWith("resume", "subscription resume <id> [--reason R]", "make a paused or disabled subscription active and deliver at once",
		subscriptionParts, reasonFlag,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription resume", args, 1, "a subscription id"); err != nil {
				return nil, err
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				sub, err := m.Resume(ctx, args[0], reason)
				if err != nil && !isWake(err) {
					return nil, usageOf(err)
				}
				return subView(sub), err
			})
		})
	replay := c.commandWith("replay", "subscription replay <id> (--since TIME | --after TXID:SEQ)",
		"send past deliveries again with the same webhook-ids", subscriptionParts,
		func(fs *flag.FlagSet) {
			fs.StringVar(&since, "since", "", "the deliveries created at or after this time (RFC 3339, or a duration back like 2h)")
			fs.StringVar(&after, "after", "", "the records.changed deliveries covering feed rows after this position, txid:seq")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription replay", args, 1, "a subscription id"); err != nil {
				return nil, err
			}
			from, err := replayFrom(since, after, time.Now())
			if err != nil {
				return nil, config.UsageError{Err: err}
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				n, err := m.Replay(ctx, args[0], from)
				if err != nil && !isWake(err) {
					return nil, usageOf(err)
				}
				return done{Subject: args[0], Outcome: fmt.Sprintf("%d deliveries queued again", n)}, err
			})
		})
	rotate := c.commandWith("rotate-secret", "subscription rotate-secret <id> [--keep-old]",
		"a new signing secret; with --keep-old the current ones sign too while the receiver switches", subscriptionParts,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&keepOld, "keep-old", false, "keep signing with the current secrets too")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription rotate-secret", args, 1, "a subscription id"); err != nil {
				return nil, err
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				sub, s, err := m.RotateSecret(ctx, args[0], keepOld)
				if err != nil {
					return nil, err
				}
				return subscriptionSecret{Subscription: subView(sub), Secret: s}, nil
			})
		})
	del := c.command("delete", "subscription delete <id>", "delete a subscription and its deliveries", subscriptionParts,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription delete", args, 1, "a subscription id"); err != nil {
				return nil, err
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				err := m.Delete(ctx, args[0])
				if err != nil && !isWake(err) {
					return nil, err
				}
				return done{Subject: args[0], Outcome: "deleted"}, err
			})
		})
	deliveries := c.commandWith("deliveries", "subscription deliveries <id> [--limit 20]", "the subscription's deliveries, newest first",
		subscriptionParts, func(fs *flag.FlagSet) { fs.IntVar(&limit, "limit", 20, "how many") },
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("subscription deliveries", args, 1, "a subscription id"); err != nil {
				return nil, err
			}
			if limit < 1 || limit > 1000 {
				return nil, config.UsageError{Err: fmt.Errorf("--limit must be from 1 to 1000, not %d", limit)}
			}
			return withManager(ctx, cfg, func(m *outbound.Manager) (result, error) {
				if _, err := m.Store.GetSubscription(ctx, args[0]); err != nil {
					return nil, err
				}
				ds, err := m.Store.DeliveryLog(ctx, args[0], 0, limit)
				if err != nil {
					return nil, err
				}
				return deliveryList{Deliveries: ds}, nil
			})
		})
	return group("subscription", "outbound webhook subscriptions: create, list, pause, resume, replay, rotate secrets",
		create, list, show, update, pause, resume, replay, rotate, del, deliveries)
}

// replayFrom reads --since (RFC 3339 or a duration back) or --after (txid:seq), exactly one.
func replayFrom(since, after string, now time.Time) (store.ReplayFrom, error) {
	switch {
	case (since == "") == (after == ""):
		return store.ReplayFrom{}, errors.New("replay from --since TIME or --after TXID:SEQ, one of the two")
	case since != "":
		if d, err := time.ParseDuration(since); err == nil && d > 0 {
			t := now.Add(-d)
			return store.ReplayFrom{Since: &t}, nil
		}
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return store.ReplayFrom{}, fmt.Errorf("--since %q: an RFC 3339 time (2026-12-01T09:00:00Z) or a duration back (2h)", since)
		}
		return store.ReplayFrom{Since: &t}, nil
	default:
		txid, seq, ok := strings.Cut(after, ":")
		_, errT := strconv.ParseUint(txid, 10, 64)
		n, errS := strconv.ParseInt(seq, 10, 64)
		if !ok || errT != nil || errS != nil || n < 0 {
			return store.ReplayFrom{}, fmt.Errorf("--after %q: a feed position txid:seq, e.g. 123456:98765", after)
		}
		return store.ReplayFrom{After: &store.FeedPosition{TxID: txid, Seq: n}}, nil
	}
}

// subscriptionView is a subscription as the starter prints it: no secrets, but how many sign.
type subscriptionView struct {
	store.Subscription
	Secrets int `json:"secrets"`
}

func subView(s store.Subscription) subscriptionView {
	return subscriptionView{Subscription: s, Secrets: len(s.Secrets)}
}

func (v subscriptionView) text(w io.Writer) {
	scope := "every integration"
	if v.IntegrationID != "" {
		scope = v.IntegrationID
	}
	types := "every event type"
	if len(v.EventTypes) > 0 {
		types = strings.Join(v.EventTypes, ", ")
	}
	fmt.Fprintf(w, "%s  %s  %s\n", v.ID, v.State, v.URL)
	fmt.Fprintf(w, "  events: %s; integrations: %s; %d secret(s) sign\n", types, scope, v.Secrets)
	if v.StateReason != "" {
		fmt.Fprintf(w, "  why %s: %s\n", v.State, v.StateReason)
	}
	fmt.Fprintf(w, "  pending: %d", v.Pending)
	if v.LastDeliveredAt != nil {
		fmt.Fprintf(w, "; last delivered %s", v.LastDeliveredAt.UTC().Format(time.RFC3339))
	}
	if v.Failures > 0 {
		fmt.Fprintf(w, "; %d failed attempts since %s, last: %s", v.Failures, v.FailingSince.UTC().Format(time.RFC3339), v.LastError)
	}
	fmt.Fprintln(w)
}

type subscriptionSecret struct {
	Subscription subscriptionView `json:"subscription"`
	Secret       string           `json:"secret"`
}

func (s subscriptionSecret) text(w io.Writer) {
	s.Subscription.text(w)
	fmt.Fprintf(w, "signing secret (shown once, give it to the receiver): %s\n", s.Secret)
}

type subscriptionList struct {
	Subscriptions []subscriptionView `json:"subscriptions"`
}

func (l subscriptionList) text(w io.Writer) {
	if len(l.Subscriptions) == 0 {
		fmt.Fprintln(w, "no subscriptions")
	}
	for _, s := range l.Subscriptions {
		s.text(w)
	}
}

type subscriptionDetail struct {
	Subscription subscriptionView `json:"subscription"`
	Deliveries   []store.Delivery `json:"deliveries"`
}

func (d subscriptionDetail) text(w io.Writer) {
	d.Subscription.text(w)
	deliveryList{Deliveries: d.Deliveries}.text(w)
}

type deliveryList struct {
	Deliveries []store.Delivery `json:"deliveries"`
}

func (l deliveryList) text(w io.Writer) {
	for _, d := range l.Deliveries {
		state := "pending"
		if d.DeliveredAt != nil {
			state = "delivered " + d.DeliveredAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  %s  %-26s %s  %s  attempts %d", d.ID, d.Type, d.IntegrationID, state, d.Attempts)
		if d.Events > 1 {
			fmt.Fprintf(w, "  (%d events coalesced)", d.Events)
		}
		if d.LastError != "" && d.DeliveredAt == nil {
			fmt.Fprintf(w, "  last: %s", d.LastError)
		}
		fmt.Fprintln(w)
	}
}
