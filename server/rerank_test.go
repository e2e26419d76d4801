package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/testmodel"
)

// TestRerank: /v1/rerank (and /rerank) scores documents with a reranker
// as llm.Pipeline.Rerank does, most relevant first, top_n of them, with
// their text when asked; documents may be objects with "text"; a model
// that is not a reranker, a missing query and a bad top_n are 400s, and a
// reranker refuses /v1/embeddings.
func TestRerank(t *testing.T) {
	path, _ := testmodel.BERT(t, true)
	cfg := testConfig(t)
	cfg.Models, cfg.MaxModels = []string{path, storiesPath(t)}, 2
	_, url := start(t, cfg)
	p, err := llm.New(context.Background(), path, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	docs := []string{"The cat sat on the mat.", "A dog ran in the park", "hello world!", "cats"}
	want, err := p.Rerank(context.Background(), "the cat", docs...)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Index          int     `json:"index"`
		RelevanceScore float64 `json:"relevance_score"`
		Document       *struct{ Text string }
	}
	type response struct {
		Results []result
		Usage   struct {
			PromptTokens int `json:"prompt_tokens"`
		}
	}
	model := "tiny-bert"
	resp, body := post(t, url+"/v1/rerank", map[string]any{"model": model, "query": "the cat", "documents": docs})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	r := decode[response](t, body)
	if len(r.Results) != len(docs) || r.Usage.PromptTokens == 0 {
		t.Fatalf("response %s", body)
	}
	// The usage counts what was decoded: each pair, with its special
	// tokens ([CLS] q [SEP] [SEP] d [SEP] here).
	if n, err := p.RerankTokens("the cat", docs...); err != nil || r.Usage.PromptTokens != n {
		t.Errorf("usage %d prompt tokens, Rerank decoded %d (%v)", r.Usage.PromptTokens, n, err)
	}
	for i, res := range r.Results {
		if d := res.RelevanceScore - want[res.Index]; d > 1e-5 || d < -1e-5 || res.Document != nil {
			t.Errorf("result %d: %+v, want score %v", i, res, want[res.Index])
		}
		if i > 0 && res.RelevanceScore > r.Results[i-1].RelevanceScore {
			t.Errorf("result %d scores above result %d: %s", i, i-1, body)
		}
	}
	objs := []map[string]string{{"text": docs[0]}, {"text": docs[1]}, {"text": docs[2]}, {"text": docs[3]}}
	resp, body = post(t, url+"/rerank", map[string]any{"model": model, "query": "the cat", "documents": objs, "top_n": 2, "return_documents": true})
	top := decode[response](t, body)
	if resp.StatusCode != http.StatusOK || len(top.Results) != 2 || top.Results[0].Index != r.Results[0].Index ||
		top.Results[0].Document == nil || top.Results[0].Document.Text != docs[top.Results[0].Index] {
		t.Errorf("/rerank with top_n 2: %d %s", resp.StatusCode, body)
	}
	for _, tc := range []struct {
		req  map[string]any
		want string
	}{
		{map[string]any{"model": "stories260K", "query": "q", "documents": docs}, "not a reranker"},
		{map[string]any{"model": model, "documents": docs}, "query"},
		{map[string]any{"model": model, "query": "q", "documents": docs, "top_n": 0}, "top_n"},
		{map[string]any{"model": model, "query": "q", "documents": []any{1}}, "document 0"},
		{map[string]any{"model": model, "query": "q", "documents": []any{}}, "at least one document"},
		{map[string]any{"model": model, "query": "q", "documents": []any{"a", nil}}, "document 1 is null"},
	} {
		resp, body := post(t, url+"/v1/rerank", tc.req)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
			t.Errorf("%v: %d %s", tc.req, resp.StatusCode, body)
		}
	}
	resp, body = post(t, url+"/v1/embeddings", map[string]any{"model": model, "input": "cats"})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Rerank") {
		t.Errorf("/v1/embeddings of a reranker: %d %s", resp.StatusCode, body)
	}
}
