package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kombosync/kombosync/store"
)

func (r statusReport) text(w io.Writer) {
	what := r.IntegrationID
	if r.Tool != "" || r.Category != "" {
		what += " (" + strings.TrimSpace(r.Tool+" "+r.Category) + ")"
	}
	fmt.Fprintf(w, "integration %s\n", what)
	if r.Source == fromWorkflow {
		fmt.Fprintf(w, "  source:       the workflow %s (live)\n", r.WorkflowID)
	} else {
		fmt.Fprintf(w, "  source:       Postgres (%s)\n", r.Note)
	}
	state := or(r.State, "unknown")
	var facts []string
	if r.KomboState != "" {
		facts = append(facts, "Kombo: "+r.KomboState)
	}
	if r.FirstSyncFinished {
		facts = append(facts, "first sync finished")
	} else {
		facts = append(facts, "first sync not finished")
	}
	fmt.Fprintf(w, "  state:        %s (%s)\n", state, strings.Join(facts, ", "))
	if r.PauseReason != "" {
		fmt.Fprintf(w, "  paused:       %s\n", r.PauseReason)
	}
	if r.Attention != "" {
		fmt.Fprintf(w, "  ATTENTION:    %s\n", r.Attention)
	}
	fmt.Fprintf(w, "  last synced:  %s\n", r.ago(r.LastSyncedAt))
	if r.Source == fromWorkflow {
		fmt.Fprintf(w, "  pending:      %s\n", list(r.Pending))
	}
	fmt.Fprintf(w, "  in flight:    %s\n", list(r.InFlight))
	if len(r.Unavailable) > 0 {
		fmt.Fprintf(w, "  unavailable:  %s\n", list(r.Unavailable))
	}
	if len(r.RecordsRejected) > 0 {
		var parts []string
		for _, ep := range slices.Sorted(maps.Keys(r.RecordsRejected)) {
			parts = append(parts, fmt.Sprintf("%s %d", ep, r.RecordsRejected[ep]))
		}
		fmt.Fprintf(w, "  rejected:     %s (records set aside: kombo.rejected_records)\n", strings.Join(parts, ", "))
	}
	switch {
	case r.NextWakeAt != nil:
		fmt.Fprintf(w, "  next wake-up: %s: %s\n", r.in(r.NextWakeAt), or(r.NextWake, "timer"))
	case r.Source == fromWorkflow:
		fmt.Fprintf(w, "  next wake-up: on the next webhook or signal\n")
	default:
		fmt.Fprintf(w, "  next wake-up: unknown (only the workflow knows its timers)\n")
	}
	if r.LastError != "" {
		fmt.Fprintf(w, "  last error:   %s (%s)\n", r.LastError, r.ago(r.LastErrorAt))
	} else {
		fmt.Fprintf(w, "  last error:   none\n")
	}
	if u := r.UpstreamSync; u != nil {
		fmt.Fprintf(w, "  upstream:     Kombo's sync %s (%s) asked %s; fetches %s when it finishes\n",
			u.SyncID, or(u.Type, "type unknown"), r.ago(&u.RequestedAt), or(strings.Join(u.Endpoints, ", "), "every endpoint"))
	}
	if r.PurgeAt != nil {
		fmt.Fprintf(w, "  purge:        %s\n", r.in(r.PurgeAt))
	}
	if r.WebhooksUnsignaled != nil {
		fmt.Fprintf(w, "  webhooks stored, not yet signaled: %d; fetches failed in 24h: %d\n", *r.WebhooksUnsignaled, *r.FetchesFailed24h)
	}
	if r.Source == fromWorkflow {
		fmt.Fprintf(w, "  this run:     %d events, %d rounds\n", r.EventsThisRun, r.RoundsThisRun)
	}
	if len(r.Endpoints) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ENDPOINT\tLAG\tWATERMARK\tLAST RUN\tPAGES\tFETCHED\t+NEW\t~UPD\t=SAME\t-DEL")
	for _, e := range r.Endpoints {
		mark, lag := "-", "-"
		if e.Watermark != nil {
			mark = e.Watermark.UTC().Format(time.RFC3339)
		}
		if e.LagSeconds != nil {
			lag = (time.Duration(*e.LagSeconds) * time.Second).String()
		}
		run := "-"
		var c store.Counts
		if e.LastRun != nil {
			run = e.LastRun.Kind + " " + e.LastRun.Outcome + ", " + r.ago(&e.LastRun.StartedAt)
			c = e.LastRun.Counts
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", e.Endpoint, lag, mark, run,
			c.Pages, c.Fetched, c.Inserted, c.Updated, c.Unchanged, c.Deleted)
	}
	tw.Flush()
}

// ago says when t was, relative to the report's time.
func (r statusReport) ago(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), r.now.Sub(*t).Round(time.Second))
}

// in says when t will be.
func (r statusReport) in(t *time.Time) string {
	if d := t.Sub(r.now).Round(time.Second); d > 0 {
		return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), d)
	}
	return t.UTC().Format(time.RFC3339) + " (due)"
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
