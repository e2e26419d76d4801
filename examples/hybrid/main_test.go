package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/server"
)

// TestHybrid runs the example end to end on 127.0.0.1: stories260K in
// process as the local model, and llm serve with stories260K as the
// "hosted" one. Every part must be answered, the question by the remote
// side, and no note's text may reach it.
func TestHybrid(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	srv, err := server.New(server.Config{Models: []string{model}, Threads: 1, ContextLength: 512,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var mu sync.Mutex
	var bodies []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(data))
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(data))
		srv.Handler().ServeHTTP(w, r)
	}))
	defer ts.Close()

	const question = "Once upon a time"
	err = run(context.Background(), config{local: model, remoteURL: ts.URL + "/v1", remoteModel: "stories260K",
		notes: "testdata", question: question, maxTokens: 16, timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	notes, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(notes) == 0 {
		t.Fatalf("no notes: %v", err)
	}
	asked := false
	for _, b := range bodies {
		asked = asked || strings.Contains(b, question)
		for _, n := range notes {
			data, _ := os.ReadFile(n)
			first, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
			if strings.Contains(b, first) {
				t.Errorf("the note %s reached the remote model: %s", n, b)
			}
		}
	}
	if !asked {
		t.Errorf("the question never reached the remote model; it got %d requests", len(bodies))
	}
}
