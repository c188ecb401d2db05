package kombo_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		``, `{`, `[]`, `{"status":"success","data":{"next":null,"results":[{"id":"a","changed_at":"2026-01-01T00:00:00Z"}`,
		`{"status":"error","error":{"message":"no"}}`, `{"status":"success","data":{"results":[{"id":"a",}]}}`,
	} {
		_, err := kombo.DecodePage([]byte(bad))
		var de *kombo.DecodeError
		require.ErrorAs(t, err, &de, bad)
	}
}

// An element of a page that is not a record kombosync can take is set aside with the reason;
// the records around it are taken as usual.
func TestDecodePageRejectsWhatItCannotTakeAndKeepsTheRest(t *testing.T) {
	const ok = `{"id":"ok%d","changed_at":"2026-01-01T00:00:00Z","n":{"deep":[1,2]}}`
	body := `{"status":"success","data":{"next":"c2","results":[` + fmt.Sprintf(ok, 1) + `,
		"a string", [1,2], {"changed_at":"2026-01-01T00:00:00Z","name":"no id"},
		{"id":7,"changed_at":"2026-01-01T00:00:00Z"}, {"id":"bad-time","changed_at":"yesterday"},
		{"id":"no-time"}, {"id":{"nested":true},"changed_at":[1]}, ` + fmt.Sprintf(ok, 2) + `]}}`
	page, err := kombo.DecodePage([]byte(body))
	require.NoError(t, err)
	require.Equal(t, "c2", page.Next)
	require.Len(t, page.Records, 2)
	require.Equal(t, []string{"ok1", "ok2"}, []string{page.Records[0].ID, page.Records[1].ID})
	var got []string
	for _, r := range page.Rejected {
		got = append(got, r.ID+": "+r.Reason)
		require.True(t, json.Valid(r.Raw), r.Reason)
		require.Equal(t, string(r.Raw), r.Excerpt)
	}
	require.Equal(t, []string{
		": not an object but a string",
		": not an object but an array",
		": no id",
		": id is a number, not a string; no id",
		`bad-time: changed_at: parsing time "yesterday" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "yesterday" as "2006"`,
		"no-time: no changed_at",
		": id is an object, not a string; changed_at is an array, not a string; no id",
	}, got)
}

// Text that PostgreSQL cannot store (U+0000, unpaired surrogates, bytes that are not UTF-8) is
// replaced in the records that hold it, which are marked; everything else stays byte for byte.
func TestDecodePageSanitizesWhatPostgresCannotStore(t *testing.T) {
	rec := func(id, name string) string {
		return `{"id":"` + id + `","changed_at":"2026-01-01T00:00:00Z","name":"` + name + `"}`
	}
	body := `{"status":"success","data":{"next":null,"results":[` + strings.Join([]string{
		rec("clean", `caf\u00e9 \ud83d\ude00 \\u0000 literal`),
		rec("nul", `a\u0000b`),
		rec("high", `x\ud800y`),
		rec("low", `x\uDC00`),
		rec("reversed", `\udc00\ud800`),
		rec("bytes", "a\xffb\xc3"),
		rec(`id\u0000x`, `in the id`),
	}, ",") + `]}}`
	page, err := kombo.DecodePage([]byte(body))
	require.NoError(t, err)
	require.Empty(t, page.Rejected)
	want := map[string]struct {
		name      string
		sanitized bool
	}{
		"clean":    {`caf\u00e9 \ud83d\ude00 \\u0000 literal`, false},
		"nul":      {`ab`, true},
		"high":     {`x\ufffdy`, true},
		"low":      {`x\ufffd`, true},
		"reversed": {`\ufffd\ufffd`, true},
		"bytes":    {"a\uFFFDb\uFFFD", true},
		"idx":      {`in the id`, true},
	}
	require.Len(t, page.Records, len(want))
	for _, r := range page.Records {
		w, ok := want[r.ID]
		require.True(t, ok, "unexpected id %q", r.ID)
		require.Equal(t, w.sanitized, r.Sanitized, r.ID)
		var v struct{ Name string }
		require.NoError(t, json.Unmarshal(r.Raw, &v), r.ID)
		var wantName string
		require.NoError(t, json.Unmarshal([]byte(`"`+w.name+`"`), &wantName))
		require.Equal(t, wantName, v.Name, r.ID)
		require.True(t, utf8.Valid(r.Raw))
		require.NotContains(t, string(r.Raw), `\u0000"`)
	}
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
