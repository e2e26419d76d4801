package synth

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/gguf"
)

// tiny is a shape small enough for tests.
var tiny = Shape{Name: "tiny", Vocab: 1000, Embd: 64, FF: 128, Layers: 2, Heads: 4, KVHeads: 2, Context: 512, RopeTheta: 10000, NormEps: 1e-5}

func TestShapesValid(t *testing.T) {
	for name, s := range Shapes {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if s.Name != name {
			t.Errorf("%s: Name %q", name, s.Name)
		}
	}
	// Parameter counts of the real models (from their model cards), within
	// the rounding the cards use.
	for name, want := range map[string]float64{
		"tinyllama-1.1b": 1.10e9, "llama-2-7b": 6.74e9, "llama-3-8b": 8.03e9,
		"llama-3-70b": 70.55e9, "mistral-7b": 7.25e9, "smollm-135m": 0.1348e9,
		"mixtral-8x7b": 46.70e9, "qwen3-30b-a3b": 30.53e9,
		"gpt-oss-20b": 20.91e9, "gpt-oss-120b": 116.83e9,
		"glm-4.5-air": 106e9, "deepseek-v2-lite": 15.7e9,
	} {
		got := float64(Shapes[name].Params())
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("%s: %.4g parameters, want about %.4g", name, got, want)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	bad := tiny
	bad.Heads = 3
	if err := bad.Validate(); err == nil {
		t.Error("hidden size not a multiple of heads accepted")
	}
	bad = tiny
	bad.Vocab = 10
	if err := bad.Validate(); err == nil {
		t.Error("vocabulary of 10 accepted")
	}
	if _, err := Lookup("no-such-model"); err == nil || !strings.Contains(err.Error(), "tinyllama-1.1b") {
		t.Errorf("Lookup error should list the known shapes: %v", err)
	}
}

func TestVocabularyUniqueAndSized(t *testing.T) {
	for _, n := range []int{minVocab, 32000, 152064} {
		toks, scores, types := vocabulary(n)
		if len(toks) != n || len(scores) != n || len(types) != n {
			t.Fatalf("vocabulary(%d): %d tokens", n, len(toks))
		}
		seen := map[string]bool{}
		for _, s := range toks {
			if seen[s] {
				t.Fatalf("vocabulary(%d): duplicate %q", n, s)
			}
			seen[s] = true
		}
	}
}

// TestWriteLoadGenerate writes F32 and F16 models, loads them through the
// engine, checks the facts, the tokenizer and that decoding gives finite
// logits; and that the same seed gives the same file.
func TestWriteLoadGenerate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, f32 := range []bool{true, false} {
		path := filepath.Join(dir, "m.gguf")
		if err := Write(ctx, path, tiny, Options{F32: f32, Seed: 7}); err != nil {
			t.Fatal(err)
		}
		h, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if h.ParamCount() != tiny.Params() {
			t.Errorf("file has %d parameters, shape %d", h.ParamCount(), tiny.Params())
		}
		m, err := engine.LoadModel(ctx, path, engine.ModelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		info := m.Info()
		if info.Layers != 2 || info.EmbeddingSize != 64 || info.VocabSize != 1000 || info.KVHeads != 2 {
			t.Errorf("info %+v", info)
		}
		toks, err := m.Tokenize("hello there, 42!", true, false)
		if err != nil {
			t.Fatal(err)
		}
		// llama.cpp drops the SentencePiece leading space only when the
		// tokens do not start with BOS.
		text, err := m.Detokenize(toks[1:], false, false)
		if err != nil || text != "hello there, 42!" {
			t.Errorf("round trip: %q %v (tokens %v)", text, err, toks)
		}
		c, err := m.NewContext(engine.ContextOptions{ContextLength: 128})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := engine.NewBatch(len(toks), 1)
		for i, tk := range toks {
			b.Add(tk, engine.Pos(i), i == len(toks)-1)
		}
		if err := c.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
		logits, err := c.Logits(len(toks) - 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range logits {
			if v != v || v > 1e4 || v < -1e4 {
				t.Fatalf("logit %d = %v", i, v)
			}
		}
		b.Close()
		m.Close()
	}
	// The same seed gives the same file, whatever the number of CPUs that
	// generate it (the largest tensor spans several chunks).
	big := tiny
	big.Vocab = 40000
	a, b := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
	for i, p := range []string{a, b} {
		prev := runtime.GOMAXPROCS(1 + 3*i)
		err := Write(ctx, p, big, Options{Seed: 3})
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Error("same seed gave different files with 1 and 4 workers")
	}
}

func TestCreateQuantized(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.gguf")
	s := tiny
	s.Embd, s.FF = 256, 512 // K-quants need rows that are multiples of 256
	if err := Create(ctx, path, s, "Q4_K_M", 1, 2); err != nil {
		t.Fatal(err)
	}
	h, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if ft, _ := h.Uint("general.file_type"); ft != 15 { // LLAMA_FTYPE_MOSTLY_Q4_K_M
		t.Errorf("file type %d, want 15 (Q4_K_M)", ft)
	}
	q, _ := h.Tensor("blk.0.ffn_gate.weight")
	if q.Type != gguf.TypeQ4_K {
		t.Errorf("ffn_gate is %s, want Q4_K", q.Type)
	}
	if _, err := os.Stat(path + ".f16.tmp"); !os.IsNotExist(err) {
		t.Error("temporary F16 file left behind")
	}
	if err := Create(ctx, path, s, "Q9_X", 1, 2); err == nil {
		t.Error("unknown type accepted")
	}
}

// tinyOSS is a gpt-oss shape small enough for tests.
var tinyOSS = Shape{Name: "tiny-oss", Arch: "gpt-oss", Vocab: 1000, Embd: 64, FF: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadSize: 32,
	Context: 512, RopeTheta: 150000, NormEps: 1e-5, Experts: 4, ExpertsUsed: 2, SlidingWindow: 8, YarnFactor: 4, YarnContext: 128}

// TestGptOSS writes gpt-oss models as released (MXFP4_MOE: the experts in
// MXFP4, kept by llama.cpp's quantizer, the rest Q8_0) and in Q8_0, whose
// sizes WeightBytes gives exactly, and runs them: finite logits.
func TestGptOSS(t *testing.T) {
	for _, q := range []string{"MXFP4_MOE", "Q8_0", "F16"} {
		t.Run(q, func(t *testing.T) {
			path, f := createChecked(t, tinyOSS, q)
			if f.Architecture() != "gpt-oss" {
				t.Errorf("architecture %q", f.Architecture())
			}
			want := map[string]gguf.Type{"blk.1.attn_sinks.weight": gguf.TypeF32, "blk.1.ffn_down_exps.bias": gguf.TypeF32}
			switch q {
			case "MXFP4_MOE":
				want["blk.1.ffn_down_exps.weight"], want["blk.1.attn_q.weight"], want["output.weight"] = gguf.TypeMXFP4, gguf.TypeQ8_0, gguf.TypeQ8_0
			case "Q8_0":
				want["blk.1.ffn_down_exps.weight"], want["blk.1.attn_q.weight"] = gguf.TypeQ8_0, gguf.TypeQ8_0
			}
			for name, typ := range want {
				if ti, ok := f.Tensor(name); !ok || ti.Type != typ {
					t.Errorf("%s: %v %v, want %v", name, ok, ti.Type, typ)
				}
			}
			decodeFinite(t, path)
		})
	}
	bad := tinyOSS
	bad.Experts, bad.ExpertsUsed = 0, 0
	if err := bad.Validate(); err == nil {
		t.Error("gpt-oss without experts accepted")
	}
}

// createChecked creates shape s in type q and checks that WeightBytes
// gives the size of its tensors exactly; it returns the file's path and
// header.
func createChecked(t *testing.T, s Shape, q string) (string, *gguf.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), q+".gguf")
	if err := Create(context.Background(), path, s, q, 1, 1); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var size uint64
	for _, ti := range f.Tensors {
		size += ti.Size
	}
	if got, err := s.WeightBytes(q); err != nil || got != size {
		t.Errorf("WeightBytes %d, %v; the file holds %d", got, err, size)
	}
	return path, f
}

