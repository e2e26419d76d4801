package gguf

import (
	"encoding/binary"
	"math"
	"slices"
)

// Value is one GGUF metadata value: a scalar of one of the fixed-size types,
// a string, or an array.
//
// Type is the value's type; for an array it is [ValueArray] and [Value.Elem]
// gives the element type. The payload is unexported: build values with the
// constructors ([Uint32], [String], [Strings], [Array], ...) and read them
// with the accessors ([Value.AsUint], [Value.AsString], [Value.Index], ...).
// A zero Value is the uint8 0. Values are immutable once built: constructors
// copy their inputs and accessors return copies.
//
// Arrays of fixed-size elements are stored compactly in their little-endian
// file encoding, so a 150,000-entry float array costs 600 KB, not 150,000
// Values. [Array] can also represent arrays of arrays, which the GGUF
// specification allows but llama.cpp does not: [Read] rejects them and
// [Writer.WriteTo] refuses to write them.
type Value struct {
	// Type is the value's type.
	Type ValueType

	elem ValueType // element type of an array
	bits uint64    // scalar number or bool: see scalar
	str  string    // scalar string
	raw  []byte    // array of a fixed-size type: little-endian elements
	strs []string  // array of strings
	vals []Value   // array in general form (nested, or built from mismatched elements)
}

// scalar returns a fixed-size scalar of type t. Value.bits holds unsigned
// integers zero-extended, signed integers sign-extended to 64 bits, floats
// by their IEEE bits and bools as 0 or 1.
func scalar(t ValueType, bits uint64) Value { return Value{Type: t, bits: bits} }

// Uint8 returns a uint8 value.
func Uint8(v uint8) Value { return scalar(ValueUint8, uint64(v)) }

// Int8 returns an int8 value.
func Int8(v int8) Value { return scalar(ValueInt8, uint64(int64(v))) }

// Uint16 returns a uint16 value.
func Uint16(v uint16) Value { return scalar(ValueUint16, uint64(v)) }

// Int16 returns an int16 value.
func Int16(v int16) Value { return scalar(ValueInt16, uint64(int64(v))) }

// Uint32 returns a uint32 value.
func Uint32(v uint32) Value { return scalar(ValueUint32, uint64(v)) }

// Int32 returns an int32 value.
func Int32(v int32) Value { return scalar(ValueInt32, uint64(int64(v))) }

// Uint64 returns a uint64 value.
func Uint64(v uint64) Value { return scalar(ValueUint64, v) }

// Int64 returns an int64 value.
func Int64(v int64) Value { return scalar(ValueInt64, uint64(v)) }

// Float32 returns a float32 value.
func Float32(v float32) Value { return scalar(ValueFloat32, uint64(math.Float32bits(v))) }

// Float64 returns a float64 value.
func Float64(v float64) Value { return scalar(ValueFloat64, math.Float64bits(v)) }

// Bool returns a bool value.
func Bool(b bool) Value {
	if b {
		return scalar(ValueBool, 1)
	}
	return scalar(ValueBool, 0)
}

// String returns a string value. GGUF strings are byte strings; they need
// not be valid UTF-8.
func String(s string) Value { return Value{Type: ValueString, str: s} }

// Strings returns an array of strings.
func Strings(s []string) Value {
	return Value{Type: ValueArray, elem: ValueString, strs: slices.Clone(s)}
}

// rawArray encodes elems little-endian with put into a compact array.
func rawArray[T any](elem ValueType, v []T, put func([]byte, T)) Value {
	size := elem.size()
	raw := make([]byte, len(v)*size)
	for i, x := range v {
		put(raw[i*size:], x)
	}
	return Value{Type: ValueArray, elem: elem, raw: raw}
}

// Uint8s returns an array of uint8.
func Uint8s(v []uint8) Value {
	return Value{Type: ValueArray, elem: ValueUint8, raw: slices.Clone(v)}
}

// Int8s returns an array of int8.
func Int8s(v []int8) Value {
	return rawArray(ValueInt8, v, func(b []byte, x int8) { b[0] = byte(x) })
}

