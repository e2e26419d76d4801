package gguf

import (
	"fmt"
	"io"
	"math"
	"os"
)

// Format limits and defaults, as llama.cpp defines them.
const (
	// DefaultAlignment is the data alignment of a file without
	// general.alignment (GGUF_DEFAULT_ALIGNMENT).
	DefaultAlignment = 32

	// KeyAlignment is the metadata key that sets the data alignment.
	KeyAlignment = "general.alignment"

	// MaxDims is the most dimensions a tensor can have (GGML_MAX_DIMS).
	MaxDims = 4

	// MaxNameLen is the longest tensor name llama.cpp accepts, in bytes:
	// GGML_MAX_NAME - 1, leaving room for the C terminator.
	MaxNameLen = 63
)

const (
	// magic is the first four bytes of every GGUF file.
	magic = "GGUF"

	// maxVersion is the newest GGUF version llama.cpp reads (GGUF_VERSION).
	maxVersion = 3

	// minKVSize is the fewest bytes one KV pair can take: key length, value
	// type and a one-byte value.
	minKVSize = 8 + 4 + 1

	// minTensorInfoSize is the fewest bytes one tensor info can take: name
	// length, dimension count, type and offset.
	minTensorInfoSize = 8 + 4 + 4 + 8

	// initialCap bounds the capacity allocated up front for a declared count;
	// slices grow beyond it only as elements are actually decoded, so memory
	// stays proportional to the bytes parsed.
	initialCap = 1 << 12
)

// Open reads and validates the GGUF header of the file at path, like [Read].
// Errors are prefixed with the path.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: gguf: not a regular file: %w", path, ErrInvalid)
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Read parses and validates the header of the GGUF file of size bytes read
// through r: magic, version, metadata, tensor infos and the layout of the
// tensor data section. It reads no tensor data. Every file llama.cpp's GGUF
// parser would reject is rejected, with an error wrapping [ErrNotGGUF],
// [ErrVersion], [ErrTruncated], [ErrInvalid] or [ErrUnknownType]; see the
// package documentation for the full list of checks.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: negative file size %d: %w", size, ErrInvalid)
	}
	d := &decoder{r: r, size: size}
	f := &File{Size: size, Alignment: DefaultAlignment}
	nTensors, nKV, err := readHeader(d, f)
	if err != nil {
		return nil, err
	}
	if err := readKVs(d, f, nKV); err != nil {
		return nil, err
	}
	if f.Alignment, err = alignment(f); err != nil {
		return nil, err
	}
	if err := readTensorInfos(d, f, nTensors); err != nil {
		return nil, err
	}
	dataOff, ok := padUp(uint64(d.off), f.Alignment)
	if !ok || dataOff > math.MaxInt64 {
		return nil, fmt.Errorf("gguf: data section offset overflows: %w", ErrInvalid)
	}
	f.DataOffset = int64(dataOff)
	if err := checkLayout(f); err != nil {
		return nil, err
	}
	return f, nil
}

