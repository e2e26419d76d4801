package convert

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// ggmlBF16 is ggml's fp32→bf16 (ggml_compute_fp32_to_bf16), for the
// values llama.cpp's quantizer refuses to produce (NaN, infinity).
func ggmlBF16(u uint32) uint16 {
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + (0x7fff + (u>>16)&1)) >> 16)
}

// TestQuantEdgeCases checks BF16 against ggml's formula on NaNs,
// infinities, overflow to infinity and random bits, and Q8_0 on blocks
// with known results: halves rounded away from zero, an all-zero block, a
// scale that overflows F16 and one that is an F16 subnormal.
func TestQuantEdgeCases(t *testing.T) {
	bits := []uint32{0x7f800001, 0x7fc00000, 0xffc00001, 0x7fbfffff, 0x7f800000, 0xff800000,
		0x7f7fffff, 0x7f7f8000, 0x7f7e8000, 0x00000001, 0x80008000, 0x3f808000, 0x3f818000}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1 << 16 {
		bits = append(bits, r.Uint32())
	}
	src := make([]float32, len(bits))
	for i, b := range bits {
		src[i] = math.Float32frombits(b)
	}
	dst := make([]byte, 2*len(src))
	encodeBF16(dst, src)
	for i, b := range bits {
		if got, want := binary.LittleEndian.Uint16(dst[2*i:]), ggmlBF16(b); got != want {
			t.Fatalf("bf16(%#08x) = %#04x, want %#04x", b, got, want)
		}
	}

	block := func(vals ...float32) []float32 {
		out := make([]float32, 32)
		copy(out, vals)
		return out
	}
	for _, tc := range []struct {
		name  string
		x     []float32
		d     uint16 // F16 bits of the scale
		first []int8
	}{
		{"halves", block(127, 2.5, -2.5, 0.5, -0.5, 126.5, -126.5, 1.4999999), 0x3c00, []int8{127, 3, -3, 1, -1, 127, -127, 1}},
		{"negative max", block(-127, 63.5, -0.5), 0x3c00, []int8{-127, 64, -1}},
		{"zeros", block(0, float32(math.Copysign(0, -1))), 0, []int8{0, 0, 0}},
		{"scale overflows F16", block(1e7, -5e6, 1), 0x7c00, []int8{127, -64, 0}},
		{"subnormal F16 scale", block(1e-5, -5e-6), 0x0001, []int8{127, -64}},
	} {
		out := make([]byte, q8_0BlockSize)
		quantizeQ8_0(out, tc.x)
		if d := binary.LittleEndian.Uint16(out); d != tc.d {
			t.Errorf("%s: scale %#04x, want %#04x", tc.name, d, tc.d)
		}
		for j, want := range tc.first {
			if got := int8(out[2+j]); got != want {
				t.Errorf("%s: value %d (%g) quantized to %d, want %d", tc.name, j, tc.x[j], got, want)
			}
		}
	}
}
