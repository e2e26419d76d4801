package engine

/*
#include "llama_api.h"
*/
import "C"

import (
	"context"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Decode runs the model on batch b, appending its tokens to the KV memory of
// their sequences and computing the requested outputs. Cancelling ctx aborts
// the computation between graph nodes and returns an error wrapping
// ErrAborted and ctx.Err(); the micro-batches finished before the abort stay
// in the KV memory (remove them with RemoveTokens to retry).
//
// Other errors: ErrNoKVSlot when the KV memory is full, ErrInvalidBatch when
// llama.cpp rejects the batch (positions that do not continue a sequence),
// ErrInvalidArgument for out-of-range tokens, sequences or sizes (checked
// before any C code runs), ErrClosed after Close.
func (c *Context) Decode(ctx context.Context, b *Batch) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := b.check(c); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrAborted, err)
	}

	flag := (*int32)(unsafe.Pointer(c.abort))
	atomic.StoreInt32(flag, 0)
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { atomic.StoreInt32(flag, 1) })
		defer stop()
	}

	c.nOut = 0
	c.outRow = c.outRow[:0]
	rc := C.llama_decode(c.c, b.c)
	switch {
	case rc == 0:
	case rc == 1:
		return fmt.Errorf("engine: decode of %d tokens: %w", b.Len(), ErrNoKVSlot)
	case rc == 2:
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrAborted, err)
		}
		return ErrAborted
	case rc == -1:
		return fmt.Errorf("engine: decode: %s: %w", orUnknown(takeLastError()), ErrInvalidBatch)
	default:
		return fmt.Errorf("engine: decode failed with code %d: %s", int(rc), orUnknown(takeLastError()))
	}

	// Remember which rows have outputs: llama.cpp aborts the process when
	// asked for a row that has none. In embeddings mode every row is output.
	for i := range b.Len() {
		out := c.embeddings || b.logits[i] != 0
		c.outRow = append(c.outRow, out)
		if out {
			c.nOut++
		}
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "llama.cpp gave no reason"
	}
	return s
}

// checkRow validates an output row of the last decoded batch. c.mu is held.
func (c *Context) checkRow(i int) error {
	if i < 0 || i >= len(c.outRow) {
		return fmt.Errorf("engine: output row %d outside the last batch [0, %d): %w", i, len(c.outRow), ErrInvalidArgument)
	}
	if !c.outRow[i] {
		return fmt.Errorf("engine: batch row %d was decoded without logits: %w", i, ErrInvalidArgument)
	}
	return nil
}

// Logits returns the logits of row i of the last decoded batch, one per
// vocabulary token. The slice is borrowed from llama.cpp, not copied: it is
// valid until the next Decode or Close on this context and must not be
// modified. Use LogitsCopy to keep them.
func (c *Context) Logits(i int) ([]float32, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if err := c.checkRow(i); err != nil {
		return nil, err
	}
	p := C.llama_get_logits_ith(c.c, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("engine: no logits for row %d: %s: %w", i, orUnknown(takeLastError()), ErrInvalidArgument)
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(p)), int(c.model.nVocab)), nil
}

// LogitsCopy appends the logits of row i to dst[:0] and returns it.
func (c *Context) LogitsCopy(dst []float32, i int) ([]float32, error) {
	l, err := c.Logits(i)
	if err != nil {
		return dst, err
	}
	return append(dst[:0], l...), nil
}

// embdSize is the length of an embedding vector. c.mu is held.
func (c *Context) embdSize() int {
	if c.pooling == PoolingRank {
		return int(C.llama_model_n_cls_out(c.model.c))
	}
	return int(C.llama_model_n_embd(c.model.c))
}

// Embeddings returns a copy of the embedding of row i of the last decoded
// batch. It needs a context with Embeddings and PoolingNone.
func (c *Context) Embeddings(i int) ([]float32, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if !c.embeddings || c.pooling != PoolingNone {
		return nil, fmt.Errorf("engine: per-token embeddings need a context with Embeddings and PoolingNone: %w", ErrInvalidArgument)
	}
	if err := c.checkRow(i); err != nil {
		return nil, err
	}
	p := C.llama_get_embeddings_ith(c.c, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("engine: no embedding for row %d: %w", i, ErrInvalidArgument)
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), c.embdSize())...), nil
}

// SequenceEmbeddings returns a copy of the pooled embedding of sequence seq
// from the last decoded batch. It needs a context with Embeddings and a
// pooling type other than PoolingNone. With PoolingRank the result holds the
// classifier's scores.
func (c *Context) SequenceEmbeddings(seq SeqID) ([]float32, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if !c.embeddings || c.pooling == PoolingNone {
		return nil, fmt.Errorf("engine: sequence embeddings need a context with Embeddings and pooling: %w", ErrInvalidArgument)
	}
	if err := c.checkSeq(seq); err != nil {
		return nil, err
	}
	if len(c.outRow) == 0 {
		return nil, fmt.Errorf("engine: no batch decoded yet: %w", ErrInvalidArgument)
	}
	p := C.llama_get_embeddings_seq(c.c, C.llama_seq_id(seq))
	if p == nil {
		return nil, fmt.Errorf("engine: sequence %d was not in the last batch: %w", seq, ErrInvalidArgument)
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), c.embdSize())...), nil
}