// readHeader decodes magic, version and the two counts, and bounds the
// counts by the bytes that remain.
func readHeader(d *decoder, f *File) (nTensors, nKV int64, err error) {
	if d.size < int64(len(magic)) {
		b := make([]byte, d.size)
		if err := d.read(b); err != nil {
			return 0, 0, fmt.Errorf("gguf: magic: %w", err)
		}
		if string(b) != magic[:len(b)] {
			return 0, 0, fmt.Errorf("gguf: file of %d bytes does not start with %q: %w", d.size, magic, ErrNotGGUF)
		}
		return 0, 0, fmt.Errorf("gguf: file of %d bytes ends inside the magic: %w", d.size, ErrTruncated)
	}
	b, err := d.next(len(magic))
	if err != nil {
		return 0, 0, fmt.Errorf("gguf: magic: %w", err)
	}
	if string(b) != magic {
		return 0, 0, fmt.Errorf("gguf: bad magic %q, want %q: %w", b, magic, ErrNotGGUF)
	}

	v, err := d.u32()
	if err != nil {
		return 0, 0, fmt.Errorf("gguf: version: %w", err)
	}
	switch {
	case v == 0:
		return 0, 0, fmt.Errorf("gguf: version 0: %w", ErrVersion)
	case v&0xFFFF == 0:
		return 0, 0, fmt.Errorf("gguf: version %d (0x%08x) looks byte-swapped: big-endian file or host mismatch: %w", v, v, ErrVersion)
	case v == 1:
		return 0, 0, fmt.Errorf("gguf: version 1 is no longer supported, convert the model again: %w", ErrVersion)
	case v > maxVersion:
		return 0, 0, fmt.Errorf("gguf: version %d is newer than the supported %d: %w", v, maxVersion, ErrVersion)
	}
	f.Version = v

	nt, err := d.u64()
	if err != nil {
		return 0, 0, fmt.Errorf("gguf: tensor count: %w", err)
	}
	nk, err := d.u64()
	if err != nil {
		return 0, 0, fmt.Errorf("gguf: metadata count: %w", err)
	}
	if int64(nt) < 0 {
		return 0, 0, fmt.Errorf("gguf: tensor count %d is negative: %w", int64(nt), ErrInvalid)
	}
	if int64(nk) < 0 {
		return 0, 0, fmt.Errorf("gguf: metadata count %d is negative: %w", int64(nk), ErrInvalid)
	}
	rem := uint64(d.remaining())
	if nt > rem/minTensorInfoSize || nk > rem/minKVSize || nt*minTensorInfoSize+nk*minKVSize > rem {
		return 0, 0, fmt.Errorf("gguf: header declares %d tensors and %d metadata pairs, which cannot fit in the %d bytes that follow: %w",
			nt, nk, rem, ErrTruncated)
	}
	return int64(nt), int64(nk), nil
}

// readKVs decodes the metadata pairs.
func readKVs(d *decoder, f *File, n int64) error {
	f.KV = make([]KV, 0, min(n, initialCap))
	seen := make(map[string]int, min(n, initialCap))
	for i := range n {
		key, err := d.string()
		if err != nil {
			return fmt.Errorf("gguf: metadata pair %d: key: %w", i, err)
		}
		if key == "" {
			return fmt.Errorf("gguf: metadata pair %d: empty key: %w", i, ErrInvalid)
		}
		if j, dup := seen[key]; dup {
			return fmt.Errorf("gguf: metadata pair %d: duplicate key %q (first at pair %d): %w", i, key, j, ErrInvalid)
		}
		seen[key] = int(i)
		v, err := readValue(d)
		if err != nil {
			return fmt.Errorf("gguf: metadata key %q: %w", key, err)
		}
		f.KV = append(f.KV, KV{Key: key, Value: v})
	}
	return nil
}

// readValue decodes a value type and the value.
func readValue(d *decoder) (Value, error) {
	t, err := d.u32()
	if err != nil {
		return Value{}, fmt.Errorf("value type: %w", err)
	}
	if t == uint32(ValueArray) {
		return readArray(d)
	}
	vt := ValueType(t)
	switch {
	case vt == ValueString:
		s, err := d.string()
		if err != nil {
			return Value{}, fmt.Errorf("string value: %w", err)
		}
		return String(s), nil
	case vt.size() > 0:
		b, err := d.next(vt.size())
		if err != nil {
			return Value{}, fmt.Errorf("%s value: %w", vt, err)
		}
		return scalar(vt, getBits(vt, b)), nil
	}
	return Value{}, fmt.Errorf("invalid value type %d: %w", int32(t), ErrUnknownType)
}

