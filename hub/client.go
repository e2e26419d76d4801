package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/llm-go/llm/internal/buildinfo"
)

// Defaults for the zero fields of a Client.
const (
	DefaultConcurrency = 8
	DefaultChunkSize   = 16 << 20
	DefaultMaxRetries  = 5
	DefaultRetryWait   = 500 * time.Millisecond
	DefaultReadTimeout = 60 * time.Second
)

// Client talks to a Hub endpoint and stores what it fetches in a Cache.
// Set the fields before the first call; a Client is then safe for concurrent
// use.
type Client struct {
	Endpoint string // e.g. "https://huggingface.co"; no trailing '/'
	// Token is sent as "Authorization: Bearer" to Endpoint's host only. Never
	// logged or printed.
	Token string
	Cache *Cache
	// HTTP sends the requests. Its redirect policy is ignored: the client
	// follows redirects itself so the token never leaves Endpoint's host.
	// Nil means a client with a tuned transport.
	HTTP      *http.Client
	UserAgent string // default "llm/{version} (go; os/arch)"
	// Offline resolves everything from the cache (HF_HUB_OFFLINE).
	Offline bool
	// Concurrency is how many files download at once, and how many
	// connections one Pull opens in all (DefaultConcurrency when 0).
	Concurrency int
	// ChunkSize is the size of the ranges one large file is split into when
	// connections are free (DefaultChunkSize when 0). Files under two chunks
	// stream over one connection.
	ChunkSize int64
	// MaxRetries bounds how often a failing request is retried without any
	// progress (DefaultMaxRetries when 0; negative for none). RetryWait is the
	// first backoff, doubled on each retry up to 10s (DefaultRetryWait when 0).
	MaxRetries int
	RetryWait  time.Duration
	// ReadTimeout aborts and retries a transfer that receives nothing for
	// this long (DefaultReadTimeout when 0).
	ReadTimeout time.Duration
	Progress    Progress     // nil for none
	Logger      *slog.Logger // nil for slog.Default()

	freeSpace func(dir string) (int64, error) // for tests; nil for the real one
}

// NewClient returns a Client configured from env (see LoadEnv).
func NewClient(env Env) (*Client, error) {
	cache, err := OpenCache(env.HubCache)
	if err != nil {
		return nil, err
	}
	if _, err := url.Parse(env.Endpoint); err != nil {
		return nil, fmt.Errorf("hub: HF_ENDPOINT %q: %w", env.Endpoint, err)
	}
	return &Client{
		Endpoint: strings.TrimRight(env.Endpoint, "/"),
		Token:    env.Token,
		Cache:    cache,
		Offline:  env.Offline,
	}, nil
}

// DefaultUserAgent names llm and its version.
func DefaultUserAgent() string {
	return fmt.Sprintf("llm/%s (%s; %s/%s; hf_hub-compatible)", buildinfo.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	t.ResponseHeaderTimeout = 60 * time.Second
	t.DisableCompression = true
	t.ReadBufferSize = 256 << 10
	t.WriteBufferSize = 64 << 10
	return t
}()

func (c *Client) httpClient() *http.Client {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport}
	}
	cp := *hc
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Client) concurrency() int {
	if c.Concurrency > 0 {
		return c.Concurrency
	}
	return DefaultConcurrency
}

func (c *Client) chunkSize() int64 {
	if c.ChunkSize > 0 {
		return c.ChunkSize
	}
	return DefaultChunkSize
}

func (c *Client) readTimeout() time.Duration {
	if c.ReadTimeout > 0 {
		return c.ReadTimeout
	}
	return DefaultReadTimeout
}

func (c *Client) maxRetries() int {
	switch {
	case c.MaxRetries < 0:
		return 0
	case c.MaxRetries == 0:
		return DefaultMaxRetries
	}
	return c.MaxRetries
}

