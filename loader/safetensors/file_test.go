package safetensors

import (
	"bytes"
	"errors"
	"io"
	"math"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadSample(t *testing.T) {
	b := sample()
	f, err := readBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" || len(f.Metadata) != 1 {
		t.Errorf("metadata = %v", f.Metadata)
	}
	if f.HeaderSize%8 != 0 || f.DataOffset != 8+f.HeaderSize || f.Size != int64(len(b)) {
		t.Errorf("header %d, data offset %d, size %d", f.HeaderSize, f.DataOffset, f.Size)
	}
	var names []string
	for _, ti := range f.Tensors {
		names = append(names, ti.Name)
	}
	if !slices.Equal(names, []string{"b", "h", "w"}) {
		t.Errorf("names = %v, want sorted", names)
	}
	want := map[string]TensorInfo{
		"w": {Name: "w", DType: F32, Shape: []int64{2, 3}, Offset: f.DataOffset, Size: 24},
		"h": {Name: "h", DType: F16, Shape: []int64{2}, Offset: f.DataOffset + 24, Size: 4},
		"b": {Name: "b", DType: BF16, Shape: []int64{3}, Offset: f.DataOffset + 28, Size: 6},
	}
	for name, w := range want {
		got, ok := f.Tensor(name)
		if !ok || got.Name != w.Name || got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) || got.Offset != w.Offset || got.Size != w.Size {
			t.Errorf("Tensor(%q) = %+v, %v; want %+v", name, got, ok, w)
		}
	}
	if _, ok := f.Tensor("nope"); ok {
		t.Error("Tensor(nope) found")
	}
	if n := f.ParamCount(); n != 11 {
		t.Errorf("ParamCount = %d", n)
	}

	vals := map[string][]float32{"w": {1, 2, 3, 4, 5, 6}, "h": {0.5, -2}, "b": {1, -1.5, 256}}
	for name, wv := range vals {
		got, err := f.Float32s(name)
		if err != nil || !slices.Equal(got, wv) {
			t.Errorf("Float32s(%q) = %v, %v; want %v", name, got, err, wv)
		}
	}

	// ReadTensor reuses a large enough buffer and allocates otherwise.
	buf := make([]byte, 0, 64)
	raw, err := f.ReadTensor("w", buf)
	if err != nil || !bytes.Equal(raw, f32Bytes(1, 2, 3, 4, 5, 6)) || &raw[0] != &buf[:1][0] {
		t.Errorf("ReadTensor(w) = %v, %v", raw, err)
	}
	raw, err = f.ReadTensor("h", make([]byte, 1))
	if err != nil || !bytes.Equal(raw, f16Bytes(0.5, -2)) {
		t.Errorf("ReadTensor(h) = %v, %v", raw, err)
	}
	sr, err := f.TensorReader("b")
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(sr)
	if err != nil || !bytes.Equal(all, bf16Bytes(1, -1.5, 256)) {
		t.Errorf("TensorReader(b) read %v, %v", all, err)
	}
	p := make([]byte, 4)
	if _, err := f.ReadAt(p, f.DataOffset); err != nil || !bytes.Equal(p, f32Bytes(1)) {
		t.Errorf("ReadAt = %v, %v", p, err)
	}

	for _, fn := range []func() error{
		func() error { _, err := f.Float32s("nope"); return err },
		func() error { _, err := f.ReadTensor("nope", nil); return err },
		func() error { _, err := f.TensorReader("nope"); return err },
	} {
		if err := fn(); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing tensor: %v, want ErrNotFound", err)
		}
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close of a Read file: %v", err)
	}
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "x.safetensors", sample())
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != p {
		t.Errorf("Path = %q", f.Path)
	}
	if v, err := f.Float32s("w"); err != nil || v[5] != 6 {
		t.Errorf("Float32s = %v, %v", v, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Reading after Close fails with the OS error, naming the file.
	if _, err := f.ReadTensor("w", nil); err == nil {
		t.Error("read after Close succeeded")
	}

	bad := writeFile(t, dir, "bad.safetensors", sample()[:20])
	_, err = Open(bad)
	wantErr(t, err, ErrTruncated, bad)
	_, err = Open(filepath.Join(dir, "missing"))
	if err == nil {
		t.Error("Open of a missing file succeeded")
	}
	_, err = Open(dir)
	wantErr(t, err, ErrInvalid, "not a regular file")
}

func TestEmptyAndScalar(t *testing.T) {
	// No tensors at all: the reference writer's "{}" padded to 8 bytes.
	f, err := readBytes(rawST("{}      ", nil))
	if err != nil || len(f.Tensors) != 0 || f.Metadata != nil {
		t.Fatalf("empty file: %+v, %v", f, err)
	}
	// A scalar (empty shape) and an empty tensor (a zero dimension), which
	// shares its offset with the tensor after it.
	b := writeST(nil,
		tensor{"e", F16, []int64{0, 4}, nil},
		tensor{"s", F32, []int64{}, f32Bytes(7)},
	)
	f, err = readBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Float32s("s"); err != nil || !slices.Equal(v, []float32{7}) {
		t.Errorf("scalar = %v, %v", v, err)
	}
	if v, err := f.Float32s("e"); err != nil || len(v) != 0 {
		t.Errorf("empty = %v, %v", v, err)
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	b := sample()
	for n := range len(b) {
		_, err := readBytes(b[:n])
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix of %d/%d bytes: %v, want ErrTruncated", n, len(b), err)
		}
	}
}

type failingReader struct{ err error }

func (r failingReader) ReadAt([]byte, int64) (int, error) { return 0, r.err }

func TestReaderErrors(t *testing.T) {
	b := sample()
	_, err := Read(bytes.NewReader(b[:30]), int64(len(b)))
	wantErr(t, err, ErrTruncated, "before its declared size")

	ioErr := errors.New("disk on fire")
	_, err = Read(failingReader{ioErr}, 1000)
	if !errors.Is(err, ioErr) {
		t.Fatalf("got %v, want the reader's error", err)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			t.Errorf("I/O error %q wraps %v", err, s)
		}
	}
	_, err = Read(bytes.NewReader(nil), -1)
	wantErr(t, err, ErrInvalid, "negative")
}