// readArray decodes an array's element type, count and elements.
func readArray(d *decoder) (Value, error) {
	t, err := d.u32()
	if err != nil {
		return Value{}, fmt.Errorf("array element type: %w", err)
	}
	et := ValueType(t)
	n, err := d.u64()
	if err != nil {
		return Value{}, fmt.Errorf("array length: %w", err)
	}
	rem := uint64(d.remaining())
	switch {
	case et == ValueArray:
		return Value{}, fmt.Errorf("array of arrays: llama.cpp does not support nested arrays: %w", ErrInvalid)
	case et == ValueString:
		if n > rem/8 {
			return Value{}, fmt.Errorf("array of %d strings cannot fit in the %d bytes that remain: %w", n, rem, ErrTruncated)
		}
		strs, err := readStrings(d, n)
		if err != nil {
			return Value{}, err
		}
		return Value{Type: ValueArray, elem: ValueString, strs: strs}, nil
	case et.size() > 0:
		size := uint64(et.size())
		if n > rem/size {
			return Value{}, fmt.Errorf("array of %d %s (%d bytes each) cannot fit in the %d bytes that remain: %w", n, et, size, rem, ErrTruncated)
		}
		raw := make([]byte, n*size)
		if err := d.read(raw); err != nil {
			return Value{}, fmt.Errorf("array of %d %s: %w", n, et, err)
		}
		if et == ValueBool {
			for i, b := range raw {
				if b != 0 {
					raw[i] = 1
				}
			}
		}
		return Value{Type: ValueArray, elem: et, raw: raw}, nil
	}
	return Value{}, fmt.Errorf("array has invalid element type %d: %w", int32(t), ErrUnknownType)
}

// readStrings decodes n strings. Their bytes are gathered into one
// allocation that the returned strings share.
func readStrings(d *decoder, n uint64) ([]string, error) {
	ends := make([]int, 0, min(n, initialCap))
	var arena []byte
	for i := range n {
		l, err := d.u64()
		if err == nil && l > uint64(d.remaining()) {
			err = fmt.Errorf("string of %d bytes at offset %d but only %d bytes remain: %w", l, d.off, d.remaining(), ErrTruncated)
		}
		var b []byte
		if err == nil {
			b, err = d.next(int(l))
		}
		if err != nil {
			return nil, fmt.Errorf("array element %d: %w", i, err)
		}
		arena = append(arena, b...)
		ends = append(ends, len(arena))
	}
	all := string(arena)
	strs := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		strs[i] = all[start:end]
		start = end
	}
	return strs, nil
}

// readTensorInfos decodes and checks the tensor infos.
func readTensorInfos(d *decoder, f *File, n int64) error {
	f.Tensors = make([]TensorInfo, 0, min(n, initialCap))
	seen := make(map[string]int, min(n, initialCap))
	for i := range n {
		name, err := d.string()
		if err != nil {
			return fmt.Errorf("gguf: tensor %d: name: %w", i, err)
		}
		if err := checkTensorName(name); err != nil {
			return fmt.Errorf("gguf: tensor %d: %w", i, err)
		}
		if j, dup := seen[name]; dup {
			return fmt.Errorf("gguf: tensor %d: duplicate tensor name %q (first at tensor %d): %w", i, name, j, ErrInvalid)
		}
		seen[name] = int(i)
		ti, err := readTensorInfo(d, name)
		if err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", name, err)
		}
		f.Tensors = append(f.Tensors, ti)
	}
	return nil
}

// readTensorInfo decodes the shape, type and offset of the tensor name.
func readTensorInfo(d *decoder, name string) (TensorInfo, error) {
	ti := TensorInfo{Name: name}
	nDims, err := d.u32()
	if err != nil {
		return ti, fmt.Errorf("dimension count: %w", err)
	}
	if nDims > MaxDims {
		return ti, fmt.Errorf("%d dimensions, at most %d allowed: %w", nDims, MaxDims, ErrInvalid)
	}
	ti.Shape = make([]uint64, nDims)
	for j := range ti.Shape {
		ne, err := d.u64()
		if err != nil {
			return ti, fmt.Errorf("dimension %d: %w", j, err)
		}
		ti.Shape[j] = ne
	}
	if err := checkShape(ti.Shape); err != nil {
		return ti, err
	}
	t, err := d.u32()
	if err != nil {
		return ti, fmt.Errorf("type: %w", err)
	}
	ti.Type = Type(t)
	if ti.Size, err = tensorSize(ti.Type, ti.Shape); err != nil {
		return ti, err
	}
	if ti.Offset, err = d.u64(); err != nil {
		return ti, fmt.Errorf("data offset: %w", err)
	}
	return ti, nil
}