// Uint16s returns an array of uint16.
func Uint16s(v []uint16) Value {
	return rawArray(ValueUint16, v, binary.LittleEndian.PutUint16)
}

// Int16s returns an array of int16.
func Int16s(v []int16) Value {
	return rawArray(ValueInt16, v, func(b []byte, x int16) { binary.LittleEndian.PutUint16(b, uint16(x)) })
}

// Uint32s returns an array of uint32.
func Uint32s(v []uint32) Value {
	return rawArray(ValueUint32, v, binary.LittleEndian.PutUint32)
}

// Int32s returns an array of int32.
func Int32s(v []int32) Value {
	return rawArray(ValueInt32, v, func(b []byte, x int32) { binary.LittleEndian.PutUint32(b, uint32(x)) })
}

// Uint64s returns an array of uint64.
func Uint64s(v []uint64) Value {
	return rawArray(ValueUint64, v, binary.LittleEndian.PutUint64)
}

// Int64s returns an array of int64.
func Int64s(v []int64) Value {
	return rawArray(ValueInt64, v, func(b []byte, x int64) { binary.LittleEndian.PutUint64(b, uint64(x)) })
}

// Float32s returns an array of float32.
func Float32s(v []float32) Value {
	return rawArray(ValueFloat32, v, func(b []byte, x float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(x)) })
}

// Float64s returns an array of float64.
func Float64s(v []float64) Value {
	return rawArray(ValueFloat64, v, func(b []byte, x float64) { binary.LittleEndian.PutUint64(b, math.Float64bits(x)) })
}

// Bools returns an array of bool.
func Bools(v []bool) Value {
	return rawArray(ValueBool, v, func(b []byte, x bool) {
		if x {
			b[0] = 1
		}
	})
}

// Array returns an array of element type elemType holding elems. Every
// element should have Type elemType; when elemType is [ValueArray] the
// result is an array of arrays. An array whose elements do not match
// elemType can be built and inspected, but [Writer.WriteTo] reports it as an
// error, as it does for arrays of arrays, which llama.cpp cannot read.
func Array(elemType ValueType, elems []Value) Value {
	v := Value{Type: ValueArray, elem: elemType}
	compact := elemType != ValueArray && elemType.Valid()
	for _, e := range elems {
		if e.Type != elemType {
			compact = false
			break
		}
	}
	switch {
	case !compact:
		v.vals = make([]Value, len(elems))
		copy(v.vals, elems)
	case elemType == ValueString:
		v.strs = make([]string, len(elems))
		for i, e := range elems {
			v.strs[i] = e.str
		}
	default:
		size := elemType.size()
		v.raw = make([]byte, len(elems)*size)
		for i, e := range elems {
			putBits(v.raw[i*size:], size, e.bits)
		}
	}
	return v
}

// putBits stores the low size bytes of bits little-endian.
func putBits(b []byte, size int, bits uint64) {
	for i := 0; i < size; i++ {
		b[i] = byte(bits >> (8 * i))
	}
}

// getBits decodes one fixed-size element of type t from b into the scalar
// representation of Value.bits.
func getBits(t ValueType, b []byte) uint64 {
	switch t {
	case ValueUint8:
		return uint64(b[0])
	case ValueInt8:
		return uint64(int64(int8(b[0])))
	case ValueBool:
		if b[0] != 0 {
			return 1
		}
		return 0
	case ValueUint16:
		return uint64(binary.LittleEndian.Uint16(b))
	case ValueInt16:
		return uint64(int64(int16(binary.LittleEndian.Uint16(b))))
	case ValueUint32, ValueFloat32:
		return uint64(binary.LittleEndian.Uint32(b))
	case ValueInt32:
		return uint64(int64(int32(binary.LittleEndian.Uint32(b))))
	default: // 8-byte types
		return binary.LittleEndian.Uint64(b)
	}
}

// IsArray reports whether v is an array.
func (v Value) IsArray() bool { return v.Type == ValueArray }

// Elem returns the element type of an array, or 0 for a scalar.
func (v Value) Elem() ValueType {
	if v.Type != ValueArray {
		return 0
	}
	return v.elem
}

