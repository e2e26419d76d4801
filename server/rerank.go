package server

import (
	"encoding/json"
	"net/http"
	"sort"
)

// rerankRequest is a /v1/rerank request, as llama-server, Jina and Cohere
// take it.
type rerankRequest struct {
	Model           string          `json:"model"`
	Query           *string         `json:"query"`
	Documents       json.RawMessage `json:"documents"`
	TopN            *int            `json:"top_n"`
	ReturnDocuments bool            `json:"return_documents"`
}

// rerankResult is one scored document.
type rerankResult struct {
	Index          int           `json:"index"`
	RelevanceScore float64       `json:"relevance_score"`
	Document       *rerankDocRef `json:"document,omitempty"`
}

type rerankDocRef struct {
	Text string `json:"text"`
}

// handleRerank answers POST /v1/rerank (and /rerank): the documents
// scored against the query by a reranker model, most relevant first,
// top_n of them (default all); with return_documents each result carries
// its text. Documents are strings, or objects with a "text" field.
func (s *Server) handleRerank(w http.ResponseWriter, r *http.Request) {
	var req rerankRequest
	if _, err := decodeBody(r, &req); err != nil {
		writeOpenAIError(w, err)
		return
	}
	if req.Query == nil {
		writeOpenAIError(w, badRequest("query", "field \"query\" is required"))
		return
	}
	docs, err := rerankDocuments(req.Documents)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	if req.TopN != nil && *req.TopN < 1 {
		writeOpenAIError(w, badRequest("top_n", "field \"top_n\" must be at least 1, got %d", *req.TopN))
		return
	}
	ctx, l, cancel, ok := s.leaseFor(w, r, req.Model, writeOpenAIError)
	if !ok {
		return
	}
	defer cancel()
	defer l.release(nil)
	scores, err := l.p.Rerank(ctx, *req.Query, docs...)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	tokens, _ := l.p.RerankTokens(*req.Query, docs...) // Rerank tokenized them already
	s.metrics.generation(l.name, tokens, 0, -1)
	results := make([]rerankResult, len(docs))
	for i, sc := range scores {
		results[i] = rerankResult{Index: i, RelevanceScore: sc}
		if req.ReturnDocuments {
			results[i].Document = &rerankDocRef{Text: docs[i]}
		}
	}
	sort.SliceStable(results, func(i, j int) bool { return results[i].RelevanceScore > results[j].RelevanceScore })
	if req.TopN != nil && *req.TopN < len(results) {
		results = results[:*req.TopN]
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "model": l.name, "results": results,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
}

// rerankDocuments parses documents: an array of strings, or of objects
// with a "text" field.
func rerankDocuments(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, badRequest("documents", "field \"documents\" is required")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, badRequest("documents", "field \"documents\" must be an array")
	}
	if len(list) == 0 {
		return nil, badRequest("documents", "field \"documents\" must hold at least one document")
	}
	docs := make([]string, len(list))
	for i, item := range list {
		var obj struct {
			Text *string `json:"text"`
		}
		switch {
		case isNull(item):
			return nil, badRequest("documents", "document %d is null", i)
		case json.Unmarshal(item, &docs[i]) == nil:
		case json.Unmarshal(item, &obj) == nil && obj.Text != nil:
			docs[i] = *obj.Text
		default:
			return nil, badRequest("documents", "document %d must be a string or an object with a \"text\" field", i)
		}
	}
	return docs, nil
}
