package llm_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
)

// rerankReference scores ids as transformers' BertForSequenceClassification
// with RoBERTa's head does: the first token's final hidden state through
// cls (dense, tanh) and cls.output.
func rerankReference(w testmodel.BERTWeights, ids []int) float64 {
	h := reference.Affine(f64(w, "cls.weight"), f64(w, "cls.bias"), bertModel(w).Forward(ids)[0])
	for i := range h {
		h[i] = math.Tanh(h[i])
	}
	return reference.Affine(f64(w, "cls.output.weight"), f64(w, "cls.output.bias"), h)[0]
}

// TestRerank: Rerank on a BERT cross-encoder with a classification head
// gives, per document, the score computed here independently for the pair
// as llama-server joins it ([CLS] query [SEP] document for BERT's
// vocabulary), or as the model's rerank template writes it; Embed refuses a
// reranker and Rerank a model that is not one.
func TestRerank(t *testing.T) {
	ctx := context.Background()
	path, w := testmodel.BERT(t, true)
	query := "the cat"
	docs := []string{"The cat sat on the mat.", "A dog ran in the park", "hello world!", "cats"}
	check := func(p *llm.Pipeline, pair func(q, d []int) []int) {
		t.Helper()
		scores, err := p.Rerank(ctx, query, docs...)
		if err != nil {
			t.Fatal(err)
		}
		tok := func(s string) []int {
			ids, err := p.Model().Tokenize(s, false, false)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]int, len(ids))
			for i, id := range ids {
				out[i] = int(id)
			}
			return out
		}
		for i, d := range docs {
			want := rerankReference(w, pair(tok(query), tok(d)))
			// ggml's CPU GELU reads an F16 table: about 1e-3 of error.
			if math.Abs(scores[i]-want) > 3e-3*max(1, math.Abs(want)) {
				t.Errorf("%q: score %.5f, reference %.5f", d, scores[i], want)
			}
			t.Logf("%q: score %.5f, reference %.5f", d, scores[i], want)
		}
		if slices.Min(scores) == slices.Max(scores) {
			t.Error("every document scored the same")
		}
	}

	// An F32 cache without flash attention (which rounds to F16 on the
	// CPU): WithCacheTypes and WithFlashAttention reach the context.
	exact := []llm.Option{llm.WithThreads(1), llm.WithCacheTypes("f32", "f32"), llm.WithFlashAttention(engine.FlashAttentionOff)}
	p, err := llm.New(ctx, path, exact...)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.IsReranker() {
		t.Fatal("IsReranker is false")
	}
	check(p, func(q, d []int) []int { return slices.Concat([]int{101}, q, []int{102}, d) })
	if _, err := p.Embed(ctx, "cats"); err == nil {
		t.Error("Embed on a reranker succeeded")
	}
	if _, err := p.Rerank(ctx, query); err != nil {
		t.Errorf("no documents: %v", err)
	}

	// A rerank template, as Qwen3-Reranker GGUFs carry.
	tmplPath := filepath.Join(t.TempDir(), "template.gguf")
	if err := gguf.Rewrite(tmplPath, path, func(gw *gguf.Writer) {
		gw.Set("tokenizer.chat_template.rerank", gguf.String("{document} [SEP] {query}"))
	}); err != nil {
		t.Fatal(err)
	}
	pt, err := llm.New(ctx, tmplPath, exact...)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	check(pt, func(q, d []int) []int { return slices.Concat(d, []int{102}, q) })

	stories, err := llm.New(ctx, shareddata.Path(t, "models", "stories260K.gguf"), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer stories.Close()
	if _, err := stories.Rerank(ctx, query, docs...); !errors.Is(err, llm.ErrNotReranker) {
		t.Errorf("Rerank on a generative model: %v", err)
	}
}
