package convert_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// edgeValues returns n float32s in blocks of 32 that probe the rounding
// of Q8_0 and BF16, block kind by block kind: ordinary values; halves
// x·(1/d) = k+0.5 with d exactly 1 (max |x| = 127), which ggml rounds
// away from zero; the same with a negative maximum; zeros and negative
// zeros; values so small the F16 scale is subnormal or zero; float32
// subnormals; BF16 ties (the low 16 bits exactly 0x8000) with even and odd
// kept bits; large values. (Values whose Q8_0 scale overflows F16, or that
// round to a BF16 infinity, are refused by llama.cpp's quantizer, so they
// are checked against ggml's formulas in TestQuantEdgeCases instead.)
func edgeValues(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]float32, n)
	for b := 0; b*32 < n; b++ {
		x := out[b*32 : min(n, (b+1)*32)]
		switch b % 9 {
		case 0:
			for i := range x {
				x[i] = float32(0.05 * r.NormFloat64())
			}
		case 1, 2:
			for i := range x {
				x[i] = float32(r.IntN(253)-126) + 0.5
				if r.IntN(2) == 0 {
					x[i] = -x[i]
				}
			}
			x[r.IntN(len(x))] = 127
			if b%9 == 2 {
				x[r.IntN(len(x))] = -127
				for i := range x {
					x[i] = min(x[i], 126.5)
				}
			}
		case 3:
			for i := range x {
				x[i] = float32(math.Copysign(0, float64(r.IntN(2)*2-1)))
			}
		case 4:
			scale := []float64{1e-6, 3e-6, 1e-7, 1e-9}[r.IntN(4)]
			for i := range x {
				x[i] = float32(scale * r.NormFloat64())
			}
		case 5:
			for i := range x {
				x[i] = math.Float32frombits(r.Uint32()&0x807fffff | 1)
			}
		case 6, 7:
			for i := range x {
				// |x| from 2^-27 to 2^21, the low half exactly 0x8000
				e := uint32(100+r.IntN(49)) << 23
				x[i] = math.Float32frombits(uint32(r.IntN(2))<<31 | e | r.Uint32()&0x7f0000 | 0x8000)
			}
		case 8:
			for i := range x {
				x[i] = float32(6e4 * r.NormFloat64())
			}
		}
	}
	return out
}

// edgeFixture writes a Llama checkpoint (hidden 64, FFN 96, 2 heads, one
// layer, tiny-random-gpt2's 1000-token vocabulary with <|begin_of_text|>)
// whose every tensor holds edgeValues.
func edgeFixture(t *testing.T) string {
	t.Helper()
	dir := bpeFixture(t, preGPT2, "", "")
	seed := uint64(0)
	writeLlama(t, dir, llamaShape{vocab: 1001, hidden: 64, ffn: 96, heads: 2}, -1, -1, func(name string, n int) []float32 {
		seed++
		return edgeValues(seed, n)
	})
	return dir
}

// sameTensors compares two GGUF files' tensors: names, types, shapes and
// bytes, and their general.file_type.
func sameTensors(t *testing.T, got, want string) {
	t.Helper()
	fg, err := gguf.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := gguf.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := fg.Uint("general.file_type")
	b, _ := fw.Uint("general.file_type")
	if a != b {
		t.Errorf("general.file_type %d, want %d", a, b)
	}
	dg, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	dw, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(fg.Tensors) != len(fw.Tensors) {
		t.Errorf("%d tensors, want %d", len(fg.Tensors), len(fw.Tensors))
	}
	types := map[gguf.Type]int{}
	for _, tw := range fw.Tensors {
		tg, ok := fg.Tensor(tw.Name)
		if !ok {
			t.Errorf("missing tensor %s", tw.Name)
			continue
		}
		if tg.Type != tw.Type || !slices.Equal(tg.Shape, tw.Shape) {
			t.Errorf("%s: %v %v, want %v %v", tw.Name, tg.Type, tg.Shape, tw.Type, tw.Shape)
			continue
		}
		x := dg[fg.DataOffset+int64(tg.Offset):][:tg.Size]
		y := dw[fw.DataOffset+int64(tw.Offset):][:tw.Size]
		if !bytes.Equal(x, y) {
			n := 0
			for i := range x {
				if x[i] != y[i] {
					n++
				}
			}
			t.Errorf("%s (%v): %d of %d bytes differ", tw.Name, tw.Type, n, len(x))
		}
		types[tw.Type]++
	}
	t.Logf("%d tensors identical in type, shape and bytes: %v", len(fw.Tensors), types)
}

