package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// FuzzInboxStoresEveryAcceptedEvent: whatever kombo.ParseEvent accepts, the inbox can store, in
// a real PostgreSQL. An event it could not store would be answered 503 and retried by Kombo
// forever (bytes that are not UTF-8, \u0000 and half surrogate pairs were such events).
func FuzzInboxStoresEveryAcceptedEvent(f *testing.F) {
	for _, body := range []string{
		`{"id":"e1","type":"data-changed","data":{"integration_id":"x:1","changed_models":[{"name":"hris_employees"}]}}`,
		`{"id":"e2","type":"x","data":{"a":"\\u0000"}}`,
		`{"id":"e3","type":"x","data":{"a":"\ud83d\ude00 \u00e9"}}`,
		`{"id":"e\u0000","type":"x","data":{}}`,
		"{\"id\":\"e4\",\"type\":\"x\",\"data\":{\"a\":\"\xff\"}}",
		`{"id":"e5","type":"x","data":{"a":"\ud83d"}}`,
	} {
		f.Add([]byte(body))
	}
	pool, err := pgxpool.New(f.Context(), testenv.Database(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(pool.Close)
	s := store.New(pool)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := kombo.ParseEvent(body)
		if err != nil {
			return
		}
		// Not the fuzz engine's context: when -fuzztime ends it cancels the input under way, which
		// would read as the inbox failing.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 10*time.Second)
		defer cancel()
		_, err = s.InsertWebhookEvent(ctx, store.InboxEvent{ID: ev.ID, Type: ev.Type, IntegrationID: ev.IntegrationID(),
			Payload: body, ReceivedAt: time.Now()}, true)
		if err != nil {
			t.Fatalf("ParseEvent accepted %q, but the inbox cannot store it: %v", body, err)
		}
	})
}