// Len returns the number of elements of an array, or 0 for a scalar.
func (v Value) Len() int {
	switch {
	case v.Type != ValueArray:
		return 0
	case v.vals != nil:
		return len(v.vals)
	case v.elem == ValueString:
		return len(v.strs)
	case v.elem.size() > 0:
		return len(v.raw) / v.elem.size()
	}
	return 0
}

// Index returns element i of an array. It panics if v is not an array or i
// is out of range, like indexing a slice.
func (v Value) Index(i int) Value {
	n := v.Len()
	if v.Type != ValueArray || i < 0 || i >= n {
		panic("gguf: Value.Index out of range")
	}
	switch {
	case v.vals != nil:
		return v.vals[i]
	case v.elem == ValueString:
		return String(v.strs[i])
	default:
		size := v.elem.size()
		return scalar(v.elem, getBits(v.elem, v.raw[i*size:]))
	}
}

// AsString returns a string value.
func (v Value) AsString() (string, bool) {
	if v.Type != ValueString {
		return "", false
	}
	return v.str, true
}

// AsUint returns an integer value of any integer type that is not negative.
func (v Value) AsUint() (uint64, bool) {
	if !v.Type.isInt() || (v.Type.isSigned() && int64(v.bits) < 0) {
		return 0, false
	}
	return v.bits, true
}

// AsInt returns an integer value of any integer type that fits in an int64.
func (v Value) AsInt() (int64, bool) {
	if !v.Type.isInt() || (!v.Type.isSigned() && v.bits > math.MaxInt64) {
		return 0, false
	}
	return int64(v.bits), true
}

// AsFloat returns a float or integer value as a float64.
func (v Value) AsFloat() (float64, bool) {
	switch {
	case v.Type == ValueFloat32:
		return float64(math.Float32frombits(uint32(v.bits))), true
	case v.Type == ValueFloat64:
		return math.Float64frombits(v.bits), true
	case v.Type.isSigned():
		return float64(int64(v.bits)), true
	case v.Type.isInt():
		return float64(v.bits), true
	}
	return 0, false
}

// AsBool returns a bool value.
func (v Value) AsBool() (bool, bool) {
	if v.Type != ValueBool {
		return false, false
	}
	return v.bits != 0, true
}

// AsStrings returns a copy of an array of strings.
func (v Value) AsStrings() ([]string, bool) {
	if v.Type != ValueArray || v.elem != ValueString {
		return nil, false
	}
	if v.vals == nil {
		return slices.Clone(v.strs), true
	}
	return asSlice(v, Value.AsString)
}

// AsInts returns an array of any integer type whose elements all fit in an
// int64.
func (v Value) AsInts() ([]int64, bool) { return asSlice(v, Value.AsInt) }

// AsUints returns an array of any integer type whose elements are all
// non-negative.
func (v Value) AsUints() ([]uint64, bool) { return asSlice(v, Value.AsUint) }

// AsFloats returns an array of any float or integer type as float64s.
func (v Value) AsFloats() ([]float64, bool) { return asSlice(v, Value.AsFloat) }

// AsBools returns an array of bools.
func (v Value) AsBools() ([]bool, bool) { return asSlice(v, Value.AsBool) }

// AsFloat32s returns an array of float32 (and only float32).
func (v Value) AsFloat32s() ([]float32, bool) {
	if v.Elem() != ValueFloat32 {
		return nil, false
	}
	return asSlice(v, func(e Value) (float32, bool) {
		return math.Float32frombits(uint32(e.bits)), e.Type == ValueFloat32
	})
}

// AsInt32s returns an array of int32 (and only int32).
func (v Value) AsInt32s() ([]int32, bool) {
	if v.Elem() != ValueInt32 {
		return nil, false
	}
	return asSlice(v, func(e Value) (int32, bool) {
		return int32(e.bits), e.Type == ValueInt32
	})
}

// asSlice converts every element of the array v with get, failing if v is
// not an array or any element does not convert.
func asSlice[T any](v Value, get func(Value) (T, bool)) ([]T, bool) {
	if v.Type != ValueArray {
		return nil, false
	}
	n := v.Len()
	out := make([]T, n)
	for i := range n {
		x, ok := get(v.Index(i))
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}
