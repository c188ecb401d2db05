package komboemu

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// WebhookOptions configure webhook delivery.
type WebhookOptions struct {
	URL    string // where to POST; no webhooks when empty
	Secret string // signs X-Kombo-Signature
	// Window coalesces data-changed per integration: the first change is sent at once, later
	// ones at most once per window with every model changed meanwhile. Kombo's is 30 s (the
	// default); tests use milliseconds.
	Window time.Duration
	// Retries is how many times a failed delivery (no 2xx) is retried; 3 when zero, none when
	// negative.
	Retries int
	Client  *http.Client
}

// WebhookFaults make delivery unreliable the way Kombo's may be.
type WebhookFaults struct {
	LossRate      float64       // share of events never sent
	DuplicateRate float64       // share of events sent twice
	MaxReorder    time.Duration // each event is held back a random delay up to this
}

// Delivery is one webhook the emulator sent, or meant to send.
type Delivery struct {
	ID, Type  string
	Body      []byte
	Lost      bool // dropped by WebhookFaults.LossRate
	Duplicate bool // the second copy of a duplicated event
	Status    int  // last HTTP status; 0 when no answer
	Attempts  int
}

type outgoing struct {
	id, typ   string
	body      []byte
	duplicate bool
}

type webhookSender struct {
	opts WebhookOptions
	log  *slog.Logger

	mu         sync.Mutex
	rng        *rand.Rand
	ids        *rand.Rand // event ids: unique across runs, as Kombo's are, whatever the seed
	faults     WebhookFaults
	coalesce   map[string]*coalescer
	queue      []outgoing
	held       int // events held back by MaxReorder
	busy       bool
	deliveries []Delivery
	closed     bool
	wake       chan struct{}
	idle       *sync.Cond
	done       chan struct{}
}

type coalescer struct {
	lastSent time.Time
	pending  map[string]bool
	timer    *time.Timer
	data     map[string]any // integration fields of the event
}

func newWebhookSender(opts WebhookOptions, log *slog.Logger, seed uint64) *webhookSender {
	if opts.Window == 0 {
		opts.Window = 30 * time.Second
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	w := &webhookSender{opts: opts, log: log, rng: rand.New(rand.NewPCG(seed, 0x776562686f6f6b)),
		ids:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		coalesce: map[string]*coalescer{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.idle = sync.NewCond(&w.mu)
	go w.run()
	return w
}

func (w *webhookSender) setFaults(f WebhookFaults) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faults = f
}

// dataChanged sends or coalesces a data-changed for the integration's changed models. Coalescing
// runs on the real clock, like Kombo's.
func (w *webhookSender) dataChanged(i *integration, models []string) {
	if w.opts.URL == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.coalesce[i.id]
	if c == nil {
		c = &coalescer{pending: map[string]bool{}}
		w.coalesce[i.id] = c
	}
	c.data = map[string]any{"integration_id": i.id, "integration_tool": i.tool, "integration_category": string(i.category)}
	for _, m := range models {
		c.pending[m] = true
	}
	if c.timer != nil {
		return // a send is already scheduled and will carry these models
	}
	wait := w.opts.Window - time.Since(c.lastSent)
	if wait <= 0 {
		w.flushLocked(c)
		return
	}
	c.timer = time.AfterFunc(wait, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		c.timer = nil
		w.flushLocked(c)
	})
}

func (w *webhookSender) flushLocked(c *coalescer) {
	if len(c.pending) == 0 || w.closed {
		return
	}
	changed := []map[string]string{}
	for _, m := range slices.Sorted(maps.Keys(c.pending)) {
		changed = append(changed, map[string]string{"name": m})
	}
	data := maps.Clone(c.data)
	data["changed_models"] = changed
	c.pending = map[string]bool{}
	c.lastSent = time.Now()
	w.enqueueLocked(kombo.EventDataChanged, data)
}

// send queues an event of any other type.
func (w *webhookSender) send(typ string, data map[string]any) {
	if w.opts.URL == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.enqueueLocked(typ, data)
}

func (w *webhookSender) enqueueLocked(typ string, data map[string]any) {
	if w.closed {
		return
	}
	id := (&generator{rng: w.ids}).id()
	body, err := json.Marshal(map[string]any{"id": id, "type": typ, "data": data})
	if err != nil {
		panic("komboemu: marshal webhook: " + err.Error()) // only our own values are in it
	}
	if w.rng.Float64() < w.faults.LossRate {
		w.deliveries = append(w.deliveries, Delivery{ID: id, Type: typ, Body: body, Lost: true})
		return
	}
	copies := []outgoing{{id: id, typ: typ, body: body}}
	if w.rng.Float64() < w.faults.DuplicateRate {
		copies = append(copies, outgoing{id: id, typ: typ, body: body, duplicate: true})
	}
	for _, o := range copies {
		if w.faults.MaxReorder > 0 {
			delay := time.Duration(w.rng.Int64N(int64(w.faults.MaxReorder)))
			w.held++
			time.AfterFunc(delay, func() {
				w.mu.Lock()
				defer w.mu.Unlock()
				w.held--
				w.queue = append(w.queue, o)
				w.signal()
			})
			continue
		}
		w.queue = append(w.queue, o)
	}
	w.signal()
}

func (w *webhookSender) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run delivers queued events one at a time, in queue order.
func (w *webhookSender) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		for len(w.queue) == 0 {
			w.busy = false
			w.idle.Broadcast()
			if w.closed {
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
			<-w.wake
			w.mu.Lock()
		}
		o := w.queue[0]
		w.queue = w.queue[1:]
		w.busy = true
		w.mu.Unlock()

		d := w.deliver(o)

		w.mu.Lock()
		w.deliveries = append(w.deliveries, d)
		w.mu.Unlock()
	}
}

