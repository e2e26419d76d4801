package engine

/*
#include "llama_api.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Batch is a set of tokens to decode together: each with its position, the
// sequences it belongs to, and whether its logits (or embeddings) are wanted.
// Its arrays live in C memory, filled in place, so Decode copies nothing.
// A Batch is not safe for concurrent use; Close frees it (a forgotten Batch
// is freed when garbage collected).
type Batch struct {
	c        C.llama_batch
	capacity int
	maxSeq   int
	cleanup  runtime.Cleanup
	freed    bool

	token  []C.llama_token
	pos    []C.llama_pos
	nSeq   []C.int32_t
	seq    []*C.llama_seq_id
	logits []C.int8_t
}

// NewBatch returns an empty batch for up to capacity tokens, each in at most
// maxSeqPerToken sequences.
func NewBatch(capacity, maxSeqPerToken int) (*Batch, error) {
	if capacity <= 0 || capacity > 1<<24 || maxSeqPerToken <= 0 || maxSeqPerToken > int(C.llama_max_parallel_sequences()) {
		return nil, fmt.Errorf("engine: batch of %d tokens in up to %d sequences: %w", capacity, maxSeqPerToken, ErrInvalidArgument)
	}
	c := C.llama_batch_init(C.int32_t(capacity), 0, C.int32_t(maxSeqPerToken))
	b := &Batch{
		c:        c,
		capacity: capacity,
		maxSeq:   maxSeqPerToken,
		token:    unsafe.Slice(c.token, capacity),
		pos:      unsafe.Slice(c.pos, capacity),
		nSeq:     unsafe.Slice(c.n_seq_id, capacity),
		seq:      unsafe.Slice(c.seq_id, capacity),
		logits:   unsafe.Slice(c.logits, capacity),
	}
	b.c.n_tokens = 0
	b.cleanup = runtime.AddCleanup(b, func(c C.llama_batch) { C.llama_batch_free(c) }, c)
	return b, nil
}

// Add appends a token at position pos in the given sequences (sequence 0 when
// none are given); logits asks for its output row.
func (b *Batch) Add(t Token, pos Pos, logits bool, seqs ...SeqID) error {
	n := int(b.c.n_tokens)
	switch {
	case b.freed:
		return ErrClosed
	case n >= b.capacity:
		return fmt.Errorf("engine: batch is full (%d tokens): %w", b.capacity, ErrInvalidArgument)
	case len(seqs) > b.maxSeq:
		return fmt.Errorf("engine: token in %d sequences, batch allows %d: %w", len(seqs), b.maxSeq, ErrInvalidArgument)
	case pos < 0:
		return fmt.Errorf("engine: negative position %d: %w", pos, ErrInvalidArgument)
	}
	b.token[n] = C.llama_token(t)
	b.pos[n] = C.llama_pos(pos)
	ids := unsafe.Slice(b.seq[n], b.maxSeq)
	if len(seqs) == 0 {
		ids[0] = 0
		b.nSeq[n] = 1
	} else {
		for i, s := range seqs {
			ids[i] = C.llama_seq_id(s)
		}
		b.nSeq[n] = C.int32_t(len(seqs))
	}
	b.logits[n] = 0
	if logits {
		b.logits[n] = 1
	}
	b.c.n_tokens++
	return nil
}

// SetLogits sets whether row i produces logits.
func (b *Batch) SetLogits(i int, on bool) error {
	if i < 0 || i >= b.Len() {
		return fmt.Errorf("engine: batch row %d outside [0, %d): %w", i, b.Len(), ErrInvalidArgument)
	}
	b.logits[i] = 0
	if on {
		b.logits[i] = 1
	}
	return nil
}

// Len returns the number of tokens in the batch.
func (b *Batch) Len() int { return int(b.c.n_tokens) }

// Cap returns the batch's capacity in tokens.
func (b *Batch) Cap() int { return b.capacity }

// Clear empties the batch for reuse.
func (b *Batch) Clear() { b.c.n_tokens = 0 }

// Close frees the batch's C memory. It is safe to call more than once.
func (b *Batch) Close() {
	if b.freed {
		return
	}
	b.cleanup.Stop()
	C.llama_batch_free(b.c)
	b.freed = true
	b.token, b.pos, b.nSeq, b.seq, b.logits = nil, nil, nil, nil, nil
	b.c.n_tokens = 0
}

// check validates the batch against context c before it reaches llama.cpp.
func (b *Batch) check(c *Context) error {
	n := b.Len()
	switch {
	case b.freed:
		return fmt.Errorf("engine: decode of a closed batch: %w", ErrClosed)
	case n == 0:
		return fmt.Errorf("engine: decode of an empty batch: %w", ErrInvalidArgument)
	case n > c.nBatch:
		return fmt.Errorf("engine: batch of %d tokens exceeds the context's batch size %d: %w", n, c.nBatch, ErrInvalidArgument)
	case c.nonCausal && n > c.nUbatch:
		return fmt.Errorf("engine: batch of %d tokens exceeds the micro-batch %d, which a model without causal attention must decode in one: %w", n, c.nUbatch, ErrInvalidArgument)
	}
	nVocab := c.model.nVocab
	for i := range n {
		if t := int32(b.token[i]); t < 0 || t >= nVocab {
			return fmt.Errorf("engine: batch row %d: token %d outside the vocabulary [0, %d): %w", i, t, nVocab, ErrInvalidArgument)
		}
		if p := int(b.pos[i]); c.posLimit > 0 && p >= c.posLimit {
			return fmt.Errorf("engine: batch row %d: position %d past the model's %d learned positions: %w", i, p, c.posLimit, ErrInvalidArgument)
		}
		for _, s := range unsafe.Slice(b.seq[i], int(b.nSeq[i])) {
			if s < 0 || int(s) >= c.nSeqMax {
				return fmt.Errorf("engine: batch row %d: sequence %d outside [0, %d): %w", i, s, c.nSeqMax, ErrInvalidArgument)
			}
		}
	}
	return nil
}
