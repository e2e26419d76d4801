package gguf

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
)

func TestRealModels(t *testing.T) {
	tests := []struct {
		file      string
		tensors   int
		types     map[Type]int
		params    uint64
		vocab     int
		arch      string
		name      string
		uints     map[string]uint64
		firstTok  string
		tensorChk TensorInfo
	}{
		{
			file: "stories260K.gguf", tensors: 48, types: map[Type]int{TypeF32: 48}, params: 292800, vocab: 512,
			arch: "llama", name: "llama",
			uints:     map[string]uint64{"llama.embedding_length": 64, "llama.block_count": 5, "llama.context_length": 2048, "llama.attention.head_count_kv": 4},
			firstTok:  "<unk>",
			tensorChk: TensorInfo{Name: "blk.4.ffn_norm.weight", Type: TypeF32, Shape: []uint64{64}, Size: 256},
		},
		{
			file: "llama-2-tiny-random.gguf", tensors: 12, types: map[Type]int{TypeF16: 9, TypeF32: 3}, params: 513048, vocab: 32000,
			arch: "llama", name: "LLaMA v2",
			uints:     map[string]uint64{"llama.embedding_length": 8, "llama.block_count": 1, "general.file_type": 1},
			firstTok:  "<unk>",
			tensorChk: TensorInfo{Name: "output.weight", Type: TypeF16, Shape: []uint64{8, 32000}, Size: 512000},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			p := shareddata.Path(t, "models", tc.file)
			f, err := ValidateModel(p)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(p)
			if f.Version != 3 || f.Alignment != 32 || f.Size != st.Size() || f.DataOffset%32 != 0 {
				t.Errorf("version %d alignment %d size %d data offset %d", f.Version, f.Alignment, f.Size, f.DataOffset)
			}
			if len(f.Tensors) != tc.tensors {
				t.Errorf("%d tensors, want %d", len(f.Tensors), tc.tensors)
			}
			types := map[Type]int{}
			for _, ti := range f.Tensors {
				types[ti.Type]++
			}
			for typ, n := range tc.types {
				if types[typ] != n {
					t.Errorf("%d %s tensors, want %d (all: %v)", types[typ], typ, n, types)
				}
			}
			if got := f.ParamCount(); got != tc.params {
				t.Errorf("ParamCount = %d, want %d", got, tc.params)
			}
			if f.Architecture() != tc.arch {
				t.Errorf("architecture %q", f.Architecture())
			}
			if got, _ := f.String("general.name"); got != tc.name {
				t.Errorf("general.name = %q, want %q", got, tc.name)
			}
			toks, ok := f.Strings("tokenizer.ggml.tokens")
			if !ok || len(toks) != tc.vocab || toks[0] != tc.firstTok {
				t.Errorf("tokens: %d, %v", len(toks), ok)
			}
			if scores, ok := f.Lookup("tokenizer.ggml.scores"); !ok || scores.Len() != tc.vocab || scores.Elem() != ValueFloat32 {
				t.Errorf("scores: %v", scores)
			}
			for k, want := range tc.uints {
				if got, ok := f.Uint(k); !ok || got != want {
					t.Errorf("%s = %d, %v, want %d", k, got, ok, want)
				}
			}
			ti, ok := f.Tensor(tc.tensorChk.Name)
			if !ok || ti.Type != tc.tensorChk.Type || ti.Size != tc.tensorChk.Size || ti.Elements() != tc.tensorChk.Elements() {
				t.Errorf("tensor %+v, want %+v", ti, tc.tensorChk)
			}
		})
	}
}

