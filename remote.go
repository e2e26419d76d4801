package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llm-go/llm/sampler"
	"github.com/llm-go/llm/tokenizer"
)

// Errors of a RemoteModel that callers can test with errors.Is.
var (
	// ErrRemote is wrapped by every error that comes from the endpoint
	// or the way to it, whatever failed: the connection, the server, or
	// the answer (mostly a *RemoteError). Invalid options and a closed
	// RemoteModel (ErrClosed) are not remote failures.
	ErrRemote = errors.New("llm: remote model failed")
	// ErrRemoteProtocol means the endpoint answered, but not as the OpenAI
	// API does: a body that is not the expected JSON, a malformed event
	// stream, a stream cut off before its end, or no choices.
	ErrRemoteProtocol = errors.New("llm: malformed answer from the remote model")
)

// RemoteError is the error of a request to a remote model. It matches
// ErrRemote, and its cause (Err) where there is one: a connection error
// (errors.Is(err, syscall.ECONNREFUSED)), context.DeadlineExceeded for a
// timeout, context.Canceled, or ErrRemoteProtocol.
type RemoteError struct {
	// URL is the endpoint, without credentials or query.
	URL string
	// StatusCode is the HTTP status of the last attempt; 0 when the
	// failure was not an HTTP error status (no connection, a timeout, a
	// malformed answer, an error reported inside a stream).
	StatusCode int
	// Status is the HTTP status line, such as "429 Too Many Requests".
	Status string
	// Message is the server's own error message, when it sent one.
	Message string
	// Type and Code are the "type" and "code" of the server's OpenAI
	// error object, when it sent them.
	Type, Code string
	// Attempts is how many times the request was sent.
	Attempts int
	// RetryAfter is the wait the server asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Err is the cause: a connection or timeout error, the context's
	// error, or a protocol error; nil for a plain HTTP error status.
	Err error
}

