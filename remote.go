package llm

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
func remoteGenConfig(opts []GenerateOption) (genConfig, error) { return newGenConfig(nil, opts) }

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

// maxSSELine bounds one line of the event stream.
const maxSSELine = 8 << 20

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