func TestDType(t *testing.T) {
	sizes := map[DType]int64{F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8E4M3: 1, F8E5M2: 1, F4: 0, "X": 0}
	for d, n := range sizes {
		if d.Size() != n {
			t.Errorf("%s.Size() = %d, want %d", d, d.Size(), n)
		}
	}
	if F4.Bits() != 4 || F6E2M3.Bits() != 6 || !F4.Known() || DType("F33").Known() {
		t.Error("Bits/Known")
	}
	for _, d := range []DType{F32, F16, BF16} {
		if !d.Supported() {
			t.Errorf("%s not supported", d)
		}
	}
	if I64.Supported() || F64.Supported() || I64.String() != "I64" {
		t.Error("I64/F64")
	}
}

func TestBF16Rounding(t *testing.T) {
	tests := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80},             // 1
		{0x3f808000, 0x3f80},             // tie, even stays
		{0x3f818000, 0x3f82},             // tie, odd rounds up
		{0x3f808001, 0x3f81},             // above the tie
		{0x3f807fff, 0x3f80},             // below the tie
		{0x7f7fffff, 0x7f80},             // max float rounds to +Inf
		{0xff800000, 0xff80},             // -Inf
		{0x80000000, 0x8000},             // -0
		{math.Float32bits(-1.5), 0xbfc0}, // exact
		{0x7f800001, 0x7fc0},             // signalling NaN stays NaN
		{math.Float32bits(float32(math.NaN())), 0x7fc0},
	}
	for _, tc := range tests {
		got := Float32ToBF16(math.Float32frombits(tc.in))
		if got != tc.want {
			t.Errorf("Float32ToBF16(%#08x) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	if BF16ToFloat32(0x3fc0) != 1.5 {
		t.Error("BF16ToFloat32")
	}
}

func TestDecodeFloat32s(t *testing.T) {
	dst := make([]float32, 2)
	if err := DecodeFloat32s(dst, I32, make([]byte, 8)); !errors.Is(err, ErrUnsupportedDType) {
		t.Errorf("I32: %v", err)
	}
	if err := DecodeFloat32s(dst, F16, make([]byte, 3)); !errors.Is(err, ErrInvalid) {
		t.Errorf("odd length: %v", err)
	}
	if err := DecodeFloat32s(dst, F32, make([]byte, 4)); !errors.Is(err, ErrInvalid) {
		t.Errorf("short: %v", err)
	}
}

// TestU8Raw: a U8 tensor (packed quantized data, as gpt-oss's MXFP4
// blocks) opens and reads as raw bytes, but not as floats.
func TestU8Raw(t *testing.T) {
	f, err := readBytes(rawST(`{"blocks":{"dtype":"U8","shape":[2,4],"data_offsets":[0,8]}}`, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadTensor("blocks", nil)
	if err != nil || !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("ReadTensor: %v, %v", got, err)
	}
	if _, err := f.Float32s("blocks"); !errors.Is(err, ErrUnsupportedDType) {
		t.Errorf("Float32s of U8: %v, want ErrUnsupportedDType", err)
	}
}

// TestF8E4M3: an F8_E4M3 tensor opens and reads as raw bytes, not as
// floats, and DecodeF8E4M3 gives the values of the E4M3 "fn" format.
func TestF8E4M3(t *testing.T) {
	raw := []byte{0x00, 0x38, 0x3c, 0xb8, 0x7e, 0x08, 0x01, 0x7f}
	f, err := readBytes(rawST(`{"w":{"dtype":"F8_E4M3","shape":[2,4],"data_offsets":[0,8]}}`, raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Float32s("w"); !errors.Is(err, ErrUnsupportedDType) {
		t.Errorf("Float32s of F8_E4M3: %v, want ErrUnsupportedDType", err)
	}
	got, err := f.ReadTensor("w", nil)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float32, len(got))
	if err := DecodeF8E4M3(vals, got); err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 1, 1.5, -1, 448, 1.0 / 64, 1.0 / 512}
	for i, w := range want {
		if vals[i] != w {
			t.Errorf("byte %#02x: %v, want %v", raw[i], vals[i], w)
		}
	}
	if !math.IsNaN(float64(vals[7])) {
		t.Errorf("byte 0x7f: %v, want NaN", vals[7])
	}
	if err := DecodeF8E4M3(vals[:3], got); !errors.Is(err, ErrInvalid) {
		t.Errorf("short dst: %v", err)
	}
}
