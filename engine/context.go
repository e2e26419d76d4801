package engine

/*
#include <stdlib.h>
#include "llama_api.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// FlashAttention selects llama.cpp's flash attention.
type FlashAttention int

// Flash attention settings.
const (
	FlashAttentionAuto FlashAttention = iota // on where the backend supports it
	FlashAttentionOn
	FlashAttentionOff
)

// Pooling says how a context in embeddings mode combines a sequence's token
// embeddings.
type Pooling int

// Pooling types, as llama.cpp's --pooling.
const (
	PoolingDefault Pooling = iota // what the model's metadata says
	PoolingNone                   // one embedding per token
	PoolingMean
	PoolingCLS
	PoolingLast
	PoolingRank // a reranker's classification head
)

// CacheType is the element type of the K or V cache: "f16" (the default),
// "f32", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0" or "q5_1".
// Quantized V caches need flash attention.
type CacheType string

var cacheTypes = map[CacheType]C.enum_ggml_type{
	"f32": C.GGML_TYPE_F32, "f16": C.GGML_TYPE_F16, "bf16": C.GGML_TYPE_BF16,
	"q8_0": C.GGML_TYPE_Q8_0, "q4_0": C.GGML_TYPE_Q4_0, "q4_1": C.GGML_TYPE_Q4_1,
	"iq4_nl": C.GGML_TYPE_IQ4_NL, "q5_0": C.GGML_TYPE_Q5_0, "q5_1": C.GGML_TYPE_Q5_1,
}

// blockSize is the number of values a cache type quantizes together.
func (t CacheType) blockSize() uint64 {
	switch strings.ToLower(string(t)) {
	case "", "f16", "f32", "bf16":
		return 1
	}
	return 32
}

// headDims returns the sizes of a key head and a value head from the
// model's metadata (0 when unknown).
func (m *Model) headDims() (k, v uint64) {
	arch := m.header.Architecture()
	heads, _ := m.header.HeadCount()
	embd, _ := m.header.Uint(arch + ".embedding_length")
	if heads > 0 {
		k, v = embd/heads, embd/heads
	}
	if x, ok := m.header.Uint(arch + ".attention.key_length"); ok {
		k = x
	}
	if x, ok := m.header.Uint(arch + ".attention.value_length"); ok {
		v = x
	}
	return k, v
}

// Validate reports whether t names a supported cache type.
func (t CacheType) Validate() error {
	_, err := t.ggml()
	return err
}

func (t CacheType) ggml() (C.enum_ggml_type, error) {
	if t == "" {
		return C.GGML_TYPE_F16, nil
	}
	if g, ok := cacheTypes[CacheType(strings.ToLower(string(t)))]; ok {
		return g, nil
	}
	return 0, fmt.Errorf("engine: cache type %q is not one of f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1: %w", string(t), ErrInvalidArgument)
}

// Defaults of ContextOptions.
const (
	DefaultContextLength  = 4096
	DefaultBatchSize      = 2048
	DefaultMicroBatchSize = 512
)

// ContextOptions configures Model.NewContext. The zero value is a usable
// single-sequence context.
type ContextOptions struct {
	// ContextLength is the number of token positions the KV memory holds,
	// shared by all sequences. 0 means DefaultContextLength, capped at the
	// model's training context.
	ContextLength int
	// BatchSize is the most tokens one Decode may take (0: DefaultBatchSize,
	// capped at ContextLength).
	BatchSize int
	// MicroBatchSize is how many tokens are computed at once inside a Decode
	// (0: DefaultMicroBatchSize, capped at BatchSize).
	MicroBatchSize int
	// MaxSequences is the number of distinct sequences (0: 1).
	MaxSequences int
	// Threads is the number of threads for generation (0: all CPUs).
	Threads int
	// BatchThreads is the number of threads for prompt processing
	// (0: Threads).
	BatchThreads int
	// FlashAttention selects flash attention (default auto).
	FlashAttention FlashAttention
	// TypeK and TypeV are the K and V cache element types (default f16).
	TypeK, TypeV CacheType
	// Embeddings makes Decode compute embeddings instead of logits.
	Embeddings bool
	// Pooling combines token embeddings per sequence (embeddings mode).
	Pooling Pooling
	// SplitKV gives each sequence its own ContextLength/MaxSequences slice
	// of the KV memory instead of sharing one buffer (llama.cpp's
	// kv_unified = false). It can be faster when sequences share no prefix.
	// A hybrid model's attention layers (Granite 4.0-H) then give every
	// sequence the whole ContextLength: MaxSequences times the memory.
	SplitKV bool
}

// Context is a model's inference state: its KV memory and output buffers.
// Its methods serialise on a mutex, so it is safe for concurrent use but runs
// one call at a time.
type Context struct {
	mu    sync.Mutex
	c     *C.struct_llama_context
	model *Model
	abort *C.int32_t // polled by llama.cpp's abort callback

	nCtx, nBatch, nSeqMax int
	// nUbatch is the micro-batch; a model whose attention is not causal
	// (BERT) must decode a batch in one (llama.cpp asserts it).
	nUbatch   int
	nonCausal bool
	// posLimit, when not 0, is the number of learned positions (GPT-2's,
	// BERT's position_embd rows): llama.cpp aborts on a position past them.
	posLimit   int
	embeddings bool
	pooling    Pooling

	adapters map[*Adapter]float32 // applied LoRA adapters and their scales

	// The rows of the last decoded batch that produced outputs: outRow[i]
	// reports whether batch row i has logits/embeddings.
	outRow []bool
	nOut   int
}

// NewContext creates an inference context for m.
func (m *Model) NewContext(opts ContextOptions) (*Context, error) {
	if err := m.acquire(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	if m.vocabOnly {
		return nil, fmt.Errorf("engine: %s was loaded with VocabOnly: no weights to run: %w", m.path, ErrInvalidArgument)
	}

	p, err := m.contextParams(opts)
	if err != nil {
		return nil, err
	}
	loadMu.Lock()
	takeLastError()
	cc := C.llama_init_from_model(m.c, p)
	reason := takeLastError()
	loadMu.Unlock()
	if cc == nil {
		if reason == "" {
			reason = "llama.cpp gave no reason"
		}
		return nil, fmt.Errorf("engine: creating context: %s: %w", reason, ErrLoad)
	}
	c := &Context{
		c:          cc,
		model:      m,
		abort:      (*C.int32_t)(C.calloc(1, C.size_t(unsafe.Sizeof(C.int32_t(0))))),
		nCtx:       int(C.llama_n_ctx(cc)),
		nBatch:     int(C.llama_n_batch(cc)),
		nSeqMax:    int(C.llama_n_seq_max(cc)),
		nUbatch:    int(C.llama_n_ubatch(cc)),
		embeddings: opts.Embeddings,
	}
	c.nonCausal = m.NonCausal()
	if t, ok := m.header.Tensor("position_embd.weight"); ok && len(t.Shape) == 2 {
		c.posLimit = int(min(t.Shape[1], 1<<31-1))
	}
	c.pooling = poolingFromC(C.llama_pooling_type(cc))
	C.llm_set_abort(cc, c.abort)

	m.ctxMu.Lock()
	m.contexts[c] = struct{}{}
	m.ctxMu.Unlock()
	return c, nil
}

func (m *Model) contextParams(o ContextOptions) (C.struct_llama_context_params, error) {
	p := C.llama_context_default_params()
	bad := func(what string, v int) error {
		return fmt.Errorf("engine: context option %s = %d: %w", what, v, ErrInvalidArgument)
	}
	switch {
	case o.ContextLength < 0 || o.ContextLength > 1<<24:
		return p, bad("ContextLength", o.ContextLength)
	case o.BatchSize < 0 || o.BatchSize > 1<<24:
		return p, bad("BatchSize", o.BatchSize)
	case o.MicroBatchSize < 0 || o.MicroBatchSize > 1<<24:
		return p, bad("MicroBatchSize", o.MicroBatchSize)
	case o.MaxSequences < 0 || o.MaxSequences > int(C.llama_max_parallel_sequences()):
		return p, fmt.Errorf("engine: context option MaxSequences = %d, want 0 to %d: %w",
			o.MaxSequences, int(C.llama_max_parallel_sequences()), ErrInvalidArgument)
	case o.Threads < 0 || o.Threads > 1024:
		return p, bad("Threads", o.Threads)
	case o.BatchThreads < 0 || o.BatchThreads > 1024:
		return p, bad("BatchThreads", o.BatchThreads)
	}

	nCtx := o.ContextLength
	if nCtx == 0 {
		nCtx = DefaultContextLength
		if t := m.info.TrainContext; t > 0 && t < nCtx {
			nCtx = t
		}
	}
	nBatch := o.BatchSize
	if nBatch == 0 {
		nBatch = min(DefaultBatchSize, nCtx)
	}
	nUbatch := o.MicroBatchSize
	if nUbatch == 0 {
		nUbatch = min(DefaultMicroBatchSize, nBatch)
	}
	if nUbatch > nBatch {
		return p, fmt.Errorf("engine: MicroBatchSize %d exceeds BatchSize %d: %w", nUbatch, nBatch, ErrInvalidArgument)
	}
	nSeq := max(o.MaxSequences, 1)
	if o.Embeddings && nSeq > 1 && m.meanPooling(o.Pooling) {
		// llama.cpp reserves its worst-case graph with min(n_ctx, n_ubatch)
		// tokens rounded up to a multiple of n_seq_max but keeps the output
		// count unrounded; mean pooling then multiplies mismatched shapes
		// and aborts the process. A micro-batch that is a multiple of the
		// number of sequences avoids the rounding.
		u := min(nUbatch, nCtx) / nSeq * nSeq
		if u == 0 {
			return p, fmt.Errorf("engine: mean pooling over %d sequences needs a micro-batch of at least %d tokens: %w", nSeq, nSeq, ErrInvalidArgument)
		}
		nUbatch = u
	}
	threads := o.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	batchThreads := o.BatchThreads
	if batchThreads == 0 {
		batchThreads = threads
	}
	tk, err := o.TypeK.ggml()
	if err != nil {
		return p, err
	}
	tv, err := o.TypeV.ggml()
	if err != nil {
		return p, err
	}

	// ggml quantizes the cache one head row at a time and aborts the process
	// when a row is not a whole number of blocks.
	kDim, vDim := m.headDims()
	for _, c := range []struct {
		name string
		t    CacheType
		dim  uint64
	}{{"K", o.TypeK, kDim}, {"V", o.TypeV, vDim}} {
		if b := c.t.blockSize(); c.dim > 0 && c.dim%b != 0 {
			return p, fmt.Errorf("engine: %s cache type %s stores blocks of %d values, but this model's heads have %d: %w",
				c.name, c.t, b, c.dim, ErrInvalidArgument)
		}
	}

	p.n_ctx = C.uint32_t(nCtx)
	p.n_batch = C.uint32_t(nBatch)
	p.n_ubatch = C.uint32_t(nUbatch)
	p.n_seq_max = C.uint32_t(nSeq)
	p.n_threads = C.int32_t(threads)
	p.n_threads_batch = C.int32_t(batchThreads)
	p.type_k, p.type_v = tk, tv
	p.kv_unified = C.bool(!o.SplitKV)
	switch o.FlashAttention {
	case FlashAttentionAuto:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_AUTO
	case FlashAttentionOn:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
	case FlashAttentionOff:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	default:
		return p, bad("FlashAttention", int(o.FlashAttention))
	}
	p.embeddings = C.bool(o.Embeddings)
	switch o.Pooling {
	case PoolingDefault:
		p.pooling_type = C.LLAMA_POOLING_TYPE_UNSPECIFIED
	case PoolingNone:
		p.pooling_type = C.LLAMA_POOLING_TYPE_NONE
	case PoolingMean:
		p.pooling_type = C.LLAMA_POOLING_TYPE_MEAN
	case PoolingCLS:
		p.pooling_type = C.LLAMA_POOLING_TYPE_CLS
	case PoolingLast:
		p.pooling_type = C.LLAMA_POOLING_TYPE_LAST
	case PoolingRank:
		p.pooling_type = C.LLAMA_POOLING_TYPE_RANK
	default:
		return p, bad("Pooling", int(o.Pooling))
	}
	p.no_perf = false
	return p, nil
}

// meanPooling reports whether embeddings use mean pooling with the pooling
// option p, where PoolingDefault defers to the model's metadata.
func (m *Model) meanPooling(p Pooling) bool {
	if p != PoolingDefault {
		return p == PoolingMean
	}
	v, ok := m.header.Uint(m.header.Architecture() + ".pooling_type")
	return ok && v == C.LLAMA_POOLING_TYPE_MEAN
}

func poolingFromC(t C.enum_llama_pooling_type) Pooling {
	switch t {
	case C.LLAMA_POOLING_TYPE_NONE:
		return PoolingNone
	case C.LLAMA_POOLING_TYPE_MEAN:
		return PoolingMean
	case C.LLAMA_POOLING_TYPE_CLS:
		return PoolingCLS
	case C.LLAMA_POOLING_TYPE_LAST:
		return PoolingLast
	case C.LLAMA_POOLING_TYPE_RANK:
		return PoolingRank
	}
	return PoolingDefault
}

// Close frees the context. It waits for a running call to finish, and is
// safe to call more than once.
func (c *Context) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.c == nil {
		c.mu.Unlock()
		return nil
	}
	C.llm_free_context(c.c) // llama_free, with its backends freed last (bridge.c)
	C.free(unsafe.Pointer(c.abort))
	c.c, c.abort = nil, nil
	c.mu.Unlock()

	c.model.ctxMu.Lock()
	delete(c.model.contexts, c)
	c.model.ctxMu.Unlock()
	return nil
}

// deferredBackendFrees counts the backends whose free llm_free_context
// held back until llama_free had returned (-1 where it does not, off Linux).
func deferredBackendFrees() int64 { return int64(C.llm_deferred_backend_frees()) }

// lock takes the context's mutex and checks it is open. The caller must
// unlock c.mu when it succeeds.
func (c *Context) lock() error {
	c.mu.Lock()
	if c.c == nil {
		c.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Model returns the model the context was created from.
func (c *Context) Model() *Model { return c.model }

// ContextLength returns the number of positions the KV memory holds.
func (c *Context) ContextLength() int { return c.nCtx }

// BatchSize returns the most tokens one Decode may take.
func (c *Context) BatchSize() int { return c.nBatch }

// MaxSequences returns the number of sequences the context supports.
func (c *Context) MaxSequences() int { return c.nSeqMax }

// Pooling returns the pooling type in effect.
func (c *Context) Pooling() Pooling { return c.pooling }

// SetThreads changes the number of threads used for generation and for
// batches (prompt processing).
func (c *Context) SetThreads(threads, batchThreads int) error {
	if threads <= 0 || batchThreads <= 0 || threads > 1024 || batchThreads > 1024 {
		return fmt.Errorf("engine: threads %d/%d: %w", threads, batchThreads, ErrInvalidArgument)
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	C.llama_set_n_threads(c.c, C.int32_t(threads), C.int32_t(batchThreads))
	return nil
}

// Perf holds llama.cpp's performance counters for a context.
type Perf struct {
	LoadMS         float64 // time to load the model, in milliseconds
	PromptMS       float64 // time spent on prompt batches (more than one token)
	PromptTokens   int     // tokens in prompt batches
	GenerateMS     float64 // time spent on single-token decodes
	GenerateTokens int     // tokens decoded one at a time
	GraphReuses    int     // decodes that reused the previous compute graph
}

// Perf returns the context's performance counters.
func (c *Context) Perf() (Perf, error) {
	if err := c.lock(); err != nil {
		return Perf{}, err
	}
	defer c.mu.Unlock()
	d := C.llama_perf_context(c.c)
	return Perf{
		LoadMS:         float64(d.t_load_ms),
		PromptMS:       float64(d.t_p_eval_ms),
		PromptTokens:   int(d.n_p_eval),
		GenerateMS:     float64(d.t_eval_ms),
		GenerateTokens: int(d.n_eval),
		GraphReuses:    int(d.n_reused),
	}, nil
}

// ResetPerf zeroes the performance counters.
func (c *Context) ResetPerf() error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	C.llama_perf_context_reset(c.c)
	return nil
}
