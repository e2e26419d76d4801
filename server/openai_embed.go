package server

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"

	"github.com/llm-go/llm"
)

// embeddingsRequest is an OpenAI embeddings request.
type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	// Task is one of the model's tasks (jina-embeddings-v3's
	// retrieval.query, ...), as Jina's embeddings API takes it.
	Task string `json:"task"`
}

type embeddingData struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

// handleOpenAIEmbeddings answers POST /v1/embeddings. Inputs are strings;
// token-id inputs are refused, dimensions cuts the embeddings (1 to the
// model's width), and task (Jina's field) embeds for one of the model's
// tasks (Pipeline.EmbedWith).
func (s *Server) handleOpenAIEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingsRequest
	if _, err := decodeBody(r, &req); err != nil {
		writeOpenAIError(w, err)
		return
	}
	texts, err := embedInputs("input", req.Input)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		writeOpenAIError(w, badRequest("encoding_format", "field \"encoding_format\" must be \"float\" or \"base64\", got %q", req.EncodingFormat))
		return
	}
	ctx, l, cancel, ok := s.leaseFor(w, r, req.Model, writeOpenAIError)
	if !ok {
		return
	}
	defer cancel()
	defer l.release(nil)
	vecs, tokens, err := s.embed(ctx, l, texts, req.Dimensions, req.Task)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	data := make([]embeddingData, len(vecs))
	for i, v := range vecs {
		data[i] = embeddingData{Object: "embedding", Index: i, Embedding: v}
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(v))
			for j, x := range v {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(x))
			}
			data[i].Embedding = base64.StdEncoding.EncodeToString(buf)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "model": l.name,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
}

// embedInputs parses an input field: a string or an array of strings.
func embedInputs(field string, raw json.RawMessage) ([]string, error) {
	texts, err := stringList(field, raw)
	switch {
	case err != nil:
		return nil, badRequest(field, "field %q must be a string or an array of strings (token ids are not supported)", field)
	case texts == nil:
		return nil, badRequest(field, "field %q is required", field)
	case len(texts) == 0:
		return nil, badRequest(field, "field %q must hold at least one text", field)
	}
	for i, t := range texts {
		if t == "" {
			return nil, badRequest(field, "field %q: text %d is empty", field, i)
		}
	}
	return texts, nil
}

// embed embeds texts with the lease's model for task ("": none) and counts
// their tokens (the task's instruction's included). dims, when set, cuts
// the embeddings to that many values, normalised again
// (Pipeline.EmbedWith); it must be between 1 and the model's width.
func (s *Server) embed(ctx context.Context, l *lease, texts []string, dims *int, task string) ([][]float32, int, error) {
	width := l.p.Model().Info().EmbeddingSize
	if dims != nil && (*dims < 1 || *dims > width) {
		return nil, 0, badRequest("dimensions", "model %q makes embeddings of %d dimensions: dimensions must be 1 to %d (asked for %d)", l.name, width, width, *dims)
	}
	prefix, err := l.p.TaskInstruction(task)
	if err != nil {
		return nil, 0, err
	}
	tokens := 0
	for _, t := range texts {
		ids, err := l.p.Model().Tokenize(prefix+t, true, false)
		if err != nil {
			return nil, 0, fmt.Errorf("tokenizing an input: %w", err)
		}
		tokens += len(ids)
	}
	d := 0
	if dims != nil {
		d = *dims
	}
	vecs, err := l.p.EmbedWith(ctx, llm.EmbedOptions{Task: task, Dimensions: d}, texts...)
	if err != nil {
		return nil, 0, err
	}
	s.metrics.generation(l.name, tokens, 0, -1)
	return vecs, tokens, nil
}
