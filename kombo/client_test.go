package kombo_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

const testKey = "secret-test-key"

var (
	employees = kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}
	jobs      = kombo.Endpoint{Category: kombo.CategoryATS, Name: "jobs"}
)

// newEmulator serves an emulator on a real HTTP server and returns a client of it; base is the
// API's base URL.
func newEmulator(t *testing.T, opts komboemu.Options) (emu *komboemu.Emulator, c *kombo.Client, clk *komboemu.ManualClock) {
	emu, c, clk, _ = newEmulatorAt(t, opts)
	return emu, c, clk
}

func newEmulatorAt(t *testing.T, opts komboemu.Options) (*komboemu.Emulator, *kombo.Client, *komboemu.ManualClock, string) {
	t.Helper()
	clk := komboemu.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	opts.APIKey = testKey
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	emu := komboemu.New(opts)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(func() { srv.Close(); emu.Close() })
	c, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1", APIKey: testKey, Timeout: 5 * time.Second})
	require.NoError(t, err)
	return emu, c, clk, srv.URL + "/v1"
}

func collect(t *testing.T, c *kombo.Client, integration string, ep kombo.Endpoint, p kombo.ListParams) ([]kombo.Record, int) {
	t.Helper()
	var recs []kombo.Record
	pages := 0
	for page, err := range c.Pages(t.Context(), integration, ep, p) {
		require.NoError(t, err)
		recs = append(recs, page.Records...)
		pages++
	}
	return recs, pages
}

func ids(recs []kombo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func TestPaginationReturnsEveryRecordOnce(t *testing.T) {
	emu, c, _ := newEmulator(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "personio:a", Category: kombo.CategoryHRIS, Records: 620, Seed: 1}))
	truth, err := emu.Truth("personio:a", employees)
	require.NoError(t, err)

	recs, pages := collect(t, c, "personio:a", employees, kombo.ListParams{})
	require.Equal(t, 3, pages, "620 records in pages of 250")
	require.Len(t, recs, 620)
	want := make([]string, len(truth))
	for i, r := range truth {
		want[i] = r.ID
		require.JSONEq(t, string(r.Data), string(recs[i].Raw), "the record is kept exactly as sent")
	}
	require.Equal(t, want, ids(recs))
	for _, r := range recs {
		require.Len(t, r.ID, 24)
		require.NotEmpty(t, r.RemoteID)
		require.False(t, r.ChangedAt.IsZero())
		require.Nil(t, r.RemoteDeletedAt)
	}

	small, pages := collect(t, c, "personio:a", employees, kombo.ListParams{PageSize: 100})
	require.Equal(t, 7, pages)
	require.Equal(t, want, ids(small))
}

func TestDataIsDeterministicForASeed(t *testing.T) {
	emu1, c1, _ := newEmulator(t, komboemu.Options{})
	emu2, c2, _ := newEmulator(t, komboemu.Options{})
	for _, emu := range []*komboemu.Emulator{emu1, emu2} {
		require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "greenhouse:x", Category: kombo.CategoryATS, Records: 30, Seed: 42}))
	}
	a, _ := collect(t, c1, "greenhouse:x", jobs, kombo.ListParams{})
	b, _ := collect(t, c2, "greenhouse:x", jobs, kombo.ListParams{})
	require.Equal(t, len(a), len(b))
	for i := range a {
		require.JSONEq(t, string(a[i].Raw), string(b[i].Raw))
	}
}

