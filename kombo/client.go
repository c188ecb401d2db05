package kombo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Base URLs of Kombo's API.
const (
	BaseURLEU = "https://api.kombo.dev/v1"
	BaseURLUS = "https://api.us.kombo.dev/v1"
)

// Page sizes: Kombo defaults to 100 and accepts at most 250; a sync wants few large pages.
const (
	MaxPageSize     = 250
	DefaultPageSize = MaxPageSize
)

// maxPageBytes bounds one page's body: 250 large nested records stay far below it.
const maxPageBytes = 256 << 20

// Options configure a Client.
type Options struct {
	BaseURL string // BaseURLEU when empty
	APIKey  string
	// HTTPClient sends the requests; a client with Timeout is made when nil.
	HTTPClient *http.Client
	Timeout    time.Duration // per request, when HTTPClient is nil; 60 s when zero
	UserAgent  string        // "kombosync" when empty
	Now        func() time.Time
	// Pace, when set, is called before every request and may wait: the fleet's request budget
	// (KOMBO_MAX_RPS). An error from it is the request's.
	Pace func(context.Context) error
}

// Client calls Kombo's API. It is safe for concurrent use. It never logs, and its String
// and errors never contain the API key.
type Client struct {
	base      *url.URL
	apiKey    string
	http      *http.Client
	userAgent string
	now       func() time.Time
	pace      func(context.Context) error
}

// New checks the options and returns a client.
func New(opts Options) (*Client, error) {
	if opts.BaseURL == "" {
		opts.BaseURL = BaseURLEU
	}
	base, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("kombo: base URL must be an http(s) URL, not %q", opts.BaseURL)
	}
	if opts.APIKey == "" {
		return nil, errors.New("kombo: API key is required")
	}
	c := &Client{base: base, apiKey: opts.APIKey, http: opts.HTTPClient, userAgent: opts.UserAgent, now: opts.Now, pace: opts.Pace}
	if c.http == nil {
		timeout := opts.Timeout
		if timeout == 0 {
			timeout = 60 * time.Second
		}
		c.http = &http.Client{Timeout: timeout}
	}
	if c.userAgent == "" {
		c.userAgent = "kombosync"
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

func (c *Client) String() string { return "kombo.Client(" + c.base.String() + ")" }

// ListParams are the query parameters of a list endpoint.
type ListParams struct {
	PageSize int    // DefaultPageSize when zero
	Cursor   string // from the previous page's Next
	// UpdatedAfter limits the answer to records whose own or nested data changed since then;
	// the zero time asks for every record.
	UpdatedAfter             time.Time
	IncludeDeleted           bool
	IgnoreUnsupportedFilters bool
	// Filters are endpoint filters; several values of one filter are sent comma-joined
	// (Kombo ORs them), different filters are ANDed.
	Filters map[string][]string
}

// Query encodes the parameters as Kombo expects them.
func (p ListParams) Query() url.Values {
	q := url.Values{}
	size := p.PageSize
	if size == 0 {
		size = DefaultPageSize
	}
	q.Set("page_size", strconv.Itoa(size))
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	if !p.UpdatedAfter.IsZero() {
		q.Set("updated_after", FormatTime(p.UpdatedAfter))
	}
	if p.IncludeDeleted {
		q.Set("include_deleted", "true")
	}
	if p.IgnoreUnsupportedFilters {
		q.Set("ignore_unsupported_filters", "true")
	}
	keys := make([]string, 0, len(p.Filters))
	for k := range p.Filters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if vs := p.Filters[k]; len(vs) > 0 {
			q.Set(k, strings.Join(vs, ","))
		}
	}
	return q
}

// FormatTime writes a time as Kombo's API does: UTC with milliseconds ("2026-01-02T03:04:05.000Z").
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// ListPage fetches one page of endpoint ep for an integration.
func (c *Client) ListPage(ctx context.Context, integrationID string, ep Endpoint, p ListParams) (*Page, error) {
	if p.PageSize < 0 || p.PageSize > MaxPageSize {
		return nil, fmt.Errorf("kombo: page size %d outside 1..%d", p.PageSize, MaxPageSize)
	}
	u := *c.base
	u.Path += ep.URLPath()
	u.RawQuery = p.Query().Encode()
	body, err := c.get(ctx, u.String(), integrationID)
	if err != nil {
		var apiErr *APIError
		if p.Cursor != "" && errors.As(err, &apiErr) && apiErr.Class == ClassInvalidInput {
			apiErr.CursorRejected = true
		}
		return nil, fmt.Errorf("list %s: %w", ep, err)
	}
	page, err := decodePage(body)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", ep, err)
	}
	return page, nil
}

// Pages iterates over the pages of ep, starting at p.Cursor (the first page when empty). It
// stops after the last page or at the first error, which it yields. Each page's Next is the
// cursor to resume from after that page.
func (c *Client) Pages(ctx context.Context, integrationID string, ep Endpoint, p ListParams) iter.Seq2[*Page, error] {
	return func(yield func(*Page, error) bool) {
		for {
			page, err := c.ListPage(ctx, integrationID, ep, p)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page, nil) || page.Next == "" {
				return
			}
			p.Cursor = page.Next
		}
	}
}

// get performs a GET and returns the body of a 2xx answer; other answers become *APIError,
// failures without a complete answer *TransportError.
func (c *Client) get(ctx context.Context, rawURL, integrationID string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, rawURL, integrationID, nil)
}

// do sends one request (a JSON body when body is not nil) and returns the body of a 2xx
// answer, as get describes. Every request, whatever its method, counts against the budget.
func (c *Client) do(ctx context.Context, method, rawURL, integrationID string, body []byte) ([]byte, error) {
	answer, _, err := c.doHeaders(ctx, method, rawURL, integrationID, body)
	return answer, err
}

// doHeaders is do that also returns the answer's headers (nil without an answer).
func (c *Client) doHeaders(ctx context.Context, method, rawURL, integrationID string, body []byte) ([]byte, http.Header, error) {
	if c.pace != nil {
		if err := c.pace(ctx); err != nil {
			return nil, nil, err
		}
	}
	var reqBody io.Reader
	if body != nil {
		reqBody = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, reqBody)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if integrationID != "" {
		req.Header.Set("X-Integration-Id", integrationID)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, &TransportError{Op: method + " " + req.URL.Path, Err: stripURL(err)}
	}
	defer resp.Body.Close()
	answer, err := readBody(resp)
	if err != nil {
		if ctx.Err() != nil {
			return nil, resp.Header, ctx.Err()
		}
		return nil, resp.Header, &TransportError{Op: "read " + req.URL.Path, Err: err}
	}
	if len(answer) > maxPageBytes {
		return nil, resp.Header, fmt.Errorf("kombo: answer of %s larger than %d bytes", req.URL.Path, maxPageBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.Header, parseAPIError(resp, answer, c.now())
	}
	return answer, resp.Header, nil
}

// readBody reads an answer of at most maxPageBytes+1 bytes. With a Content-Length, into one
// buffer of that size: io.ReadAll's doubling would allocate twice a huge page's size.
func readBody(resp *http.Response) ([]byte, error) {
	r := io.LimitReader(resp.Body, maxPageBytes+1)
	if n := resp.ContentLength; n > 0 && n <= maxPageBytes {
		var buf bytes.Buffer
		buf.Grow(int(n) + bytes.MinRead)
		_, err := buf.ReadFrom(r)
		return buf.Bytes(), err
	}
	return io.ReadAll(r)
}

// stripURL drops the request URL (with its query) that net/http puts into errors; the path is
// already in the message.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
