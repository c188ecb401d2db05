package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kombosync/kombosync/store"
)

// integrationList is integration list's result.
type integrationList struct {
	Integrations []store.StatusRow `json:"integrations"`
	now          time.Time
}

func newIntegrationList(rows []store.StatusRow, now time.Time) integrationList {
	if rows == nil {
		rows = []store.StatusRow{}
	}
	return integrationList{Integrations: rows, now: now}
}

func (l integrationList) text(w io.Writer) {
	if len(l.Integrations) == 0 {
		fmt.Fprintln(w, "no integrations")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INTEGRATION\tTOOL\tCATEGORY\tSTATE\tKOMBO\tLAST SYNCED\tFETCHING\tFAILED 24H\tUNSIGNALED\tATTENTION")
	for _, r := range l.Integrations {
		synced := "never"
		if r.LastSyncedAt != nil {
			synced = l.now.Sub(*r.LastSyncedAt).Round(time.Second).String() + " ago"
		}
		state := or(r.SyncState, "-")
		if r.PurgedAt != nil {
			state += " (purged)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.IntegrationID, or(r.Tool, "-"), or(r.Category, "-"),
			state, r.KomboState, synced, r.FetchesRunning, r.FetchesFailed24h, r.WebhooksUnsignaled, or(r.Attention, "-"))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d integrations\n", len(l.Integrations))
}
