package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// requestIDHeader carries the request id in both directions.
const requestIDHeader = "X-Request-Id"

// statusRecorder remembers the status written, for logs and metrics, and
// passes flushes through for streaming.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	written bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.status, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.written {
		r.status, r.written = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Flush flushes the underlying writer.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validRequestID accepts a client's id if it is short and plain.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// endpoint is the metrics label of a request: its route, or "other".
func (s *Server) endpoint(r *http.Request) string {
	if _, ok := s.routes[r.URL.Path]; ok {
		return r.URL.Path
	}
	if strings.HasPrefix(r.URL.Path, "/v1/models/") {
		return "/v1/models/{model}"
	}
	return "other"
}

// middleware wraps the routes: a request id, panic recovery, a log line
// and metrics per request, the API key, and the body limit.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(requestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(requestIDHeader, id)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving a request", "request_id", id, "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.written {
					errorWriter(r.URL.Path)(rec, errorf(http.StatusInternalServerError, "internal_error",
						"internal server error (request id %s)", id))
				}
			}
			status := rec.status
			if !rec.written {
				status = 499 // the client left before an answer
			}
			s.metrics.request(s.endpoint(r), status)
			s.log.LogAttrs(r.Context(), logLevel(status), "request", slog.String("request_id", id),
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
				slog.Duration("duration", time.Since(start)), slog.String("remote", r.RemoteAddr))
		}()
		if s.cfg.APIKey != "" && r.URL.Path != "/health" && !s.authorized(r) {
			rec.Header().Set("WWW-Authenticate", `Bearer realm="llm"`)
			errorWriter(r.URL.Path)(rec, errorf(http.StatusUnauthorized, "invalid_api_key",
				"missing or invalid API key: send it as \"Authorization: Bearer KEY\""))
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBodyBytes)
		next.ServeHTTP(rec, r)
	})
}

// authorized checks the bearer token in constant time.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.cfg.APIKey)) == 1
}

func logLevel(status int) slog.Level {
	switch {
	case status >= 500 && status != 503:
		return slog.LevelError
	case status >= 400:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