// Error says which endpoint failed, how, after how many attempts, and
// what the server said.
func (e *RemoteError) Error() string {
	var b strings.Builder
	b.WriteString("llm: remote ")
	b.WriteString(e.URL)
	b.WriteString(": ")
	// A cause with a head ("cannot connect") puts the attempts after it.
	headed, _ := e.Err.(*markedError)
	if headed != nil && headed.head == "" {
		headed = nil
	}
	switch {
	case e.StatusCode != 0 && e.Status != "":
		b.WriteString(e.Status)
	case e.StatusCode != 0:
		fmt.Fprintf(&b, "%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	case headed != nil:
		b.WriteString(headed.head)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("request failed")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.StatusCode == 0 && headed != nil {
		b.WriteString(": ")
		b.WriteString(headed.detail)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.StatusCode != 0 && e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns ErrRemote and the cause, for errors.Is and errors.As.
func (e *RemoteError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrRemote}
	}
	return []error{ErrRemote, e.Err}
}

// markedError is an error whose text is msg (or head: detail) and which
// matches mark (a sentinel) and err, without repeating their texts.
type markedError struct {
	msg          string
	head, detail string // for RemoteError to put its attempts between
	mark         error
	err          error
}

func (e *markedError) Error() string {
	if e.head != "" {
		return e.head + ": " + e.detail
	}
	return e.msg
}

func (e *markedError) Unwrap() []error {
	if e.err == nil {
		return []error{e.mark}
	}
	return []error{e.mark, e.err}
}

// protocolErrorf is a malformed answer: it matches ErrRemoteProtocol.
func protocolErrorf(cause error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return &markedError{msg: msg, mark: ErrRemoteProtocol, err: cause}
}

// remoteConfig is what RemoteOptions set.
type remoteConfig struct {
	model       string
	embedModel  string
	apiKey      string
	keyEnv      []string
	client      *http.Client
	timeout     time.Duration
	attempts    int
	backoffBase time.Duration
	backoffMax  time.Duration
	header      http.Header
}

// RemoteOption configures Remote.
type RemoteOption func(*remoteConfig)

// RemoteModelName names the model requests ask for (the "model" field),
// such as "meta-llama/Llama-3.1-8B-Instruct" on Hugging Face's router or
// "gpt-4o-mini" on OpenAI. Without it, the first request asks the
// endpoint's /models and uses the model it lists when it lists exactly
// one, as llama-server and llm serve do.
func RemoteModelName(name string) RemoteOption { return func(c *remoteConfig) { c.model = name } }

// RemoteEmbeddingModel names the model Embed asks for (default: the
// RemoteModelName).
func RemoteEmbeddingModel(name string) RemoteOption {
	return func(c *remoteConfig) { c.embedModel = name }
}

// RemoteAPIKey sends key as a bearer token (Authorization: Bearer key).
// The key is never logged nor part of an error, and a RemoteModel prints
// without it.
func RemoteAPIKey(key string) RemoteOption { return func(c *remoteConfig) { c.apiKey = key } }

// RemoteAPIKeyFromEnv reads the API key from the first of these
// environment variables that is set and not empty, such as "HF_TOKEN" or
// "OPENAI_API_KEY", when Remote is called. When none is set, requests go
// without a key (as a local llm serve or llama-server accepts). An
// explicit RemoteAPIKey wins.
func RemoteAPIKeyFromEnv(names ...string) RemoteOption {
	return func(c *remoteConfig) { c.keyEnv = append(c.keyEnv, names...) }
}

// RemoteHTTPClient sets the HTTP client (default: a client of its own
// with Go's default transport settings, whose idle connections Close
// closes).
func RemoteHTTPClient(client *http.Client) RemoteOption {
	return func(c *remoteConfig) { c.client = client }
}

// RemoteTimeout limits each attempt of a request (default: none beyond
// the caller's context): a Generate, Chat or Embed attempt must be
// answered in full within d, and a stream must start within d and then
// deliver each event within d of the one before. An attempt that times
// out is retried like a failed connection; the error matches
// context.DeadlineExceeded.
func RemoteTimeout(d time.Duration) RemoteOption { return func(c *remoteConfig) { c.timeout = d } }

// RemoteRetries sets how many times a request is sent at most (default 4:
// one try and three retries) and the backoff between tries: base, doubled
// each time up to max, with jitter (default 500ms and 30s). A request is
// retried after a connection error, a timeout, or the statuses 408, 409,
// 429 and 5xx other than 501, never after the caller's context ends and
// never in the middle of a stream. A Retry-After (or retry-after-ms)
// header sets the wait instead; a wait longer than max, or past the
// context's deadline, ends the retries at once. attempts < 1 counts as 1.
func RemoteRetries(attempts int, base, maxWait time.Duration) RemoteOption {
	return func(c *remoteConfig) {
		c.attempts, c.backoffBase, c.backoffMax = max(attempts, 1), base, maxWait
	}
}

// RemoteHeader adds a header to every request, such as
// "OpenAI-Organization" or "X-Title".
func RemoteHeader(key, value string) RemoteOption {
	return func(c *remoteConfig) {
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Add(key, value)
	}
}

// RemoteModel is a model served over an OpenAI-compatible HTTP API:
// Hugging Face's router (https://router.huggingface.co/v1), OpenAI,
// llama-server, Ollama's /v1, vLLM, or llm serve. It is a Generator, safe
// for concurrent use. Generate and Stream use /completions, Chat and
// ChatStream /chat/completions (chat-only endpoints, such as Hugging
// Face's router, answer only these), and Embed /embeddings.
//
// Options are mapped to the request's fields: MaxTokens to max_tokens,
// Stop to stop, Tools to tools, TemplateVars to chat_template_kwargs,
// Logprobs to logprobs and top_logprobs, and the sampling options to
// temperature, top_p, seed, frequency_penalty, presence_penalty,
// logit_bias and response_format (JSON and JSONSchema). A sampling
// option is sent only when it differs from sampler.DefaultOptions, so the
// endpoint's own defaults apply to what the caller did not set; the
// options OpenAI lacks (top_k, min_p, repeat_penalty, grammar, ...) are
// sent under llama.cpp's names, which llama-server, vLLM and llm serve
// accept and OpenAI rejects. ContextPolicy does not apply.
type RemoteModel struct {
	base      url.URL // the API root, e.g. https://router.huggingface.co/v1
	shown     string  // base as errors show it: no credentials, no query
	cfg       remoteConfig
	apiKey    string
	ownClient bool
	closed    atomic.Bool

	mu    sync.Mutex
	model string // the discovered model, when cfg.model is empty
}

var _ Generator = (*RemoteModel)(nil)

// Remote returns a client for the OpenAI-compatible API at baseURL, the
// root that /chat/completions and /models hang from, such as
// "https://router.huggingface.co/v1", "https://api.openai.com/v1",
// "http://127.0.0.1:11434/v1" (Ollama), or "http://127.0.0.1:8080" (a URL
// without a path gets /v1, as llama-server and llm serve use). A full
// endpoint URL (…/v1/chat/completions) is trimmed to its root. Remote
// makes no request; the first call connects.
func Remote(baseURL string, opts ...RemoteOption) (*RemoteModel, error) {
	cfg := remoteConfig{attempts: 4, backoffBase: 500 * time.Millisecond, backoffMax: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("llm: remote URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("llm: remote URL %q: want http(s)://host[:port][/path]", redactURL(u))
	}
	if cfg.timeout < 0 || cfg.backoffBase < 0 || cfg.backoffMax < 0 {
		return nil, errors.New("llm: remote: negative timeout or backoff")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	for _, suffix := range []string{"/chat/completions", "/completions", "/embeddings", "/models"} {
		u.Path = strings.TrimSuffix(u.Path, suffix)
	}
	if u.Path == "" {
		u.Path = "/v1"
	}
	u.RawPath, u.Fragment, u.RawFragment = "", "", ""
	r := &RemoteModel{base: *u, shown: redactURL(u), cfg: cfg, apiKey: cfg.apiKey}
	if r.apiKey == "" {
		for _, name := range cfg.keyEnv {
			if v := os.Getenv(name); v != "" {
				r.apiKey = v
				break
			}
		}
	}
	if r.cfg.client == nil {
		r.cfg.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		r.ownClient = true
	}
	return r, nil
}

// redactURL shows u without user information, query or fragment.
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// endpoint returns the URL of path under the API root, keeping the
// root's query (such as Azure's api-version).
func (r *RemoteModel) endpoint(path string) string {
	u := r.base
	u.Path += path
	return u.String()
}

// BaseURL returns the API root requests go to, without credentials or
// query.
func (r *RemoteModel) BaseURL() string { return r.shown }

// Name returns the model's name: the RemoteModelName, the model the
// endpoint listed, or, before that is known, the base URL. Results
// report it in Result.Model.
func (r *RemoteModel) Name() string {
	if r.cfg.model != "" {
		return r.cfg.model
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.model != "" {
		return r.model
	}
	return r.shown
}

// String describes the model without its API key.
func (r *RemoteModel) String() string { return "remote " + r.Name() + " at " + r.shown }

// GoString describes the model without its API key.
func (r *RemoteModel) GoString() string { return "llm.RemoteModel(" + r.String() + ")" }

// Format prints String for every verb, so that no formatting of a
// RemoteModel shows its API key.
func (r *RemoteModel) Format(f fmt.State, _ rune) { io.WriteString(f, r.String()) }

// Close ends the client: later calls fail with ErrClosed, and the idle
// connections of its own HTTP client are closed. It is safe to call more
// than once.
func (r *RemoteModel) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	if r.ownClient {
		r.cfg.client.CloseIdleConnections()
	}
	return nil
}

func (r *RemoteModel) checkOpen() error {
	if r.closed.Load() {
		return &markedError{msg: "llm: remote " + r.shown + ": closed", mark: ErrClosed}
	}
	return nil
}

// remoteGenConfig applies opts to the defaults, as a Pipeline does, and
// checks them.
func remoteGenConfig(opts []GenerateOption) (genConfig, error) {
	g := genConfig{maxTokens: -1, sampling: sampler.DefaultOptions(), logprobs: -1}
	for _, o := range opts {
		if o != nil {
			o(&g)
		}
	}
	if g.logprobs > MaxTopLogprobs {
		return g, fmt.Errorf("llm: Logprobs(%d): at most %d alternatives", g.logprobs, MaxTopLogprobs)
	}
	for _, s := range g.stops {
		if s == "" {
			return g, errors.New("llm: an empty stop string")
		}
	}
	return g, nil
}

// Models lists the models the endpoint serves (GET /models).
func (r *RemoteModel) Models(ctx context.Context) ([]string, error) {
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	resp, err := r.send(ctx, http.MethodGet, "/models", nil, false)
	if err != nil {
		return nil, err
	}
	defer resp.close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := resp.decode(&list); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// modelName returns the model requests name: the configured one, or the
// one model the endpoint lists.
func (r *RemoteModel) modelName(ctx context.Context, embed bool) (string, error) {
	if embed && r.cfg.embedModel != "" {
		return r.cfg.embedModel, nil
	}
	if r.cfg.model != "" {
		return r.cfg.model, nil
	}
	r.mu.Lock()
	m := r.model
	r.mu.Unlock()
	if m != "" {
		return m, nil
	}
	ids, err := r.Models(ctx)
	if err != nil {
		return "", fmt.Errorf("%w (asked because no model was named: see RemoteModelName)", err)
	}
	switch len(ids) {
	case 1:
		r.mu.Lock()
		r.model = ids[0]
		r.mu.Unlock()
		return ids[0], nil
	case 0:
		return "", &markedError{msg: fmt.Sprintf("llm: remote %s: no model named (RemoteModelName), and the endpoint lists none", r.shown),
			mark: ErrRemote}
	default:
		shown := ids[:min(len(ids), 5)]
		more := ""
		if len(ids) > 5 {
			more = ", …"
		}
		return "", &markedError{msg: fmt.Sprintf("llm: remote %s: no model named (RemoteModelName), and the endpoint serves %d: %s%s",
			r.shown, len(ids), strings.Join(shown, ", "), more), mark: ErrRemote}
	}
}

// ---- requests ----

// remoteResponse is a successful (2xx) answer whose body is still open.
type remoteResponse struct {
	*http.Response
	url      string
	attempts int
	start    time.Time // when the request was first sent
	headers  time.Time // when this answer's headers arrived
	att      *attempt
}

func (r *remoteResponse) close() {
	r.Body.Close()
	r.att.stop()
}

// fail makes a RemoteError of this response.
func (r *remoteResponse) fail(err error) *RemoteError {
	return &RemoteError{URL: r.url, Attempts: r.attempts, Err: err}
}

// decode reads the whole body as JSON into v.
func (r *remoteResponse) decode(v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return r.fail(r.att.cause(err))
	}
	if err := json.Unmarshal(data, v); err != nil {
		return r.fail(protocolErrorf(err, "%s is not the expected JSON (%s)", r.Status, snippet(data)))
	}
	return nil
}

// attempt is one try of a request, with its own context and, with a
// timeout, a watchdog that cancels it when the endpoint is silent.
type attempt struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
	parent  context.Context
}

// remoteTimeout is the cause of an attempt the watchdog ended.
type remoteTimeout struct{ d time.Duration }

func (e *remoteTimeout) Error() string {
	return fmt.Sprintf("no answer within %v (RemoteTimeout)", e.d)
}

// Is makes a timeout match context.DeadlineExceeded.
func (e *remoteTimeout) Is(target error) bool { return target == context.DeadlineExceeded }

func newAttempt(parent context.Context, timeout time.Duration) *attempt {
	ctx, cancel := context.WithCancelCause(parent)
	a := &attempt{ctx: ctx, cancel: cancel, timeout: timeout, parent: parent}
	if timeout > 0 {
		a.timer = time.AfterFunc(timeout, func() { cancel(&remoteTimeout{timeout}) })
	}
	return a
}

// kick restarts the watchdog: the endpoint just said something.
func (a *attempt) kick() {
	if a.timer != nil {
		a.timer.Reset(a.timeout)
	}
}

func (a *attempt) stop() {
	if a.timer != nil {
		a.timer.Stop()
	}
	a.cancel(nil)
}

// cause explains err, an error of this attempt: the caller's context, the
// watchdog, or err itself (a url.Error's inner error).
func (a *attempt) cause(err error) error {
	if e := a.parent.Err(); e != nil {
		return context.Cause(a.parent)
	}
	var t *remoteTimeout
	if c := context.Cause(a.ctx); errors.As(c, &t) {
		return t
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return &markedError{head: "cannot connect", detail: err.Error(), mark: err}
	}
	return err
}

// send makes a request, retrying as RemoteRetries says, and returns the
// first 2xx answer with its body open (close it with close).
func (r *RemoteModel) send(ctx context.Context, method, path string, body []byte, stream bool) (*remoteResponse, error) {
	endpoint := r.endpoint(path)
	shown := r.shown + path
	start := time.Now()
	var last *RemoteError
	for n := 1; ; n++ {
		a := newAttempt(ctx, r.cfg.timeout)
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(a.ctx, method, endpoint, rd)
		if err != nil {
			a.stop()
			return nil, &RemoteError{URL: shown, Attempts: n, Err: err}
		}
		r.setHeaders(req, body != nil, stream)
		resp, err := r.cfg.client.Do(req)
		retry := true
		if err != nil {
			a.stop()
			last = &RemoteError{URL: shown, Attempts: n, Err: a.cause(err)}
			if ctx.Err() != nil {
				return nil, last
			}
		} else if resp.StatusCode/100 == 2 {
			return &remoteResponse{Response: resp, url: shown, attempts: n, start: start, headers: time.Now(), att: a}, nil
		} else {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			a.stop()
			last = statusError(shown, resp, data, n)
			retry = retryableStatus(resp.StatusCode)
		}
		if !retry || n >= r.cfg.attempts {
			return nil, last
		}
		wait := r.backoff(n)
		if last.RetryAfter > 0 {
			if last.RetryAfter > r.cfg.backoffMax {
				return nil, last // the server asks for longer than we wait
			}
			wait = last.RetryAfter
		}
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			return nil, last // the retry could not finish in time
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if cause := context.Cause(ctx); last.Err == nil {
				last.Err = cause
			} else {
				last.Err = &markedError{msg: last.Err.Error() + "; then " + cause.Error(), mark: cause, err: last.Err}
			}
			return nil, last
		}
	}
}

func (r *RemoteModel) setHeaders(req *http.Request, hasBody, stream bool) {
	for k, vs := range r.cfg.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if stream {
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Cache-Control", "no-cache")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "llm-go")
	}
	if r.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+r.apiKey)
	}
}

