//go:build bench

package bench

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

// recording is every page of one integration's employees as the emulator answered them, keyed by
// the request (path and query, cursor included): replayed from memory, they cost the benchmark's
// machine nothing to render, so the ingest figures measure kombosync and not the emulator, which
// spends about 25 ms of CPU on a page of 250 nested employees on the same cores.
type recording struct {
	pages   map[string][]byte
	records int
}

// record renders the pages of an integration of n employees once, walking them with kombosync's
// own client and the parameters a pass sends, so a pass asks for exactly the recorded requests.
func recordPages(t *testing.T, n int) *recording {
	t.Helper()
	emu := komboemu.New(komboemu.Options{APIKey: "key", Seed: 1})
	defer emu.Close()
	must(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: integrationID, Category: kombo.CategoryHRIS, Records: n, Seed: 11}))
	rec := &recording{pages: map[string][]byte{}}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &capture{ResponseWriter: w}
		emu.Handler().ServeHTTP(cw, r)
		if cw.status == 0 || cw.status == http.StatusOK {
			mu.Lock()
			rec.pages[r.URL.RequestURI()] = cw.body.Bytes()
			mu.Unlock()
		}
	}))
	defer srv.Close()
	kc, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1", APIKey: "key", Timeout: time.Minute})
	must(t, err)
	for p, err := range kc.Pages(t.Context(), integrationID, employees, passParams) {
		must(t, err)
		rec.records += len(p.Records)
	}
	if rec.records != n {
		t.Fatalf("recorded %d employees, want %d", rec.records, n)
	}
	return rec
}

// passParams are the list parameters FetchEndpoint sends on a pass without updated_after.
var passParams = kombo.ListParams{PageSize: kombo.DefaultPageSize, IncludeDeleted: true}

type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *capture) WriteHeader(s int) { c.status = s; c.ResponseWriter.WriteHeader(s) }
func (c *capture) Write(b []byte) (int, error) {
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

// replay serves a recording, after latency, and measures each answer's service time: from the
// request's arrival to its last byte handed to the connection.
type replay struct {
	rec     *recording
	latency time.Duration

	mu      sync.Mutex
	service []time.Duration
	misses  atomic.Int64
}

func (rp *replay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := rp.rec.pages[r.URL.RequestURI()]
	if !ok {
		rp.misses.Add(1)
		http.Error(w, `{"status":"error","error":{"message":"not recorded"}}`, http.StatusNotFound)
		return
	}
	if rp.latency > 0 {
		select {
		case <-time.After(rp.latency):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	took := time.Since(start)
	rp.mu.Lock()
	rp.service = append(rp.service, took)
	rp.mu.Unlock()
}

// served is the number of pages answered and the sum of their service times.
func (rp *replay) served() (int, time.Duration) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	var sum time.Duration
	for _, d := range rp.service {
		sum += d
	}
	return len(rp.service), sum
}
