package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"sort"
	"unicode/utf8"
)

// Format limits.
const (
	// MaxHeaderSize is the longest JSON header accepted, in bytes: the
	// reference implementation's MAX_HEADER_SIZE (100 MB).
	MaxHeaderSize = 100_000_000

	// MetadataKey is the header key of the optional string-to-string
	// metadata object.
	MetadataKey = "__metadata__"
)

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	// Name is the tensor's name, the header key.
	Name string
	// DType is the element type.
	DType DType
	// Shape is the shape in row-major order: the last dimension varies
	// fastest. It may be empty (a scalar) or hold zeros (no elements).
	Shape []int64
	// Offset is the absolute file offset of the tensor's data.
	Offset int64
	// Size is the number of bytes of data.
	Size int64
}

// Elements returns the number of elements: the product of Shape (1 for an
// empty Shape). It cannot overflow for a TensorInfo that [Read] returned.
func (t TensorInfo) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open, validated safetensors file. Its header is parsed; tensor
// data is read on demand, by offset, through the underlying reader, so a
// file is never loaded whole. A File is safe for concurrent reads.
type File struct {
	// Path is the file's path, or "" for a File made by [Read].
	Path string
	// Metadata holds the header's __metadata__ object (nil when absent).
	Metadata map[string]string
	// Tensors holds the tensor infos, sorted by name.
	Tensors []TensorInfo
	// HeaderSize is the length N of the JSON header in bytes.
	HeaderSize int64
	// DataOffset is the absolute offset of the data section: 8 + N.
	DataOffset int64
	// Size is the size of the file in bytes.
	Size int64

	r      io.ReaderAt
	closer io.Closer
	index  map[string]int // name -> index in Tensors
}

// Open opens the safetensors file at path and validates its header, like
// [Read]. The returned File keeps the file open for reading tensor data
// until [File.Close]. Errors are prefixed with the path.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%s: safetensors: not a regular file: %w", path, ErrInvalid)
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Path = path
	f.closer = fh
	return f, nil
}

// Read parses and validates the header of the safetensors file of size
// bytes read through r. It reads only the 8-byte length and the header;
// the returned File reads tensor data through r on demand. See the package
// documentation for the checks made. Errors for malformed content wrap
// [ErrTruncated], [ErrInvalid], [ErrUnknownDType] or [ErrUnsupportedDType].
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("safetensors: negative file size %d: %w", size, ErrInvalid)
	}
	if size < 8 {
		return nil, fmt.Errorf("safetensors: file of %d bytes is shorter than the 8-byte header length: %w", size, ErrTruncated)
	}
	var lb [8]byte
	if err := readFull(r, lb[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the limit of %d bytes: %w", n, MaxHeaderSize, ErrInvalid)
	}
	if n > uint64(size-8) {
		return nil, fmt.Errorf("safetensors: header length %d extends beyond the end of the %d-byte file: %w", n, size, ErrTruncated)
	}
	hdr := make([]byte, n)
	if err := readFull(r, hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	f := &File{HeaderSize: int64(n), DataOffset: 8 + int64(n), Size: size, r: r}
	if err := parseHeader(f, hdr); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

// readFull reads len(p) bytes at off, reporting a short read as
// ErrTruncated (the reader holds fewer bytes than the size it was given).
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("file ends at %d, before its declared size: %w", off+int64(n), ErrTruncated)
	}
	return err
}