func (w *webhookSender) deliver(o outgoing) Delivery {
	d := Delivery{ID: o.id, Type: o.typ, Body: o.body, Duplicate: o.duplicate}
	backoff := 100 * time.Millisecond
	for attempt := 0; attempt <= max(w.opts.Retries, 0); attempt++ {
		if attempt > 0 {
			time.Sleep(backoff)
			backoff *= 2
		}
		d.Attempts++
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, w.opts.URL, bytes.NewReader(o.body))
		if err != nil {
			w.log.Error("webhook request", "error", err)
			return d
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(kombo.SignatureHeader, kombo.Sign(w.opts.Secret, o.body))
		resp, err := w.opts.Client.Do(req)
		if err != nil {
			d.Status = 0
			w.log.Warn("webhook delivery failed", "event_id", o.id, "type", o.typ, "attempt", d.Attempts, "error", err)
			continue
		}
		resp.Body.Close()
		d.Status = resp.StatusCode
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return d
		}
		w.log.Warn("webhook rejected", "event_id", o.id, "type", o.typ, "attempt", d.Attempts, "status", resp.StatusCode)
	}
	return d
}

// wait blocks until nothing is queued, held back or being delivered (coalesced data-changed
// still waiting for their window are not waited for), or ctx ends.
func (w *webhookSender) wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.idle.Broadcast()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for (len(w.queue) > 0 || w.busy || w.held > 0) && ctx.Err() == nil {
		w.idle.Wait()
	}
	return ctx.Err()
}

func (w *webhookSender) deliveriesCopy() []Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.deliveries)
}

func (w *webhookSender) close() {
	w.mu.Lock()
	w.closed = true
	for _, c := range w.coalesce {
		if c.timer != nil {
			c.timer.Stop()
		}
	}
	w.signal()
	w.mu.Unlock()
	<-w.done
}

// Deliveries lists every webhook sent or dropped so far, in the order they finished.
func (e *Emulator) Deliveries() []Delivery { return e.hooks.deliveriesCopy() }

// WaitWebhooks waits until every queued webhook has been delivered (or given up on).
func (e *Emulator) WaitWebhooks(ctx context.Context) error { return e.hooks.wait(ctx) }