// decodeFinite loads the model at path, decodes 12 tokens and checks the
// last logits are finite.
func decodeFinite(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	m, err := engine.LoadModel(ctx, path, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := engine.NewBatch(16, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 12 {
		b.Add(engine.Token(10+i), engine.Pos(i), i == 11, 0)
	}
	if err := c.Decode(ctx, b); err != nil {
		t.Fatal(err)
	}
	logits, err := c.Logits(11)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("non-finite logit %v", v)
		}
	}
}

// Small GLM-4.5 and DeepSeek shapes (q_lora, as DeepSeek-V3; and the
// single query projection llama.cpp takes for 26 layers, as V2-Lite).
var (
	tinyGLM = Shape{Name: "tiny-glm", Arch: "glm4moe", Vocab: 1000, Embd: 64, FF: 32, Layers: 3, Heads: 4, KVHeads: 2, HeadSize: 32,
		Context: 512, RopeTheta: 10000, NormEps: 1e-5, Experts: 8, ExpertsUsed: 2, DenseLayers: 1, DenseFF: 128, SharedExperts: 1, RopeDim: 16}
	tinyDS = Shape{Name: "tiny-ds", Arch: "deepseek2", Vocab: 1000, Embd: 64, FF: 32, Layers: 3, Heads: 4, KVHeads: 4,
		Context: 512, RopeTheta: 10000, NormEps: 1e-6, Experts: 8, ExpertsUsed: 2, DenseLayers: 1, DenseFF: 128, SharedExperts: 2,
		QLoraRank: 32, KVLoraRank: 32, QKNope: 32, QKRope: 16, VHead: 16, YarnFactor: 4, YarnContext: 128, YarnMscale: 1}
	tinyDSLite = Shape{Name: "tiny-ds-lite", Arch: "deepseek2", Vocab: 1000, Embd: 64, FF: 32, Layers: 26, Heads: 4, KVHeads: 4,
		Context: 512, RopeTheta: 10000, NormEps: 1e-6, Experts: 8, ExpertsUsed: 2, DenseLayers: 1, DenseFF: 128, SharedExperts: 2,
		KVLoraRank: 32, QKNope: 32, QKRope: 16, VHead: 16}
)

