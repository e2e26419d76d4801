package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

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
