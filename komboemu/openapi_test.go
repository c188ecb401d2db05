package komboemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

// Kombo's OpenAPI document is 3.1, whose schemas are JSON Schema 2020-12, so a 2020-12 validator
// checks the emulator against it. Two adaptations, made here and nowhere else:
//   - the webhook schemas still use OpenAPI 3.0's `nullable: true`, which 2020-12 ignores; it is
//     rewritten to a type that admits null ({"type": "string", "nullable": true} → {"type":
//     ["string", "null"]});
//   - `pattern`s use ECMA-262 lookaheads, which Go's regexp lacks, so patterns run on regexp2
//     in ECMAScript mode;
//   - date-only and time-only fields (absences' start_date, start_time, …) are typed
//     {"type": "null"} in the published document, an artefact of its generator: their
//     descriptions say `yyyy-MM-dd` and `HH:mm:ss`, and Kombo sends such strings
//     (API-NOTES.md). They are rewritten to null or a string of that format.
const openapiURL = "https://kombo.dev/openapi.json"

var (
	compilerOnce sync.Once
	compiler     *jsonschema.Compiler
	compilerErr  error
)

func schemaAt(t *testing.T, pointer string) *jsonschema.Schema {
	t.Helper()
	compilerOnce.Do(func() {
		f, err := os.Open("../kombo/testdata/openapi.json")
		if err != nil {
			compilerErr = err
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			compilerErr = err
			return
		}
		rewriteNullable(doc)
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		c.UseRegexpEngine(func(s string) (jsonschema.Regexp, error) {
			re, err := regexp2.Compile(s, regexp2.ECMAScript)
			if err != nil {
				return nil, err
			}
			return ecmaRegexp{re}, nil
		})
		compilerErr = c.AddResource(openapiURL, doc)
		compiler = c
	})
	require.NoError(t, compilerErr)
	sch, err := compiler.Compile(openapiURL + "#" + pointer)
	require.NoError(t, err, pointer)
	return sch
}

type ecmaRegexp struct{ re *regexp2.Regexp }

func (r ecmaRegexp) String() string { return r.re.String() }
func (r ecmaRegexp) MatchString(s string) bool {
	ok, err := r.re.MatchString(s)
	return ok && err == nil
}

func rewriteNullable(v any) {
	switch v := v.(type) {
	case map[string]any:
		if n, ok := v["nullable"].(bool); ok {
			delete(v, "nullable")
			if t, ok := v["type"].(string); ok && n {
				v["type"] = []any{t, "null"}
			}
		}
		if t, _ := v["type"].(string); t == "null" {
			desc, _ := v["description"].(string)
			switch {
			case strings.Contains(desc, "yyyy-MM-dd"):
				v["type"], v["pattern"] = []any{"string", "null"}, `^\d{4}-\d{2}-\d{2}$`
			case strings.Contains(desc, "HH:mm:ss"):
				v["type"], v["pattern"] = []any{"string", "null"}, `^\d{2}:\d{2}:\d{2}$`
			}
		}
		for _, x := range v {
			rewriteNullable(x)
		}
	case []any:
		for _, x := range v {
			rewriteNullable(x)
		}
	}
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func validate(t *testing.T, sch *jsonschema.Schema, body []byte, what string) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	require.NoError(t, err, what)
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("%s does not match Kombo's OpenAPI document:\n%v\nbody: %.2000s", what, err, body)
	}
}

// webhookSink records the bodies of webhooks it receives.
type webhookSink struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, b)
	s.mu.Unlock()
}

func (s *webhookSink) all() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

func get(t *testing.T, srv *httptest.Server, path, integration string) (int, []byte) {
	t.Helper()
	return call(t, srv, http.MethodGet, path, integration, "")
}

// call sends an authorized API request (a JSON body when body is not empty) and returns the
// answer's status and body.
func call(t *testing.T, srv *httptest.Server, method, path, integration, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if integration != "" {
		req.Header.Set("X-Integration-Id", integration)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func TestEveryServedEndpointMatchesTheOpenAPIDocument(t *testing.T) {
	emu, srv, _ := start(t, komboemu.Options{})
	for _, cat := range []kombo.Category{kombo.CategoryHRIS, kombo.CategoryATS} {
		id := "tool:" + string(cat)
		require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: cat, Records: 60, Seed: 7}))
		// Deletions, restores and nested changes, so nullable fields show both ways.
		_, err := emu.MutateRandom(id, 300)
		require.NoError(t, err)
	}
	for _, ep := range kombo.DefaultEndpoints() {
		t.Run(ep.String(), func(t *testing.T) {
			sch := schemaAt(t, "/paths/"+pointerEscape(ep.URLPath())+"/get/responses/200/content/application~1json/schema")
			path := ep.URLPath() + "?page_size=250&include_deleted=true"
			pages, records := 0, 0
			for path != "" {
				status, body := get(t, srv, "/v1"+path, "tool:"+string(ep.Category))
				require.Equal(t, http.StatusOK, status, "%s", body)
				validate(t, sch, body, ep.String())
				var page struct {
					Data struct {
						Next    *string           `json:"next"`
						Results []json.RawMessage `json:"results"`
					} `json:"data"`
				}
				require.NoError(t, json.Unmarshal(body, &page))
				records += len(page.Data.Results)
				pages++
				path = ""
				if page.Data.Next != nil {
					path = ep.URLPath() + "?page_size=250&include_deleted=true&cursor=" + *page.Data.Next
				}
			}
			require.NotZero(t, records, "the emulator must serve records for %s", ep)
		})
	}
}

