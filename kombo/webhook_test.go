package kombo_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
)

type signatureVectors struct {
	Header  string `json:"header"`
	Vectors []struct {
		Secret     string `json:"secret"`
		Body       string `json:"body"`
		Signature  string `json:"x_kombo_signature"`
		MustReject bool   `json:"must_reject"`
		Why        string `json:"why"`
	} `json:"vectors"`
}

func loadVectors(t testing.TB) signatureVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/webhook-signature-vectors.json")
	require.NoError(t, err)
	var v signatureVectors
	require.NoError(t, json.Unmarshal(b, &v))
	require.NotEmpty(t, v.Vectors)
	return v
}

func TestSignatureVectors(t *testing.T) {
	v := loadVectors(t)
	require.Equal(t, kombo.SignatureHeader, v.Header)
	for i, vec := range v.Vectors {
		body := []byte(vec.Body)
		if vec.MustReject {
			require.False(t, kombo.Verify(body, vec.Signature, vec.Secret), "vector %d must be rejected: %s", i, vec.Why)
			continue
		}
		require.Equal(t, vec.Signature, kombo.Sign(vec.Secret, body), "vector %d", i)
		require.True(t, kombo.Verify(body, vec.Signature, vec.Secret), "vector %d", i)
	}
}

func TestVerifyAcceptsAnyRotatedSecret(t *testing.T) {
	body := []byte(`{"id":"e1","type":"data-changed","data":{}}`)
	sig := kombo.Sign("new-secret", body)
	require.True(t, kombo.Verify(body, sig, "old-secret", "new-secret"))
	require.True(t, kombo.Verify(body, sig, "new-secret", "old-secret"))
	require.False(t, kombo.Verify(body, sig, "old-secret"))
	require.False(t, kombo.Verify(body, sig), "no secret verifies nothing")
	require.False(t, kombo.Verify(body, sig, ""), "an empty secret verifies nothing")
	require.False(t, kombo.Verify(body, "", "new-secret"))
	require.False(t, kombo.Verify(body, sig[:len(sig)-2], "new-secret"), "a truncated signature")
	require.False(t, kombo.Verify(append(body, ' '), sig, "new-secret"), "a changed body")
}

func TestParseEventDecodesEveryKnownType(t *testing.T) {
	cases := map[string]struct {
		body        string
		integration string
		check       func(t *testing.T, p any)
	}{
		"data-changed": {
			`{"id":"e1","type":"data-changed","data":{"integration_id":"personio:abc","integration_tool":"personio","integration_category":"HRIS","changed_models":[{"name":"hris_employees"},{"name":"hris_teams"}]}}`,
			"personio:abc",
			func(t *testing.T, p any) {
				require.Equal(t, []kombo.ChangedModel{{Name: "hris_employees"}, {Name: "hris_teams"}}, p.(*kombo.DataChanged).ChangedModels)
			},
		},
		"sync-finished": {
			`{"id":"e2","type":"sync-finished","data":{"sync_id":"s1","sync_state":"SOMETHING_NEW","sync_started_at":"2021-09-01T12:00:00.000Z","sync_ended_at":"2021-09-01T12:30:00.000Z","sync_duration_seconds":1800,"integration_id":"x:1","integration_tool":"x","integration_category":"ATS","end_user":{"organization_name":"Acme","creator_email":null,"origin_id":"42"},"log_url":"https://app.kombo.dev/l"}}`,
			"x:1",
			func(t *testing.T, p any) {
				sf := p.(*kombo.SyncFinished)
				require.Equal(t, "SOMETHING_NEW", sf.SyncState, "unknown states are kept")
				require.Equal(t, 1800.0, *sf.SyncDurationSeconds)
				require.Equal(t, "Acme", sf.EndUser.OrganizationName)
			},
		},
		"remote-event-received": {`{"id":"e3","type":"remote-event-received","data":{"integration_id":"x:2","extra":true}}`, "x:2", nil},
		"integration-created": {
			`{"id":"e4","type":"integration-created","data":{"id":"x:3","tool":"x","category":"HRIS","end_user":{"organization_name":"A","creator_email":"a@b.co","origin_id":null}}}`, "x:3", nil,
		},
		"integration-deleted": {
			`{"id":"e5","type":"integration-deleted","data":{"id":"x:4","tool":"x","category":"HRIS","end_user":{"organization_name":"A","creator_email":null,"origin_id":null},"deleted_at":"2026-01-01T00:00:00.000Z"}}`, "x:4",
			func(t *testing.T, p any) { require.NotNil(t, p.(*kombo.IntegrationDeleted).DeletedAt) },
		},
		"integration-state-changed": {
			`{"id":"e6","type":"integration-state-changed","data":{"integration_id":"x:5","integration_tool":"x","integration_category":"HRIS","end_user":{"organization_name":"A","creator_email":null,"origin_id":null},"qa_status":"PASSED","setup_status":"COMPLETED","state":"INACTIVE","updated_at":"2026-01-01T00:00:00.000Z"}}`, "x:5",
			func(t *testing.T, p any) {
				require.Equal(t, kombo.IntegrationInactive, p.(*kombo.IntegrationStateChanged).State)
			},
		},
		"connection-flow-failed": {
			`{"id":"e7","type":"connection-flow-failed","data":{"integration_tool":"x","integration_category":"HRIS","end_user":{"organization_name":"A","creator_email":null,"origin_id":null},"log_url":"https://x"}}`, "", nil,
		},
		"unknown type kept raw": {
			`{"id":"e8","type":"assessment:order-received","data":{"anything":[1,2]}}`, "",
			func(t *testing.T, p any) {
				u := p.(kombo.UnknownPayload)
				require.Equal(t, "assessment:order-received", u.Type)
				require.JSONEq(t, `{"anything":[1,2]}`, string(u.Data))
			},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := kombo.ParseEvent([]byte(c.body))
			require.NoError(t, err)
			require.Equal(t, c.integration, e.IntegrationID())
			p, err := e.Payload()
			require.NoError(t, err)
			if c.check != nil {
				c.check(t, p)
			}
		})
	}
}

