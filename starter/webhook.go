package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/webhookgw"
	"github.com/kombosync/kombosync/workflows"
)

func (c *cli) webhookCommand() *ffcli.Command {
	replay := c.command("replay", "webhook replay <event-id>", "signal a stored webhook event to its integration's workflow again",
		config.PartDatabase|config.PartTemporal,
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("webhook replay", args, 1, "one webhook event id"); err != nil {
				return nil, err
			}
			st, pool, err := openStore(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer pool.Close()
			stored, err := st.WebhookEvent(ctx, args[0])
			if err != nil {
				return nil, err
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer tc.Close()
			ev, signaled, err := webhookgw.SignalStored(ctx, tc, cfg.TaskQueue, st, stored)
			if err != nil {
				return nil, fmt.Errorf("replay webhook event %s: %w", stored.ID, err)
			}
			r := replayed{EventID: stored.ID, Type: stored.Type, IntegrationID: ev.IntegrationID, ReceivedAt: stored.ReceivedAt, Signaled: signaled}
			if !signaled {
				r.Why = "it concerns no integration"
				if ev.IntegrationID != "" {
					r.Why = "integration " + ev.IntegrationID + " was deleted"
				}
				return r, nil
			}
			r.WorkflowID = workflows.IntegrationWorkflowID(ev.IntegrationID)
			if stored.SignaledAt == nil {
				if err := st.MarkSignaled(ctx, stored.ID); err != nil {
					return nil, err
				}
			}
			return r, nil
		})
	replay.LongHelp = "Reads the event from the inbox (kombo.webhook_events) and signals it to its integration's\n" +
		"workflow exactly as the gateway does, starting the workflow if none runs, and marks it\n" +
		"signaled. A workflow drops an event id it has already handled, so replaying is safe; to\n" +
		"fetch again regardless, use starter integration sync."
	return group("webhook", "stored webhook events: replay", replay)
}

// replayed is webhook replay's result.
type replayed struct {
	EventID       string    `json:"event_id"`
	Type          string    `json:"type"`
	IntegrationID string    `json:"integration_id,omitempty"`
	ReceivedAt    time.Time `json:"received_at"`
	Signaled      bool      `json:"signaled"`
	WorkflowID    string    `json:"workflow_id,omitempty"`
	Why           string    `json:"not_signaled_because,omitempty"`
}

func (r replayed) text(w io.Writer) {
	if !r.Signaled {
		fmt.Fprintf(w, "webhook event %s (%s): nothing to signal, %s\n", r.EventID, r.Type, r.Why)
		return
	}
	fmt.Fprintf(w, "webhook event %s (%s, received %s): signaled to %s\n", r.EventID, r.Type,
		r.ReceivedAt.UTC().Format(time.RFC3339), r.WorkflowID)
}
