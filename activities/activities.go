// Package activities holds kombosync's Temporal activities, as methods of Activities, which holds
// their dependencies (the Kombo client, the store, the settings):
//
//   - fetch.go: FetchEndpoint pages one endpoint into Postgres, each page committed with the
//     cursor of the next and then heartbeated, so a retry resumes after the last committed page;
//   - errors.go: the application error types the workflows branch on;
//   - integration.go: LoadIntegration and SaveIntegration, the workflow's view of its row;
//   - sweep.go, purge.go, reconcile.go: the full pass's sweep, a deleted integration's purge,
//     and the weekly reconciliation's listing and signalling;
//   - retention.go: the daily retention run's steps (field policy, tombstones, change values,
//     inbox), in batches that commit their counts with their work;
//   - actions.go: ExecuteAction, LookUpAction and GiveUpAction, the writes to Kombo (applications,
//     stages, rejections, notes, attachments), each recorded before it is sent and looked for at
//     Kombo before it is sent again;
//   - heartbeat.go: heartbeating while a long statement runs; metrics.go: Prometheus metrics.
//
// See docs/ARCHITECTURE.md, section 3.
package activities

import (
	"time"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// Activities hold the dependencies of kombosync's activities. Workflows refer to them through a
// nil *Activities, so registration and call sites cannot drift apart.
type Activities struct {
	Kombo      *kombo.Client
	Store      *store.Store
	Settings   Settings
	Retention  Retention
	Reconciler Reconciler
	Outbound   Outbound // outbound webhooks; no Client: this worker delivers none
	Actions    Actions  // writes to Kombo (actions.go)
	Metrics    *Metrics // nil: no metrics
}

// Settings are the worker's sync settings (docs/ARCHITECTURE.md section 6). Workflows receive them
// from LoadIntegration, so each run's decisions are recorded in its history and a replay never
// depends on the configuration of the worker replaying it.
type Settings struct {
	Endpoints          []kombo.Endpoint // configured endpoints of every category
	Triggers           []string         // event types that start a delta
	DebounceQuiet      time.Duration
	DebounceMax        time.Duration
	FetchOverlap       time.Duration
	MaxParallelFetches int
	// FetchHeartbeatTimeout: a fetch silent this long is retried; one minute when zero.
	FetchHeartbeatTimeout time.Duration
	// SweepMaxShare is the largest share of an endpoint's rows a full pass may mark deleted
	// without an operator's confirmation.
	SweepMaxShare float64
	// DeletedRetention is how long a deleted integration's rows are kept before the purge.
	DeletedRetention time.Duration
	// StateProbeInterval is the first wait before the workflow of an integration Kombo paused
	// asks Kombo for its state; it doubles up to an hour. One minute when zero.
	StateProbeInterval time.Duration
}
