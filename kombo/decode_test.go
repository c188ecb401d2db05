package kombo_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

// pageBody is one page of 250 nested employees as the emulator sends it.
func pageBody(b *testing.B) []byte {
	b.Helper()
	emu := komboemu.New(komboemu.Options{APIKey: testKey})
	srv := httptest.NewServer(emu.Handler())
	b.Cleanup(func() { srv.Close(); emu.Close() })
	if err := emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:bench", Category: kombo.CategoryHRIS, Records: 300, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/hris/employees?page_size=250&include_deleted=true", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("X-Integration-Id", "p:bench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkDecodePage: decoding is on the fetch side of every pass.
func BenchmarkDecodePage(b *testing.B) {
	body := pageBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := kombo.DecodePage(body)
		if err != nil || len(p.Records) != 250 {
			b.Fatal(err, len(p.Records))
		}
	}
}

// The one-pass page decoder agrees with encoding/json on real pages (every endpoint, deleted
// records included) and refuses what is not a page.
func TestDecodePageAgreesWithEncodingJSON(t *testing.T) {
	emu, _, _, base := newEmulatorAt(t, komboemu.Options{})
	for _, in := range []struct {
		id  string
		cat kombo.Category
	}{{"p:dec", kombo.CategoryHRIS}, {"g:dec", kombo.CategoryATS}} {
		require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: in.id, Category: in.cat, Records: 40, Seed: 5}))
		_, err := emu.MutateRandom(in.id, 30)
		require.NoError(t, err)
		for _, ep := range kombo.DefaultEndpoints() {
			if ep.Category != in.cat {
				continue
			}
			req, _ := http.NewRequest(http.MethodGet, base+"/"+ep.String()+"?page_size=250&include_deleted=true", nil)
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set("X-Integration-Id", in.id)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)

			got, err := kombo.DecodePage(body)
			require.NoError(t, err, ep.String())
			var want struct {
				Data struct {
					Next    *string           `json:"next"`
					Results []json.RawMessage `json:"results"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal(body, &want))
			require.Len(t, got.Records, len(want.Data.Results), ep.String())
			for k, raw := range want.Data.Results {
				var meta struct {
					ID              string     `json:"id"`
					RemoteID        *string    `json:"remote_id"`
					ChangedAt       time.Time  `json:"changed_at"`
					RemoteDeletedAt *time.Time `json:"remote_deleted_at"`
				}
				require.NoError(t, json.Unmarshal(raw, &meta))
				r := got.Records[k]
				require.Equal(t, meta.ID, r.ID)
				require.Equal(t, derefString(meta.RemoteID), r.RemoteID)
				require.True(t, meta.ChangedAt.Equal(r.ChangedAt))
				require.Equal(t, meta.RemoteDeletedAt == nil, r.RemoteDeletedAt == nil)
				require.JSONEq(t, string(raw), string(r.Raw), "the record's bytes, whole")
			}
		}
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"status":"success","data":{"next":null,"results":[{"id":"a"}]}}`,
		`{"status":"success","data":{"next":null,"results":[{"id":1,"changed_at":"2026-01-01T00:00:00Z"}]}}`,
		`{"status":"success","data":{"next":null,"results":[{"id":"a","changed_at":"yesterday"}]}}`,
		`{"status":"success","data":{"next":null,"results":[{"id":"a","changed_at":"2026-01-01T00:00:00Z"}`,
		`{"status":"error","error":{"message":"no"}}`,
	} {
		_, err := kombo.DecodePage([]byte(bad))
		require.Error(t, err, bad)
	}
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
