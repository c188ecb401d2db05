package komboemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/kombosync/kombosync/kombo"
)

// The control API drives the emulator over HTTP, for the demo and for tests of the programs:
//
//	POST   /_emulator/integrations                       IntegrationSpec as JSON (snake_case)
//	GET    /_emulator/integrations                       ids
//	POST   /_emulator/integrations/{id}/finish-first-sync
//	POST   /_emulator/integrations/{id}/sync-finished    {"state": "AUTHENTICATION_FAILED"}; ends a forced sync
//	POST   /_emulator/integrations/{id}/state            {"state": "INACTIVE"}
//	POST   /_emulator/integrations/{id}/mutations        {"random": 10} or {"mutations": [{"endpoint": "hris/employees", "op": "update", "id": "…", "fields": {…}}]}
//	POST   /_emulator/integrations/{id}/churn            {"per_second": 2, "endpoints": ["hris/employees"]}; 0 stops
//	DELETE /_emulator/integrations/{id}
//	GET    /_emulator/integrations/{id}/truth?endpoint=hris/employees
//	PUT    /_emulator/faults                             Faults as JSON; {"queue": ["drop", …]} queues
//	PUT    /_emulator/write-faults                       {"reset_after_commit": 0.1, "hold_after_commit": 0.1, "fail_before_commit": 0.1,
//	                                                     "hold_for": "30s", "read_lag": "2s", "concurrency_cap": 5, "latency": "50ms"};
//	                                                     {"queue": ["reset-after-commit", …]} queues
//	GET    /_emulator/writes                             write counts (WriteStats)
//	GET    /_emulator/integrations/{id}/applications     the ATS's applications with their candidate's email
//	POST   /_emulator/cursors/expire
//	GET    /_emulator/webhooks                           deliveries so far
func (e *Emulator) controlRoutes(mux *http.ServeMux) {
	c := &control{e: e, churn: map[string]context.CancelFunc{}}
	mux.HandleFunc("POST /_emulator/integrations", c.create)
	mux.HandleFunc("GET /_emulator/integrations", func(w http.ResponseWriter, _ *http.Request) { reply(w, e.Integrations()) })
	mux.HandleFunc("POST /_emulator/integrations/{id}/finish-first-sync", c.simple(e.FinishFirstSync))
	mux.HandleFunc("POST /_emulator/integrations/{id}/sync-finished", c.withState(e.SendSyncFinished))
	mux.HandleFunc("POST /_emulator/integrations/{id}/state", c.withState(e.SetState))
	mux.HandleFunc("POST /_emulator/integrations/{id}/mutations", c.mutate)
	mux.HandleFunc("POST /_emulator/integrations/{id}/churn", c.setChurn)
	mux.HandleFunc("DELETE /_emulator/integrations/{id}", c.simple(e.DeleteIntegration))
	mux.HandleFunc("GET /_emulator/integrations/{id}/truth", c.truth)
	mux.HandleFunc("PUT /_emulator/faults", c.setFaults)
	mux.HandleFunc("PUT /_emulator/write-faults", c.setWriteFaults)
	mux.HandleFunc("GET /_emulator/writes", func(w http.ResponseWriter, _ *http.Request) { reply(w, e.WriteStats()) })
	mux.HandleFunc("GET /_emulator/integrations/{id}/applications", func(w http.ResponseWriter, r *http.Request) {
		apps, err := e.Applications(r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, apps)
	})
	mux.HandleFunc("POST /_emulator/cursors/expire", func(w http.ResponseWriter, _ *http.Request) { e.ExpireCursors(); reply(w, "ok") })
	mux.HandleFunc("GET /_emulator/webhooks", func(w http.ResponseWriter, _ *http.Request) { reply(w, e.Deliveries()) })
}

type control struct {
	e     *Emulator
	mu    sync.Mutex
	churn map[string]context.CancelFunc
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, ErrUnknownIntegration) {
		status = http.StatusNotFound
	}
	http.Error(w, err.Error(), status)
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("bad request body: %w", err)
	}
	return nil
}

func (c *control) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID                string `json:"id"`
		Tool              string `json:"tool"`
		Category          string `json:"category"`
		Records           int    `json:"records"`
		Seed              uint64 `json:"seed"`
		FirstSyncPending  bool   `json:"first_sync_pending"`
		PendingStatus     int    `json:"pending_status"`
		LegacyPendingBody bool   `json:"legacy_pending_body"`
		Notify            bool   `json:"notify"`
	}
	if err := decode(r, &in); err != nil {
		fail(w, err)
		return
	}
	cat, _ := kombo.ParseCategory(in.Category)
	err := c.e.CreateIntegration(IntegrationSpec{ID: in.ID, Tool: in.Tool, Category: cat, Records: in.Records, Seed: in.Seed,
		FirstSyncPending: in.FirstSyncPending, PendingStatus: in.PendingStatus, LegacyPendingBody: in.LegacyPendingBody, Notify: in.Notify})
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
	reply(w, map[string]string{"id": in.ID})
}

func (c *control) simple(f func(string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(r.PathValue("id")); err != nil {
			fail(w, err)
			return
		}
		reply(w, "ok")
	}
}

func (c *control) withState(f func(id, state string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			State string `json:"state"`
		}
		if err := decode(r, &in); err != nil || in.State == "" {
			fail(w, errors.Join(err, errors.New(`a body {"state": "…"} is required`)))
			return
		}
		if err := f(r.PathValue("id"), in.State); err != nil {
			fail(w, err)
			return
		}
		reply(w, "ok")
	}
}

