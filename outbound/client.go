package outbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options bound what a Client may reach and how long it waits.
type Options struct {
	// AllowHTTP lets a subscription use http:// (the demo and tests); https only otherwise.
	AllowHTTP bool
	// AllowPrivate lets deliveries reach loopback, private, link-local and other non-public
	// addresses (the demo and tests). Otherwise every address a name resolves to is checked when
	// the connection is made, so a name that resolves to an inside address is refused too.
	AllowPrivate bool
	// Timeout bounds one delivery, connection to last byte read; 10 s when zero.
	Timeout time.Duration
	// MaxResponseBytes is how much of an answer is read (the rest is dropped); 64 KiB when zero.
	MaxResponseBytes int64
	UserAgent        string
}

// Client delivers signed webhooks. It never follows redirects and never uses a proxy from the
// environment, so the address checked is the address reached.
type Client struct {
	opts Options
	http *http.Client
}

// NewClient returns a client with those bounds.
func NewClient(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 64 << 10
	}
	if o.UserAgent == "" {
		o.UserAgent = "kombosync-webhooks"
	}
	dialer := &net.Dialer{Timeout: o.Timeout, Control: func(_, address string, _ syscall.RawConn) error {
		if o.AllowPrivate {
			return nil
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip, err := netip.ParseAddr(host); err != nil || !public(ip) {
			return fmt.Errorf("%w: %s", ErrPrivateAddress, host)
		}
		return nil
	}}
	transport := &http.Transport{DialContext: dialer.DialContext, Proxy: nil, TLSHandshakeTimeout: o.Timeout,
		ResponseHeaderTimeout: o.Timeout, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	return &Client{opts: o, http: &http.Client{Transport: transport, Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// ErrPrivateAddress: the URL's host is, or resolves to, an address that is not public.
var ErrPrivateAddress = errors.New("not a public address")

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), not public either.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip)
}

// CheckURL says whether a subscription's URL may be used: https (or http when allowed), a host,
// no user information, and not a literal address that is not public.
func (c *Client) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "https" && !(u.Scheme == "http" && c.opts.AllowHTTP):
		if c.opts.AllowHTTP {
			return fmt.Errorf("the URL must be https or http, not %q", u.Scheme)
		}
		return fmt.Errorf("the URL must be https, not %q", u.Scheme)
	case u.Hostname() == "":
		return errors.New("the URL has no host")
	case u.User != nil:
		return errors.New("the URL must not carry a user or password")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !c.opts.AllowPrivate && !public(ip) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, u.Hostname())
	}
	return nil
}

// Outcome is what one delivery attempt came to.
type Outcome struct {
	Status    int  // the HTTP status; 0 when there was no answer
	Delivered bool // a 2xx
	// Gone: 410, the receiver asks to be unsubscribed.
	Gone bool
	// RetryAfter is the receiver's Retry-After (429 or 503), zero when it sent none.
	RetryAfter time.Duration
	Error      string // why it was not delivered, for the operator (no body content)
}

// Deliver POSTs one signed event. The answer's body is read up to MaxResponseBytes and dropped.
func (c *Client) Deliver(ctx context.Context, rawURL string, keys [][]byte, id string, at time.Time, body []byte) Outcome {
	if err := c.CheckURL(rawURL); err != nil {
		return Outcome{Error: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Outcome{Error: "bad request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	SetHeaders(req.Header, keys, id, at, body)
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the subscription's, known already
		}
		return Outcome{Error: err.Error()}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.opts.MaxResponseBytes))
	out := Outcome{Status: resp.StatusCode, Delivered: resp.StatusCode >= 200 && resp.StatusCode <= 299, Gone: resp.StatusCode == http.StatusGone}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		out.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	if !out.Delivered {
		out.Error = "answered " + strconv.Itoa(resp.StatusCode)
	}
	return out
}

// retryAfter reads Retry-After: seconds or an HTTP date; zero when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
