// Command webhookrecv is the local stack's stand-in for the application's webhook endpoint: it
// verifies each outbound webhook kombosync sends with the Standard Webhooks reference library
// (github.com/standard-webhooks/standard-webhooks/libraries, not kombosync's own signer), logs
// what it got (ids, types, counts: the events carry no record contents) and answers 204, or 401
// when the signature is wrong. `make dev` runs it and subscribes it to every event.
//
// Settings: RECEIVER_LISTEN_ADDR (default 127.0.0.1:8099), RECEIVER_SECRET (the subscription's
// whsec_ secret, required).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "webhookrecv")
	if err := run(ctx, logger); err != nil {
		logger.Error("webhookrecv stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger) error {
	addr := os.Getenv("RECEIVER_LISTEN_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8099"
	}
	secret := os.Getenv("RECEIVER_SECRET")
	if secret == "" {
		return errors.New("RECEIVER_SECRET is required (the subscription's whsec_ secret)")
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /hooks", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		id := r.Header.Get("webhook-id")
		if err != nil {
			logger.Warn("webhook refused", "webhook_id", id, "error", err)
			http.Error(w, "signature", http.StatusUnauthorized)
			return
		}
		var msg struct {
			Type string `json:"type"`
			Data struct {
				IntegrationID string          `json:"integration_id"`
				Changes       *int            `json:"changes"`
				Rounds        *int            `json:"rounds"`
				From          json.RawMessage `json:"from"`
				To            json.RawMessage `json:"to"`
				State         string          `json:"state"`
				Kind          string          `json:"kind"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &msg)
		attrs := []any{"webhook_id", id, "type", msg.Type, "integration_id", msg.Data.IntegrationID}
		switch {
		case msg.Data.Changes != nil:
			attrs = append(attrs, "changes", *msg.Data.Changes, "rounds", msg.Data.Rounds, "from", msg.Data.From, "to", msg.Data.To)
		case msg.Data.State != "":
			attrs = append(attrs, "state", msg.Data.State)
		case msg.Data.Kind != "":
			attrs = append(attrs, "kind", msg.Data.Kind)
		}
		logger.Info("webhook verified", attrs...)
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	logger.Info("receiving webhooks", "addr", addr, "path", "/hooks")
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