// parseHeader decodes and validates the JSON header hdr into f.
func parseHeader(f *File, hdr []byte) error {
	if !utf8.Valid(hdr) {
		return fmt.Errorf("header is not valid UTF-8: %w", ErrInvalid)
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return fmt.Errorf("header does not start with '{': %w", ErrInvalid)
	}
	ms, err := objectMembers(hdr)
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	f.Tensors = make([]TensorInfo, 0, len(ms))
	for _, m := range ms {
		if m.key == MetadataKey {
			md, err := jsonStringMap(m.val)
			if err != nil {
				return fmt.Errorf("%s: %w", MetadataKey, err)
			}
			f.Metadata = md
			continue
		}
		t, err := parseTensorInfo(m.key, m.val)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", m.key, err)
		}
		f.Tensors = append(f.Tensors, t)
	}
	if err := checkLayout(f); err != nil {
		return err
	}
	// Unsupported dtypes are rejected last, once the layout is known to be
	// sound, so that a well-formed file gets the dtype message.
	for _, t := range f.Tensors {
		if !t.DType.Supported() && !t.DType.Raw() {
			return fmt.Errorf("tensor %q has dtype %s; only F32, F16, BF16, U8 (packed quantized data) and F8_E4M3 (FP8 weights) are supported: %w", t.Name, t.DType, ErrUnsupportedDType)
		}
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return f.Tensors[i].Name < f.Tensors[j].Name })
	f.index = make(map[string]int, len(f.Tensors))
	for i, t := range f.Tensors {
		f.index[t.Name] = i
	}
	return nil
}

// parseTensorInfo decodes one tensor entry: an object with a string
// "dtype", an integer array "shape" and a two-integer array
// "data_offsets". Other fields are ignored, as the reference implementation
// ignores them. On return Offset and Size hold begin and end, relative to
// the data section; checkLayout makes them absolute.
func parseTensorInfo(name string, raw []byte) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	if len(raw) == 0 || raw[0] != '{' {
		return t, fmt.Errorf("entry %s is not an object: %w", abbrev(raw), ErrInvalid)
	}
	ms, err := objectMembers(raw)
	if err != nil {
		return t, err
	}
	var haveDType, haveShape, haveOffsets bool
	for _, m := range ms {
		switch m.key {
		case "dtype":
			s, ok := jsonString(m.val)
			if !ok {
				return t, fmt.Errorf("dtype %s is not a string: %w", abbrev(m.val), ErrInvalid)
			}
			t.DType, haveDType = DType(s), true
		case "shape":
			if t.Shape, err = jsonUints(m.val); err != nil {
				return t, fmt.Errorf("shape: %w", err)
			}
			haveShape = true
		case "data_offsets":
			offs, err := jsonUints(m.val)
			if err != nil {
				return t, fmt.Errorf("data_offsets: %w", err)
			}
			if len(offs) != 2 {
				return t, fmt.Errorf("data_offsets has %d elements, want [begin, end]: %w", len(offs), ErrInvalid)
			}
			t.Offset, t.Size, haveOffsets = offs[0], offs[1], true
		}
	}
	switch {
	case !haveDType:
		return t, fmt.Errorf("missing dtype: %w", ErrInvalid)
	case !haveShape:
		return t, fmt.Errorf("missing shape: %w", ErrInvalid)
	case !haveOffsets:
		return t, fmt.Errorf("missing data_offsets: %w", ErrInvalid)
	}
	if !t.DType.Known() {
		return t, fmt.Errorf("dtype %q: %w", string(t.DType), ErrUnknownDType)
	}
	return t, nil
}

// checkLayout validates the data section as the reference implementation
// does: sorted by (begin, end), the tensors' ranges must start at 0 and
// follow one another without gap or overlap, each with begin <= end and
// end - begin equal to the product of the shape times the dtype size
// (computed with overflow checks), and the last must end exactly at the end
// of the file. It then makes Offset absolute and Size the byte length.
func checkLayout(f *File) error {
	avail := f.Size - f.DataOffset // bytes in the data section
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ta, tb := &f.Tensors[a], &f.Tensors[b]
		if ta.Offset != tb.Offset {
			return cmpInt(ta.Offset, tb.Offset)
		}
		return cmpInt(ta.Size, tb.Size)
	})
	var want int64 // where the next tensor must begin
	prev := ""
	for _, i := range order {
		t := &f.Tensors[i]
		begin, end := t.Offset, t.Size
		if end < begin {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] end before they begin: %w", t.Name, begin, end, ErrInvalid)
		}
		switch {
		case begin < want:
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d: %w", t.Name, begin, end, prev, want, ErrInvalid)
		case begin > want:
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a hole after offset %d (tensors must cover the data section without gaps): %w", t.Name, begin, end, want, ErrInvalid)
		}
		nbytes, err := byteSize(t.DType, t.Shape)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if nbytes != end-begin {
			return fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, but data_offsets [%d, %d] hold %d: %w",
				t.Name, t.Shape, t.DType, nbytes, begin, end, end-begin, ErrInvalid)
		}
		if end > avail {
			return fmt.Errorf("tensor %q: data [%d, %d) extends beyond the end of the %d-byte file: %w",
				t.Name, f.DataOffset+begin, satAdd(f.DataOffset, end), f.Size, ErrTruncated)
		}
		t.Offset, t.Size = f.DataOffset+begin, end-begin
		want, prev = end, t.Name
	}
	if want != avail {
		return fmt.Errorf("data section holds %d bytes but the tensors cover %d (trailing bytes): %w", avail, want, ErrInvalid)
	}
	return nil
}

