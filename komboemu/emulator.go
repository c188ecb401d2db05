// Package komboemu is a faithful emulator of Kombo's API for kombosync's tests, demo and
// benchmarks: the list endpoints of HRIS and ATS integrations with records shaped like Kombo's
// OpenAPI document, generated deterministically from a seed; Kombo's envelopes, opaque cursors,
// updated_after including nested changes, include_deleted, soft deletion and hard removal after
// a retention period, the first-sync-pending phase and auth errors; signed webhooks; and fault
// injection. Use it as a library (New, Handler) or as the program cmd/komboemu.
package komboemu

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// Options configure an Emulator.
type Options struct {
	// APIKey is the bearer token the API accepts.
	APIKey string
	// Now is the emulator's clock; time.Now when nil. Tests may move it.
	Now func() time.Time
	// Retention is how long a remotely deleted record stays visible (include_deleted) before it
	// is removed for good; Kombo's is 14 days, the default.
	Retention time.Duration
	// CursorTTL rejects cursors older than this; zero keeps them valid forever.
	CursorTTL time.Duration
	// Webhooks: where and how to send signed webhooks; no webhooks when URL is empty.
	Webhooks WebhookOptions
	// ForcedSyncDuration, when set, ends a sync started by POST /force-sync by itself after
	// that long (sync-finished SUCCEEDED); otherwise it runs until SendSyncFinished.
	ForcedSyncDuration time.Duration
	// Seed makes fault injection and webhook ids repeatable.
	Seed   uint64
	Logger *slog.Logger
}

// Emulator is an emulated Kombo. All methods are safe for concurrent use.
type Emulator struct {
	opts Options
	now  func() time.Time
	log  *slog.Logger

	mu           sync.Mutex
	integrations map[string]*integration
	faults       Faults
	queued       []Fault
	rng          *rand.Rand
	cursorEpoch  uint64      // bumped by ExpireCursors
	requests     int         // list requests answered, for tests
	requestTimes []time.Time // when each API request arrived (wall clock), for rate tests
	inFlight     int         // API requests being answered
	maxInFlight  int

	writeFaults   WriteFaults
	writeQueue    []WriteFault
	writeInFlight map[string]int // per integration: writes being answered
	writeStats    WriteStats

	hooks *webhookSender
}

// New returns an emulator without integrations.
func New(opts Options) *Emulator {
	if opts.Retention == 0 {
		opts.Retention = 14 * 24 * time.Hour
	}
	e := &Emulator{opts: opts, now: opts.Now, log: opts.Logger, integrations: map[string]*integration{}, writeInFlight: map[string]int{},
		rng: rand.New(rand.NewPCG(opts.Seed, 0x6b6f6d626f))}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.hooks = newWebhookSender(opts.Webhooks, e.log, opts.Seed)
	return e
}

// Close stops webhook delivery, waiting for deliveries under way.
func (e *Emulator) Close() { e.hooks.close() }

// IntegrationSpec describes a new integration.
type IntegrationSpec struct {
	ID       string // e.g. "personio:CBNMt7dSNCzBdnRTx87dev4E"
	Tool     string // defaults to the id's part before ':'
	Category kombo.Category
	// Records is the size of the main endpoint (employees for HRIS, candidates for ATS); the other
	// endpoints are sized from it.
	Records int
	Seed    uint64
	// FirstSyncPending makes reads fail with INTEGRATION.SETUP_SYNC_PENDING until
	// FinishFirstSync; PendingStatus is its HTTP status (409 by default, 503 before 2026-05-19).
	FirstSyncPending bool
	PendingStatus    int
	// LegacyPendingBody answers pending reads with the old message-only body.
	LegacyPendingBody bool
	// Notify sends integration-created.
	Notify bool
}

// ErrUnknownIntegration is returned for an integration id the emulator does not hold.
var ErrUnknownIntegration = errors.New("komboemu: unknown integration")