// backoff is the wait before try n+1: base·2ⁿ⁻¹ up to max, the upper half
// of it random.
func (r *RemoteModel) backoff(n int) time.Duration {
	d := r.cfg.backoffBase
	for i := 1; i < n && d < r.cfg.backoffMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.backoffMax)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// retryableStatus says whether an HTTP status is worth another try.
func retryableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooManyRequests:
		return true
	case code == http.StatusNotImplemented, code == http.StatusHTTPVersionNotSupported:
		return false
	default:
		return code >= 500
	}
}

// statusError makes the error of a non-2xx answer, with the server's
// message and its Retry-After.
func statusError(url string, resp *http.Response, body []byte, attempts int) *RemoteError {
	e := &RemoteError{URL: url, StatusCode: resp.StatusCode, Status: resp.Status, Attempts: attempts}
	if e.Status == "" || e.Status == strconv.Itoa(resp.StatusCode) {
		e.Status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	e.Message, e.Type, e.Code = errorMessage(body)
	e.RetryAfter = retryAfter(resp.Header)
	return e
}

// errorMessage finds the message in an error body: OpenAI's {"error":
// {"message", "type", "code"}}, {"error": "text"}, {"detail": …},
// {"message": …}, or else the body itself, shortened.
func errorMessage(body []byte) (msg, typ, code string) {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Detail  json.RawMessage `json:"detail"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil {
		if msg, typ, code, ok := errorObject(v.Error); ok {
			return msg, typ, code
		}
		var s string
		if json.Unmarshal(v.Detail, &s) == nil && s != "" {
			return s, "", ""
		}
		if len(v.Detail) > 0 && string(v.Detail) != "null" {
			return snippet(v.Detail), "", ""
		}
		if v.Message != "" {
			return v.Message, "", ""
		}
	}
	return snippet(body), "", ""
}

// errorObject reads an "error" value: an object with a message, or a
// string.
func errorObject(raw json.RawMessage) (msg, typ, code string, ok bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, "", "", true
	}
	var o struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &o) != nil {
		return snippet(raw), "", "", true
	}
	code = strings.Trim(string(o.Code), `"`)
	if code == "null" {
		code = ""
	}
	if o.Message == "" {
		o.Message = snippet(raw)
	}
	return o.Message, o.Type, code, true
}

// snippet shortens a body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "empty body"
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.Join(strings.Fields(s), " ")
}

