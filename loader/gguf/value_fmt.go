package gguf

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
)

// arrayShown is how many leading elements String prints of an array it
// abbreviates; arrays of up to arrayFull elements are printed whole.
const (
	arrayShown = 3
	arrayFull  = 6
)

// String formats v for people: numbers in decimal, strings quoted as Go
// quotes them, arrays in brackets. Arrays longer than six elements are
// abbreviated to their first three elements and their length, as in
// "[1, 2, 3, ... 32000 items]".
func (v Value) String() string {
	var b strings.Builder
	v.format(&b)
	return b.String()
}

func (v Value) format(b *strings.Builder) {
	switch {
	case v.Type == ValueArray:
		n := v.Len()
		b.WriteByte('[')
		shown := n
		if n > arrayFull {
			shown = arrayShown
		}
		for i := range shown {
			if i > 0 {
				b.WriteString(", ")
			}
			v.Index(i).format(b)
		}
		if shown < n {
			b.WriteString(", ... ")
			b.WriteString(strconv.Itoa(n))
			b.WriteString(" items")
		}
		b.WriteByte(']')
	case v.Type == ValueString:
		b.WriteString(strconv.Quote(v.str))
	case v.Type == ValueBool:
		b.WriteString(strconv.FormatBool(v.bits != 0))
	case v.Type == ValueFloat32:
		b.WriteString(strconv.FormatFloat(float64(math.Float32frombits(uint32(v.bits))), 'g', -1, 32))
	case v.Type == ValueFloat64:
		b.WriteString(strconv.FormatFloat(math.Float64frombits(v.bits), 'g', -1, 64))
	case v.Type.isSigned():
		b.WriteString(strconv.FormatInt(int64(v.bits), 10))
	case v.Type.isInt():
		b.WriteString(strconv.FormatUint(v.bits, 10))
	default:
		b.WriteString("<invalid ")
		b.WriteString(v.Type.String())
		b.WriteByte('>')
	}
}

// Equal reports whether v and u have the same type and contents. Floats are
// compared by their bits, so a NaN equals the same NaN.
func (v Value) Equal(u Value) bool {
	if v.Type != u.Type {
		return false
	}
	if v.Type != ValueArray {
		return v.bits == u.bits && v.str == u.str
	}
	if v.elem != u.elem || v.Len() != u.Len() {
		return false
	}
	if v.vals == nil && u.vals == nil {
		if v.elem == ValueString {
			return slices.Equal(v.strs, u.strs)
		}
		return bytes.Equal(v.raw, u.raw)
	}
	for i := range v.Len() {
		if !v.Index(i).Equal(u.Index(i)) {
			return false
		}
	}
	return true
}
