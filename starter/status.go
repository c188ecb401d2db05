package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/internal/service"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// Where a status comes from.
const (
	fromWorkflow = "workflow" // the live answer of the status query
	fromPostgres = "postgres" // what the workflow last recorded
)

// statusReport is integration status's result: one shape whichever source answered; fields a
// source does not know are left empty.
type statusReport struct {
	Source string `json:"source"`
	// Note says why Postgres answered instead of the workflow.
	Note              string   `json:"note,omitempty"`
	IntegrationID     string   `json:"integration_id"`
	WorkflowID        string   `json:"workflow_id"`
	Tool              string   `json:"tool,omitempty"`
	Category          string   `json:"category,omitempty"`
	State             string   `json:"state"`
	KomboState        string   `json:"kombo_state,omitempty"`
	FirstSyncFinished bool     `json:"first_sync_finished"`
	PauseReason       string   `json:"pause_reason,omitempty"`
	Attention         string   `json:"attention,omitempty"`
	Pending           []string `json:"pending"`
	InFlight          []string `json:"in_flight"`
	Unavailable       []string `json:"unavailable,omitempty"`
	// RecordsRejected counts each endpoint's records set aside in kombo.rejected_records.
	RecordsRejected map[string]int `json:"records_rejected,omitempty"`
	LastSyncedAt    *time.Time     `json:"last_synced_at,omitempty"`
	LastError       string         `json:"last_error,omitempty"`
	LastErrorAt     *time.Time     `json:"last_error_at,omitempty"`
	NextWakeAt      *time.Time     `json:"next_wake_at,omitempty"`
	NextWake        string         `json:"next_wake,omitempty"`
	PurgeAt         *time.Time     `json:"purge_at,omitempty"`
	// UpstreamSync is the Kombo sync (sync --upstream) the workflow fetches after.
	UpstreamSync *upstreamStatus  `json:"upstream_sync,omitempty"`
	Endpoints    []endpointStatus `json:"endpoints"`
	// Postgres only.
	WebhooksUnsignaled *int `json:"webhooks_unsignaled,omitempty"`
	FetchesFailed24h   *int `json:"fetches_failed_24h,omitempty"`
	// Workflow only.
	EventsThisRun int `json:"events_this_run,omitempty"`
	RoundsThisRun int `json:"rounds_this_run,omitempty"`

	now time.Time
}

type upstreamStatus struct {
	SyncID      string    `json:"sync_id"`
	Type        string    `json:"type,omitempty"`
	Endpoints   []string  `json:"endpoints,omitempty"` // every configured one when empty
	RequestedAt time.Time `json:"requested_at"`
}

// endpointStatus is one endpoint's lag, watermark and last run. The lag is the time since its
// last successful pass began (what "how far behind" means: anything changed since may not be
// here yet); the watermark, that start minus FETCH_OVERLAP, is the next delta's updated_after.
type endpointStatus struct {
	Endpoint      string     `json:"endpoint"`
	PassStartedAt *time.Time `json:"last_pass_started_at,omitempty"`
	LagSeconds    *float64   `json:"lag_seconds,omitempty"`
	Watermark     *time.Time `json:"watermark,omitempty"`
	LastRun       *runStatus `json:"last_run,omitempty"`
}

// runStatus is an endpoint's last run: what Postgres records of it, and a full pass's sweep count
// (the workflow knows it).
type runStatus struct {
	store.EndpointRun
	Swept int `json:"swept,omitempty"`
}