func parseEndpoints(names []string) ([]kombo.Endpoint, error) {
	var out []kombo.Endpoint
	for _, n := range names {
		ep, ok := kombo.LookupEndpoint(n)
		if !ok {
			return nil, fmt.Errorf("unknown endpoint %q", n)
		}
		out = append(out, ep)
	}
	return out, nil
}

func (c *control) mutate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Random    int      `json:"random"`
		Endpoints []string `json:"endpoints"`
		Mutations []struct {
			Endpoint string         `json:"endpoint"`
			Op       Op             `json:"op"`
			ID       string         `json:"id"`
			Fields   map[string]any `json:"fields"`
		} `json:"mutations"`
	}
	if err := decode(r, &in); err != nil {
		fail(w, err)
		return
	}
	id := r.PathValue("id")
	eps, err := parseEndpoints(in.Endpoints)
	if err != nil {
		fail(w, err)
		return
	}
	var changes []Change
	if in.Random > 0 {
		changes, err = c.e.MutateRandom(id, in.Random, eps...)
	} else {
		ms := make([]Mutation, len(in.Mutations))
		for k, m := range in.Mutations {
			ep, ok := kombo.LookupEndpoint(m.Endpoint)
			if !ok {
				fail(w, fmt.Errorf("unknown endpoint %q", m.Endpoint))
				return
			}
			ms[k] = Mutation{Endpoint: ep, Op: m.Op, ID: m.ID, Fields: m.Fields}
		}
		changes, err = c.e.Mutate(id, ms...)
	}
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]map[string]string, len(changes))
	for k, ch := range changes {
		out[k] = map[string]string{"endpoint": ch.Endpoint.String(), "op": string(ch.Op), "id": ch.ID}
	}
	reply(w, out)
}

func (c *control) setChurn(w http.ResponseWriter, r *http.Request) {
	var in struct {
		PerSecond float64  `json:"per_second"`
		Endpoints []string `json:"endpoints"`
	}
	if err := decode(r, &in); err != nil {
		fail(w, err)
		return
	}
	eps, err := parseEndpoints(in.Endpoints)
	if err != nil {
		fail(w, err)
		return
	}
	id := r.PathValue("id")
	if !containsStr(c.e.Integrations(), id) {
		fail(w, fmt.Errorf("%w %s", ErrUnknownIntegration, id))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if stop := c.churn[id]; stop != nil {
		stop()
		delete(c.churn, id)
	}
	if in.PerSecond > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		c.churn[id] = cancel
		c.e.Churn(ctx, id, in.PerSecond, eps...)
	}
	reply(w, "ok")
}

func (c *control) truth(w http.ResponseWriter, r *http.Request) {
	ep, ok := kombo.LookupEndpoint(r.URL.Query().Get("endpoint"))
	if !ok {
		fail(w, errors.New("query parameter endpoint=category/name is required"))
		return
	}
	recs, err := c.e.Truth(r.PathValue("id"), ep)
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]json.RawMessage, len(recs))
	for k, rec := range recs {
		out[k] = rec.Data
	}
	reply(w, out)
}

func (c *control) setFaults(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ErrorRate     float64  `json:"error_rate"`
		RateLimitRate float64  `json:"rate_limit_rate"`
		RetryAfter    Duration `json:"retry_after"`
		DropRate      float64  `json:"drop_rate"`
		Latency       Duration `json:"latency"`
		WebhookLoss   float64  `json:"webhook_loss_rate"`
		WebhookDup    float64  `json:"webhook_duplicate_rate"`
		WebhookDelay  Duration `json:"webhook_max_reorder"`
		Queue         []Fault  `json:"queue"`
	}
	if err := decode(r, &in); err != nil {
		fail(w, err)
		return
	}
	if len(in.Queue) > 0 {
		c.e.QueueFaults(in.Queue...)
		reply(w, "ok")
		return
	}
	c.e.SetFaults(Faults{ErrorRate: in.ErrorRate, RateLimitRate: in.RateLimitRate, RetryAfter: in.RetryAfter.D, DropRate: in.DropRate,
		Latency: in.Latency.D, Webhooks: WebhookFaults{LossRate: in.WebhookLoss, DuplicateRate: in.WebhookDup, MaxReorder: in.WebhookDelay.D}})
	reply(w, "ok")
}

func (c *control) setWriteFaults(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ResetAfterCommit float64      `json:"reset_after_commit"`
		HoldAfterCommit  float64      `json:"hold_after_commit"`
		FailBeforeCommit float64      `json:"fail_before_commit"`
		HoldFor          Duration     `json:"hold_for"`
		ReadLag          Duration     `json:"read_lag"`
		ConcurrencyCap   int          `json:"concurrency_cap"`
		Latency          Duration     `json:"latency"`
		Queue            []WriteFault `json:"queue"`
	}
	if err := decode(r, &in); err != nil {
		fail(w, err)
		return
	}
	if len(in.Queue) > 0 {
		c.e.QueueWriteFaults(in.Queue...)
		reply(w, "ok")
		return
	}
	c.e.SetWriteFaults(WriteFaults{ResetAfterCommit: in.ResetAfterCommit, HoldAfterCommit: in.HoldAfterCommit,
		FailBeforeCommit: in.FailBeforeCommit, HoldFor: in.HoldFor.D, ReadLag: in.ReadLag.D, ConcurrencyCap: in.ConcurrencyCap,
		Latency: in.Latency.D})
	reply(w, "ok")
}