// retryAfter reads retry-after-ms (OpenAI) or Retry-After (seconds or an
// HTTP date).
func retryAfter(h http.Header) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// ---- the OpenAI wire format ----

type oaiUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// oaiTimings are llama-server's timings.
type oaiTimings struct {
	PromptN     int     `json:"prompt_n"`
	PromptMS    float64 `json:"prompt_ms"`
	PredictedN  int     `json:"predicted_n"`
	PredictedMS float64 `json:"predicted_ms"`
}

type oaiToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string          `json:"name,omitempty"`
		Arguments json.RawMessage `json:"arguments,omitempty"`
	} `json:"function"`
}

type oaiMessage struct {
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	ToolCalls []oaiToolCall   `json:"tool_calls"`
}

type oaiChoice struct {
	Index        int             `json:"index"`
	Text         *string         `json:"text"`
	Message      *oaiMessage     `json:"message"`
	Delta        *oaiMessage     `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs"`
}

type oaiResponse struct {
	Model   string          `json:"model"`
	Choices []oaiChoice     `json:"choices"`
	Usage   *oaiUsage       `json:"usage"`
	Timings *oaiTimings     `json:"timings"`
	Error   json.RawMessage `json:"error"`
}

// text returns a message's content: a string, or the text of its parts.
func (m *oaiMessage) text() string {
	if m == nil || len(m.Content) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) == nil {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		return b.String()
	}
	return ""
}

// requestBody maps the options to an OpenAI request's fields. chat adds
// the chat-only ones (tools, chat_template_kwargs).
func requestBody(g genConfig, model string, chat, stream bool) (map[string]any, error) {
	body := map[string]any{}
	if model != "" {
		body["model"] = model
	}
	if stream {
		body["stream"] = true
	}
	if g.maxTokens >= 0 {
		body["max_tokens"] = g.maxTokens
	}
	if len(g.stops) > 0 {
		body["stop"] = g.stops
	}
	if err := samplingFields(body, g.sampling); err != nil {
		return nil, err
	}
	if g.logprobs >= 0 {
		if chat {
			body["logprobs"] = true
			if g.logprobs > 0 {
				body["top_logprobs"] = g.logprobs
			}
		} else {
			body["logprobs"] = g.logprobs
		}
	}
	if chat {
		if len(g.tools) > 0 {
			body["tools"] = g.tools
		}
		if len(g.extra) > 0 {
			body["chat_template_kwargs"] = g.extra
		}
	}
	return body, nil
}

