package outbound_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/outbound"
)

// verify is a receiver's check written from the specification, not with kombosync's signer.
func verify(t *testing.T, r *http.Request, body []byte, key []byte) bool {
	t.Helper()
	m := hmac.New(sha256.New, key)
	io.WriteString(m, r.Header.Get("webhook-id")+"."+r.Header.Get("webhook-timestamp")+"."+string(body))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func TestDeliverSignsAndReadsTheAnswer(t *testing.T) {
	key, err := outbound.ParseSecret(vectorSecret)
	require.NoError(t, err)
	var verified bool
	status, header := http.StatusOK, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		verified = verify(t, r, body, key)
		if header != "" {
			w.Header().Set("Retry-After", header)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(strings.Repeat("x", 1<<20))) // a large answer is read in part, harmlessly
	}))
	defer srv.Close()
	c := outbound.NewClient(outbound.Options{AllowHTTP: true, AllowPrivate: true, MaxResponseBytes: 1024})
	deliver := func() outbound.Outcome {
		return c.Deliver(t.Context(), srv.URL, [][]byte{key}, "evt_1", time.Now(), []byte(`{"type":"records.changed"}`))
	}

	out := deliver()
	require.True(t, out.Delivered, "%+v", out)
	require.True(t, verified, "a receiver following the specification accepts the signature")

	status = http.StatusGone
	require.Equal(t, outbound.Outcome{Status: 410, Gone: true, Error: "answered 410"}, deliver())
	status, header = http.StatusTooManyRequests, "7"
	require.Equal(t, 7*time.Second, deliver().RetryAfter)
	header = time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	require.InDelta(t, 90, deliver().RetryAfter.Seconds(), 2, "an HTTP date too")
	status, header = http.StatusInternalServerError, ""
	out = deliver()
	require.False(t, out.Delivered)
	require.Equal(t, "answered 500", out.Error)
	status = http.StatusFound // a redirect is not followed: the address checked is the one reached
	require.Equal(t, 302, deliver().Status)
}

func TestDeliverRefusesWhatIsNotAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	defer srv.Close()
	strict := outbound.NewClient(outbound.Options{})
	for url, want := range map[string]string{
		"http://receiver.example/hook":  "must be https",
		"ftp://receiver.example/hook":   "must be https",
		"https:///hook":                 "no host",
		"https://u:p@receiver.example/": "user or password",
		"https://127.0.0.1/hook":        "not a public address",
		"https://10.1.2.3/hook":         "not a public address",
		"https://[::1]/hook":            "not a public address",
		"https://169.254.169.254/":      "not a public address",
		"https://100.64.0.1/":           "not a public address",
	} {
		require.ErrorContains(t, strict.CheckURL(url), want, url)
	}
	require.NoError(t, strict.CheckURL("https://receiver.example/hook"))

	// A name that resolves inside is refused when the connection is made.
	httpOnly := outbound.NewClient(outbound.Options{AllowHTTP: true})
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	out := httpOnly.Deliver(t.Context(), "http://localhost:"+port+"/hook", nil, "evt_1", time.Now(), []byte(`{}`))
	require.False(t, out.Delivered)
	require.Contains(t, out.Error, "not a public address")

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()
	quick := outbound.NewClient(outbound.Options{AllowHTTP: true, AllowPrivate: true, Timeout: 100 * time.Millisecond})
	started := time.Now()
	out = quick.Deliver(t.Context(), slow.URL, nil, "evt_1", time.Now(), []byte(`{}`))
	require.False(t, out.Delivered)
	require.Less(t, time.Since(started), 1500*time.Millisecond, "the timeout, not the receiver, ends the wait")
	require.NotEmpty(t, out.Error)
}
