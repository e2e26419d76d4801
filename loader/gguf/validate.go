package gguf

import (
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// checkTensorName checks what llama.cpp requires of a tensor name: fewer
// than GGML_MAX_NAME bytes. Names holding a NUL byte are rejected too: ggml
// would silently cut them short.
func checkTensorName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("name %.20q... is %d bytes long, at most %d allowed: %w", name, len(name), MaxNameLen, ErrInvalid)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("name %q contains a NUL byte: %w", name, ErrInvalid)
	}
	return nil
}

// checkShape checks a tensor shape as gguf.cpp does: at most four
// dimensions, none negative as an int64, and an element count below
// INT64_MAX by gguf.cpp's own test. It also rejects a zero in any dimension
// after the first, on which gguf.cpp would divide by zero.
func checkShape(shape []uint64) error {
	if len(shape) > MaxDims {
		return fmt.Errorf("%d dimensions, at most %d allowed: %w", len(shape), MaxDims, ErrInvalid)
	}
	ne := [MaxDims]int64{1, 1, 1, 1}
	for j, d := range shape {
		if int64(d) < 0 {
			return fmt.Errorf("dimension %d is %d, negative: %w", j, int64(d), ErrInvalid)
		}
		if d == 0 && j > 0 {
			return fmt.Errorf("dimension %d is 0 (only the first dimension may be empty): %w", j, ErrInvalid)
		}
		ne[j] = int64(d)
	}
	if math.MaxInt64/ne[1] <= ne[0] ||
		math.MaxInt64/ne[2] <= ne[0]*ne[1] ||
		math.MaxInt64/ne[3] <= ne[0]*ne[1]*ne[2] {
		return fmt.Errorf("shape %v has too many elements (INT64_MAX or more): %w", shape, ErrInvalid)
	}
	return nil
}

// tensorSize returns the bytes of data of a tensor of type t and a shape
// that passed checkShape, checking that t is a live type and that ne[0] is a
// multiple of its block size.
func tensorSize(t Type, shape []uint64) (uint64, error) {
	if t >= typeCount {
		return 0, fmt.Errorf("invalid type %d: %w", int32(t), ErrUnknownType)
	}
	if !t.Known() {
		return 0, fmt.Errorf("type %d (%s) was removed from ggml: %w", uint32(t), traits[t].name, ErrUnknownType)
	}
	ne0 := uint64(1)
	if len(shape) > 0 {
		ne0 = shape[0]
	}
	if ne0%t.BlockSize() != 0 {
		return 0, fmt.Errorf("row of %d elements is not a multiple of the %s block size %d: %w", ne0, t, t.BlockSize(), ErrInvalid)
	}
	size, err := t.RowSize(ne0)
	if err != nil || size > math.MaxInt64 {
		return 0, fmt.Errorf("shape %v of %s: data size overflows: %w", shape, t, ErrInvalid)
	}
	for _, d := range shape[min(1, len(shape)):] {
		hi, lo := bits.Mul64(size, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("shape %v of %s: data size overflows: %w", shape, t, ErrInvalid)
		}
		size = lo
	}
	return size, nil
}

// alignment returns the data alignment the metadata of f sets. Like
// gguf.cpp it must be a uint32 scalar and a power of two; gguf.cpp aborts
// the process on any other type.
func alignment(f *File) (uint64, error) {
	v, ok := f.Lookup(KeyAlignment)
	if !ok {
		return DefaultAlignment, nil
	}
	return checkAlignment(v)
}

func checkAlignment(v Value) (uint64, error) {
	if v.Type != ValueUint32 {
		return 0, fmt.Errorf("gguf: %s has type %s, must be u32: %w", KeyAlignment, typeName(v), ErrInvalid)
	}
	a := v.bits
	if a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("gguf: %s is %d, not a power of two: %w", KeyAlignment, a, ErrInvalid)
	}
	return a, nil
}

// typeName names a value's type, with the element type of an array.
func typeName(v Value) string {
	if v.Type == ValueArray {
		return "arr[" + v.elem.String() + "]"
	}
	return v.Type.String()
}

// padUp rounds x up to a multiple of the power of two a, reporting overflow.
func padUp(x, a uint64) (uint64, bool) {
	y := (x + a - 1) &^ (a - 1)
	return y, y >= x
}

// checkLayout checks the tensor data section of f. gguf.cpp requires each
// tensor's offset to equal the sum of the sizes of the tensors before it,
// each rounded up to the alignment: tensors are stored in info order,
// aligned, without gaps or overlaps. llama.cpp's loader then requires each
// tensor's data to end within the file; the padding after the last tensor
// may be missing.
func checkLayout(f *File) error {
	var want uint64 // offset the next tensor must have
	prev := ""
	for i := range f.Tensors {
		t := &f.Tensors[i]
		switch {
		case t.Offset == want:
		case t.Offset%f.Alignment != 0:
			return fmt.Errorf("gguf: tensor %q: data offset %d is not a multiple of the alignment %d: %w", t.Name, t.Offset, f.Alignment, ErrInvalid)
		case t.Offset < want:
			return fmt.Errorf("gguf: tensor %q: data offset %d overlaps tensor %q, which ends at padded offset %d: %w", t.Name, t.Offset, prev, want, ErrInvalid)
		default:
			return fmt.Errorf("gguf: tensor %q: data offset %d leaves a gap, expected %d (tensors must be packed in order): %w", t.Name, t.Offset, want, ErrInvalid)
		}
		avail := f.Size - f.DataOffset // data bytes in the file; negative when the file ends before the data section
		if avail < 0 || t.Offset > uint64(avail) || t.Size > uint64(avail)-t.Offset {
			return fmt.Errorf("gguf: tensor %q: data [%d, %d+%d) extends beyond the end of the file at %d: %w",
				t.Name, f.DataOffset+int64(t.Offset), f.DataOffset+int64(t.Offset), t.Size, f.Size, ErrTruncated)
		}
		padded, ok := padUp(t.Size, f.Alignment)
		if !ok || want+padded < want {
			return fmt.Errorf("gguf: tensor %q: data section size overflows: %w", t.Name, ErrInvalid)
		}
		want += padded
		prev = t.Name
	}
	return nil
}