// samplingFields adds the sampling options that differ from
// sampler.DefaultOptions.
func samplingFields(body map[string]any, o sampler.Options) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	d := sampler.DefaultOptions()
	setF := func(name string, v, def float64) {
		if v != def {
			body[name] = v
		}
	}
	setI := func(name string, v, def int) {
		if v != def {
			body[name] = v
		}
	}
	// OpenAI's own fields.
	setF("temperature", o.Temperature, d.Temperature)
	setF("top_p", o.TopP, d.TopP)
	setF("frequency_penalty", o.FrequencyPenalty, d.FrequencyPenalty)
	setF("presence_penalty", o.PresencePenalty, d.PresencePenalty)
	if o.Seed >= 0 {
		body["seed"] = o.Seed
	}
	if len(o.LogitBias) > 0 {
		lb := make(map[string]float64, len(o.LogitBias))
		for tok, b := range o.LogitBias {
			lb[strconv.Itoa(int(tok))] = math.Max(-100, math.Min(100, b)) // -Inf bans: -100
		}
		body["logit_bias"] = lb
	}
	switch {
	case o.JSONSchema != "":
		if !json.Valid([]byte(o.JSONSchema)) {
			return errors.New("llm: the JSON schema is not valid JSON")
		}
		body["response_format"] = map[string]any{"type": "json_schema",
			"json_schema": map[string]any{"name": "response", "schema": json.RawMessage(o.JSONSchema)}}
	case o.JSON:
		body["response_format"] = map[string]any{"type": "json_object"}
	}
	// llama.cpp's names, for llama-server, vLLM and llm serve.
	setI("top_k", o.TopK, d.TopK)
	setF("min_p", o.MinP, d.MinP)
	setF("typical_p", o.TypicalP, d.TypicalP)
	setF("top_n_sigma", o.TopNSigma, d.TopNSigma)
	setF("dynatemp_range", o.DynamicTempRange, d.DynamicTempRange)
	setF("dynatemp_exponent", o.DynamicTempExponent, d.DynamicTempExponent)
	setF("xtc_probability", o.XTCProbability, d.XTCProbability)
	setF("xtc_threshold", o.XTCThreshold, d.XTCThreshold)
	setI("min_keep", o.MinKeep, d.MinKeep)
	setF("repeat_penalty", o.RepeatPenalty, d.RepeatPenalty)
	setI("repeat_last_n", o.RepeatLastN, d.RepeatLastN)
	setF("dry_multiplier", o.DRYMultiplier, d.DRYMultiplier)
	if o.DRYMultiplier != 0 {
		setF("dry_base", o.DRYBase, d.DRYBase)
		setI("dry_allowed_length", o.DRYAllowedLength, d.DRYAllowedLength)
		setI("dry_penalty_last_n", o.DRYLastN, d.DRYLastN)
		if !slices.Equal(o.DRYSequenceBreakers, d.DRYSequenceBreakers) {
			body["dry_sequence_breakers"] = o.DRYSequenceBreakers
		}
	}
	setI("mirostat", o.Mirostat, d.Mirostat)
	if o.Mirostat != 0 {
		setF("mirostat_tau", o.MirostatTau, d.MirostatTau)
		setF("mirostat_eta", o.MirostatEta, d.MirostatEta)
	}
	if o.Grammar != "" {
		body["grammar"] = o.Grammar
	}
	return nil
}

// chatMessages converts messages to OpenAI's JSON, keeping key order:
// role, content, name, tool_calls, tool_call_id, then Extra's keys.
func chatMessages(messages []Message) ([]*tokenizer.Object, error) {
	out := make([]*tokenizer.Object, 0, len(messages))
	for i, m := range messages {
		o := tokenizer.NewObject("role", m.Role)
		switch c := m.Content.(type) {
		case nil:
			o.Set("content", nil)
		case string:
			o.Set("content", c)
		case []tokenizer.Part:
			parts := make([]*tokenizer.Object, 0, len(c))
			for _, p := range c {
				po := tokenizer.NewObject("type", p.Type)
				if p.Text != "" || p.Type == "text" {
					po.Set("text", p.Text)
				}
				copyKeys(po, p.Extra)
				parts = append(parts, po)
			}
			o.Set("content", parts)
		default:
			if _, err := json.Marshal(c); err != nil {
				return nil, fmt.Errorf("llm: message %d: content: %w", i, err)
			}
			o.Set("content", c)
		}
		if m.Name != "" {
			o.Set("name", m.Name)
		}
		if len(m.ToolCalls) > 0 {
			calls := make([]*tokenizer.Object, 0, len(m.ToolCalls))
			for _, tc := range m.ToolCalls {
				typ := tc.Type
				if typ == "" {
					typ = "function"
				}
				args, err := argumentString(tc.Function.Arguments)
				if err != nil {
					return nil, fmt.Errorf("llm: message %d: tool call %s: %w", i, tc.Function.Name, err)
				}
				co := &tokenizer.Object{}
				if tc.ID != "" {
					co.Set("id", tc.ID)
				}
				co.Set("type", typ)
				co.Set("function", tokenizer.NewObject("name", tc.Function.Name, "arguments", args))
				calls = append(calls, co)
			}
			o.Set("tool_calls", calls)
		}
		if m.ToolCallID != "" {
			o.Set("tool_call_id", m.ToolCallID)
		}
		copyKeys(o, m.Extra)
		out = append(out, o)
	}
	return out, nil
}

func copyKeys(dst, src *tokenizer.Object) {
	if src == nil {
		return
	}
	for _, k := range src.Keys() {
		if !dst.Has(k) {
			v, _ := src.Get(k)
			dst.Set(k, v)
		}
	}
}

// argumentString returns tool call arguments as OpenAI sends them: a
// string holding JSON.
func argumentString(args any) (string, error) {
	switch a := args.(type) {
	case nil:
		return "{}", nil
	case string:
		return a, nil
	default:
		data, err := json.Marshal(a)
		if err != nil {
			return "", err
		}
		return string(data), nil
	}
}

