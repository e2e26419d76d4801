package gguf

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// roundTripKVs covers every scalar type, arrays of every type, empty arrays
// and strings, unicode and non-UTF-8 bytes.
func roundTripKVs() []KV {
	return []KV{
		{"general.architecture", String("llama")},
		{"u8", Uint8(255)},
		{"i8", Int8(-128)},
		{"u16", Uint16(65535)},
		{"i16", Int16(-32768)},
		{"u32", Uint32(math.MaxUint32)},
		{"i32", Int32(math.MinInt32)},
		{"u64", Uint64(math.MaxUint64)},
		{"i64", Int64(math.MinInt64)},
		{"f32", Float32(-1.5e-7)},
		{"f64", Float64(math.Pi)},
		{"f32.nan", Float32(float32(math.NaN()))},
		{"f64.inf", Float64(math.Inf(-1))},
		{"bool.true", Bool(true)},
		{"bool.false", Bool(false)},
		{"str.empty", String("")},
		{"str.unicode", String("héllo, 世界 🦙\n\t\"quoted\"")},
		{"str.binary", String("\x00\xff\xfe")},
		{"arr.strings", Strings([]string{"<unk>", "", "▁the", "世界", "\x00"})},
		{"arr.empty.strings", Strings(nil)},
		{"arr.empty.u32", Uint32s([]uint32{})},
		{"arr.u8", Uint8s([]uint8{0, 1, 255})},
		{"arr.i8", Int8s([]int8{-128, 0, 127})},
		{"arr.u16", Uint16s([]uint16{1, 65535})},
		{"arr.i16", Int16s([]int16{-32768, 32767})},
		{"arr.u32", Uint32s([]uint32{1, 2, math.MaxUint32})},
		{"arr.i32", Int32s([]int32{-1, 0, 1, math.MaxInt32})},
		{"arr.u64", Uint64s([]uint64{math.MaxUint64})},
		{"arr.i64", Int64s([]int64{math.MinInt64, 5})},
		{"arr.f32", Float32s([]float32{0, -0.5, 1e30})},
		{"arr.f64", Float64s([]float64{math.SmallestNonzeroFloat64})},
		{"arr.bool", Bools([]bool{true, false, true})},
		{"arr.generic", Array(ValueInt32, []Value{Int32(7), Int32(-7)})},
		{"arr.generic.strings", Array(ValueString, []Value{String("a"), String("b")})},
		{"llama.block_count", Uint32(2)},
	}
}

type testTensor struct {
	name  string
	typ   Type
	shape []uint64
}

var roundTripTensors = []testTensor{
	{"token_embd.weight", TypeQ4_0, []uint64{64, 3}},
	{"blk.0.attn_q.weight", TypeQ8_0, []uint64{32, 2, 2}},
	{"blk.0.ffn_up.weight", TypeF16, []uint64{5, 3, 2, 2}},
	{"output_norm.weight", TypeF32, []uint64{7}},
	{"blk.0.ffn_down.weight", TypeQ4_K, []uint64{256, 2}},
	{"blk.0.bf16", TypeBF16, []uint64{3}},
	{"blk.0.mxfp4", TypeMXFP4, []uint64{32}},
	{"scalar", TypeI32, nil},
}

// buildWriter returns a Writer holding the round-trip KVs and tensors, and
// the data of each tensor.
func buildWriter(t *testing.T) (*Writer, [][]byte) {
	t.Helper()
	w := NewWriter()
	for _, kv := range roundTripKVs() {
		w.Set(kv.Key, kv.Value)
	}
	var data [][]byte
	for i, tt := range roundTripTensors {
		size, err := tensorSize(tt.typ, tt.shape)
		if err != nil {
			t.Fatal(err)
		}
		p := pattern(size, byte(i))
		data = append(data, p)
		if err := w.AddTensor(tt.name, tt.typ, tt.shape, bytesData(p)); err != nil {
			t.Fatal(err)
		}
	}
	return w, data
}