// CreateIntegration creates an integration and seeds its records.
func (e *Emulator) CreateIntegration(s IntegrationSpec) error {
	if s.ID == "" {
		return errors.New("komboemu: integration id is required")
	}
	if s.Category != kombo.CategoryHRIS && s.Category != kombo.CategoryATS {
		return fmt.Errorf("komboemu: category must be HRIS or ATS, not %q", s.Category)
	}
	if s.Tool == "" {
		s.Tool = s.ID
		for k, c := range s.ID {
			if c == ':' {
				s.Tool = s.ID[:k]
				break
			}
		}
	}
	i := newIntegration(s.ID, s.Tool, s.Category, s.Seed)
	i.createdAt = e.now()
	i.firstSyncPending = s.FirstSyncPending
	i.legacyPending = s.LegacyPendingBody
	if s.PendingStatus != 0 {
		i.pendingStatus = s.PendingStatus
	}
	now := e.now()
	for _, sp := range specs {
		if sp.endpoint.Category != s.Category {
			continue
		}
		n := max(sp.min, int(float64(s.Records)*sp.perMain))
		for range n {
			i.create(sp.endpoint.Name, now, false, nil)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.integrations[s.ID]; ok && !old.deleted {
		return fmt.Errorf("komboemu: integration %s exists", s.ID)
	}
	e.integrations[s.ID] = i
	if s.Notify {
		e.hooks.send(kombo.EventIntegrationCreated, map[string]any{"id": i.id, "tool": i.tool, "category": string(i.category), "end_user": endUserJSON(i.endUser)})
	}
	return nil
}

// create makes a new record of endpoint from the generator, its fields then changed by set when
// given (a write's candidate, before the record is indexed). With propagate, the records
// embedding it change too (an employee gaining an employment); seeding skips that, as every
// record is new anyway.
func (i *integration) create(endpoint string, now time.Time, propagate bool, set func(*record)) *record {
	r := &record{id: i.gen.id(), remoteID: i.gen.remoteID()}
	specByName(i.category, endpoint).gen(i.gen, i, r)
	if set != nil {
		set(r)
	}
	i.insert(endpoint, r, now)
	if !propagate {
		return r
	}
	for _, rel := range relations {
		if rel.child == endpoint && rel.kind == childRef {
			for _, p := range i.parentsVia(rel, r) {
				i.touch(rel.parent, p, now, false, map[*record]bool{r: true})
			}
		}
	}
	return r
}

// withIntegration runs f on the integration under the lock.
func (e *Emulator) withIntegration(id string, f func(*integration)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, err := e.integration(id)
	if err != nil {
		return err
	}
	f(i)
	return nil
}

func (e *Emulator) integration(id string) (*integration, error) {
	i, ok := e.integrations[id]
	if !ok || i.deleted {
		return nil, fmt.Errorf("%w %s", ErrUnknownIntegration, id)
	}
	return i, nil
}

// FinishFirstSync ends the first-sync-pending phase and sends sync-finished SUCCEEDED.
func (e *Emulator) FinishFirstSync(integrationID string) error {
	return e.withIntegration(integrationID, func(i *integration) {
		i.firstSyncPending = false
		e.sendSyncFinished(i, kombo.SyncSucceeded)
	})
}

// SendSyncFinished sends a sync-finished webhook with any state, known or not. It ends the sync
// that POST /force-sync queued, when there is one.
func (e *Emulator) SendSyncFinished(integrationID, state string) error {
	return e.withIntegration(integrationID, func(i *integration) {
		e.sendSyncFinished(i, state)
	})
}

// sendSyncFinished ends the integration's queued sync (a forced one, or the first), or one
// Kombo ran on its own schedule, with a sync-finished webhook carrying its id.
func (e *Emulator) sendSyncFinished(i *integration, state string) {
	end := e.now().UTC().Truncate(time.Millisecond)
	start := end.Add(-90 * time.Second)
	syncID := i.gen.id()
	if i.queued != nil {
		syncID, i.queued = i.queued.id, nil
	}
	e.hooks.send(kombo.EventSyncFinished, map[string]any{
		"sync_id": syncID, "sync_state": state, "sync_started_at": kombo.FormatTime(start), "sync_ended_at": kombo.FormatTime(end),
		"sync_duration_seconds": 90, "integration_id": i.id, "integration_tool": i.tool, "integration_category": string(i.category),
		"end_user": endUserJSON(i.endUser), "log_url": "https://app.kombo.dev/env/emulator/logs/" + i.gen.id(),
	})
}

// SendRemoteEventReceived sends the legacy remote-event-received webhook.
func (e *Emulator) SendRemoteEventReceived(integrationID string) error {
	return e.withIntegration(integrationID, func(i *integration) {
		e.hooks.send(kombo.EventRemoteEventReceived, map[string]any{"integration_id": i.id, "integration_tool": i.tool, "integration_category": string(i.category)})
	})
}

// SendConnectionFlowFailed sends connection-flow-failed: a customer's attempt to connect a tool
// failed, so there is no integration.
func (e *Emulator) SendConnectionFlowFailed(tool string, category kombo.Category) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hooks.send(kombo.EventConnectionFlowFailed, map[string]any{"integration_tool": tool, "integration_category": string(category),
		"end_user": endUserJSON(kombo.EndUser{OrganizationName: "Prospect Inc"}), "log_url": "https://app.kombo.dev/env/emulator/logs/connect"})
}

// SetState changes the integration's state (ACTIVE, INVALID, INACTIVE) and sends
// integration-state-changed. INVALID answers reads with INTEGRATION.AUTHENTICATION_INVALID,
// INACTIVE with INTEGRATION.INACTIVE.
func (e *Emulator) SetState(integrationID, state string) error {
	return e.setState(integrationID, state, true)
}

// SetStateSilently changes the integration's state without a webhook: one Kombo sent and lost.
func (e *Emulator) SetStateSilently(integrationID, state string) error {
	return e.setState(integrationID, state, false)
}

func (e *Emulator) setState(integrationID, state string, notify bool) error {
	return e.withIntegration(integrationID, func(i *integration) {
		i.state = state
		if !notify {
			return
		}
		e.hooks.send(kombo.EventIntegrationStateChanged, map[string]any{
			"integration_tool": i.tool, "integration_id": i.id, "integration_category": string(i.category), "end_user": endUserJSON(i.endUser),
			"qa_status": "PASSED", "setup_status": "COMPLETED", "state": state, "updated_at": kombo.FormatTime(e.now()),
		})
	})
}

// DisableModel makes an endpoint answer INTEGRATION.MODEL_NOT_AVAILABLE for this integration,
// or, with permissionMissing, INTEGRATION.PERMISSION_MISSING.
func (e *Emulator) DisableModel(integrationID string, ep kombo.Endpoint, permissionMissing bool) error {
	return e.withIntegration(integrationID, func(i *integration) {
		if permissionMissing {
			i.missingPermissions[ep.Name] = true
		} else {
			i.disabledModels[ep.Name] = true
		}
	})
}

// DeleteIntegration deletes the integration (its API answers INTEGRATION_NOT_FOUND) and sends
// integration-deleted.
func (e *Emulator) DeleteIntegration(integrationID string) error {
	return e.withIntegration(integrationID, func(i *integration) {
		i.deleted = true
		e.hooks.send(kombo.EventIntegrationDeleted, map[string]any{"id": i.id, "tool": i.tool, "category": string(i.category),
			"end_user": endUserJSON(i.endUser), "deleted_at": kombo.FormatTime(e.now())})
	})
}

// Integrations lists the ids of the integrations that are not deleted, sorted.
func (e *Emulator) Integrations() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id, i := range e.integrations {
		if !i.deleted {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Truth returns the records of an endpoint as the API would send them with include_deleted:
// remotely deleted ones included, hard-removed ones gone, in pagination order.
func (e *Emulator) Truth(integrationID string, ep kombo.Endpoint) ([]TruthRecord, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, err := e.integration(integrationID)
	if err != nil {
		return nil, err
	}
	if i.category != ep.Category || i.table(ep.Name) == nil {
		return nil, fmt.Errorf("komboemu: %s has no endpoint %s", integrationID, ep)
	}
	i.purgeExpired(e.now(), e.opts.Retention)
	return i.truth(ep.Name), nil
}

// RequestTimes are the arrival times (wall clock) of every API request so far: lists and
// integration lookups, whatever their answer.
func (e *Emulator) RequestTimes() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.requestTimes)
}

// Requests is the number of list requests answered so far (any outcome).
func (e *Emulator) Requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

func endUserJSON(u kombo.EndUser) map[string]any {
	return map[string]any{"organization_name": u.OrganizationName, "creator_email": u.CreatorEmail, "origin_id": u.OriginID}
}