// toolCallText renders tool calls as Hermes-style text, as Qwen and
// Hermes models write them, so that a remote model's calls read like a
// local one's: <tool_call>{"name": …, "arguments": {…}}</tool_call>.
func toolCallText(calls []oaiToolCall) string {
	var b strings.Builder
	for _, tc := range calls {
		args := json.RawMessage(`{}`)
		if len(tc.Function.Arguments) > 0 {
			var s string
			if json.Unmarshal(tc.Function.Arguments, &s) == nil {
				if json.Valid([]byte(s)) {
					args = json.RawMessage(s)
				} else {
					args, _ = json.Marshal(s)
				}
			} else if json.Valid(tc.Function.Arguments) {
				args = tc.Function.Arguments
			}
		}
		call, _ := json.Marshal(struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}{tc.Function.Name, args})
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("<tool_call>\n")
		b.Write(call)
		b.WriteString("\n</tool_call>")
	}
	return b.String()
}

// logprobs reads a choice's logprobs: chat's {"content": [{token,
// logprob, top_logprobs}]} or completions' {tokens, token_logprobs,
// top_logprobs}.
func logprobs(raw json.RawMessage) ([]TokenLogprob, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	type entry struct {
		ID      *int     `json:"id"`
		Token   string   `json:"token"`
		Logprob float64  `json:"logprob"`
		Top     []*entry `json:"top_logprobs"`
	}
	var v struct {
		Content       []entry              `json:"content"`
		Tokens        []string             `json:"tokens"`
		TokenLogprobs []float64            `json:"token_logprobs"`
		TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, protocolErrorf(err, "logprobs")
	}
	conv := func(e *entry) TokenLogprob {
		t := TokenLogprob{Token: -1, Text: e.Token, Logprob: e.Logprob}
		if e.ID != nil {
			t.Token = Token(*e.ID)
		}
		return t
	}
	var out []TokenLogprob
	for i := range v.Content {
		t := conv(&v.Content[i])
		for _, alt := range v.Content[i].Top {
			t.Top = append(t.Top, conv(alt))
		}
		out = append(out, t)
	}
	for i, tok := range v.Tokens {
		t := TokenLogprob{Token: -1, Text: tok}
		if i < len(v.TokenLogprobs) {
			t.Logprob = v.TokenLogprobs[i]
		}
		if i < len(v.TopLogprobs) {
			for text, lp := range v.TopLogprobs[i] {
				t.Top = append(t.Top, TokenLogprob{Token: -1, Text: text, Logprob: lp})
			}
			sort.Slice(t.Top, func(a, b int) bool {
				if t.Top[a].Logprob != t.Top[b].Logprob {
					return t.Top[a].Logprob > t.Top[b].Logprob
				}
				return t.Top[a].Text < t.Top[b].Text
			})
		}
		out = append(out, t)
	}
	return out, nil
}

// ---- Generator ----

// Generate continues prompt with /completions.
func (r *RemoteModel) Generate(ctx context.Context, prompt string, opts ...GenerateOption) (*Result, error) {
	g, body, err := r.prepare(ctx, opts, false, false)
	if err != nil {
		return nil, err
	}
	body["prompt"] = prompt
	res, err := r.complete(ctx, "/completions", body, g)
	if err != nil {
		return nil, err
	}
	if g.echo {
		res.Text = prompt + res.Text
	}
	return res, nil
}

// Chat answers the conversation with /chat/completions. Tool calls in
// the answer are appended to Result.Text as Hermes-style
// <tool_call>{"name": …, "arguments": …}</tool_call> blocks, as a local
// Qwen model writes them, and FinishReason is then "tool_calls".
func (r *RemoteModel) Chat(ctx context.Context, messages []Message, opts ...GenerateOption) (*Result, error) {
	g, body, err := r.prepare(ctx, opts, true, false)
	if err != nil {
		return nil, err
	}
	if body["messages"], err = chatMessages(messages); err != nil {
		return nil, err
	}
	return r.complete(ctx, "/chat/completions", body, g)
}

// Stream continues prompt like Generate, yielding the text as the
// endpoint sends it (server-sent events). Breaking out of the loop ends
// the request. Chunks carry Token -1: an endpoint sends text, not token
// ids.
func (r *RemoteModel) Stream(ctx context.Context, prompt string, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		g, body, err := r.prepare(ctx, opts, false, true)
		if err != nil {
			yield(Chunk{}, err)
			return
		}
		body["prompt"] = prompt
		r.stream(ctx, "/completions", body, g, yield)
	}
}

// ChatStream is Chat, yielding the reply as the endpoint sends it. Tool
// calls come last, as one chunk of Hermes-style text.
func (r *RemoteModel) ChatStream(ctx context.Context, messages []Message, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		g, body, err := r.prepare(ctx, opts, true, true)
		if err != nil {
			yield(Chunk{}, err)
			return
		}
		if body["messages"], err = chatMessages(messages); err != nil {
			yield(Chunk{}, err)
			return
		}
		r.stream(ctx, "/chat/completions", body, g, yield)
	}
}

// prepare checks the options and the client and starts the request body.
func (r *RemoteModel) prepare(ctx context.Context, opts []GenerateOption, chat, stream bool) (genConfig, map[string]any, error) {
	if err := r.checkOpen(); err != nil {
		return genConfig{}, nil, err
	}
	g, err := remoteGenConfig(opts)
	if err != nil {
		return g, nil, err
	}
	model, err := r.modelName(ctx, false)
	if err != nil {
		return g, nil, err
	}
	body, err := requestBody(g, model, chat, stream)
	return g, body, err
}

