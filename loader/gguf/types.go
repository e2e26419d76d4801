package gguf

import (
	"fmt"
	"strconv"
	"strings"
)

// Type is a ggml tensor type: the values of llama.cpp's enum ggml_type, as
// stored in a GGUF tensor info.
type Type uint32

// The ggml tensor types. Ids 4, 5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4, Q4_0_4_8,
// Q4_0_8_8) and 36-38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) were removed
// from ggml and are rejected in files; they have no constant here.
const (
	TypeF32     Type = 0
	TypeF16     Type = 1
	TypeQ4_0    Type = 2
	TypeQ4_1    Type = 3
	TypeQ5_0    Type = 6
	TypeQ5_1    Type = 7
	TypeQ8_0    Type = 8
	TypeQ8_1    Type = 9
	TypeQ2_K    Type = 10
	TypeQ3_K    Type = 11
	TypeQ4_K    Type = 12
	TypeQ5_K    Type = 13
	TypeQ6_K    Type = 14
	TypeQ8_K    Type = 15
	TypeIQ2_XXS Type = 16
	TypeIQ2_XS  Type = 17
	TypeIQ3_XXS Type = 18
	TypeIQ1_S   Type = 19
	TypeIQ4_NL  Type = 20
	TypeIQ3_S   Type = 21
	TypeIQ2_S   Type = 22
	TypeIQ4_XS  Type = 23
	TypeI8      Type = 24
	TypeI16     Type = 25
	TypeI32     Type = 26
	TypeI64     Type = 27
	TypeF64     Type = 28
	TypeIQ1_M   Type = 29
	TypeBF16    Type = 30
	TypeTQ1_0   Type = 34
	TypeTQ2_0   Type = 35
	TypeMXFP4   Type = 39
)

// typeCount is GGML_TYPE_COUNT: every valid id is below it.
const typeCount = 40

// qkK is QK_K, the super-block size of the k-quants and i-quants.
const qkK = 256

// typeTraits holds, per type id, what ggml.c's type_traits table says about
// it. A zero blockSize marks a removed (or never assigned) id.
type typeTraits struct {
	name      string // ggml_type_name, uppercased
	blockSize uint64 // elements per block (blck_size)
	typeSize  uint64 // bytes per block (type_size)
}

// traits is indexed by Type. Block byte sizes follow the block_* structs of
// ggml-common.h.
var traits = [typeCount]typeTraits{
	TypeF32:     {"F32", 1, 4},
	TypeF16:     {"F16", 1, 2},
	TypeQ4_0:    {"Q4_0", 32, 2 + 16},
	TypeQ4_1:    {"Q4_1", 32, 2*2 + 16},
	4:           {"Q4_2", 0, 0},
	5:           {"Q4_3", 0, 0},
	TypeQ5_0:    {"Q5_0", 32, 2 + 4 + 16},
	TypeQ5_1:    {"Q5_1", 32, 2*2 + 4 + 16},
	TypeQ8_0:    {"Q8_0", 32, 2 + 32},
	TypeQ8_1:    {"Q8_1", 32, 2*2 + 32},
	TypeQ2_K:    {"Q2_K", qkK, 2*2 + qkK/16 + qkK/4},
	TypeQ3_K:    {"Q3_K", qkK, 2 + qkK/4 + qkK/8 + 12},
	TypeQ4_K:    {"Q4_K", qkK, 2*2 + 12 + qkK/2},
	TypeQ5_K:    {"Q5_K", qkK, 2*2 + 12 + qkK/2 + qkK/8},
	TypeQ6_K:    {"Q6_K", qkK, 2 + qkK/16 + 3*qkK/4},
	TypeQ8_K:    {"Q8_K", qkK, 4 + qkK + qkK/16*2},
	TypeIQ2_XXS: {"IQ2_XXS", qkK, 2 + qkK/8*2},
	TypeIQ2_XS:  {"IQ2_XS", qkK, 2 + qkK/8*2 + qkK/32},
	TypeIQ3_XXS: {"IQ3_XXS", qkK, 2 + 3*(qkK/8)},
	TypeIQ1_S:   {"IQ1_S", qkK, 2 + qkK/8 + qkK/16},
	TypeIQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	TypeIQ3_S:   {"IQ3_S", qkK, 2 + 13*(qkK/32) + qkK/64},
	TypeIQ2_S:   {"IQ2_S", qkK, 2 + qkK/4 + qkK/16},
	TypeIQ4_XS:  {"IQ4_XS", qkK, 2 + 2 + qkK/64 + qkK/2},
	TypeI8:      {"I8", 1, 1},
	TypeI16:     {"I16", 1, 2},
	TypeI32:     {"I32", 1, 4},
	TypeI64:     {"I64", 1, 8},
	TypeF64:     {"F64", 1, 8},
	TypeIQ1_M:   {"IQ1_M", qkK, qkK/8 + qkK/16 + qkK/32},
	TypeBF16:    {"BF16", 1, 2},
	31:          {"Q4_0_4_4", 0, 0},
	32:          {"Q4_0_4_8", 0, 0},
	33:          {"Q4_0_8_8", 0, 0},
	TypeTQ1_0:   {"TQ1_0", qkK, 2 + qkK/64 + (qkK-4*qkK/64)/5},
	TypeTQ2_0:   {"TQ2_0", qkK, 2 + qkK/4},
	36:          {"IQ4_NL_4_4", 0, 0},
	37:          {"IQ4_NL_4_8", 0, 0},
	38:          {"IQ4_NL_8_8", 0, 0},
	TypeMXFP4:   {"MXFP4", 32, 1 + 16},
}