// byteSize returns the data size of a tensor of dtype d and the given
// shape, failing on overflow beyond int64 and on sub-byte dtypes whose
// elements do not fill whole bytes.
func byteSize(d DType, shape []int64) (int64, error) {
	n := uint64(1)
	for _, dim := range shape {
		hi, lo := bits.Mul64(n, uint64(dim))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("shape %v: element count overflows: %w", shape, ErrInvalid)
		}
		n = lo
	}
	b := uint64(d.Bits())
	if b%8 != 0 { // sub-byte dtypes: the elements must fill whole bytes
		hi, lo := bits.Mul64(n, b)
		if hi != 0 {
			return 0, fmt.Errorf("shape %v of %s: byte size overflows: %w", shape, d, ErrInvalid)
		}
		if lo%8 != 0 {
			return 0, fmt.Errorf("shape %v of %s: %d elements do not fill whole bytes: %w", shape, d, n, ErrInvalid)
		}
		return int64(lo / 8), nil // lo/8 < 2^61
	}
	hi, lo := bits.Mul64(n, b/8)
	if hi != 0 || lo > math.MaxInt64 {
		return 0, fmt.Errorf("shape %v of %s: byte size overflows: %w", shape, d, ErrInvalid)
	}
	return int64(lo), nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// satAdd adds two non-negative int64s, saturating at MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Close closes the underlying file of a File made by [Open]. It does
// nothing for a File made by [Read].
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// Tensor returns the info of the tensor called name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// ParamCount returns the total number of tensor elements.
func (f *File) ParamCount() int64 {
	var n int64
	for _, t := range f.Tensors {
		n += t.Elements()
	}
	return n
}

// ReadAt reads len(p) bytes of the file at absolute offset off; it makes a
// File an [io.ReaderAt].
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	return f.r.ReadAt(p, off)
}

// TensorReader returns a reader of the raw little-endian data of the tensor
// called name, for streaming it without holding it in memory.
func (f *File) TensorReader(name string) (*io.SectionReader, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(f.r, t.Offset, t.Size), nil
}

// ReadTensor reads the raw little-endian data of the tensor called name into
// dst, reusing dst's storage when its capacity suffices, and returns the
// Size bytes read.
func (f *File) ReadTensor(name string, dst []byte) ([]byte, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if int64(cap(dst)) >= t.Size {
		dst = dst[:t.Size]
	} else {
		dst = make([]byte, t.Size)
	}
	if err := readFull(f.r, dst, t.Offset); err != nil {
		return nil, f.errorf("tensor %q: %w", name, err)
	}
	return dst, nil
}

// Float32s reads the tensor called name and returns its elements as
// float32s, converting F16 and BF16 exactly (both are subsets of float32).
func (f *File) Float32s(name string) ([]float32, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	raw, err := f.ReadTensor(name, nil)
	if err != nil {
		return nil, err
	}
	out := make([]float32, t.Elements())
	if err := DecodeFloat32s(out, t.DType, raw); err != nil {
		return nil, f.errorf("tensor %q: %w", name, err)
	}
	return out, nil
}

func (f *File) lookup(name string) (TensorInfo, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return t, f.errorf("tensor %q: %w", name, ErrNotFound)
	}
	return t, nil
}

// errorf formats an error prefixed with the file's path, if it has one.
func (f *File) errorf(format string, args ...any) error {
	err := fmt.Errorf("safetensors: "+format, args...)
	if f.Path != "" {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return err
}