func TestRoundTrip(t *testing.T) {
	for _, align := range []uint64{32, 1, 64, 4096} {
		w, data := buildWriter(t)
		if err := w.SetAlignment(align); err != nil {
			t.Fatal(err)
		}
		b := writeBytes(t, w)
		f, err := readBytes(t, b)
		if err != nil {
			t.Fatalf("alignment %d: %v", align, err)
		}
		if f.Version != 3 || f.Alignment != align || f.Size != int64(len(b)) {
			t.Fatalf("version %d alignment %d size %d", f.Version, f.Alignment, f.Size)
		}
		want := roundTripKVs()
		if align != DefaultAlignment {
			want = append(want, KV{KeyAlignment, Uint32(uint32(align))})
		}
		if len(f.KV) != len(want) {
			t.Fatalf("alignment %d: %d KVs, want %d", align, len(f.KV), len(want))
		}
		for i, kv := range want {
			if f.KV[i].Key != kv.Key || !f.KV[i].Value.Equal(kv.Value) {
				t.Errorf("KV %d = %s: %v, want %s: %v", i, f.KV[i].Key, f.KV[i].Value, kv.Key, kv.Value)
			}
		}
		if len(f.Tensors) != len(roundTripTensors) {
			t.Fatalf("%d tensors", len(f.Tensors))
		}
		if f.DataOffset%int64(align) != 0 {
			t.Errorf("data offset %d not aligned to %d", f.DataOffset, align)
		}
		for i, tt := range roundTripTensors {
			ti := f.Tensors[i]
			if ti.Name != tt.name || ti.Type != tt.typ || !slices.Equal(ti.Shape, tt.shape) {
				t.Errorf("tensor %d = %+v, want %+v", i, ti, tt)
			}
			if ti.Offset%align != 0 {
				t.Errorf("tensor %q offset %d not aligned to %d", ti.Name, ti.Offset, align)
			}
			if ti.Size != uint64(len(data[i])) {
				t.Errorf("tensor %q size %d, want %d", ti.Name, ti.Size, len(data[i]))
			}
			start := f.DataOffset + int64(ti.Offset)
			if got := b[start : start+int64(ti.Size)]; !bytes.Equal(got, data[i]) {
				t.Errorf("tensor %q data differs", ti.Name)
			}
		}
		// Padding between and after tensors is zero, and the file ends
		// padded, as gguf.cpp writes it.
		if len(b)%int(align) != 0 {
			t.Errorf("file size %d not padded to %d", len(b), align)
		}
	}
}

func TestRoundTripExpectedValues(t *testing.T) {
	w, _ := buildWriter(t)
	f, err := readBytes(t, writeBytes(t, w))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := f.Int("i64"); !ok || v != math.MinInt64 {
		t.Errorf("i64 = %d, %v", v, ok)
	}
	if v, ok := f.Uint("u64"); !ok || v != math.MaxUint64 {
		t.Errorf("u64 = %d, %v", v, ok)
	}
	if v, ok := f.Float("f64"); !ok || v != math.Pi {
		t.Errorf("f64 = %v, %v", v, ok)
	}
	if v, ok := f.String("str.unicode"); !ok || v != "héllo, 世界 🦙\n\t\"quoted\"" {
		t.Errorf("str.unicode = %q, %v", v, ok)
	}
	if v, ok := f.Strings("arr.empty.strings"); !ok || len(v) != 0 {
		t.Errorf("arr.empty.strings = %q, %v", v, ok)
	}
	if v, ok := f.Bool("bool.true"); !ok || !v {
		t.Errorf("bool.true = %v, %v", v, ok)
	}
	if f.ParamCount() != 64*3+32*4+5*3*4+7+256*2+3+32+1 {
		t.Errorf("ParamCount = %d", f.ParamCount())
	}
	ti, ok := f.Tensor("scalar")
	if !ok || ti.Elements() != 1 || ti.Size != 4 {
		t.Errorf("scalar tensor = %+v, %v", ti, ok)
	}
	if _, ok := f.Tensor("nope"); ok {
		t.Error("found missing tensor")
	}
}

func TestWriterSetOrder(t *testing.T) {
	w := NewWriter()
	w.Set("a", Uint32(1))
	w.Set("b", Uint32(2))
	w.Set("c", Uint32(3))
	w.Set("a", String("replaced"))
	w.Delete("b")
	w.Delete("missing")
	w.Set("d", Uint32(4))
	if err := w.SetAlignment(32); err != nil { // default: no key written
		t.Fatal(err)
	}
	f, err := readBytes(t, writeBytes(t, w))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range f.KV {
		keys = append(keys, kv.Key)
	}
	if !slices.Equal(keys, []string{"a", "c", "d"}) {
		t.Fatalf("keys = %q", keys)
	}
	if s, _ := f.String("a"); s != "replaced" {
		t.Errorf("a = %q", s)
	}
	// An explicit 32 that is already set stays set.
	w.Set(KeyAlignment, Uint32(64))
	if err := w.SetAlignment(32); err != nil {
		t.Fatal(err)
	}
	if f, err = readBytes(t, writeBytes(t, w)); err != nil {
		t.Fatal(err)
	}
	if a, ok := f.Uint(KeyAlignment); !ok || a != 32 || f.Alignment != 32 {
		t.Errorf("alignment = %d, %v", a, ok)
	}
}

