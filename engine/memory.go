package engine

/*
#include "llama_api.h"
*/
import "C"

import "fmt"

// The KV memory holds, for each sequence, the keys and values of the tokens
// decoded so far, by position. Position ranges are half-open [p0, p1); a
// negative p0 means from the start and a negative p1 means to the end.

// checkSeq validates a sequence id. c.mu is held.
func (c *Context) checkSeq(s SeqID) error {
	if s < 0 || int(s) >= c.nSeqMax {
		return fmt.Errorf("engine: sequence %d outside [0, %d): %w", s, c.nSeqMax, ErrInvalidArgument)
	}
	return nil
}

// ClearMemory removes every sequence from the KV memory; with data, the
// buffers are zeroed too.
func (c *Context) ClearMemory(data bool) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	C.llama_memory_clear(C.llama_get_memory(c.c), C.bool(data))
	return nil
}

// RemoveTokens removes the tokens of sequence seq at positions [p0, p1);
// seq -1 means every sequence. It returns false when the memory cannot
// remove part of a sequence (recurrent models); removing a whole sequence
// always succeeds.
func (c *Context) RemoveTokens(seq SeqID, p0, p1 Pos) (bool, error) {
	if err := c.lock(); err != nil {
		return false, err
	}
	defer c.mu.Unlock()
	if seq != -1 {
		if err := c.checkSeq(seq); err != nil {
			return false, err
		}
	}
	return bool(C.llama_memory_seq_rm(C.llama_get_memory(c.c), C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1))), nil
}

// CopySequence makes the tokens of src at positions [p0, p1) also belong to
// dst, sharing their cells (no data is copied).
func (c *Context) CopySequence(src, dst SeqID, p0, p1 Pos) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(src); err != nil {
		return err
	}
	if err := c.checkSeq(dst); err != nil {
		return err
	}
	C.llama_memory_seq_cp(C.llama_get_memory(c.c), C.llama_seq_id(src), C.llama_seq_id(dst), C.llama_pos(p0), C.llama_pos(p1))
	return nil
}

// KeepSequence removes every sequence but seq.
func (c *Context) KeepSequence(seq SeqID) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq); err != nil {
		return err
	}
	C.llama_memory_seq_keep(C.llama_get_memory(c.c), C.llama_seq_id(seq))
	return nil
}

// ShiftPositions adds delta to the positions [p0, p1) of sequence seq, as
// context shifting does after removing old tokens. It fails when the
// memory cannot shift (see CanShift).
func (c *Context) ShiftPositions(seq SeqID, p0, p1, delta Pos) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq); err != nil {
		return err
	}
	mem := C.llama_get_memory(c.c)
	if !C.llama_memory_can_shift(mem) {
		return fmt.Errorf("engine: this model's memory cannot shift positions: %w", ErrInvalidArgument)
	}
	C.llama_memory_seq_add(mem, C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1), C.llama_pos(delta))
	return nil
}

// CanShift reports whether ShiftPositions is supported.
func (c *Context) CanShift() (bool, error) {
	if err := c.lock(); err != nil {
		return false, err
	}
	defer c.mu.Unlock()
	return bool(C.llama_memory_can_shift(C.llama_get_memory(c.c))), nil
}

// PositionRange returns the smallest and largest positions of sequence seq
// in the memory, or -1, -1 when it is empty.
func (c *Context) PositionRange(seq SeqID) (minPos, maxPos Pos, err error) {
	if err := c.lock(); err != nil {
		return -1, -1, err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq); err != nil {
		return -1, -1, err
	}
	mem := C.llama_get_memory(c.c)
	return Pos(C.llama_memory_seq_pos_min(mem, C.llama_seq_id(seq))), Pos(C.llama_memory_seq_pos_max(mem, C.llama_seq_id(seq))), nil
}