func TestErrorAnswersMatchTheOpenAPIDocument(t *testing.T) {
	emu, srv, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:pending", Category: kombo.CategoryHRIS, Records: 1, FirstSyncPending: true}))
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:ok", Category: kombo.CategoryHRIS, Records: 1}))
	// The endpoints' default response is {"$ref": "#/components/responses/ErrorResponseHRIS"}.
	sch := schemaAt(t, "/components/responses/ErrorResponseHRIS/content/application~1json/schema")
	cases := []struct {
		path, integration string
		status            int
	}{
		{"/v1/hris/employees", "p:pending", 409},
		{"/v1/hris/employees", "p:nope", 404},
		{"/v1/hris/employees?page_size=251", "p:ok", 400},
		{"/v1/hris/employees?cursor=garbage", "p:ok", 400},
		{"/v1/ats/jobs", "p:ok", 400},
	}
	for _, c := range cases {
		status, body := get(t, srv, c.path, c.integration)
		require.Equal(t, c.status, status, "%s: %s", c.path, body)
		validate(t, sch, body, fmt.Sprintf("%d answer of %s", status, c.path))
	}
	emu.QueueFaults(komboemu.FaultRateLimitRetry, komboemu.FaultServerError, komboemu.FaultRemoteUnavailable)
	for _, want := range []int{429, 500, 503} {
		status, body := get(t, srv, "/v1/hris/employees", "p:ok")
		require.Equal(t, want, status)
		validate(t, sch, body, fmt.Sprintf("%d fault", want))
	}
}

func TestWebhookBodiesMatchTheOpenAPIDocument(t *testing.T) {
	emu, _, sink := start(t, komboemu.Options{})
	id := "personio:webhooks"
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 5, Notify: true, FirstSyncPending: true}))
	require.NoError(t, emu.FinishFirstSync(id))
	_, err := emu.MutateRandom(id, 5)
	require.NoError(t, err)
	require.NoError(t, emu.SendSyncFinished(id, kombo.SyncAuthenticationFailed))
	require.NoError(t, emu.SetState(id, kombo.IntegrationInactive))
	require.NoError(t, emu.DeleteIntegration(id))
	emu.SendConnectionFlowFailed("personio", kombo.CategoryHRIS)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, emu.WaitWebhooks(ctx))

	seen := map[string]bool{}
	for _, body := range sink.all() {
		var env kombo.Event
		require.NoError(t, json.Unmarshal(body, &env))
		seen[env.Type] = true
		sch := schemaAt(t, "/webhooks/"+env.Type+"/post/requestBody/content/application~1json/schema")
		validate(t, sch, body, env.Type+" webhook")
	}
	for _, typ := range []string{kombo.EventIntegrationCreated, kombo.EventSyncFinished, kombo.EventDataChanged,
		kombo.EventIntegrationStateChanged, kombo.EventIntegrationDeleted, kombo.EventConnectionFlowFailed} {
		require.True(t, seen[typ], "no %s webhook was sent", typ)
	}
}

// GET /integrations/{integration_id} answers as Kombo's document says, for every state, and
// 404 PLATFORM.INTEGRATION_NOT_FOUND for an integration that is gone.
func TestIntegrationAnswerMatchesTheOpenAPIDocument(t *testing.T) {
	emu, srv, _ := start(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "personio:state", Category: kombo.CategoryHRIS, Records: 1}))
	sch := schemaAt(t, "/paths/~1integrations~1{integration_id}/get/responses/200/content/application~1json/schema")
	for _, state := range []string{kombo.IntegrationInactive, kombo.IntegrationInvalid, kombo.IntegrationActive} {
		require.NoError(t, emu.SetStateSilently("personio:state", state))
		status, body := get(t, srv, "/v1/integrations/personio:state", "")
		require.Equal(t, http.StatusOK, status, "%s", body)
		validate(t, sch, body, "integration "+state)
		var answer struct{ Data struct{ Status string } }
		require.NoError(t, json.Unmarshal(body, &answer))
		require.Equal(t, state, answer.Data.Status)
	}
	require.NoError(t, emu.DeleteIntegration("personio:state"))
	status, body := get(t, srv, "/v1/integrations/personio:state", "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, string(body), kombo.CodeIntegrationNotFound)
}