// integrationStatus asks the workflow, and reads Postgres when the workflow cannot answer.
func integrationStatus(ctx context.Context, cfg *config.Config, id string, timeout time.Duration) (result, error) {
	st, note, queryErr := queryStatus(ctx, cfg, id, timeout)
	if queryErr == nil {
		return workflowStatus(id, st, time.Now()), nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep, err := recordedStatus(ctx, cfg, id, time.Now())
	var notFound *serviceerror.NotFound
	switch {
	case errors.Is(err, store.ErrNotFound) && errors.As(queryErr, &notFound):
		return nil, fmt.Errorf("integration %s: no workflow runs for it and Postgres has no row for it: %w", id, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("integration %s: %s (%v), and Postgres cannot answer: %w", id, note, queryErr, err)
	}
	rep.Note = note + "; showing what Postgres recorded"
	return rep, nil
}

// queryStatus asks the integration's workflow for its status; note says in words why it could not.
func queryStatus(ctx context.Context, cfg *config.Config, id string, timeout time.Duration) (workflows.Status, string, error) {
	var st workflows.Status
	tc, err := dial(ctx, cfg)
	if ce := (*service.ConnectionError)(nil); errors.As(err, &ce) {
		return st, "Temporal refused the connection (" + ce.Reason + ")", err
	} else if err != nil {
		return st, "Temporal is unreachable", err
	}
	defer tc.Close()
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := tc.QueryWorkflow(qctx, workflows.IntegrationWorkflowID(id), "", workflows.QueryStatus)
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return st, "no workflow runs for this integration", err
	case err != nil && qctx.Err() != nil:
		return st, fmt.Sprintf("no worker answered the status query within %s", timeout), err
	case err != nil && strings.Contains(err.Error(), "no poller seen"):
		// The server knows the task queue lost its workers (a clean shutdown) and says so at once.
		return st, "no worker polls the task queue (is the worker down?)", err
	case err != nil:
		return st, "the status query failed: " + err.Error(), err
	}
	if err := v.Get(&st); err != nil {
		return st, "the status query's answer is unreadable", err
	}
	return st, "", nil
}

func workflowStatus(id string, st workflows.Status, now time.Time) statusReport {
	r := statusReport{Source: fromWorkflow, IntegrationID: id, WorkflowID: workflows.IntegrationWorkflowID(id),
		Tool: st.Tool, Category: st.Category, State: st.State, KomboState: st.KomboState, FirstSyncFinished: st.FirstSyncFinished,
		PauseReason: st.PauseReason, Attention: st.Attention, Pending: st.Pending, InFlight: st.InFlight, Unavailable: st.Unavailable,
		LastSyncedAt: st.LastSyncAt, LastError: st.LastError, LastErrorAt: st.LastErrorAt, NextWakeAt: st.NextWakeAt,
		NextWake: st.NextWake, PurgeAt: st.PurgeAt, EventsThisRun: st.EventsThisRun, RoundsThisRun: st.RoundsThisRun,
		RecordsRejected: nonZero(st.Rejected), now: now}
	if u := st.Upstream; u != nil {
		r.UpstreamSync = &upstreamStatus{SyncID: u.SyncID, Type: u.Type, Endpoints: u.Endpoints, RequestedAt: u.RequestedAt}
	}
	for _, ep := range endpointNames(st.Watermarks, st.LastRuns) {
		e := endpointStatus{Endpoint: ep}
		if w, ok := st.Watermarks[ep]; ok {
			began := w.Add(st.FetchOverlap)
			e.Watermark, e.PassStartedAt, e.LagSeconds = &w, &began, lagSeconds(&began, now)
		}
		if run, ok := st.LastRuns[ep]; ok {
			finished := run.FinishedAt
			e.LastRun = &runStatus{Swept: run.Swept, EndpointRun: store.EndpointRun{ID: run.RunID, Kind: run.Kind, Outcome: run.Outcome,
				StartedAt: run.StartedAt, FinishedAt: &finished, Counts: store.Counts{Pages: run.Pages, Fetched: run.Fetched,
					Inserted: run.Inserted, Updated: run.Updated, Unchanged: run.Unchanged, Deleted: run.Deleted, Restored: run.Restored,
					Sanitized: run.Sanitized, Rejected: run.Rejected}}}
		}
		r.Endpoints = append(r.Endpoints, e)
	}
	return r
}

// recordedStatus is what Postgres knows: the integration_status row, the watermarks and each
// endpoint's last fetch run.
func recordedStatus(ctx context.Context, cfg *config.Config, id string, now time.Time) (statusReport, error) {
	st, pool, err := openStore(ctx, cfg)
	if err != nil {
		return statusReport{}, err
	}
	defer pool.Close()
	row, err := st.IntegrationStatus(ctx, id)
	if err != nil {
		return statusReport{}, err
	}
	marks, err := st.Watermarks(ctx, id)
	if err != nil {
		return statusReport{}, err
	}
	runs, err := st.LastRuns(ctx, id)
	if err != nil {
		return statusReport{}, err
	}
	rejected, err := st.RejectedByEndpoint(ctx, id)
	if err != nil {
		return statusReport{}, err
	}
	began, err := st.LastSucceededPassStarts(ctx, id)
	if err != nil {
		return statusReport{}, err
	}
	r := statusReport{Source: fromPostgres, IntegrationID: id, WorkflowID: workflows.IntegrationWorkflowID(id),
		Tool: row.Tool, Category: row.Category, State: row.SyncState, KomboState: row.KomboState,
		FirstSyncFinished: row.FirstSyncFinished, Attention: row.Attention, LastSyncedAt: row.LastSyncedAt,
		LastError: row.LastError, LastErrorAt: row.LastErrorAt, WebhooksUnsignaled: &row.WebhooksUnsignaled,
		FetchesFailed24h: &row.FetchesFailed24h, RecordsRejected: nonZero(rejected), now: now}
	if row.EndpointsUnavailable != "" {
		r.Unavailable = strings.Split(row.EndpointsUnavailable, ", ")
	}
	for _, ep := range endpointNames(marks, runs) {
		e := endpointStatus{Endpoint: ep}
		if w, ok := marks[ep]; ok && w.UpdatedAfter != nil {
			e.Watermark = w.UpdatedAfter
		}
		if b, ok := began[ep]; ok {
			e.PassStartedAt, e.LagSeconds = &b, lagSeconds(&b, now)
		}
		if run, ok := runs[ep]; ok {
			e.LastRun = &runStatus{EndpointRun: run}
			if run.Outcome == "running" {
				r.InFlight = append(r.InFlight, ep)
			}
		}
		r.Endpoints = append(r.Endpoints, e)
	}
	return r, nil
}

// endpointNames is the sorted union of the maps' keys.
func endpointNames[A, B any](a map[string]A, b map[string]B) []string {
	names := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

func lagSeconds(t *time.Time, now time.Time) *float64 {
	if t == nil {
		return nil
	}
	s := now.Sub(*t).Round(time.Second).Seconds()
	return &s
}

// nonZero drops the endpoints with nothing rejected.
func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v > 0 {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