func TestWriterErrors(t *testing.T) {
	newW := func() *Writer { return NewWriter() }
	f32 := func(n int) func(io.Writer) error { return bytesData(make([]byte, 4*n)) }
	tests := []struct {
		name     string
		build    func(w *Writer) error // error from AddTensor/SetAlignment
		sentinel error
		words    []string
		atWrite  bool // the error comes from WriteTo
	}{
		{name: "empty tensor name", build: func(w *Writer) error { return w.AddTensor("", TypeF32, []uint64{1}, f32(1)) },
			sentinel: ErrInvalid, words: []string{"empty name"}},
		{name: "long tensor name", build: func(w *Writer) error {
			return w.AddTensor(string(make([]byte, 64)), TypeF32, []uint64{1}, f32(1))
		}, sentinel: ErrInvalid, words: []string{"64 bytes long"}},
		{name: "duplicate tensor", build: func(w *Writer) error {
			if err := w.AddTensor("x", TypeF32, []uint64{1}, f32(1)); err != nil {
				return nil
			}
			return w.AddTensor("x", TypeF32, []uint64{1}, f32(1))
		}, sentinel: ErrInvalid, words: []string{"duplicate"}},
		{name: "5 dims", build: func(w *Writer) error { return w.AddTensor("x", TypeF32, []uint64{1, 1, 1, 1, 1}, f32(1)) },
			sentinel: ErrInvalid, words: []string{"5 dimensions"}},
		{name: "zero dim", build: func(w *Writer) error { return w.AddTensor("x", TypeF32, []uint64{1, 0}, nil) },
			sentinel: ErrInvalid, words: []string{"dimension 1 is 0"}},
		{name: "block multiple", build: func(w *Writer) error { return w.AddTensor("x", TypeQ4_K, []uint64{128}, f32(1)) },
			sentinel: ErrInvalid, words: []string{"block size 256"}},
		{name: "removed type", build: func(w *Writer) error { return w.AddTensor("x", Type(5), []uint64{32}, f32(1)) },
			sentinel: ErrUnknownType, words: []string{"removed"}},
		{name: "nil callback", build: func(w *Writer) error { return w.AddTensor("x", TypeF32, []uint64{2}, nil) },
			sentinel: ErrInvalid, words: []string{"nil data callback"}},
		{name: "bad alignment", build: func(w *Writer) error { return w.SetAlignment(48) },
			sentinel: ErrInvalid, words: []string{"alignment 48"}},
		{name: "alignment too big", build: func(w *Writer) error { return w.SetAlignment(1 << 32) },
			sentinel: ErrInvalid},
		{name: "short callback", atWrite: true, build: func(w *Writer) error { return w.AddTensor("x", TypeF32, []uint64{4}, f32(3)) },
			sentinel: ErrInvalid, words: []string{`tensor "x"`, "wrote 12 bytes, want exactly 16"}},
		{name: "long callback", atWrite: true, build: func(w *Writer) error { return w.AddTensor("x", TypeF32, []uint64{4}, f32(5)) },
			sentinel: ErrInvalid, words: []string{`tensor "x"`, "want exactly 16"}},
		{name: "long callback in pieces", atWrite: true, build: func(w *Writer) error {
			return w.AddTensor("x", TypeF32, []uint64{1}, func(w io.Writer) error {
				for range 3 {
					w.Write([]byte{1, 2}) // errors ignored on purpose
				}
				return nil
			})
		}, sentinel: ErrInvalid, words: []string{"want exactly 4"}},
		{name: "callback error", atWrite: true, build: func(w *Writer) error {
			return w.AddTensor("x", TypeF32, []uint64{1}, func(io.Writer) error { return io.ErrUnexpectedEOF })
		}, sentinel: io.ErrUnexpectedEOF, words: []string{`tensor "x"`}},
		{name: "nested array", atWrite: true, build: func(w *Writer) error {
			w.Set("nest", Array(ValueArray, []Value{Uint8s([]uint8{1})}))
			return nil
		}, sentinel: ErrInvalid, words: []string{`"nest"`, "nested arrays"}},
		{name: "mismatched array", atWrite: true, build: func(w *Writer) error {
			w.Set("mix", Array(ValueUint32, []Value{Uint32(1), String("x")}))
			return nil
		}, sentinel: ErrInvalid, words: []string{`"mix"`, "element 1 has type str"}},
		{name: "invalid value type", atWrite: true, build: func(w *Writer) error {
			w.Set("v", Value{Type: 77})
			return nil
		}, sentinel: ErrUnknownType, words: []string{"invalid value type 77"}},
		{name: "empty key", atWrite: true, build: func(w *Writer) error {
			w.Set("", Uint32(1))
			return nil
		}, sentinel: ErrInvalid, words: []string{"empty key"}},
		{name: "alignment wrong type", atWrite: true, build: func(w *Writer) error {
			w.Set(KeyAlignment, Uint64(32))
			return nil
		}, sentinel: ErrInvalid, words: []string{"must be u32"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newW()
			err := tc.build(w)
			if tc.atWrite {
				if err != nil {
					t.Fatalf("build: %v", err)
				}
				_, err = w.WriteTo(io.Discard)
			}
			wantErr(t, err, tc.sentinel, tc.words...)
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	w, _ := buildWriter(t)
	p := filepath.Join(dir, "m.gguf")
	if err := w.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(roundTripTensors) {
		t.Fatalf("%d tensors", len(f.Tensors))
	}
	if _, err := os.Stat(p + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}

	// A failing callback leaves neither the file nor the temporary file.
	bad := NewWriter()
	if err := bad.AddTensor("x", TypeF32, []uint64{1}, func(io.Writer) error { return io.ErrClosedPipe }); err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(dir, "bad.gguf")
	if err := bad.WriteFile(q); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("got %v", err)
	}
	for _, name := range []string{q, q + ".tmp"} {
		if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed write: %v", name, err)
		}
	}
	if err := bad.WriteFile(filepath.Join(dir, "no", "such", "dir.gguf")); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, io.ErrShortWrite
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteToOutputError(t *testing.T) {
	w, _ := buildWriter(t)
	full := int64(len(writeBytes(t, w)))
	for _, n := range []int{0, 10, 1 << 10, int(full) - 1} {
		got, err := w.WriteTo(&failWriter{n: n})
		if !errors.Is(err, io.ErrShortWrite) {
			t.Errorf("fail after %d: got %v", n, err)
		}
		if got > int64(n) {
			t.Errorf("fail after %d: reported %d bytes", n, got)
		}
	}
}

// TestLargeValues exercises values larger than the decoder's read-ahead
// window, whole and truncated.
func TestLargeValues(t *testing.T) {
	big := string(pattern(3*window+7, 1))
	w := NewWriter()
	w.Set("tokenizer.chat_template", String(big))
	w.Set("bytes", Uint8s(pattern(window+1, 2)))
	w.Set("strs", Strings([]string{"a", big, "b"}))
	w.Set("after", Uint32(42))
	b := writeBytes(t, w)
	f, err := readBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := f.String("tokenizer.chat_template"); s != big {
		t.Error("big string differs")
	}
	if v, _ := f.Lookup("bytes"); !v.Equal(Uint8s(pattern(window+1, 2))) {
		t.Error("big array differs")
	}
	if v, _ := f.Strings("strs"); len(v) != 3 || v[1] != big || v[2] != "b" {
		t.Error("string array differs")
	}
	if v, _ := f.Uint("after"); v != 42 {
		t.Error("value after the big ones differs")
	}
	for _, cut := range []int{100, window, 2 * window, 3*window + 100, 4*window + 200, 5 * window, len(b) - 32} {
		if _, err := readBytes(t, b[:cut]); !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: %v", cut, err)
		}
		// The reader ends early although the declared size is right.
		if _, err := Read(bytes.NewReader(b[:cut]), int64(len(b))); !errors.Is(err, ErrTruncated) {
			t.Errorf("reader short at %d: %v", cut, err)
		}
	}
}
