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
