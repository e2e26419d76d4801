package engine

// #include "llama_api.h"
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// statePartialOnly is llama.cpp's LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY: of a
// hybrid model's memory, the recurrent part alone.
const statePartialOnly = 1

// ErrCheckpoint is wrapped by the error for a checkpoint that cannot be
// restored: taken of another context or sequence, or of positions the
// sequence no longer holds.
var ErrCheckpoint = errors.New("engine: checkpoint does not fit the sequence")

// A Checkpoint is a recurrent model's state of one sequence at one
// position (its recurrent layers only: a hybrid model's attention memory
// stays in the context), taken by Context.Checkpoint. A recurrent memory
// cannot drop its last tokens; restoring a checkpoint rewinds the sequence
// to it instead, so a prompt that shares the tokens up to it is not decoded
// again from the start. It holds the model's recurrent state of one
// sequence (Size bytes: from kilobytes for LFM2 to tens of megabytes for
// large Mamba-2 and DeltaNet models).
type Checkpoint struct {
	ctx  *Context // the context and sequence it was taken of
	seq  SeqID
	pos  Pos    // the last position the state has seen
	data []byte // llama.cpp's partial sequence state
}

// Pos returns the last position the checkpoint's state has seen: restored,
// the sequence holds positions 0 to Pos.
func (cp *Checkpoint) Pos() Pos { return cp.pos }

// Size returns the checkpoint's size in bytes.
func (cp *Checkpoint) Size() int { return len(cp.data) }

// Checkpoint copies the recurrent state of sequence seq of a recurrent or
// hybrid model, which must hold at least one token. With reuse (a
// checkpoint of this context to replace), its memory is reused when large
// enough, and reuse is the result: on an error reuse no longer holds a
// valid state.
func (c *Context) Checkpoint(seq SeqID, reuse *Checkpoint) (*Checkpoint, error) {
	if !c.model.IsRecurrent() {
		return nil, fmt.Errorf("engine: checkpoint of sequence %d: the model keeps no recurrent state (its memory can drop tokens)", seq)
	}
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq); err != nil {
		return nil, err
	}
	mem := C.llama_get_memory(c.c)
	pos := C.llama_memory_seq_pos_max(mem, C.llama_seq_id(seq))
	if pos < 0 {
		return nil, fmt.Errorf("engine: checkpoint of sequence %d: it is empty", seq)
	}
	size := C.llama_state_seq_get_size_ext(c.c, C.llama_seq_id(seq), statePartialOnly)
	if size == 0 {
		return nil, fmt.Errorf("engine: checkpoint of sequence %d: llama.cpp gave no state", seq)
	}
	cp := reuse
	if cp == nil || cp.ctx != c || cap(cp.data) < int(size) {
		cp = &Checkpoint{data: make([]byte, int(size))}
	}
	cp.ctx, cp.seq, cp.pos, cp.data = c, seq, Pos(pos), cp.data[:int(size)]
	if n := C.llama_state_seq_get_data_ext(c.c, (*C.uint8_t)(unsafe.Pointer(&cp.data[0])), size, C.llama_seq_id(seq), statePartialOnly); n != size {
		cp.data = cp.data[:0]
		return nil, fmt.Errorf("engine: checkpoint of sequence %d: llama.cpp gave %d of %d bytes of state", seq, n, size)
	}
	return cp, nil
}

// RestoreCheckpoint rewinds sequence seq to cp, taken of the same sequence
// of this context: its recurrent state becomes cp's and its memory past
// cp's position is dropped. The sequence must still hold the positions up
// to cp's as they were when cp was taken (a hybrid model's attention
// memory of them is kept): the caller tracks that, as only the sequence's
// extent can be checked here. A checkpoint of another context or sequence,
// or past what the sequence holds, is refused with ErrCheckpoint and the
// sequence left as it was; once llama.cpp has been handed the state, an
// error leaves the sequence cleared.
func (c *Context) RestoreCheckpoint(seq SeqID, cp *Checkpoint) error {
	switch {
	case cp == nil || len(cp.data) == 0:
		return fmt.Errorf("engine: restoring sequence %d: no checkpoint: %w", seq, ErrCheckpoint)
	case cp.ctx != c || cp.seq != seq:
		return fmt.Errorf("engine: restoring sequence %d: a checkpoint of sequence %d of another context or this one: %w", seq, cp.seq, ErrCheckpoint)
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq); err != nil {
		return err
	}
	mem := C.llama_get_memory(c.c)
	if hi := C.llama_memory_seq_pos_max(mem, C.llama_seq_id(seq)); hi < C.llama_pos(cp.pos) {
		return fmt.Errorf("engine: restoring sequence %d: it holds positions up to %d, the checkpoint %d: %w", seq, hi, cp.pos, ErrCheckpoint)
	}
	fail := func(why string) error {
		C.llama_memory_seq_rm(mem, C.llama_seq_id(seq), -1, -1)
		return fmt.Errorf("engine: restoring sequence %d: %s: %w", seq, why, ErrCheckpoint)
	}
	takeLastError()
	if got := C.llama_state_seq_set_data_ext(c.c, (*C.uint8_t)(unsafe.Pointer(&cp.data[0])), C.size_t(len(cp.data)), C.llama_seq_id(seq), statePartialOnly); got == 0 {
		reason := takeLastError()
		if reason == "" {
			reason = "llama.cpp refused the state"
		}
		return fail(reason)
	}
	// The recurrent state now ends at cp.pos: drop the attention memory
	// past it.
	if !C.llama_memory_seq_rm(mem, C.llama_seq_id(seq), C.llama_pos(cp.pos)+1, -1) {
		return fail("llama.cpp could not drop the positions past it")
	}
	return nil
}
