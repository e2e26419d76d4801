package server

import (
	"encoding/json"
	"net/http"
	"time"
)

// embedRequest is Ollama's /api/embed request.
type embedRequest struct {
	Model      string          `json:"model"`
	Input      json.RawMessage `json:"input"`
	Truncate   *bool           `json:"truncate"`
	KeepAlive  json.RawMessage `json:"keep_alive"`
	Dimensions *int            `json:"dimensions"`
	Options    map[string]any  `json:"options"`
}

// handleEmbed answers POST /api/embed. Over-long inputs are a 400 (they
// are not truncated, whatever truncate says).
func (s *Server) handleEmbed(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req embedRequest
	if _, err := decodeBody(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	keepAlive, err := parseKeepAlive(req.KeepAlive)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	texts, err := embedInputs("input", req.Input)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	ctx, l, cancel, ok := s.leaseFor(w, r, req.Model, writeOllamaError)
	if !ok {
		return
	}
	defer cancel()
	defer func() { l.release(keepAlive) }()
	var dims *int
	if req.Dimensions != nil && *req.Dimensions != 0 {
		dims = req.Dimensions
	}
	vecs, tokens, err := s.embed(ctx, l, texts, dims)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": l.name, "embeddings": vecs,
		"total_duration": int64(time.Since(start)), "load_duration": int64(l.loadDuration), "prompt_eval_count": tokens})
}

// embeddingsRequestOllama is the legacy /api/embeddings request.
type embeddingsRequestOllama struct {
	Model     string          `json:"model"`
	Prompt    string          `json:"prompt"`
	KeepAlive json.RawMessage `json:"keep_alive"`
	Options   map[string]any  `json:"options"`
}

// handleEmbeddings answers the legacy POST /api/embeddings: one prompt,
// one embedding.
func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingsRequestOllama
	if _, err := decodeBody(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	keepAlive, err := parseKeepAlive(req.KeepAlive)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	if req.Prompt == "" {
		writeOllamaError(w, badRequest("prompt", "field \"prompt\" is required"))
		return
	}
	ctx, l, cancel, ok := s.leaseFor(w, r, req.Model, writeOllamaError)
	if !ok {
		return
	}
	defer cancel()
	defer func() { l.release(keepAlive) }()
	vecs, _, err := s.embed(ctx, l, []string{req.Prompt}, nil)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	out := make([]float64, len(vecs[0]))
	for i, x := range vecs[0] {
		out[i] = float64(x)
	}
	writeJSON(w, http.StatusOK, map[string]any{"embedding": out})
}