func TestParseEventAcceptsWhatJSONBStores(t *testing.T) {
	for name, body := range map[string]string{
		"escaped backslash, then u0000": `{"id":"e","type":"x","data":{"a":"\\u0000"}}`,
		"surrogate pair":                `{"id":"e","type":"x","data":{"a":"\ud83d\ude00"}}`,
		"other escapes":                 `{"id":"e","type":"x","data":{"a":"\u00e9\n\"\/\t"}}`,
		"raw UTF-8":                     `{"id":"e","type":"x","data":{"a":"é😀"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := kombo.ParseEvent([]byte(body))
			require.NoError(t, err)
		})
	}
}

func TestParseEventRejectsMalformedBodies(t *testing.T) {
	for name, body := range map[string]string{
		"not json":                 `{"id":`,
		"array":                    `[1,2]`,
		"no id":                    `{"type":"data-changed","data":{"integration_id":"x"}}`,
		"no type":                  `{"id":"e","data":{"integration_id":"x"}}`,
		"no data":                  `{"id":"e","type":"data-changed"}`,
		"null data":                `{"id":"e","type":"data-changed","data":null}`,
		"data-changed without id":  `{"id":"e","type":"data-changed","data":{"changed_models":[]}}`,
		"wrong field type":         `{"id":"e","type":"data-changed","data":{"integration_id":7}}`,
		"model without name":       `{"id":"e","type":"data-changed","data":{"integration_id":"x","changed_models":[{}]}}`,
		"sync-finished sans state": `{"id":"e","type":"sync-finished","data":{"integration_id":"x"}}`,
		"trailing data":            `{"id":"e","type":"x","data":{}} {}`,
		"trailing brace":           `{"id":"e","type":"x","data":{}}}`, // found by FuzzParseEvent
		// Valid to Go's decoder, but jsonb cannot store them (the inbox would answer 503 forever).
		"NUL escape":          `{"id":"e","type":"x","data":{"a":"x\u0000y"}}`,
		"NUL escape, upper":   `{"id":"e","type":"x","data":{"a":"\U0000"}}`,
		"lone high surrogate": `{"id":"e","type":"x","data":{"a":"\ud83d"}}`,
		"lone low surrogate":  `{"id":"e","type":"x","data":{"a":"\ude00x"}}`,
		"high, then no low":   `{"id":"e","type":"x","data":{"a":"\ud83d\u0041"}}`,
		"invalid UTF-8":       "{\"id\":\"e\",\"type\":\"x\",\"data\":{\"a\":\"\xff\"}}",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := kombo.ParseEvent([]byte(body))
			require.ErrorIs(t, err, kombo.ErrMalformedEvent)
		})
	}
}