func TestUpdatedAfterIncludesNestedChanges(t *testing.T) {
	emu, c, clk := newEmulator(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "personio:n", Category: kombo.CategoryHRIS, Records: 50, Seed: 3}))
	clk.Advance(time.Hour)
	since := clk.Now()
	clk.Advance(time.Minute)

	all, _ := collect(t, c, "personio:n", employees, kombo.ListParams{})
	changedEmployee := all[7]
	var emp struct {
		Employments []struct {
			ID string `json:"id"`
		} `json:"employments"`
		ChangedAt time.Time `json:"changed_at"`
	}
	require.NoError(t, json.Unmarshal(changedEmployee.Raw, &emp))
	require.NotEmpty(t, emp.Employments, "seeded employees have employments")

	// Only the employment changes; its employee's own fields do not.
	_, err := emu.Mutate("personio:n", komboemu.Mutation{
		Endpoint: kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employments"}, Op: komboemu.OpUpdate,
		ID: emp.Employments[0].ID, Fields: map[string]any{"job_title": "Chief Emulator"},
	})
	require.NoError(t, err)

	delta, _ := collect(t, c, "personio:n", employees, kombo.ListParams{UpdatedAfter: since})
	require.Equal(t, []string{changedEmployee.ID}, ids(delta), "the employee is in the delta because of its nested employment")
	require.True(t, delta[0].ChangedAt.Equal(emp.ChangedAt), "changed_at reflects own fields only, so it is no watermark")
	require.Contains(t, string(delta[0].Raw), "Chief Emulator")

	none, _ := collect(t, c, "personio:n", employees, kombo.ListParams{UpdatedAfter: clk.Now().Add(time.Second)})
	require.Empty(t, none)
}

func TestDeletionsNeedIncludeDeletedAndExpireAfterRetention(t *testing.T) {
	emu, c, clk := newEmulator(t, komboemu.Options{Retention: 14 * 24 * time.Hour})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "personio:d", Category: kombo.CategoryHRIS, Records: 20, Seed: 5}))
	clk.Advance(time.Hour)
	since := clk.Now()
	changes, err := emu.Mutate("personio:d", komboemu.Mutation{Endpoint: employees, Op: komboemu.OpDelete})
	require.NoError(t, err)
	gone := changes[0].ID

	hidden, _ := collect(t, c, "personio:d", employees, kombo.ListParams{UpdatedAfter: since})
	require.NotContains(t, ids(hidden), gone, "without include_deleted a delta never shows a deletion")

	shown, _ := collect(t, c, "personio:d", employees, kombo.ListParams{UpdatedAfter: since, IncludeDeleted: true})
	i := slices.Index(ids(shown), gone)
	require.GreaterOrEqual(t, i, 0)
	require.NotNil(t, shown[i].RemoteDeletedAt)
	require.True(t, shown[i].RemoteDeletedAt.Equal(since))

	clk.Advance(14 * 24 * time.Hour)
	after, _ := collect(t, c, "personio:d", employees, kombo.ListParams{IncludeDeleted: true})
	require.NotContains(t, ids(after), gone, "hard-removed after the retention period")
	require.Len(t, after, 19)
}

func TestFiltersAreCommaJoined(t *testing.T) {
	emu, c, _ := newEmulator(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "greenhouse:f", Category: kombo.CategoryATS, Records: 200, Seed: 9}))
	all, _ := collect(t, c, "greenhouse:f", jobs, kombo.ListParams{})
	open, _ := collect(t, c, "greenhouse:f", jobs, kombo.ListParams{Filters: map[string][]string{"statuses": {"OPEN"}}})
	openOrClosed, _ := collect(t, c, "greenhouse:f", jobs, kombo.ListParams{Filters: map[string][]string{"statuses": {"OPEN", "CLOSED"}}})
	require.NotEmpty(t, open)
	require.Greater(t, len(openOrClosed), len(open), "values of one filter are ORed")
	require.Greater(t, len(all), len(openOrClosed))
	for _, r := range open {
		require.Contains(t, string(r.Raw), `"status":"OPEN"`)
	}
	byID, _ := collect(t, c, "greenhouse:f", jobs, kombo.ListParams{Filters: map[string][]string{"ids": {all[3].ID, all[5].ID}}})
	require.ElementsMatch(t, []string{all[3].ID, all[5].ID}, ids(byID))

	q := kombo.ListParams{Filters: map[string][]string{"statuses": {"OPEN", "DRAFT"}, "job_codes": {"A"}}, UpdatedAfter: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}.Query()
	require.Equal(t, "OPEN,DRAFT", q.Get("statuses"))
	require.Equal(t, "2026-01-02T03:04:05.000Z", q.Get("updated_after"))
	require.Equal(t, "250", q.Get("page_size"))
}

