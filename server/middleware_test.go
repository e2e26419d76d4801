package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRecover: a panicking handler answers 500 in the API's shape, naming
// the request id that the X-Request-Id header carries, and is counted.
func TestRecover(t *testing.T) {
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 10}, metrics: newMetrics(),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), routes: map[string][]string{"/v1/boom": {"POST"}, "/api/boom": {"POST"}}}
	h := s.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
	for _, path := range []string{"/v1/boom", "/api/boom"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}")))
		id := rec.Header().Get(requestIDHeader)
		if rec.Code != http.StatusInternalServerError || len(id) != 16 || !strings.Contains(rec.Body.String(), id) {
			t.Errorf("%s: %d %q %s", path, rec.Code, id, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if _, nested := v["error"].(map[string]any); nested != strings.HasPrefix(path, "/v1/") {
			t.Errorf("%s: error shape %s", path, rec.Body)
		}
	}
	if n := s.metrics.requests[[2]string{"/v1/boom", "500"}]; n != 1 {
		t.Errorf("counted %d", n)
	}

	// A client's request id is kept when it is plain, replaced otherwise.
	ok := s.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for id, keep := range map[string]bool{"abc-123": true, "bad id\n": false, strings.Repeat("x", 65): false} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/api/boom", nil)
		req.Header.Set(requestIDHeader, id)
		ok.ServeHTTP(rec, req)
		if got := rec.Header().Get(requestIDHeader); (got == id) != keep {
			t.Errorf("request id %q became %q", id, got)
		}
	}
}
