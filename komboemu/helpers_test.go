package komboemu_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kombosync/kombosync/komboemu"
)

const (
	apiKey        = "test-api-key"
	webhookSecret = "test-webhook-secret"
)

// start runs an emulator behind a real HTTP server, sending webhooks to a sink (coalescing window
// 50 ms unless opts says otherwise).
func start(t *testing.T, opts komboemu.Options) (*komboemu.Emulator, *httptest.Server, *webhookSink) {
	t.Helper()
	sink := &webhookSink{}
	hooks := httptest.NewServer(sink)
	t.Cleanup(hooks.Close)
	opts.APIKey = apiKey
	if opts.Webhooks.URL == "" {
		opts.Webhooks.URL = hooks.URL
	}
	opts.Webhooks.Secret = webhookSecret
	if opts.Webhooks.Window == 0 {
		opts.Webhooks.Window = 50 * time.Millisecond
	}
	emu := komboemu.New(opts)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(func() { srv.Close(); emu.Close() })
	return emu, srv, sink
}