// complete sends a non-streaming request and reads its Result.
func (r *RemoteModel) complete(ctx context.Context, path string, body map[string]any, g genConfig) (*Result, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("llm: remote request: %w", err)
	}
	resp, err := r.send(ctx, http.MethodPost, path, data, false)
	if err != nil {
		return nil, err
	}
	defer resp.close()
	var out oaiResponse
	if err := resp.decode(&out); err != nil {
		return nil, err
	}
	if msg, typ, code, ok := errorObject(out.Error); ok {
		return nil, &RemoteError{URL: resp.url, Attempts: resp.attempts, Message: msg, Type: typ, Code: code,
			Err: errors.New("error in the answer")}
	}
	if len(out.Choices) == 0 {
		return nil, resp.fail(protocolErrorf(nil, "an answer without choices"))
	}
	end := time.Now()
	c := out.Choices[0]
	res := &Result{Model: r.Name()}
	var calls []oaiToolCall
	switch {
	case c.Message != nil:
		res.Text, calls = c.Message.text(), c.Message.ToolCalls
	case c.Text != nil:
		res.Text = *c.Text
	}
	if len(calls) > 0 {
		if res.Text != "" {
			res.Text += "\n"
		}
		res.Text += toolCallText(calls)
	}
	if c.FinishReason != nil {
		res.FinishReason = FinishReason(*c.FinishReason)
	}
	if g.logprobs >= 0 {
		if res.Logprobs, err = logprobs(c.Logprobs); err != nil {
			return nil, resp.fail(err)
		}
	}
	res.Timings = timings(out.Usage, out.Timings, resp.headers.Sub(resp.start), end.Sub(resp.start))
	return res, nil
}

// timings fills Timings from the usage (and llama-server's timings) and
// what the client measured: the time to the answer's headers (which, for
// a request that does not stream, come with the whole answer) and the
// whole request.
func timings(u *oaiUsage, st *oaiTimings, first, total time.Duration) Timings {
	t := Timings{TimeToFirstToken: first, GenerateDuration: total}
	if u != nil {
		t.PromptTokens, t.GeneratedTokens = u.PromptTokens, u.CompletionTokens
		t.PromptEvaluated = u.PromptTokens
		if u.PromptTokensDetails != nil {
			t.PromptEvaluated = max(u.PromptTokens-u.PromptTokensDetails.CachedTokens, 0)
		}
	}
	if st != nil {
		if u == nil {
			t.GeneratedTokens = st.PredictedN
		}
		t.PromptEvaluated = st.PromptN
		t.PromptDuration = time.Duration(st.PromptMS * float64(time.Millisecond))
		t.GenerateDuration = time.Duration(st.PredictedMS * float64(time.Millisecond))
	}
	return t
}

// stream sends a streaming request and yields its text.
func (r *RemoteModel) stream(ctx context.Context, path string, body map[string]any, g genConfig, yield func(Chunk, error) bool) {
	data, err := json.Marshal(body)
	if err != nil {
		yield(Chunk{}, fmt.Errorf("llm: remote request: %w", err))
		return
	}
	resp, err := r.send(ctx, http.MethodPost, path, data, true)
	if err != nil {
		yield(Chunk{}, err)
		return
	}
	defer resp.close()
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		// The endpoint answered at once instead of streaming.
		var out oaiResponse
		if err := resp.decode(&out); err != nil {
			yield(Chunk{}, err)
			return
		}
		if msg, typ, code, ok := errorObject(out.Error); ok {
			yield(Chunk{}, &RemoteError{URL: resp.url, Attempts: resp.attempts, Message: msg, Type: typ, Code: code,
				Err: errors.New("error in the answer")})
			return
		}
		s := &streamState{g: g}
		if err := s.event(out); err != nil {
			yield(Chunk{}, resp.fail(err))
			return
		}
		for _, c := range s.flush() {
			if !yield(c, nil) {
				return
			}
		}
		return
	}
	s := &streamState{g: g}
	sse := &sseReader{r: bufio.NewReaderSize(resp.Body, 16<<10), onLine: resp.att.kick}
	for {
		ev, err := sse.next()
		if errors.Is(err, io.EOF) {
			if !s.finished {
				yield(Chunk{}, resp.fail(protocolErrorf(nil, "the event stream ended before its end ([DONE] or a finish_reason)")))
				return
			}
			break
		}
		if err != nil {
			if ctx.Err() != nil || context.Cause(resp.att.ctx) != nil {
				err = resp.att.cause(err) // the caller's context, or the timeout
			} else if !errors.Is(err, ErrRemoteProtocol) {
				err = &markedError{msg: "the event stream broke: " + err.Error(), mark: err}
			}
			yield(Chunk{}, resp.fail(err))
			return
		}
		if ev.data == "[DONE]" {
			break
		}
		if ev.event == "error" {
			msg, typ, code := errorMessage([]byte(ev.data))
			yield(Chunk{}, &RemoteError{URL: resp.url, Attempts: resp.attempts, Message: msg, Type: typ, Code: code,
				Err: errors.New("error in the stream")})
			return
		}
		var out oaiResponse
		if err := json.Unmarshal([]byte(ev.data), &out); err != nil {
			yield(Chunk{}, resp.fail(protocolErrorf(err, "an event that is not JSON (%s)", snippet([]byte(ev.data)))))
			return
		}
		if msg, typ, code, ok := errorObject(out.Error); ok {
			yield(Chunk{}, &RemoteError{URL: resp.url, Attempts: resp.attempts, Message: msg, Type: typ, Code: code,
				Err: errors.New("error in the stream")})
			return
		}
		if err := s.event(out); err != nil {
			yield(Chunk{}, resp.fail(err))
			return
		}
		for _, c := range s.pending {
			if !yield(c, nil) {
				return
			}
		}
		s.pending = s.pending[:0]
	}
	for _, c := range s.flush() {
		if !yield(c, nil) {
			return
		}
	}
}

// streamState gathers a stream's chunks and its tool calls, which come in
// pieces.
type streamState struct {
	g        genConfig
	pending  []Chunk
	calls    []oaiToolCall
	finished bool
}

