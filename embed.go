package llm

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/gguf"
)

// embedder is the context Embed uses, made on first use.
type embedder struct {
	once  sync.Once
	mu    sync.Mutex
	c     *engine.Context
	batch *engine.Batch
	err   error
}

// Embed returns one embedding per text, as sentence-transformers computes
// them: the model's pooling (mean when the model names none) over the
// text's tokens, normalised to unit length. Texts are embedded one after
// another in a context of their own. A reranker has no embeddings: use
// Rerank.
func (p *Pipeline) Embed(ctx context.Context, texts ...string) ([][]float32, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if p.IsReranker() {
		return nil, fmt.Errorf("llm: embed: %s pools with a classification head (use Rerank): %w", p.name, ErrReranker)
	}
	out := make([][]float32, 0, len(texts))
	for _, text := range texts {
		ids, err := p.model.Tokenize(text, true, false)
		if err != nil {
			return nil, fmt.Errorf("llm: %w", err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("llm: embed: the text %q has no tokens", text)
		}
		v, err := p.pooled(ctx, ids, "embed: a text")
		if err != nil {
			return nil, err
		}
		out = append(out, normalize(v))
	}
	return out, nil
}

// pooled runs ids through the embeddings context and returns the pooled
// output (an embedding, or a reranker's scores). what names the input in
// errors.
func (p *Pipeline) pooled(ctx context.Context, ids []engine.Token, what string) ([]float32, error) {
	e := &p.embed
	e.once.Do(func() {
		h := p.model.Header()
		pooling := engine.PoolingMean
		if _, ok := h.Uint(h.Architecture() + ".pooling_type"); ok {
			pooling = engine.PoolingDefault
		}
		n := p.EmbedContextLength()
		// An encoder attends over the whole text at once: one micro-batch.
		e.c, e.err = p.model.NewContext(engine.ContextOptions{ContextLength: n, BatchSize: n, MicroBatchSize: n,
			Threads: p.cfg.threads, Embeddings: true, Pooling: pooling,
			FlashAttention: p.cfg.flashAttn, TypeK: p.cfg.typeK, TypeV: p.cfg.typeV})
		if e.err == nil {
			e.err = p.applyAdapters(e.c)
		}
		if e.err == nil {
			e.batch, e.err = engine.NewBatch(n, 1)
		}
	})
	if e.err != nil {
		return nil, fmt.Errorf("llm: embeddings context: %w", e.err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(ids) > e.batch.Cap() {
		return nil, fmt.Errorf("llm: %s of %d tokens, the context holds %d: %w", what, len(ids), e.batch.Cap(), ErrPromptTooLong)
	}
	if err := e.c.ClearMemory(false); err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	e.batch.Clear()
	for i, id := range ids {
		e.batch.Add(id, engine.Pos(i), true)
	}
	if err := e.c.Decode(ctx, e.batch); err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	v, err := e.c.SequenceEmbeddings(0)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	return v, nil
}

// EmbedContextLength returns the most tokens a text given to Embed may
// have, its special tokens (BOS/EOS, CLS/SEP) included.
func (p *Pipeline) EmbedContextLength() int {
	n := p.cfg.contextLength
	if n == 0 {
		n = min(engine.DefaultContextLength, max(p.model.Info().TrainContext, 512))
	}
	// Learned absolute positions (BERT, GPT-2) stop at the training
	// context: a longer text has no position embedding to read.
	if train := p.model.Info().TrainContext; train > 0 && hasTensor(p.model.Header(), "position_embd.weight") {
		n = min(n, train)
	}
	return n
}

// hasTensor reports whether the model file has a tensor called name.
func hasTensor(h *gguf.File, name string) bool {
	for _, t := range h.Tensors {
		if t.Name == name {
			return true
		}
	}
	return false
}

// normalize scales v to unit L2 length (a zero vector stays zero).
func normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return v
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
	return v
}