func requireAPIError(t *testing.T, err error, class kombo.ErrorClass, retryable bool) *kombo.APIError {
	t.Helper()
	var apiErr *kombo.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, class, apiErr.Class, "%v", err)
	require.Equal(t, retryable, apiErr.Retryable(), "%v", err)
	require.Equal(t, retryable, kombo.IsRetryable(err))
	require.NotContains(t, err.Error(), testKey)
	return apiErr
}

func TestErrorClasses(t *testing.T) {
	emu, c, _, base := newEmulatorAt(t, komboemu.Options{})
	ctx := t.Context()
	spec := func(id string, s komboemu.IntegrationSpec) komboemu.IntegrationSpec {
		s.ID, s.Category, s.Records = id, kombo.CategoryHRIS, 3
		return s
	}
	require.NoError(t, emu.CreateIntegration(spec("p:409", komboemu.IntegrationSpec{FirstSyncPending: true})))
	require.NoError(t, emu.CreateIntegration(spec("p:503", komboemu.IntegrationSpec{FirstSyncPending: true, PendingStatus: 503})))
	require.NoError(t, emu.CreateIntegration(spec("p:legacy", komboemu.IntegrationSpec{FirstSyncPending: true, PendingStatus: 503, LegacyPendingBody: true})))
	require.NoError(t, emu.CreateIntegration(spec("p:ok", komboemu.IntegrationSpec{})))
	require.NoError(t, emu.CreateIntegration(spec("p:inactive", komboemu.IntegrationSpec{})))
	require.NoError(t, emu.SetState("p:inactive", kombo.IntegrationInactive))
	require.NoError(t, emu.CreateIntegration(spec("p:invalid", komboemu.IntegrationSpec{})))
	require.NoError(t, emu.SetState("p:invalid", kombo.IntegrationInvalid))
	absences := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "absences"}
	timesheets := kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "timesheets"}
	require.NoError(t, emu.DisableModel("p:ok", absences, false))
	require.NoError(t, emu.DisableModel("p:ok", timesheets, true))

	list := func(id string, ep kombo.Endpoint, p kombo.ListParams) error {
		_, err := c.ListPage(ctx, id, ep, p)
		return err
	}
	for _, id := range []string{"p:409", "p:503", "p:legacy"} {
		e := requireAPIError(t, list(id, employees, kombo.ListParams{}), kombo.ClassFirstSyncPending, false)
		if id == "p:legacy" {
			require.Empty(t, e.Code, "the old body has no code")
		} else {
			require.Equal(t, kombo.CodeSetupSyncPending, e.Code)
		}
	}
	requireAPIError(t, list("p:nope", employees, kombo.ListParams{}), kombo.ClassIntegrationUnavailable, false)
	requireAPIError(t, list("p:inactive", employees, kombo.ListParams{}), kombo.ClassIntegrationUnavailable, false)
	requireAPIError(t, list("p:invalid", employees, kombo.ListParams{}), kombo.ClassAuth, false)
	requireAPIError(t, list("p:ok", timesheets, kombo.ListParams{}), kombo.ClassAuth, false)
	requireAPIError(t, list("p:ok", absences, kombo.ListParams{}), kombo.ClassModelUnavailable, false)
	requireAPIError(t, list("p:ok", jobs, kombo.ListParams{}), kombo.ClassInvalidInput, false)

	bad, err := kombo.New(kombo.Options{BaseURL: base, APIKey: "wrong"})
	require.NoError(t, err)
	_, err = bad.ListPage(ctx, "p:ok", employees, kombo.ListParams{})
	requireAPIError(t, err, kombo.ClassAuth, false)

	emu.QueueFaults(komboemu.FaultRateLimitRetry, komboemu.FaultRateLimit, komboemu.FaultConcurrencyLimit,
		komboemu.FaultServerError, komboemu.FaultRemoteUnavailable, komboemu.FaultBareGateway, komboemu.FaultTimeoutTask,
		komboemu.FaultUnknownRemote)
	e := requireAPIError(t, list("p:ok", employees, kombo.ListParams{}), kombo.ClassRateLimited, true)
	require.Equal(t, 2*time.Second, e.RetryAfter)
	e = requireAPIError(t, list("p:ok", employees, kombo.ListParams{}), kombo.ClassRateLimited, true)
	require.Zero(t, e.RetryAfter, "no header, no delay: the caller backs off on its own")
	requireAPIError(t, list("p:ok", employees, kombo.ListParams{}), kombo.ClassRateLimited, true)
	requireAPIError(t, list("p:ok", employees, kombo.ListParams{}), kombo.ClassUnavailable, true)
	requireAPIError(t, list("p:ok", employees, kombo.ListParams{}), kombo.ClassUnavailable, true)
	e = requireAPIError(t, list("p:ok", employees, kombo.ListParams{}), kombo.ClassUnavailable, true)
	require.Empty(t, e.Code, "a load balancer's 503 has no envelope")
	requireAPIError(t, list("p:ok", employees, kombo.ListParams{}), kombo.ClassUnavailable, true)
	requireAPIError(t, list("p:ok", employees, kombo.ListParams{}), kombo.ClassUnknown, true)

	_, err = c.ListPage(ctx, "p:ok", employees, kombo.ListParams{PageSize: 251})
	require.ErrorContains(t, err, "page size 251", "checked before sending")
}