// TestGoTypesMatchEngine converts checkpoints to BF16 and Q8_0 in Go and
// checks each tensor byte for byte against llama.cpp's quantizer (through
// the engine) applied to the F32 conversion of the same checkpoint: the
// three fixtures (F32, BF16 and F16 weights), one whose values probe the
// rounding edge cases (edgeValues) and a BERT, whose learned positions and
// token types both leave in F32.
func TestGoTypesMatchEngine(t *testing.T) {
	dirs := map[string]string{"edge": edgeFixture(t), "bert": bertFixture(t, "", "mean")}
	for _, f := range []string{"tiny-llama-st", "tiny-llama-st-bf16", "tiny-qwen2-st"} {
		dirs[f] = shareddata.Path(t, "models", "hf", f)
	}
	for _, name := range []string{"edge", "bert", "tiny-llama-st", "tiny-llama-st-bf16", "tiny-qwen2-st"} {
		dir := dirs[name]
		tmp := t.TempDir()
		f32 := filepath.Join(tmp, "f32.gguf")
		if err := convert.Convert(context.Background(), dir, f32, convert.Options{Type: "f32"}); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"bf16", "q8_0"} {
			t.Run(name+"/"+typ, func(t *testing.T) {
				goOut := filepath.Join(tmp, "go-"+typ+".gguf")
				if err := convert.Convert(context.Background(), dir, goOut, convert.Options{Type: typ}); err != nil {
					t.Fatal(err)
				}
				engOut := filepath.Join(tmp, "engine-"+typ+".gguf")
				if err := engine.Quantize(context.Background(), f32, engOut, typ, 1); err != nil {
					t.Fatal(err)
				}
				sameTensors(t, goOut, engOut)
			})
		}
	}
}

// TestQ8_0FallbackAndKeepF32 checks the tensors Q8_0 does not apply to: a
// GPT-2's learned positions stay F32, and the matrices of a 16-wide Llama,
// whose rows are not a multiple of 32 values, fall back to F16, as
// convert_hf_to_gguf.py writes them.
func TestQ8_0FallbackAndKeepF32(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gpt2-q8_0.gguf")
	if err := convert.Convert(context.Background(), shareddata.Path(t, "models", "hf", "tiny-random-gpt2"), out, convert.Options{Type: "q8_0"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range f.Tensors {
		want := gguf.TypeQ8_0
		switch {
		case len(ti.Shape) == 1 || ti.Name == "position_embd.weight":
			want = gguf.TypeF32
		}
		if ti.Type != want {
			t.Errorf("%s %v: %v, want %v", ti.Name, ti.Shape, ti.Type, want)
		}
	}
	if ft, _ := f.Uint("general.file_type"); ft != 7 {
		t.Errorf("general.file_type %d, want 7", ft)
	}

	dir := t.TempDir()
	writeTinyLlama(t, dir, 1001, -1, -1)
	src := bpeFixture(t, preGPT2, "", "")
	for _, n := range []string{"tokenizer.json", "tokenizer_config.json"} {
		raw, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out = filepath.Join(t.TempDir(), "narrow-q8_0.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "q8_0"}); err != nil {
		t.Fatal(err)
	}
	if f, err = gguf.Open(out); err != nil {
		t.Fatal(err)
	}
	for _, ti := range f.Tensors {
		want := gguf.TypeF32
		switch {
		case len(ti.Shape) == 2 && ti.Shape[0]%32 == 0:
			want = gguf.TypeQ8_0
		case len(ti.Shape) == 2:
			want = gguf.TypeF16
		}
		if ti.Type != want {
			t.Errorf("%s %v: %v, want %v", ti.Name, ti.Shape, ti.Type, want)
		}
	}
}

// TestQuantizeUnevenRows: llama.cpp's quantizer refuses Q8_0 (and the
// other types without a fallback) for a matrix whose rows do not fill its
// blocks, as Mamba's dt projection of a low rank (48 in Mamba-130M; 4
// here): the error names the matrix and the types that work, and a
// K-quant, which falls back for that matrix, converts and runs.
func TestQuantizeUnevenRows(t *testing.T) {
	src, _ := convertDir(t, mambaFixture(t, mambaCases[0], nil), "f16")
	out := filepath.Join(t.TempDir(), "q.gguf")
	err := engine.Quantize(context.Background(), src, out, "q8_0", 2)
	if !errors.Is(err, engine.ErrInvalidArgument) || !strings.Contains(err.Error(), "blk.0.ssm_dt.weight has rows of 4 values") || !strings.Contains(err.Error(), "Q4_K_M") {
		t.Fatalf("Q8_0: %v", err)
	}
	t.Log(err)
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed quantization left its output")
	}
	if err := engine.Quantize(context.Background(), src, out, "q4_k_m", 2); err != nil {
		t.Fatal(err)
	}
	prompts := readReference(t, "tiny-llama-st").Prompts
	toks, _ := greedy(t, refContext(t, out), toTokens(prompts[0].PromptIDs), 4)
	if len(toks) != 4 {
		t.Errorf("Q4_K_M generated %v", toks)
	}
}
