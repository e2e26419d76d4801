package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"
)

// embedRequest is Ollama's /api/embed request.
type embedRequest struct {
	Model      string          `json:"model"`
	Input      json.RawMessage `json:"input"`
	Truncate   *bool           `json:"truncate"`
	KeepAlive  json.RawMessage `json:"keep_alive"`
	Dimensions *int            `json:"dimensions"`
	Options    map[string]any  `json:"options"`
	// Task is one of the model's tasks (jina-embeddings-v3's
	// retrieval.query, ...); not Ollama's, as on /v1/embeddings.
	Task string `json:"task"`
}

// handleEmbed answers POST /api/embed. An input longer than the model's
// embedding context is cut to fit (truncate, Ollama's default; see
// truncateInput), or with truncate false is a 400.
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
	if req.Truncate == nil || *req.Truncate {
		prefix, err := l.p.TaskInstruction(req.Task)
		if err != nil {
			writeOllamaError(w, err)
			return
		}
		limit := embedLimit(l)
		for i, t := range texts {
			if texts[i], err = truncateInput(l, prefix, t, limit); err != nil {
				writeOllamaError(w, err)
				return
			}
		}
	}
	vecs, tokens, err := s.embed(ctx, l, texts, dims, req.Task)
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
	vecs, _, err := s.embed(ctx, l, []string{req.Prompt}, nil, "")
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

// embedLimit is how many tokens (its BOS/EOS or CLS/SEP included) a text
// may have for the lease's model to embed it.
func embedLimit(l *lease) int { return l.p.EmbedContextLength() }

// truncateInput returns text, or when its tokens (as Embed makes them,
// after the task's instruction prefix) are more than limit, its longest
// prefix that fits, cut at a character boundary. Package llm embeds text,
// not tokens, so the cut is made in the text, found by bisection on the
// prefix's token count: the kept text is exactly the start of the input,
// and the tokens near the cut may differ from the full text's (a word cut
// in two tokenizes as its part does). A text of which not even one
// character fits is returned as it is, for Embed's error.
func truncateInput(l *lease, prefix, text string, limit int) (string, error) {
	m := l.p.Model()
	count := func(s string) (int, error) {
		ids, err := m.Tokenize(prefix+s, true, false)
		if err != nil {
			return 0, fmt.Errorf("tokenizing an input: %w", err)
		}
		return len(ids), nil
	}
	n, err := count(text)
	if err != nil || n <= limit {
		return text, err
	}
	// A first bound: the bytes of the first 2×limit tokens, with room for
	// a leading space the tokenizer adds. Bisection keeps lo fitting and
	// hi not fitting; if the bound fits, the search goes on above it.
	lo, hi := 0, len(text)
	if ids, err := m.Tokenize(text, false, false); err == nil && len(ids) > 2*limit {
		if s, err := m.Detokenize(ids[:2*limit], false, false); err == nil && len(s)+16 < len(text) {
			b := runeStart(text, len(s)+16)
			if c, err := count(text[:b]); err != nil {
				return "", err
			} else if c > limit {
				hi = b
			} else {
				lo = b
			}
		}
	}
	for {
		mid := runeStart(text, lo+(hi-lo)/2)
		if mid <= lo {
			// No character start between lo and mid: try the next one.
			mid = lo + 1
			for mid < hi && !utf8.RuneStart(text[mid]) {
				mid++
			}
		}
		if mid >= hi {
			break
		}
		c, err := count(text[:mid])
		if err != nil {
			return "", err
		}
		if c <= limit {
			lo = mid
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return text, nil
	}
	return text[:lo], nil
}

// runeStart moves i back to the start of the character it is in.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}