// String returns the type's ggml name in upper case ("F32", "Q4_K",
// "IQ2_XXS"), as llama.cpp's tools print it. A removed id is named with the
// suffix " (removed)"; an id ggml never assigned is "Type(N)".
func (t Type) String() string {
	if t < typeCount {
		tr := traits[t]
		if tr.blockSize != 0 {
			return tr.name
		}
		return tr.name + " (removed)"
	}
	return "Type(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// Known reports whether t is a live ggml type that may appear in a GGUF file:
// below GGML_TYPE_COUNT and not removed.
func (t Type) Known() bool {
	return t < typeCount && traits[t].blockSize != 0
}

// BlockSize returns the number of elements per block (1 for the plain
// types), or 0 for an unknown type.
func (t Type) BlockSize() uint64 {
	if t < typeCount {
		return traits[t].blockSize
	}
	return 0
}

// TypeSize returns the number of bytes per block, or 0 for an unknown type.
func (t Type) TypeSize() uint64 {
	if t < typeCount {
		return traits[t].typeSize
	}
	return 0
}

// RowSize returns the number of bytes that ne0 elements of type t take. It
// fails, wrapping [ErrUnknownType] or [ErrInvalid], when t is not
// [Type.Known], when ne0 is not a multiple of the block size, or when the
// result overflows uint64.
func (t Type) RowSize(ne0 uint64) (uint64, error) {
	if !t.Known() {
		return 0, fmt.Errorf("gguf: tensor type %s: %w", t, ErrUnknownType)
	}
	bs, ts := traits[t].blockSize, traits[t].typeSize
	if ne0%bs != 0 {
		return 0, fmt.Errorf("gguf: %d elements of type %s: not a multiple of the block size %d: %w", ne0, t, bs, ErrInvalid)
	}
	blocks := ne0 / bs
	if blocks > maxUint64/ts {
		return 0, fmt.Errorf("gguf: %d elements of type %s: byte size overflows: %w", ne0, t, ErrInvalid)
	}
	return blocks * ts, nil
}

// ParseType returns the live type named s, compared case-insensitively
// ("q4_k", "F16", "bf16").
func ParseType(s string) (Type, error) {
	for i := range traits {
		t := Type(i)
		if t.Known() && strings.EqualFold(traits[i].name, s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("gguf: tensor type %q: %w", s, ErrUnknownType)
}

const maxUint64 = ^uint64(0)
