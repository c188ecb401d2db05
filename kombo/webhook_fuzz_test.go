package kombo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kombosync/kombosync/kombo"
)

// The fuzz targets run their seeds (the signature vectors, the guides' sample events and the
// committed corpus in testdata/fuzz) with every `go test`; `make fuzz` mutates them for a while
// (FUZZTIME, 10 s each in CI). A failing input is written to testdata/fuzz: commit it with the fix.

// FuzzVerify: a signature verifies only when it is exactly Sign(secret, body) for a non-empty
// secret; any other string, a changed body or another secret is refused.
func FuzzVerify(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		f.Add(v.Secret, []byte(v.Body), v.Signature)
	}
	f.Add("", []byte(`{}`), "")
	f.Add("s", []byte{}, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=")
	f.Fuzz(func(t *testing.T, secret string, body []byte, signature string) {
		want := kombo.Sign(secret, body)
		if got := kombo.Verify(body, signature, secret); got != (secret != "" && signature == want) {
			t.Fatalf("Verify(%q, %q, %q) = %v, Sign gives %q", body, signature, secret, got, want)
		}
		if secret == "" {
			return
		}
		if !kombo.Verify(body, want, "other-"+secret, secret) {
			t.Fatal("the body's own signature is refused when its secret is one of several")
		}
		if kombo.Verify(append(bytes.Clone(body), 'x'), want, secret) {
			t.Fatal("a changed body verifies")
		}
		if kombo.Verify(body, want, secret+"x") {
			t.Fatal("another secret verifies")
		}
	})
}

// FuzzParseEvent: ParseEvent never panics; what it accepts has an id, a type, data, the fields
// its type needs, and can be stored as jsonb; parsing is deterministic; what it refuses wraps
// ErrMalformedEvent, so the gateway answers 400 rather than 5xx.
func FuzzParseEvent(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		f.Add([]byte(v.Body))
	}
	samples, _ := filepath.Glob("testdata/events/*.json")
	for _, s := range samples {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := kombo.ParseEvent(body)
		if err != nil {
			if !errors.Is(err, kombo.ErrMalformedEvent) {
				t.Fatalf("refused without ErrMalformedEvent: %v", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" || len(ev.Data) == 0 {
			t.Fatalf("accepted an event without id, type or data: %+v", ev)
		}
		if !json.Valid(body) || !json.Valid(ev.Data) {
			t.Fatal("accepted invalid JSON")
		}
		if bytes.Contains(bytes.ToLower(body), []byte(`\u0000`)) && !bytes.Contains(body, []byte(`\\`)) {
			t.Fatal(`accepted \u0000, which jsonb cannot store`)
		}
		p, err := ev.Payload()
		if err != nil {
			t.Fatalf("accepted, but its payload does not decode: %v", err)
		}
		switch p.(type) {
		case *kombo.DataChanged, *kombo.SyncFinished, *kombo.RemoteEventReceived, *kombo.IntegrationCreated,
			*kombo.IntegrationDeleted, *kombo.IntegrationStateChanged:
			if ev.IntegrationID() == "" {
				t.Fatalf("a %s event accepted without an integration id", ev.Type)
			}
		case *kombo.ConnectionFlowFailed, kombo.UnknownPayload:
			if ev.IntegrationID() != "" {
				t.Fatalf("a %s event names an integration", ev.Type)
			}
		default:
			t.Fatalf("payload of unexpected type %T", p)
		}
		again, err := kombo.ParseEvent(body)
		if err != nil || again.ID != ev.ID || again.Type != ev.Type || again.IntegrationID() != ev.IntegrationID() {
			t.Fatalf("parsing again gave %+v, %v", again, err)
		}
	})
}
