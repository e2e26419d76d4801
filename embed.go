package llm

import (
	"context"
	"errors"
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
	seqs  int             // sequences per batch
	task  *engine.Adapter // the task adapter set on c (nil: none)
	// dirty: setting the adapters failed half-way; the next call sets
	// them again whatever task it asks for.
	dirty bool
	err   error
}

// Embed returns one embedding per text, as sentence-transformers computes
// them: the model's pooling (mean when the model names none) over the
// text's tokens, normalised to unit length. Texts are embedded in a context
// of their own, several in one batch (one sequence each) as far as the
// batch holds them. With WithTask, each text follows the task's
// instruction. A reranker has no embeddings: use Rerank.
func (p *Pipeline) Embed(ctx context.Context, texts ...string) ([][]float32, error) {
	return p.EmbedWith(ctx, EmbedOptions{}, texts...)
}

// EmbedOptions are the choices of EmbedWith.
type EmbedOptions struct {
	// Task embeds for one of the model's tasks (Tasks): its LoRA adapter
	// applied and its instruction put before each text, as WithTask does
	// for every call; "" is WithTask's task, or none. A task the model
	// has no adapter for is an error wrapping ErrUnknownTask.
	Task string
	// Dimensions, when not 0, cuts the embeddings to their first
	// Dimensions values, normalised again (see EmbedDimensions).
	Dimensions int
}

// EmbedWith is Embed with options: the task (jina-embeddings-v3's
// retrieval.query for queries and retrieval.passage for documents, from
// one pipeline) and the dimensions.
func (p *Pipeline) EmbedWith(ctx context.Context, opts EmbedOptions, texts ...string) ([][]float32, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if p.IsReranker() {
		return nil, fmt.Errorf("llm: embed: %s pools with a classification head (use Rerank): %w", p.name, ErrReranker)
	}
	if width := p.model.Info().EmbeddingSize; opts.Dimensions < 0 || opts.Dimensions > width {
		return nil, fmt.Errorf("%w: %d for %s, whose embeddings have %d", ErrDimensions, opts.Dimensions, p.name, width)
	}
	task, prefix, err := p.taskAdapter(opts.Task)
	if err != nil {
		return nil, err
	}
	inputs := make([][]engine.Token, len(texts))
	for i, text := range texts {
		ids, err := p.model.Tokenize(prefix+text, true, false)
		if err != nil {
			return nil, engineErr(err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("llm: embed: the text %q has no tokens", text)
		}
		inputs[i] = ids
	}
	out, err := p.pooled(ctx, inputs, func(i int) string { return fmt.Sprintf("embed: text %d", i) }, task)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if opts.Dimensions > 0 && opts.Dimensions < len(out[i]) {
			out[i] = out[i][:opts.Dimensions:opts.Dimensions]
		}
		out[i] = normalize(out[i])
	}
	return out, nil
}

// modelPooling is the pooling a model's GGUF names in {arch}.pooling_type,
// given to llama.cpp explicitly: llama.cpp reads the key for some archs
// only (BERT's, Qwen2's and Qwen3's), and a decoder converted from a
// sentence-transformers model on another arch (llama) names it too. Without
// the key, mean, as sentence-transformers defaults.
func modelPooling(h *gguf.File) engine.Pooling {
	v, ok := h.Uint(h.Architecture() + ".pooling_type")
	if !ok {
		return engine.PoolingMean
	}
	switch v {
	case 1:
		return engine.PoolingMean
	case 2:
		return engine.PoolingCLS
	case 3:
		return engine.PoolingLast
	case poolingRank:
		return engine.PoolingRank
	}
	return engine.PoolingDefault
}

// ErrDimensions is wrapped by the error of an embedding size outside 1 to
// the model's width.
var ErrDimensions = errors.New("llm: embedding dimensions out of range")

// EmbedDimensions is Embed with each embedding cut to its first dims values
// and normalised again, as sentence-transformers' truncate_dim and the
// OpenAI API's dimensions do: for a model trained for it (Matryoshka:
// nomic-embed-text v1.5, EmbeddingGemma, Qwen3-Embedding) a smaller
// embedding of nearly the same quality. dims must be between 1 and the
// model's width (which gives Embed's embeddings).
func (p *Pipeline) EmbedDimensions(ctx context.Context, dims int, texts ...string) ([][]float32, error) {
	if width := p.model.Info().EmbeddingSize; dims < 1 || dims > width {
		return nil, fmt.Errorf("%w: %d for %s, whose embeddings have %d", ErrDimensions, dims, p.name, width)
	}
	return p.EmbedWith(ctx, EmbedOptions{Dimensions: dims}, texts...)
}

// maxEmbedSequences is how many inputs one embeddings batch may hold.
const maxEmbedSequences = 16

// pooled runs each input through the embeddings context and returns its
// pooled output (an embedding, or a reranker's scores), packing several
// inputs into one batch, one sequence each, with the task adapter task
// (nil: none) beside the pipeline's. what names input i in errors.
func (p *Pipeline) pooled(ctx context.Context, inputs [][]engine.Token, what func(i int) string, task *engine.Adapter) ([][]float32, error) {
	e := &p.embed
	e.once.Do(func() {
		h := p.model.Header()
		pooling := modelPooling(h)
		n := p.EmbedContextLength()
		// As many sequences as divide the micro-batch (llama.cpp rounds it
		// to a multiple of them for mean pooling).
		e.seqs = maxEmbedSequences
		for n%e.seqs != 0 {
			e.seqs /= 2
		}
		// An encoder attends over the whole text at once: one micro-batch.
		e.c, e.err = p.model.NewContext(engine.ContextOptions{ContextLength: n, BatchSize: n, MicroBatchSize: n,
			MaxSequences: e.seqs, Threads: p.cfg.threads, Embeddings: true, Pooling: pooling,
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
	for i, ids := range inputs {
		if len(ids) > e.batch.Cap() {
			return nil, fmt.Errorf("llm: %s of %d tokens, the context holds %d: %w", what(i), len(ids), e.batch.Cap(), ErrPromptTooLong)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// The pipeline's adapters and the task's on the context. (llama.cpp
	// reuses a graph only when every input allows it, and does not see a
	// change of adapters; this context's graphs always have a pooling
	// input, which never allows reuse, so the change is always built in.)
	if task != e.task || e.dirty {
		e.dirty = true // until all are set
		if err := e.c.ClearAdapters(); err != nil {
			return nil, engineErr(err)
		}
		if err := p.applyAdapters(e.c); err != nil {
			return nil, err
		}
		if task != nil {
			if err := e.c.SetAdapter(task, 1); err != nil {
				return nil, engineErr(err)
			}
		}
		e.task, e.dirty = task, false
	}
	out := make([][]float32, len(inputs))
	for next := 0; next < len(inputs); {
		if err := e.c.ClearMemory(false); err != nil {
			return nil, engineErr(err)
		}
		e.batch.Clear()
		first := next
		for next < len(inputs) && next-first < e.seqs && e.batch.Len()+len(inputs[next]) <= e.batch.Cap() {
			for k, id := range inputs[next] {
				e.batch.Add(id, engine.Pos(k), true, engine.SeqID(next-first))
			}
			next++
		}
		if err := e.c.Decode(ctx, e.batch); err != nil {
			return nil, engineErr(err)
		}
		for i := first; i < next; i++ {
			v, err := e.c.SequenceEmbeddings(engine.SeqID(i - first))
			if err != nil {
				return nil, engineErr(err)
			}
			out[i] = v
		}
	}
	return out, nil
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