func TestRealVocabs(t *testing.T) {
	dir := shareddata.Path(t, "testdata", "tokenizer_vocab")
	paths, err := filepath.Glob(filepath.Join(dir, "*.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 7 {
		t.Fatalf("%d vocab files, want 7", len(paths))
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f, err := ValidateModel(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Tensors) != 0 || f.ParamCount() != 0 {
				t.Errorf("%d tensors", len(f.Tensors))
			}
			if f.Architecture() == "" {
				t.Error("no architecture")
			}
			toks, ok := f.Strings("tokenizer.ggml.tokens")
			if !ok || len(toks) < 30000 {
				t.Errorf("%d tokens", len(toks))
			}
			if tt, ok := f.Lookup("tokenizer.ggml.token_type"); !ok || tt.Len() != len(toks) || tt.Elem() != ValueInt32 {
				t.Errorf("token_type: %v", tt)
			}
			if _, ok := f.String("tokenizer.ggml.model"); !ok {
				t.Error("no tokenizer.ggml.model")
			}
			// Re-written through the Writer, the metadata reads back the same.
			g, err := readBytes(t, writeBytes(t, copyWriter(t, f, nil)))
			if err != nil {
				t.Fatal(err)
			}
			sameHeader(t, f, g)
		})
	}
}

// copyWriter returns a Writer holding f's metadata and tensors, with tensor
// data read from src.
func copyWriter(t *testing.T, f *File, src io.ReaderAt) *Writer {
	t.Helper()
	w := NewWriter()
	for _, kv := range f.KV {
		w.Set(kv.Key, kv.Value)
	}
	for _, ti := range f.Tensors {
		sec := io.NewSectionReader(src, f.DataOffset+int64(ti.Offset), int64(ti.Size))
		err := w.AddTensor(ti.Name, ti.Type, ti.Shape, func(out io.Writer) error {
			_, err := io.Copy(out, sec)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// sameHeader checks that g has the metadata and tensor infos of f.
func sameHeader(t *testing.T, f, g *File) {
	t.Helper()
	if len(f.KV) != len(g.KV) || len(f.Tensors) != len(g.Tensors) || f.Alignment != g.Alignment {
		t.Fatalf("%d KVs %d tensors, want %d %d", len(g.KV), len(g.Tensors), len(f.KV), len(f.Tensors))
	}
	for i := range f.KV {
		if f.KV[i].Key != g.KV[i].Key || !f.KV[i].Value.Equal(g.KV[i].Value) {
			t.Errorf("KV %d: %s = %v, want %s = %v", i, g.KV[i].Key, g.KV[i].Value, f.KV[i].Key, f.KV[i].Value)
		}
	}
	for i := range f.Tensors {
		a, b := f.Tensors[i], g.Tensors[i]
		if a.Name != b.Name || a.Type != b.Type || a.Offset != b.Offset || a.Size != b.Size || len(a.Shape) != len(b.Shape) {
			t.Errorf("tensor %d: %+v, want %+v", i, b, a)
		}
	}
}

// TestRewriteByteIdentical copies real models through the Writer. gguf.cpp's
// layout is fully determined by the metadata and tensor infos (offsets are
// the padded running sums, padding is zeros), and both files were written
// with it, ending with their last tensor's data, so the copy is
// byte-identical.
func TestRewriteByteIdentical(t *testing.T) {
	for _, name := range []string{"stories260K.gguf", "llama-2-tiny-random.gguf"} {
		t.Run(name, func(t *testing.T) {
			orig, err := os.ReadFile(shareddata.Path(t, "models", name))
			if err != nil {
				t.Fatal(err)
			}
			f, err := readBytes(t, orig)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), name)
			if err := copyWriter(t, f, bytes.NewReader(orig)).WriteFile(out); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, orig) {
				i := 0
				for i < min(len(got), len(orig)) && got[i] == orig[i] {
					i++
				}
				t.Fatalf("copy differs from the original at byte %d (sizes %d and %d)", i, len(got), len(orig))
			}
			g, err := Open(out)
			if err != nil {
				t.Fatal(err)
			}
			sameHeader(t, f, g)
		})
	}
}

func BenchmarkRead(b *testing.B) {
	p := shareddata.Path(b, "models", "llama-2-tiny-random.gguf")
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil || len(f.Tensors) != 12 {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	p := shareddata.Path(b, "models", "llama-2-tiny-random.gguf")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(p); err != nil {
			b.Fatal(err)
		}
	}
}