func TestPageSizeAbove250IsRejectedByTheAPI(t *testing.T) {
	emu, _, _ := newEmulator(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:x", Category: kombo.CategoryHRIS, Records: 1}))
	srv := httptest.NewServer(emu.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/hris/employees?page_size=251", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("X-Integration-Id", "p:x")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, kombo.CodeInputInvalid, body.Error.Code)
}

func TestDroppedConnectionIsARetryableTransportError(t *testing.T) {
	emu, c, _ := newEmulator(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:drop", Category: kombo.CategoryHRIS, Records: 1}))
	emu.QueueFaults(komboemu.FaultDrop)
	_, err := c.ListPage(t.Context(), "p:drop", employees, kombo.ListParams{})
	var te *kombo.TransportError
	require.ErrorAs(t, err, &te)
	require.True(t, kombo.IsRetryable(err))
	require.NotContains(t, err.Error(), "page_size", "no URL with query in errors")
}

func TestTimeoutAndCancellation(t *testing.T) {
	emu, _, _ := newEmulator(t, komboemu.Options{})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:slow", Category: kombo.CategoryHRIS, Records: 1}))
	emu.SetFaults(komboemu.Faults{Latency: 2 * time.Second})
	srv := httptest.NewServer(emu.Handler())
	defer srv.Close()
	c, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1", APIKey: testKey, Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	_, err = c.ListPage(t.Context(), "p:slow", employees, kombo.ListParams{})
	var te *kombo.TransportError
	require.ErrorAs(t, err, &te)
	require.True(t, te.Timeout())
	require.True(t, kombo.IsRetryable(err))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.ListPage(ctx, "p:slow", employees, kombo.ListParams{})
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, kombo.IsRetryable(err), "a cancelled fetch is not retried")
}

func TestRejectedCursorIsFlagged(t *testing.T) {
	emu, c, clk := newEmulator(t, komboemu.Options{CursorTTL: 10 * time.Minute})
	require.NoError(t, emu.CreateIntegration(komboemu.IntegrationSpec{ID: "p:cur", Category: kombo.CategoryHRIS, Records: 300}))
	first, err := c.ListPage(t.Context(), "p:cur", employees, kombo.ListParams{})
	require.NoError(t, err)
	require.NotEmpty(t, first.Next)

	// A cursor must be sent with the same filters.
	_, err = c.ListPage(t.Context(), "p:cur", employees, kombo.ListParams{Cursor: first.Next, IncludeDeleted: true})
	e := requireAPIError(t, err, kombo.ClassInvalidInput, false)
	require.True(t, e.CursorRejected)

	clk.Advance(11 * time.Minute)
	_, err = c.ListPage(t.Context(), "p:cur", employees, kombo.ListParams{Cursor: first.Next})
	e = requireAPIError(t, err, kombo.ClassInvalidInput, false)
	require.True(t, e.CursorRejected, "expired")

	fresh, err := c.ListPage(t.Context(), "p:cur", employees, kombo.ListParams{})
	require.NoError(t, err)
	emu.ExpireCursors()
	_, err = c.ListPage(t.Context(), "p:cur", employees, kombo.ListParams{Cursor: fresh.Next})
	e = requireAPIError(t, err, kombo.ClassInvalidInput, false)
	require.True(t, e.CursorRejected)
}

func TestRequestsCarryAuthIntegrationAndUserAgent(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Write([]byte(`{"status":"success","data":{"next":null,"results":[]}}`))
	}))
	defer srv.Close()
	c, err := kombo.New(kombo.Options{BaseURL: srv.URL + "/v1/", APIKey: "k-1", UserAgent: "kombosync/test"})
	require.NoError(t, err)
	page, err := c.ListPage(t.Context(), "personio:CBNMt7dSNCzBdnRTx87dev4E", employees, kombo.ListParams{})
	require.NoError(t, err)
	require.Empty(t, page.Records)
	require.Empty(t, page.Next)
	require.Equal(t, "Bearer k-1", got.Get("Authorization"))
	require.Equal(t, "personio:CBNMt7dSNCzBdnRTx87dev4E", got.Get("X-Integration-Id"))
	require.Equal(t, "kombosync/test", got.Get("User-Agent"))
	require.NotContains(t, c.String(), "k-1")

	_, err = kombo.New(kombo.Options{APIKey: ""})
	require.ErrorContains(t, err, "API key is required")
	_, err = kombo.New(kombo.Options{APIKey: "k", BaseURL: "ftp://x"})
	require.ErrorContains(t, err, "http(s) URL")
}

