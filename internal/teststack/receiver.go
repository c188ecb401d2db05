package teststack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// Received is one webhook a Receiver verified and answered 2xx.
type Received struct {
	ID   string // webhook-id
	At   time.Time
	Body []byte
}

// Answer is what a Receiver answers one delivery with: a status (0: 204) and a Retry-After.
type Answer struct {
	Status     int
	RetryAfter string
	// Hold keeps the request this long before answering (a slow receiver).
	Hold time.Duration
}

// Receiver is an application's webhook endpoint for tests and benchmarks: it verifies every
// delivery with the Standard Webhooks reference library (not kombosync's signer), and can be
// stopped (connections refused) and started again on the same address, or scripted to answer
// 410, 429 with Retry-After, or to hold requests.
type Receiver struct {
	URL  string
	addr string
	wh   *standardwebhooks.Webhook

	mu       sync.Mutex
	srv      *http.Server
	received []Received
	attempts []Received // every request, verified or not, with its arrival time
	invalid  []string   // why a request failed verification
	script   func(n int) Answer
	arrived  chan struct{} // one send per request, when not nil (non-blocking)
}

// NewReceiver starts a receiver on a free loopback port; it verifies with secret (whsec_…),
// which may be set later with SetSecret before deliveries start.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &Receiver{addr: l.Addr().String()}
	r.URL = "http://" + r.addr + "/hooks"
	r.serve(l)
	t.Cleanup(r.Stop)
	return r
}

// SetSecret sets the secret deliveries are verified with.
func (r *Receiver) SetSecret(t testing.TB, secret string) {
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	r.mu.Lock()
	r.wh = wh
	r.mu.Unlock()
}

// Script answers the n-th request (from 0) with what f says; nil answers 204 to everything.
func (r *Receiver) Script(f func(n int) Answer) {
	r.mu.Lock()
	r.script = f
	r.mu.Unlock()
}

// Arrivals returns a channel that receives once per request as it arrives.
func (r *Receiver) Arrivals() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.arrived = make(chan struct{}, 1000)
	return r.arrived
}

func (r *Receiver) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// Stop closes the receiver: connections are refused until Start.
func (r *Receiver) Stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Start listens again on the same address.
func (r *Receiver) Start(t testing.TB) {
	t.Helper()
	var l net.Listener
	Eventually(t, 10*time.Second, func() string { // the port may linger for a moment
		var err error
		if l, err = net.Listen("tcp", r.addr); err != nil {
			return err.Error()
		}
		return ""
	})
	r.serve(l)
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	now := time.Now()
	r.mu.Lock()
	n := len(r.attempts)
	r.attempts = append(r.attempts, Received{ID: req.Header.Get("webhook-id"), At: now, Body: body})
	script, wh, arrived := r.script, r.wh, r.arrived
	r.mu.Unlock()
	if arrived != nil {
		select {
		case arrived <- struct{}{}:
		default:
		}
	}
	answer := Answer{}
	if script != nil {
		answer = script(n)
	}
	if answer.Hold > 0 {
		select {
		case <-time.After(answer.Hold):
		case <-req.Context().Done():
			return
		}
	}
	if err == nil && wh == nil {
		err = errors.New("no secret set")
	}
	if err == nil {
		err = wh.Verify(body, req.Header)
	}
	if err != nil {
		r.mu.Lock()
		r.invalid = append(r.invalid, fmt.Sprintf("%s: %v", req.Header.Get("webhook-id"), err))
		r.mu.Unlock()
		http.Error(w, "signature", http.StatusUnauthorized)
		return
	}
	if answer.RetryAfter != "" {
		w.Header().Set("Retry-After", answer.RetryAfter)
	}
	if answer.Status != 0 && (answer.Status < 200 || answer.Status > 299) {
		w.WriteHeader(answer.Status)
		return
	}
	r.mu.Lock()
	r.received = append(r.received, Received{ID: req.Header.Get("webhook-id"), At: now, Body: body})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Received returns the verified deliveries answered 2xx, in arrival order (duplicates kept).
func (r *Receiver) Received() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.received)
}

// Attempts returns every request that arrived, verified or not.
func (r *Receiver) Attempts() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.attempts)
}

// Invalid returns why requests failed verification; empty when all were signed right.
func (r *Receiver) Invalid() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.invalid)
}

// Shutdown stops the receiver gracefully (for benchmarks that end cleanly).
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}