// TestSharedMoE writes GLM-4.5 and DeepSeek shapes in F16 and Q8_0 (whose
// sizes WeightBytes gives exactly) and runs them: llama.cpp loads every
// tensor and gives finite logits. Shapes llama.cpp cannot load are
// refused.
func TestSharedMoE(t *testing.T) {
	for _, s := range []Shape{tinyGLM, tinyDS, tinyDSLite} {
		for _, q := range []string{"F16", "Q8_0"} {
			t.Run(s.Name+"/"+q, func(t *testing.T) {
				path, f := createChecked(t, s, q)
				if f.Architecture() != s.Arch || f.ParamCount() != s.Params() {
					t.Errorf("architecture %q, %d parameters; want %s, %d", f.Architecture(), f.ParamCount(), s.Arch, s.Params())
				}
				decodeFinite(t, path)
			})
		}
	}
	for name, edit := range map[string]func(*Shape){
		"no shared experts":   func(s *Shape) { s.SharedExperts = 0 },
		"all layers dense":    func(s *Shape) { s.DenseLayers = s.Layers },
		"q_lora on 26 layers": func(s *Shape) { s.QLoraRank = 32 },
		"odd rope":            func(s *Shape) { s.QKRope = 15 },
		"qk_nope of 16":       func(s *Shape) { s.QKNope = 16 },
	} {
		s := tinyDSLite
		edit(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
