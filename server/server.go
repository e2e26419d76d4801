package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Server answers the OpenAI and Ollama APIs with the models it loads.
type Server struct {
	cfg     Config
	models  *manager
	metrics *metrics
	log     *slog.Logger
	routes  map[string][]string // path → methods
	handler http.Handler
	started time.Time
}

// New checks cfg, loads cfg.Models and returns the server. Call Close to
// unload the models.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, metrics: newMetrics(), log: cfg.Logger, routes: map[string][]string{}, started: time.Now()}
	s.models = newManager(cfg, s.metrics)
	for _, src := range cfg.Models {
		if _, err := s.models.register(src); err != nil {
			s.models.close()
			return nil, err
		}
	}
	for model := range cfg.Drafts {
		if _, ok := s.models.names[model]; !ok {
			s.models.close()
			return nil, fmt.Errorf("server: Drafts names %q, which is none of the configured Models", model)
		}
	}
	names, _ := s.models.configured()
	for _, name := range names {
		l, err := s.models.acquire(context.Background(), name)
		if err != nil {
			s.models.close()
			return nil, fmt.Errorf("server: loading %s: %w", name, err)
		}
		l.release(nil)
	}
	s.handler = s.middleware(s.mux())
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close unloads every model. Requests still running end with an error.
func (s *Server) Close() error {
	s.models.close()
	return nil
}

// mux routes the API paths.
func (s *Server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		s.routes[path] = append(s.routes[path], method)
	}
	handle("POST", "/v1/chat/completions", s.handleChatCompletions)
	handle("POST", "/v1/completions", s.handleCompletions)
	handle("POST", "/v1/embeddings", s.handleOpenAIEmbeddings)
	handle("POST", "/v1/rerank", s.handleRerank)
	handle("POST", "/rerank", s.handleRerank)
	handle("GET", "/v1/models", s.handleOpenAIModels)
	mux.HandleFunc("GET /v1/models/{model...}", s.handleOpenAIModel)

	handle("POST", "/api/generate", s.handleGenerate)
	handle("POST", "/api/chat", s.handleChat)
	handle("POST", "/api/embed", s.handleEmbed)
	handle("POST", "/api/embeddings", s.handleEmbeddings)
	handle("GET", "/api/tags", s.handleTags)
	handle("POST", "/api/show", s.handleShow)
	handle("POST", "/api/pull", s.handlePull)
	handle("GET", "/api/ps", s.handlePS)
	handle("GET", "/api/version", s.handleVersion)

	handle("GET", "/health", s.handleHealth)
	handle("GET", "/metrics", s.handleMetrics)
	mux.HandleFunc("/", s.handleOther)
	return mux
}

// handleHealth answers 200 while the server runs.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "models_loaded": len(s.models.loaded()),
		"uptime_seconds": int(time.Since(s.started).Seconds())})
}

// handleOther answers "/" as Ollama does (some clients probe it), a wrong
// method with 405 and anything else with 404, in the API's error shape.
func (s *Server) handleOther(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "llm is running")
		return
	}
	if methods, ok := s.routes[r.URL.Path]; ok {
		m := slices.Clone(methods)
		if slices.Contains(m, "GET") {
			m = append(m, "HEAD")
		}
		w.Header().Set("Allow", strings.Join(m, ", "))
		errorWriter(r.URL.Path)(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed",
			"%s %s: method not allowed (use %s)", r.Method, r.URL.Path, strings.Join(methods, " or ")))
		return
	}
	errorWriter(r.URL.Path)(w, errorf(http.StatusNotFound, "not_found", "%s %s: no such endpoint", r.Method, r.URL.Path))
}
