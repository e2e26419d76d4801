package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds returns small valid files made by the Writer.
func fuzzSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	build := func(setup func(w *Writer) error) {
		w := NewWriter()
		if err := setup(w); err != nil {
			tb.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := w.WriteTo(&b); err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b.Bytes())
	}
	build(func(w *Writer) error { return nil })
	build(func(w *Writer) error {
		w.Set("general.architecture", String("llama"))
		w.Set("llama.block_count", Uint32(1))
		w.Set("tokenizer.ggml.tokens", Strings([]string{"<unk>", "a", "b"}))
		w.Set("tokenizer.ggml.scores", Float32s([]float32{0, -1, -2}))
		w.Set("flag", Bool(true))
		w.Set("i64", Int64(-1))
		if err := w.AddTensor("a", TypeF32, []uint64{4}, bytesData(pattern(16, 1))); err != nil {
			return err
		}
		return w.AddTensor("b", TypeQ4_0, []uint64{32, 2}, bytesData(pattern(36, 2)))
	})
	build(func(w *Writer) error {
		if err := w.SetAlignment(8); err != nil {
			return err
		}
		w.Set("u8s", Uint8s([]uint8{1, 2, 3}))
		w.Set("empty", Strings(nil))
		if err := w.AddTensor("x", TypeF16, []uint64{3, 1, 1, 2}, bytesData(pattern(12, 3))); err != nil {
			return err
		}
		return w.AddTensor("s", TypeI8, nil, bytesData([]byte{9}))
	})
	return seeds
}

// FuzzRead checks that Read never panics, and that what it accepts is
// sound: tensor ranges lie inside the file, aligned, in order and disjoint,
// and the Writer reproduces the same header from it.
func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add(validRaw().bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			n := 0
			for _, s := range []error{ErrNotGGUF, ErrVersion, ErrTruncated, ErrInvalid, ErrUnknownType} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %q wraps %d sentinels", err, n)
			}
			return
		}
		size := uint64(len(b))
		if file.Size != int64(len(b)) || file.Alignment == 0 || file.Alignment&(file.Alignment-1) != 0 ||
			file.DataOffset < 0 || uint64(file.DataOffset)%file.Alignment != 0 {
			t.Fatalf("bad file: size %d alignment %d data offset %d", file.Size, file.Alignment, file.DataOffset)
		}
		_ = checkVocab(file) // must not panic either
		var end uint64
		canRewrite := true
		for _, ti := range file.Tensors {
			start := uint64(file.DataOffset) + ti.Offset
			if start < uint64(file.DataOffset) || start+ti.Size < start || start+ti.Size > size {
				t.Fatalf("tensor %q: [%d, +%d) outside the %d-byte file", ti.Name, start, ti.Size, size)
			}
			if ti.Offset%file.Alignment != 0 || ti.Offset < end {
				t.Fatalf("tensor %q: offset %d misaligned or overlapping (previous end %d)", ti.Name, ti.Offset, end)
			}
			end = ti.Offset + ti.Size
			if !ti.Type.Known() || len(ti.Shape) > MaxDims || len(ti.Name) > MaxNameLen {
				t.Fatalf("tensor %+v accepted", ti)
			}
			if ti.Name == "" {
				canRewrite = false // the Writer requires names
			}
		}
		if !canRewrite {
			return
		}
		w := copyWriter(t, file, bytes.NewReader(b))
		var out bytes.Buffer
		if _, err := w.WriteTo(&out); err != nil {
			t.Fatalf("rewriting an accepted file: %v", err)
		}
		g, err := Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("re-reading a rewritten file: %v", err)
		}
		sameHeader(t, file, g)
		for _, ti := range file.Tensors {
			gi, _ := g.Tensor(ti.Name)
			a := b[file.DataOffset+int64(ti.Offset):][:ti.Size]
			c := out.Bytes()[g.DataOffset+int64(gi.Offset):][:gi.Size]
			if !bytes.Equal(a, c) {
				t.Fatalf("tensor %q data differs after rewrite", ti.Name)
			}
		}
	})
}

// corpusSeeds are the malformed and edge-case files kept in
// testdata/fuzz/FuzzRead, next to the valid seeds FuzzRead adds itself.
func corpusSeeds() map[string][]byte {
	mut := func(m func(*rawFile)) []byte {
		r := validRaw()
		m(r)
		return r.bytes()
	}
	valid := validRaw().bytes()
	return map[string][]byte{
		"valid":            valid,
		"truncated-header": valid[:30],
		"truncated-data":   valid[:len(valid)-1],
		"version-swapped":  mut(func(r *rawFile) { r.version = 0x03000000 }),
		"huge-kv-count":    mut(func(r *rawFile) { r.nKV = ptr(uint64(1) << 62) }),
		"huge-string": mut(func(r *rawFile) {
			r.kvs[0].payload = cat(le32(uint32(ValueString)), le64(1<<62), []byte("llama"))
		}),
		"huge-array": mut(func(r *rawFile) {
			r.kvs = append(r.kvs, rawKV{"arr", cat(le32(uint32(ValueArray)), le32(uint32(ValueUint64)), le64(1<<61))})
		}),
		"nested-array": mut(func(r *rawFile) {
			r.kvs = append(r.kvs, rawKV{"nest", cat(le32(uint32(ValueArray)), le32(uint32(ValueArray)), le64(1),
				le32(uint32(ValueUint8)), le64(1), []byte{7})})
		}),
		"alignment-3": mut(func(r *rawFile) { r.kvs = append(r.kvs, kvU32(KeyAlignment, 3)) }),
		"alignment-64": mut(func(r *rawFile) {
			r.kvs = append(r.kvs, kvU32(KeyAlignment, 64))
			r.align = 64
			r.tensors[1].offset = 64
			r.data = append(r.data[:32], append(make([]byte, 32), r.data[32:]...)...)
		}),
		"removed-type":   mut(func(r *rawFile) { r.tensors[0].typ = 31 }),
		"zero-dim":       mut(func(r *rawFile) { r.tensors[0].dims = []uint64{8, 0} }),
		"overflow-shape": mut(func(r *rawFile) { r.tensors[0].dims = []uint64{1 << 32, 1 << 31} }),
		"overlap": mut(func(r *rawFile) {
			r.tensors[0].dims = []uint64{16}
			r.data = append(r.data, make([]byte, 32)...)
		}),
		"zero-dims": mut(func(r *rawFile) { r.tensors[0].dims = nil }),
	}
}

// TestFuzzCorpus checks that the seed corpus on disk is the one corpusSeeds
// describes. Set GGUF_WRITE_CORPUS=1 to rewrite it.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRead")
	for name, b := range corpusSeeds() {
		p := filepath.Join(dir, name)
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if os.Getenv("GGUF_WRITE_CORPUS") == "1" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (run with GGUF_WRITE_CORPUS=1 to create the corpus)", err)
		}
		if string(got) != want {
			t.Errorf("%s differs from corpusSeeds (run with GGUF_WRITE_CORPUS=1 to rewrite it)", p)
		}
	}
}
