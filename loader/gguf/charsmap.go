package gguf

import (
	"encoding/binary"
	"fmt"
)

// keyCharsmap is a Unigram (llama.cpp's UGM, "t5") vocabulary's
// SentencePiece normalization table.
const keyCharsmap = "tokenizer.ggml.precompiled_charsmap"

// CheckCharsmap checks a SentencePiece precompiled charsmap as llama.cpp's
// UGM tokenizer reads it: a little-endian uint32 size of an XOR-compressed
// double array (XCDA) of uint32 units, the array, then the NUL-terminated
// replacement strings. llama.cpp throws out of its C tokenize function (so
// the process aborts) when a walk of the array leaves it or a leaf points
// past the replacements, and reads a replacement up to its NUL: so every
// node the walk can reach, for any input byte, must stay inside, and the
// replacements must end with a NUL.
func CheckCharsmap(cm []byte) error {
	if len(cm) < 4 {
		return fmt.Errorf("gguf: precompiled charsmap of %d bytes has no size: %w", len(cm), ErrInvalid)
	}
	blob := uint64(binary.LittleEndian.Uint32(cm))
	if blob%4 != 0 || blob == 0 || blob+4 >= uint64(len(cm)) {
		return fmt.Errorf("gguf: precompiled charsmap: an array of %d bytes in %d: %w", blob, len(cm), ErrInvalid)
	}
	units := make([]uint32, blob/4)
	for i := range units {
		units[i] = binary.LittleEndian.Uint32(cm[4+4*i:])
	}
	repl := cm[4+blob:]
	if repl[len(repl)-1] != 0 {
		return fmt.Errorf("gguf: precompiled charsmap: the replacement strings do not end with NUL: %w", ErrInvalid)
	}
	n := uint32(len(units))
	base := func(i uint32) uint32 { u := units[i]; return (u >> 10) << ((u & (1 << 9)) >> 6) }
	lcheck := func(i uint32) uint32 { return units[i] & ((1 << 31) | 0xff) }
	leaf := func(i uint32) bool { return (units[i]>>8)&1 == 1 }
	value := func(i uint32) uint32 { return units[i] & ((1 << 31) - 1) }
	bad := func(what string, i uint32) error {
		return fmt.Errorf("gguf: precompiled charsmap: %s %d is outside the %d units: %w", what, i, n, ErrInvalid)
	}
	start := base(0)
	seen := map[uint32]bool{start: true}
	queue := []uint32{start}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for c := uint32(1); c < 256; c++ {
			i := s ^ c
			if i >= n {
				return bad("node", i)
			}
			if lcheck(i) != c {
				continue
			}
			next := i ^ base(i)
			if leaf(i) {
				if next >= n {
					return bad("leaf", next)
				}
				if v := value(next); uint64(v) >= uint64(len(repl)) {
					return fmt.Errorf("gguf: precompiled charsmap: replacement %d past its %d bytes: %w", v, len(repl), ErrInvalid)
				}
			}
			if !seen[next] {
				seen[next] = true
				queue = append(queue, next)
			}
		}
	}
	return nil
}
