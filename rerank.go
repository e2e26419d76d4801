package llm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/llm-go/llm/engine"
)

// Errors of models used for what they do not do.
var (
	// ErrNotReranker means Rerank was asked of a model that is not a
	// reranker.
	ErrNotReranker = errors.New("llm: the model is not a reranker")
	// ErrReranker means Embed was asked of a reranker, which scores pairs
	// instead.
	ErrReranker = errors.New("llm: the model is a reranker, not an embedding model")
)

// poolingRank is llama.cpp's LLAMA_POOLING_TYPE_RANK in a GGUF's
// {arch}.pooling_type.
const poolingRank = 4

// IsReranker reports whether the model is a reranker: a cross-encoder
// whose GGUF pools with a classification head (pooling type rank), as
// bge-reranker, jina-reranker and Qwen3-Reranker GGUFs do.
func (p *Pipeline) IsReranker() bool {
	h := p.model.Header()
	t, ok := h.Uint(h.Architecture() + ".pooling_type")
	return ok && t == poolingRank
}

// Rerank scores how relevant each document is to query with a reranker
// (see IsReranker), as llama-server's /v1/rerank does: one score per
// document, in the documents' order; higher is more relevant. A
// classification head's score is its raw output (a logit); Qwen3-Reranker's
// is a probability. Each pair is one input: the model's rerank template
// (tokenizer.chat_template.rerank) with {query} and {document} filled in,
// or else [BOS] query [EOS] [SEP] document [EOS] with the tokens the
// vocabulary adds (BERT's: [CLS] query [SEP] document).
func (p *Pipeline) Rerank(ctx context.Context, query string, documents ...string) ([]float64, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if !p.IsReranker() {
		return nil, fmt.Errorf("llm: rerank: %s has no classification head (its pooling is not rank): %w", p.name, ErrNotReranker)
	}
	inputs := make([][]engine.Token, len(documents))
	for i, doc := range documents {
		ids, err := p.rerankTokens(query, doc)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("llm: rerank: the query with document %d has no tokens: %w", i, ErrEmptyPrompt)
		}
		inputs[i] = ids
	}
	scores, err := p.pooled(ctx, inputs, func(i int) string { return fmt.Sprintf("rerank: the query with document %d", i) }, nil)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(documents))
	for i, v := range scores {
		if len(v) == 0 {
			return nil, fmt.Errorf("llm: rerank: the model gave no score")
		}
		out[i] = float64(v[0])
	}
	return out, nil
}

// RerankTokens returns how many tokens Rerank decodes for the query and
// documents (the usage a server reports).
func (p *Pipeline) RerankTokens(query string, documents ...string) (int, error) {
	n := 0
	for _, doc := range documents {
		ids, err := p.rerankTokens(query, doc)
		if err != nil {
			return 0, err
		}
		n += len(ids)
	}
	return n, nil
}

// rerankTokens is the input for one query and document.
func (p *Pipeline) rerankTokens(query, doc string) ([]engine.Token, error) {
	if tmpl, ok := p.model.ChatTemplate("rerank"); ok {
		prompt := strings.NewReplacer("{query}", query, "{document}", doc).Replace(tmpl)
		ids, err := p.model.Tokenize(prompt, false, true)
		if err != nil {
			return nil, engineErr(err)
		}
		return ids, nil
	}
	q, err := p.model.Tokenize(query, false, false)
	if err != nil {
		return nil, engineErr(err)
	}
	d, err := p.model.Tokenize(doc, false, false)
	if err != nil {
		return nil, engineErr(err)
	}
	sp := p.model.SpecialTokens()
	eos := sp.EOS
	if eos < 0 {
		eos = sp.SEP
	}
	ids := make([]engine.Token, 0, len(q)+len(d)+4)
	if sp.AddBOS {
		ids = append(ids, sp.BOS)
	}
	ids = append(ids, q...)
	if sp.AddEOS {
		ids = append(ids, eos)
	}
	if sp.AddSEP {
		ids = append(ids, sp.SEP)
	}
	ids = append(ids, d...)
	if sp.AddEOS {
		ids = append(ids, eos)
	}
	return ids, nil
}