// event takes one decoded event (or a whole answer).
func (s *streamState) event(out oaiResponse) error {
	for _, c := range out.Choices {
		if c.Index != 0 {
			continue
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			s.finished = true
		}
		text := ""
		msg := c.Delta
		if msg == nil {
			msg = c.Message
		}
		if msg != nil {
			text = msg.text()
			s.addCalls(msg.ToolCalls)
		} else if c.Text != nil {
			text = *c.Text
		}
		var lps []TokenLogprob
		if s.g.logprobs >= 0 {
			var err error
			if lps, err = logprobs(c.Logprobs); err != nil {
				return err
			}
		}
		switch {
		case len(lps) > 0:
			// One chunk per token, as a Pipeline streams with Logprobs;
			// the text goes with the last.
			for i := range lps {
				ch := Chunk{Token: lps[i].Token, Logprob: &lps[i]}
				if i == len(lps)-1 {
					ch.Text = text
				}
				s.pending = append(s.pending, ch)
			}
		case text != "":
			s.pending = append(s.pending, Chunk{Text: text, Token: -1})
		}
	}
	return nil
}

// addCalls merges streamed tool call pieces by index.
func (s *streamState) addCalls(calls []oaiToolCall) {
	for _, tc := range calls {
		i := len(s.calls)
		if tc.Index != nil {
			i = *tc.Index
		} else if tc.ID == "" && len(s.calls) > 0 {
			i = len(s.calls) - 1 // a continuation without an index
		}
		for len(s.calls) <= i {
			s.calls = append(s.calls, oaiToolCall{})
		}
		c := &s.calls[i]
		if tc.ID != "" {
			c.ID = tc.ID
		}
		if tc.Type != "" {
			c.Type = tc.Type
		}
		c.Function.Name += tc.Function.Name
		var piece string
		if json.Unmarshal(tc.Function.Arguments, &piece) == nil {
			// Streamed arguments are pieces of one JSON string.
			var whole string
			if len(c.Function.Arguments) > 0 {
				json.Unmarshal(c.Function.Arguments, &whole)
			}
			c.Function.Arguments, _ = json.Marshal(whole + piece)
		} else if len(tc.Function.Arguments) > 0 {
			c.Function.Arguments = tc.Function.Arguments
		}
	}
}

// flush returns what is left: the pending chunks and the tool calls.
func (s *streamState) flush() []Chunk {
	out := s.pending
	s.pending = nil
	if len(s.calls) > 0 {
		out = append(out, Chunk{Text: toolCallText(s.calls), Token: -1})
		s.calls = nil
	}
	return out
}

// sseEvent is one server-sent event.
type sseEvent struct {
	event string
	data  string
}

// sseReader reads server-sent events: "data:" lines (several make one
// event, joined by newlines), "event:" names, ":" comments, and blank
// lines that end an event.
type sseReader struct {
	r      *bufio.Reader
	onLine func()
}

// maxSSELine bounds one line of the event stream.
const maxSSELine = 8 << 20

func (s *sseReader) line() (string, error) {
	var buf []byte
	for {
		frag, err := s.r.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > maxSSELine {
			return "", protocolErrorf(nil, "an event stream line longer than %d bytes", maxSSELine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && (err != io.EOF || len(buf) == 0) {
			return "", err
		}
		if s.onLine != nil {
			s.onLine()
		}
		return strings.TrimRight(string(buf), "\r\n"), nil
	}
}

// next returns the next event with data; io.EOF at the end.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	has := false
	for {
		line, err := s.line()
		if err != nil {
			if errors.Is(err, io.EOF) && has {
				ev.data = strings.Join(data, "\n")
				return ev, nil // the last event, without its blank line
			}
			return sseEvent{}, err
		}
		if line == "" {
			if has {
				ev.data = strings.Join(data, "\n")
				return ev, nil
			}
			ev = sseEvent{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment (a keep-alive)
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data = append(data, value)
			has = true
		case "event":
			ev.event = value
		case "id", "retry":
		default:
			if !has && strings.HasPrefix(strings.TrimSpace(line), "{") {
				// Not SSE at all: a JSON body without "data:".
				return sseEvent{}, protocolErrorf(nil, "a line that is not an event (%s)", snippet([]byte(line)))
			}
		}
	}
}

// ---- embeddings ----

// Embed returns one unit-length embedding per text from /embeddings.
func (r *RemoteModel) Embed(ctx context.Context, texts ...string) ([][]float32, error) {
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	if len(texts) == 0 {
		return [][]float32{}, nil
	}
	model, err := r.modelName(ctx, true)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"input": texts, "encoding_format": "float"}
	if model != "" {
		body["model"] = model
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("llm: remote request: %w", err)
	}
	resp, err := r.send(ctx, http.MethodPost, "/embeddings", data, false)
	if err != nil {
		return nil, err
	}
	defer resp.close()
	var out struct {
		Data []struct {
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	if err := resp.decode(&out); err != nil {
		return nil, err
	}
	if len(out.Data) != len(texts) {
		return nil, resp.fail(protocolErrorf(nil, "%d embeddings for %d texts", len(out.Data), len(texts)))
	}
	vecs := make([][]float32, len(texts))
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(texts) || vecs[d.Index] != nil {
			return nil, resp.fail(protocolErrorf(nil, "an embedding with index %d", d.Index))
		}
		v, err := embeddingVector(d.Embedding)
		if err != nil {
			return nil, resp.fail(err)
		}
		if len(v) == 0 || len(vecs[0]) > 0 && len(v) != len(vecs[0]) {
			return nil, resp.fail(protocolErrorf(nil, "embeddings of different lengths"))
		}
		vecs[d.Index] = unitVector(v)
	}
	for i := range vecs {
		if len(vecs[i]) != len(vecs[0]) {
			return nil, resp.fail(protocolErrorf(nil, "embeddings of different lengths"))
		}
	}
	return vecs, nil
}

// embeddingVector reads an embedding: an array of numbers, or base64 of
// little-endian float32s.
func embeddingVector(raw json.RawMessage) ([]float32, error) {
	var v []float32
	if err := json.Unmarshal(raw, &v); err == nil {
		return v, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, protocolErrorf(err, "an embedding that is neither numbers nor base64")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 {
		return nil, protocolErrorf(err, "a base64 embedding that does not decode to float32s")
	}
	v = make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// unitVector scales v to unit length (a zero vector stays zero).
func unitVector(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return v
	}
	inv := 1 / math.Sqrt(sum)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
	return v
}