// A body that is not a page is a DecodeError (the same on every attempt); a page holding a record
// kombosync cannot take is not an error at all (see TestDecodePageRejectsWhatItCannotTakeAndKeepsTheRest).
func TestMalformedPagesAreErrors(t *testing.T) {
	for name, body := range map[string]string{
		"not json":     `<html>`,
		"error status": `{"status":"error"}`,
		"cut short":    `{"status":"success","data":{"next":null,"results":[{"id":"x"`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
			defer srv.Close()
			c, err := kombo.New(kombo.Options{BaseURL: srv.URL, APIKey: "k"})
			require.NoError(t, err)
			_, err = c.ListPage(t.Context(), "x", employees, kombo.ListParams{})
			var de *kombo.DecodeError
			require.ErrorAs(t, err, &de)
			require.False(t, kombo.IsRetryable(err))
		})
	}
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	when := time.Now().Add(90 * time.Second).UTC()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", when.Format(http.TimeFormat))
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"status":"error","error":{"code":"REMOTE.RATE_LIMIT_EXCEEDED","title":null,"message":"slow down","log_url":null}}`))
	}))
	defer srv.Close()
	c, err := kombo.New(kombo.Options{BaseURL: srv.URL, APIKey: "k"})
	require.NoError(t, err)
	_, err = c.ListPage(t.Context(), "x", employees, kombo.ListParams{})
	e := requireAPIError(t, err, kombo.ClassRateLimited, true)
	require.InDelta(t, 90, e.RetryAfter.Seconds(), 2)
}
