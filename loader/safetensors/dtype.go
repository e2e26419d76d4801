package safetensors

// DType is the element type of a tensor, as the "dtype" field of a
// safetensors header names it. Every dtype of the reference implementation
// is known, so that an unsupported one is rejected by name; only [F32],
// [F16] and [BF16] can be read as floats ([DType.Supported]), and [U8]
// (packed quantized data) and [F8E4M3] (FP8 weights, meaningful only
// with their scales: [DecodeF8E4M3]) as raw bytes.
type DType string

// The safetensors dtypes.
const (
	F32    DType = "F32"     // IEEE 754 binary32
	F16    DType = "F16"     // IEEE 754 binary16
	BF16   DType = "BF16"    // bfloat16: the upper 16 bits of a binary32
	F64    DType = "F64"     // IEEE 754 binary64
	I64    DType = "I64"     // signed 64-bit integer
	U64    DType = "U64"     // unsigned 64-bit integer
	I32    DType = "I32"     // signed 32-bit integer
	U32    DType = "U32"     // unsigned 32-bit integer
	I16    DType = "I16"     // signed 16-bit integer
	U16    DType = "U16"     // unsigned 16-bit integer
	I8     DType = "I8"      // signed 8-bit integer
	U8     DType = "U8"      // unsigned 8-bit integer
	BOOL   DType = "BOOL"    // one byte per boolean
	F8E4M3 DType = "F8_E4M3" // 8-bit float, 4 exponent and 3 mantissa bits
	F8E5M2 DType = "F8_E5M2" // 8-bit float, 5 exponent and 2 mantissa bits
	F8E8M0 DType = "F8_E8M0" // 8-bit power-of-two scale
	F6E2M3 DType = "F6_E2M3" // 6-bit float (packed; see [DType.Size])
	F6E3M2 DType = "F6_E3M2" // 6-bit float (packed; see [DType.Size])
	F4     DType = "F4"      // 4-bit float (packed; see [DType.Size])
)

// dtypeBits maps each dtype to its element size in bits.
var dtypeBits = map[DType]int64{
	F32: 32, F16: 16, BF16: 16, F64: 64, I64: 64, U64: 64, I32: 32, U32: 32,
	I16: 16, U16: 16, I8: 8, U8: 8, BOOL: 8, F8E4M3: 8, F8E5M2: 8, F8E8M0: 8,
	F6E2M3: 6, F6E3M2: 6, F4: 4,
}

// Known reports whether d is a dtype name of the safetensors format.
func (d DType) Known() bool {
	_, ok := dtypeBits[d]
	return ok
}

// Bits returns the size of one element in bits, or 0 for an unknown dtype.
func (d DType) Bits() int64 { return dtypeBits[d] }

// Supported reports whether this package reads tensors of dtype d as
// floats: F32, F16 or BF16.
func (d DType) Supported() bool { return d == F32 || d == F16 || d == BF16 }

// Raw reports whether this package opens tensors of dtype d as raw bytes
// only: U8 (packed quantized data) and F8_E4M3 (FP8 weights, whose
// values need their scale tensors).
func (d DType) Raw() bool { return d == U8 || d == F8E4M3 }

// Size returns the size of one element in bytes, or 0 for an unknown dtype
// and for the sub-byte dtypes F4, F6_E2M3 and F6_E3M2, whose elements are
// packed.
func (d DType) Size() int64 {
	if b := dtypeBits[d]; b%8 == 0 {
		return b / 8
	}
	return 0
}

// String returns the dtype's name as the header spells it.
func (d DType) String() string { return string(d) }
