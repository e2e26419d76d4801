package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// DecodeFloat32s converts raw little-endian elements of dtype d (F32, F16
// or BF16) into dst, which must hold exactly len(raw)/d.Size() elements.
// The conversion is exact: every F16 and BF16 value is a float32.
func DecodeFloat32s(dst []float32, d DType, raw []byte) error {
	if !d.Supported() {
		return fmt.Errorf("dtype %s; only F32, F16 and BF16 are supported: %w", d, ErrUnsupportedDType)
	}
	sz := int(d.Size())
	if len(raw)%sz != 0 || len(raw)/sz != len(dst) {
		return fmt.Errorf("%d bytes of %s for %d elements: %w", len(raw), d, len(dst), ErrInvalid)
	}
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	}
	return nil
}

// f8e4m3 maps every F8_E4M3 byte to its value: sign, 4 exponent bits
// (bias 7), 3 mantissa bits, subnormals below exponent 1, no infinities,
// and NaN for the two patterns with every exponent and mantissa bit set
// (the "fn" variant of the OCP FP8 formats that safetensors stores).
var f8e4m3 = func() (t [256]float32) {
	for b := range 256 {
		e, m := (b>>3)&0x0f, b&7
		var v float64
		switch {
		case e == 0x0f && m == 7:
			v = math.NaN()
		case e == 0:
			v = math.Ldexp(float64(m)/8, -6)
		default:
			v = math.Ldexp(1+float64(m)/8, e-7)
		}
		if b&0x80 != 0 {
			v = -v
		}
		t[b] = float32(v)
	}
	return t
}()

// F8E4M3Value returns the value of the F8_E4M3 byte b.
func F8E4M3Value(b byte) float32 { return f8e4m3[b] }

// DecodeF8E4M3 converts raw F8_E4M3 bytes into dst, which must hold
// len(raw) elements. The conversion is exact. The values are the FP8
// codes; the weights they quantize are these times their scale.
func DecodeF8E4M3(dst []float32, raw []byte) error {
	if len(raw) != len(dst) {
		return fmt.Errorf("%d bytes of F8_E4M3 for %d elements: %w", len(raw), len(dst), ErrInvalid)
	}
	for i, b := range raw {
		dst[i] = f8e4m3[b]
	}
	return nil
}

// BF16ToFloat32 returns the float32 value of the bfloat16 with bits b.
func BF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// Float32ToBF16 rounds f to the nearest bfloat16, ties to even, and returns
// its bits. NaNs stay NaNs (quiet, with the sign kept).
func Float32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if f != f {
		return uint16(u>>16) | 0x0040
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}