// backoff waits before retry number attempt (0-based), or until ctx is done.
func (c *Client) backoff(ctx context.Context, attempt int) error {
	base := c.RetryWait
	if base <= 0 {
		base = DefaultRetryWait
	}
	d := base << min(attempt, 10)
	d = min(d, 10*time.Second)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sameOrigin reports whether u is on the endpoint's scheme, host and port,
// the only place the token may go.
func (c *Client) sameOrigin(u *url.URL) bool {
	e, err := url.Parse(c.Endpoint)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Scheme, e.Scheme) && strings.EqualFold(hostPort(u), hostPort(e))
}

func hostPort(u *url.URL) string {
	h, p := u.Hostname(), u.Port()
	if p == "" {
		switch u.Scheme {
		case "https":
			p = "443"
		case "http":
			p = "80"
		}
	}
	return net.JoinHostPort(h, p)
}

// request sends one request (no redirects followed), with the user agent,
// identity encoding, and the token when the URL is the endpoint's.
func (c *Client) request(ctx context.Context, method, rawURL string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	ua := c.UserAgent
	if ua == "" {
		ua = DefaultUserAgent()
	}
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Accept-Encoding", "identity")
	if c.Token != "" && c.sameOrigin(req.URL) {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return c.httpClient().Do(req)
}

// follow sends a request and follows redirects itself (at most 10). When
// crossHost is false it stops at the first redirect to another host and
// returns that response (as huggingface_hub does to read the Hub's headers
// before going to the CDN). first is the first response's header.
func (c *Client) follow(ctx context.Context, method, rawURL string, hdr http.Header, crossHost bool) (resp *http.Response, first http.Header, err error) {
	cur := rawURL
	for i := 0; ; i++ {
		resp, err = c.request(ctx, method, cur, hdr)
		if err != nil {
			return nil, first, err
		}
		if first == nil {
			first = resp.Header
		}
		if resp.StatusCode < 300 || resp.StatusCode > 399 || resp.StatusCode == http.StatusNotModified {
			return resp, first, nil
		}
		loc := resp.Header.Get("Location")
		if loc == "" {
			return resp, first, nil
		}
		base, _ := url.Parse(cur)
		next, err := base.Parse(loc)
		if err != nil {
			resp.Body.Close()
			return nil, first, fmt.Errorf("bad redirect %q: %w", loc, err)
		}
		if next.Scheme != "http" && next.Scheme != "https" {
			resp.Body.Close()
			return nil, first, fmt.Errorf("redirect to unsupported scheme %q", next.Scheme)
		}
		if !crossHost && !strings.EqualFold(hostPort(next), hostPort(base)) {
			return resp, first, nil
		}
		if i == 10 {
			resp.Body.Close()
			return nil, first, fmt.Errorf("%s %s: too many redirects", method, redactURL(rawURL))
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cur = next.String()
	}
}

// statusError turns a non-success response into an *HTTPError and closes
// its body.
func statusError(resp *http.Response) error {
	defer resp.Body.Close()
	e := &HTTPError{
		Method:     resp.Request.Method,
		URL:        redactURL(resp.Request.URL.String()),
		StatusCode: resp.StatusCode,
		Code:       resp.Header.Get("X-Error-Code"),
		Message:    resp.Header.Get("X-Error-Message"),
	}
	if e.Message == "" && resp.Request.Method != http.MethodHead {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		e.Message = sanitize(string(b))
	}
	return e
}

// redactURL drops the query (CDN URLs carry signatures) and any user info.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(bad url)"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// retryable reports whether err is worth another try: network errors,
// truncated bodies, 5xx, 429 and 408. Context ends are not.
func retryable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.retryable()
	}
	if errors.Is(err, ErrChecksum) || errors.Is(err, ErrInvalidName) || errors.Is(err, ErrDiskFull) {
		return false
	}
	return true
}

// isNetworkError reports whether err means the endpoint could not be reached
// at all (as opposed to an HTTP error status).
func isNetworkError(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &oe) || errors.As(err, &de) || (errors.As(err, &ne) && ne.Timeout())
}
