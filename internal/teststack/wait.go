package teststack

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// WaitHTTP polls url until it answers want, or the program exits (p may be nil), or a minute
// passes.
func WaitHTTP(t testing.TB, p *Program, url string, want int) {
	t.Helper()
	WaitHTTPBody(t, p, url, want, "")
}

// WaitHTTPBody is WaitHTTP for an answer whose body also contains body.
func WaitHTTPBody(t testing.TB, p *Program, url string, want int, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var exited <-chan struct{}
	if p != nil {
		exited = p.done
	}
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want && strings.Contains(string(b), body) {
				return
			}
			last = resp.Status + ": " + strings.TrimSpace(string(b))
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			t.Fatalf("%s exited while waiting for %s: %v", p.Name, url, p.err)
		case <-ctx.Done():
			t.Fatalf("%s never answered %d (last: %s)", url, want, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Eventually polls cond until it returns "" or within passes; the last answer explains a failure.
func Eventually(t testing.TB, within time.Duration, cond func() string) {
	t.Helper()
	if why := Poll(t, within, cond); why != "" {
		t.Fatalf("condition not met within %s: %s", within, why)
	}
}

// Poll calls cond every 100 ms until it returns "" or within passes, and returns its last answer.
func Poll(t testing.TB, within time.Duration, cond func() string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := cond()
		if why == "" || time.Now().After(deadline) {
			return why
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
