package synth

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
		"nemotron-nano-9b-v2": 8.89e9,
		"minimax-m2":          229e9, // 230B on its card, 229B on its Hugging Face page
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
	if f.Architecture() != s.arch() || f.ParamCount() != s.Params() {
		t.Errorf("architecture %q, %d parameters; want %s, %d", f.Architecture(), f.ParamCount(), s.arch(), s.Params())
	}
	return path, f
}

// checkUints checks the integer keys of f's arch (named without the arch).
func checkUints(t *testing.T, f *gguf.File, want map[string]uint64) {
	t.Helper()
	a := f.Architecture()
	for k, v := range want {
		if got, ok := f.Uint(a + "." + k); !ok || got != v {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
		}
	}
}

// checkRefused checks that Validate refuses each edit of base.
func checkRefused(t *testing.T, base Shape, edits map[string]func(*Shape)) {
	t.Helper()
	for name, edit := range edits {
		s := base
		edit(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
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
				path, _ := createChecked(t, s, q)
				decodeFinite(t, path)
			})
		}
	}
	checkRefused(t, tinyDSLite, map[string]func(*Shape){
		"no shared experts":   func(s *Shape) { s.SharedExperts = 0 },
		"all layers dense":    func(s *Shape) { s.DenseLayers = s.Layers },
		"q_lora on 26 layers": func(s *Shape) { s.QLoraRank = 32 },
		"odd rope":            func(s *Shape) { s.QKRope = 15 },
		"qk_nope of 16":       func(s *Shape) { s.QKNope = 16 },
	})
}

// Small Granite 4.0-H shapes: experts beside a shared MLP and two groups
// (Granite 4.0-H Tiny has one) with an output matrix, and the dense MLP
// with tied embeddings (as H 1B), each with one attention layer among
// Mamba-2 layers.
var (
	tinyGranite = Shape{Name: "tiny-granite", Arch: "granitehybrid", Vocab: 1000, Embd: 64, FF: 32, Layers: 4, Heads: 4, KVHeads: 2,
		Context: 512, RopeTheta: 10000, NormEps: 1e-5, Experts: 4, ExpertsUsed: 2, SharedFF: 64,
		AttnLayers: []int{1}, SSMHeads: 8, SSMState: 16, SSMGroups: 2, SSMConv: 4}
	tinyGraniteDense = Shape{Name: "tiny-granite-dense", Arch: "granitehybrid", Vocab: 1000, Embd: 64, FF: 128, Layers: 3, Heads: 4, KVHeads: 4,
		Context: 512, RopeTheta: 10000, NormEps: 1e-5, TiedEmbeddings: true,
		AttnLayers: []int{2}, SSMHeads: 4, SSMState: 32, SSMGroups: 1, SSMConv: 4}
)

// TestGraniteHybrid writes Granite 4.0-H shapes in F32, F16, Q8_0 and
// Q4_0 (whose sizes WeightBytes gives exactly): the keys llama.cpp's
// granitehybrid reads, its tensors' shapes and types (Mamba-2's A, D and
// convolution in F32 whatever the type), A negative and the time steps
// small; llama.cpp loads them as recurrent models and decodes a few
// hundred tokens to finite logits.
func TestGraniteHybrid(t *testing.T) {
	for _, s := range []Shape{tinyGranite, tinyGraniteDense} {
		for _, q := range []string{"F32", "F16", "Q8_0", "Q4_0"} {
			t.Run(s.Name+"/"+q, func(t *testing.T) {
				path, f := createChecked(t, s, q)
				checkGraniteKeys(t, f, s)
				checkGraniteTensors(t, path, f, s, q)
				decodeLong(t, path, s)
			})
		}
	}
}

// checkGraniteKeys checks the metadata of a granitehybrid file of shape s.
func checkGraniteKeys(t *testing.T, f *gguf.File, s Shape) {
	t.Helper()
	v, ok := f.Lookup("granitehybrid.attention.head_count_kv")
	kv, _ := v.AsUints()
	if !ok || len(kv) != s.Layers {
		t.Fatalf("head_count_kv %v: want one per layer", v)
	}
	for i, n := range kv {
		want := uint64(0)
		if s.isAttn(i) {
			want = uint64(s.KVHeads)
		}
		if n != want {
			t.Errorf("layer %d: head_count_kv %d, want %d", i, n, want)
		}
	}
	for k, want := range map[string]uint64{
		"ssm.conv_kernel": uint64(s.SSMConv), "ssm.inner_size": uint64(2 * s.Embd), "ssm.state_size": uint64(s.SSMState),
		"ssm.time_step_rank": uint64(s.SSMHeads), "ssm.group_count": uint64(s.SSMGroups), "feed_forward_length": uint64(s.FF),
		"block_count": uint64(s.Layers), "embedding_length": uint64(s.Embd), "attention.head_count": uint64(s.Heads),
		"expert_count": uint64(s.Experts), "expert_used_count": uint64(s.ExpertsUsed), "expert_shared_feed_forward_length": uint64(s.SharedFF),
	} {
		got, ok := f.Uint("granitehybrid." + k)
		if want == 0 && !ok {
			continue // no experts: no expert keys
		}
		if got != want {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, want)
		}
	}
	if b, ok := f.Bool("granitehybrid.rope.scaling.finetuned"); !ok || b {
		t.Errorf("rope.scaling.finetuned %v %v: want false (no rope)", b, ok)
	}
	for k, want := range map[string]float64{"embedding_scale": 12, "residual_scale": 0.22, "logit_scale": 8, "attention.scale": 1 / float64(s.HeadDim())} {
		if got, ok := f.Float("granitehybrid." + k); !ok || math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %v (%v), want %v", k, got, ok, want)
		}
	}
}

// checkGraniteTensors checks the shapes and types of a granitehybrid
// file's tensors, as llama.cpp creates them, and the values of Mamba-2's
// A and dt bias.
func checkGraniteTensors(t *testing.T, path string, f *gguf.File, s Shape, q string) {
	t.Helper()
	e, di := uint64(s.Embd), uint64(2*s.Embd)
	mat := matrixType[q]
	mamba := 0
	for s.isAttn(mamba) {
		mamba++
	}
	attn := s.AttnLayers[0]
	p, a := fmt.Sprintf("blk.%d.", mamba), fmt.Sprintf("blk.%d.", attn)
	want := mamba2Specs(s, p, di, mat)
	maps.Copy(want, attnSpecs(s, a, mat))
	want[p+"ffn_norm.weight"] = tensorWant{[]uint64{e}, gguf.TypeF32}
	if s.Experts > 0 {
		x, ff, sf := uint64(s.Experts), uint64(s.FF), uint64(s.SharedFF)
		for _, b := range []string{p, a} {
			router := mat
			if mat != gguf.TypeF32 && mat != gguf.TypeF16 {
				router = gguf.TypeF16 // llama.cpp's quantizer leaves routers as they are
			}
			want[b+"ffn_gate_inp.weight"] = tensorWant{[]uint64{e, x}, router}
			want[b+"ffn_up_exps.weight"] = tensorWant{[]uint64{e, ff, x}, mat}
			want[b+"ffn_down_exps.weight"] = tensorWant{[]uint64{ff, e, x}, mat}
			want[b+"ffn_gate_shexp.weight"] = tensorWant{[]uint64{e, sf}, mat}
			want[b+"ffn_down_shexp.weight"] = tensorWant{[]uint64{sf, e}, mat}
		}
	} else {
		want[a+"ffn_down.weight"] = tensorWant{[]uint64{uint64(s.FF), e}, mat}
	}
	checkTensors(t, f, want)
	absent := []string{p + "attn_q.weight", a + "ssm_in.weight", p + "ffn_gate_inp.weight"}
	if s.Experts > 0 {
		absent[2] = p + "ffn_gate.weight"
	}
	if _, ok := f.Tensor("output.weight"); ok == s.TiedEmbeddings {
		t.Errorf("output.weight: %v with tied embeddings %v", ok, s.TiedEmbeddings)
	}
	for _, name := range absent {
		if _, ok := f.Tensor(name); ok {
			t.Errorf("%s should not exist", name)
		}
	}
	checkMamba2Values(t, path, f, p)
}

// matrixType is the type of the matrices in a file of each single type.
var matrixType = map[string]gguf.Type{"F32": gguf.TypeF32, "F16": gguf.TypeF16, "Q8_0": gguf.TypeQ8_0, "Q4_0": gguf.TypeQ4_0}

// tensorWant is a tensor's expected shape and type.
type tensorWant struct {
	shape []uint64
	typ   gguf.Type
}

// mamba2Specs are the expected tensors of the Mamba-2 block whose names
// start with p, of inner size di, its matrices in mat (the convolution,
// A, D and the norms F32 whatever the type); with the block's norm and
// the output norm.
func mamba2Specs(s Shape, p string, di uint64, mat gguf.Type) map[string]tensorWant {
	e, nh, ng, ds := uint64(s.Embd), uint64(s.SSMHeads), uint64(s.SSMGroups), uint64(s.SSMState)
	return map[string]tensorWant{
		p + "attn_norm.weight":  {[]uint64{e}, gguf.TypeF32},
		p + "ssm_in.weight":     {[]uint64{e, 2*di + 2*ng*ds + nh}, mat},
		p + "ssm_conv1d.weight": {[]uint64{uint64(s.SSMConv), di + 2*ng*ds}, gguf.TypeF32},
		p + "ssm_conv1d.bias":   {[]uint64{di + 2*ng*ds}, gguf.TypeF32},
		p + "ssm_dt.bias":       {[]uint64{nh}, gguf.TypeF32},
		p + "ssm_a":             {[]uint64{1, nh}, gguf.TypeF32},
		p + "ssm_d":             {[]uint64{1, nh}, gguf.TypeF32},
		p + "ssm_norm.weight":   {[]uint64{di / ng, ng}, gguf.TypeF32},
		p + "ssm_out.weight":    {[]uint64{di, e}, mat},
		"output_norm.weight":    {[]uint64{e}, gguf.TypeF32},
	}
}

// attnSpecs are the expected tensors of the attention (no biases) of the
// block whose names start with a.
func attnSpecs(s Shape, a string, mat gguf.Type) map[string]tensorWant {
	e, q, kv := uint64(s.Embd), uint64(s.Heads*s.HeadDim()), uint64(s.KVHeads*s.HeadDim())
	return map[string]tensorWant{
		a + "attn_norm.weight":   {[]uint64{e}, gguf.TypeF32},
		a + "attn_q.weight":      {[]uint64{e, q}, mat},
		a + "attn_k.weight":      {[]uint64{e, kv}, mat},
		a + "attn_v.weight":      {[]uint64{e, kv}, mat},
		a + "attn_output.weight": {[]uint64{q, e}, mat},
	}
}

// checkTensors checks the file's tensors have the shapes and types of want.
func checkTensors(t *testing.T, f *gguf.File, want map[string]tensorWant) {
	t.Helper()
	// llama.cpp's quantizer writes a trailing dimension of 1 as none.
	trim := func(s []uint64) []uint64 {
		for len(s) > 1 && s[len(s)-1] == 1 {
			s = s[:len(s)-1]
		}
		return s
	}
	for name, w := range want {
		ti, ok := f.Tensor(name)
		if !ok || !slices.Equal(trim(ti.Shape), trim(w.shape)) || ti.Type != w.typ {
			t.Errorf("%s: %v %v %v, want %v %v", name, ok, ti.Shape, ti.Type, w.shape, w.typ)
		}
	}
}

// checkMamba2Values checks the values of the Mamba-2 block whose names
// start with p: A decays each head's state; the time steps softplus(dt
// bias) are small, as in trained models; D is 1.
func checkMamba2Values(t *testing.T, path string, f *gguf.File, p string) {
	t.Helper()
	read := func(name string) []float32 {
		ti, _ := f.Tensor(name)
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		buf := make([]byte, ti.Size)
		if _, err := fh.ReadAt(buf, f.DataOffset+int64(ti.Offset)); err != nil {
			t.Fatal(err)
		}
		out := make([]float32, len(buf)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		return out
	}
	for _, v := range read(p + "ssm_a") {
		if v > -1 || v < -16 {
			t.Errorf("A = %v, want in [-16, -1]", v)
		}
	}
	for _, v := range read(p + "ssm_dt.bias") {
		if dt := math.Log1p(math.Exp(float64(v))); dt < 0.0099 || dt > 0.101 {
			t.Errorf("dt bias %v: softplus %v, want in [0.01, 0.1]", v, dt)
		}
	}
	for _, v := range read(p + "ssm_d") {
		if v != 1 {
			t.Errorf("D = %v, want 1", v)
		}
	}
}

// decodeLong loads a hybrid model (granitehybrid, nemotron_h), checks llama.cpp sees it as
// recurrent with its shape, and decodes a prompt of 200 tokens and 100
// more one at a time (greedily), all logits finite.
func decodeLong(t *testing.T, path string, s Shape) {
	t.Helper()
	ctx := context.Background()
	m, err := engine.LoadModel(ctx, path, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.IsRecurrent() {
		t.Error("not recurrent")
	}
	if info := m.Info(); info.Layers != s.Layers || info.EmbeddingSize != s.Embd || info.VocabSize != s.Vocab {
		t.Errorf("info %+v", info)
	}
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 512, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := engine.NewBatch(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const prompt, gen = 200, 100
	for i := range prompt {
		b.Add(engine.Token(3+(i*37)%(s.Vocab-3)), engine.Pos(i), i == prompt-1, 0)
	}
	distinct := map[engine.Token]bool{}
	for pos := prompt; ; pos++ {
		if err := c.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
		logits, err := c.Logits(b.Len() - 1)
		if err != nil {
			t.Fatal(err)
		}
		best := 0
		for i, v := range logits {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("position %d: non-finite logit %v", pos, v)
			}
			if v > logits[best] {
				best = i
			}
		}
		distinct[engine.Token(best)] = true
		if pos == prompt+gen {
			break
		}
		b.Clear()
		b.Add(engine.Token(best), engine.Pos(pos), true, 0)
	}
	// With its own output matrix the random model writes several tokens
	// (soon in a cycle); with tied embeddings (and Granite's embedding
	// multiplier of 12) it repeats its input token.
	if !s.TiedEmbeddings && len(distinct) < 3 {
		t.Errorf("%d distinct tokens among %d generated", len(distinct), gen+1)
	}
}

// TestGraniteShapes: the real Granite 4.0-H shapes have the parameters
// their cards give (Tiny 7B, H 1B 1.5B), KV caches in 4 of 40 layers and
// a recurrent state; shapes llama.cpp cannot load are refused.
func TestGraniteShapes(t *testing.T) {
	for name, want := range map[string]float64{"granite-4.0-h-tiny": 6.94e9, "granite-4.0-h-1b": 1.46e9} {
		s := Shapes[name]
		if got := float64(s.Params()); got < want*0.99 || got > want*1.01 {
			t.Errorf("%s: %.4g parameters, want about %.4g", name, got, want)
		}
		kv := s.LayerKVHeads()
		if s.KVLayers() != 4 || len(kv) != 40 || kv[5] != 4 || kv[35] != 4 || kv[0] != 0 || kv[39] != 0 ||
			s.RecurrentBytes() != 4*(3*(3072+2*128)+128*3072) {
			t.Errorf("%s: %d KV layers, KV heads %v, %d bytes of state per layer", name, s.KVLayers(), kv, s.RecurrentBytes())
		}
	}
	if kv := tiny.LayerKVHeads(); tiny.KVLayers() != tiny.Layers || tiny.RecurrentBytes() != 0 || !slices.Equal(kv, []int{2, 2}) {
		t.Errorf("llama: %d KV layers, KV heads %v, %d bytes of state", tiny.KVLayers(), kv, tiny.RecurrentBytes())
	}
	checkRefused(t, tinyGranite, map[string]func(*Shape){
		"heads not dividing the inner size": func(s *Shape) { s.SSMHeads = 7 },
		"groups not dividing the heads":     func(s *Shape) { s.SSMGroups = 3 },
		"no state":                          func(s *Shape) { s.SSMState = 0 },
		"a convolution of 1":                func(s *Shape) { s.SSMConv = 1 },
		"a convolution of 5 (CUDA aborts)":  func(s *Shape) { s.SSMConv = 5 },
		"all attention":                     func(s *Shape) { s.AttnLayers = []int{0, 1, 2, 3} },
		"attention layer out of range":      func(s *Shape) { s.AttnLayers = []int{4} },
		"attention layers unordered":        func(s *Shape) { s.AttnLayers = []int{2, 1} },
		"shared MLP without experts":        func(s *Shape) { s.Experts, s.ExpertsUsed = 0, 0 },
		"shared MLP of 48":                  func(s *Shape) { s.SharedFF = 48 },
		"Mamba-2 sizes on llama":            func(s *Shape) { s.Arch = "" },
	})
}

// tinyNemotron is a small Nemotron-H shape: all three kinds of blocks, a
// Mamba-2 inner size (3 heads of 32) unlike twice the hidden size, two
// groups, heads of 32 (40 heads of 128 make 5120, not 4480, in Nemotron
// Nano 2) and its own output matrix.
var tinyNemotron = Shape{Name: "tiny-nemotron", Arch: "nemotron_h", Vocab: 1000, Embd: 64, FF: 96, Layers: 6, Heads: 4, KVHeads: 2, HeadSize: 32,
	Context: 512, RopeTheta: 10000, NormEps: 1e-5, Pattern: "M-M*-M", SSMHeads: 4, SSMHeadDim: 24, SSMState: 16, SSMGroups: 2, SSMConv: 4}

// TestNemotronH writes a Nemotron-H shape in F32, F16, Q8_0 and Q4_0
// (whose sizes WeightBytes gives exactly): the keys llama.cpp's
// nemotron_h reads (KV heads and MLP width per block), its tensors'
// shapes and types, block by block; llama.cpp loads it as a recurrent
// model and decodes a few hundred tokens to finite logits.
func TestNemotronH(t *testing.T) {
	s := tinyNemotron
	for _, q := range []string{"F32", "F16", "Q8_0", "Q4_0"} {
		t.Run(q, func(t *testing.T) {
			path, f := createChecked(t, s, q)
			checkNemotronKeys(t, f, s)
			checkNemotronTensors(t, path, f, s, q)
			decodeLong(t, path, s)
		})
	}
}

// checkNemotronKeys checks the metadata of a nemotron_h file of shape s.
func checkNemotronKeys(t *testing.T, f *gguf.File, s Shape) {
	t.Helper()
	perLayer := func(key string) []uint64 {
		v, ok := f.Lookup("nemotron_h." + key)
		n, _ := v.AsUints()
		if !ok || !v.IsArray() || len(n) != s.Layers {
			t.Fatalf("%s %v: want one per layer", key, v)
		}
		return n
	}
	kv, ff := perLayer("attention.head_count_kv"), perLayer("feed_forward_length")
	for i, c := range s.Pattern {
		var wantKV, wantFF uint64
		switch c {
		case '*':
			wantKV = uint64(s.KVHeads)
		case '-':
			wantFF = uint64(s.FF)
		}
		if kv[i] != wantKV || ff[i] != wantFF {
			t.Errorf("block %d (%c): head_count_kv %d, feed_forward_length %d; want %d, %d", i, c, kv[i], ff[i], wantKV, wantFF)
		}
	}
	checkUints(t, f, map[string]uint64{
		"ssm.conv_kernel": uint64(s.SSMConv), "ssm.inner_size": uint64(s.SSMHeads * s.SSMHeadDim), "ssm.state_size": uint64(s.SSMState),
		"ssm.time_step_rank": uint64(s.SSMHeads), "ssm.group_count": uint64(s.SSMGroups),
		"block_count": uint64(s.Layers), "embedding_length": uint64(s.Embd), "context_length": uint64(s.Context),
		"attention.head_count": uint64(s.Heads), "attention.key_length": uint64(s.HeadDim()), "attention.value_length": uint64(s.HeadDim()),
		"expert_feed_forward_length": uint64(s.FF),
	})
	if got, ok := f.Float("nemotron_h.attention.layer_norm_rms_epsilon"); !ok || math.Abs(got-float64(s.NormEps)) > 1e-9 {
		t.Errorf("layer_norm_rms_epsilon %v (%v), want %v", got, ok, s.NormEps)
	}
	if _, ok := f.Uint("nemotron_h.expert_count"); ok {
		t.Error("expert_count set without experts")
	}
}

// checkNemotronTensors checks the shapes and types of a nemotron_h file's
// tensors, block by block as the pattern says, and the values of Mamba-2's
// A, dt bias and D.
func checkNemotronTensors(t *testing.T, path string, f *gguf.File, s Shape, q string) {
	t.Helper()
	e, v, ff, di := uint64(s.Embd), uint64(s.Vocab), uint64(s.FF), uint64(s.SSMHeads*s.SSMHeadDim)
	mat := matrixType[q]
	out := mat
	if mat != gguf.TypeF32 && mat != gguf.TypeF16 {
		out = gguf.TypeQ8_0 // Q6_K needs rows of 256; Q8_0 stays
	}
	want := map[string]tensorWant{"output.weight": {[]uint64{e, v}, out}, "token_embd.weight": {[]uint64{e, v}, mat}}
	counts := map[rune]int{}
	for i, c := range s.Pattern {
		counts[c]++
		p := fmt.Sprintf("blk.%d.", i)
		switch c {
		case 'M':
			maps.Copy(want, mamba2Specs(s, p, di, mat))
			checkMamba2Values(t, path, f, p)
		case '*':
			maps.Copy(want, attnSpecs(s, p, mat))
		case '-':
			want[p+"attn_norm.weight"] = tensorWant{[]uint64{e}, gguf.TypeF32}
			want[p+"ffn_up.weight"] = tensorWant{[]uint64{e, ff}, mat}
			want[p+"ffn_down.weight"] = tensorWant{[]uint64{ff, e}, mat}
		}
	}
	checkTensors(t, f, want)
	// Nothing else: no MLP norm, gate or biases, one sublayer per block.
	for _, ti := range f.Tensors {
		if _, ok := want[ti.Name]; !ok {
			t.Errorf("unexpected tensor %s", ti.Name)
		}
	}
	if len(f.Tensors) != len(want) || counts['M'] == 0 || counts['*'] == 0 || counts['-'] == 0 {
		t.Errorf("%d tensors, want %d; blocks %v", len(f.Tensors), len(want), counts)
	}
}

// TestNemotronShapes: Nemotron Nano 9B v2 has the parameters its card
// gives (8.89B), KV caches in its 4 attention blocks, a recurrent state in
// its 27 Mamba-2 blocks and neither in its 25 MLP blocks; shapes llama.cpp
// cannot load are refused.
func TestNemotronShapes(t *testing.T) {
	s := Shapes["nemotron-nano-9b-v2"]
	if len(s.Pattern) != 56 || strings.Count(s.Pattern, "M") != 27 || strings.Count(s.Pattern, "*") != 4 || strings.Count(s.Pattern, "-") != 25 {
		t.Errorf("pattern %q", s.Pattern)
	}
	if got := float64(s.Params()); got < 8.85e9 || got > 8.93e9 {
		t.Errorf("%.4g parameters, want about 8.89e9", got)
	}
	kv, rec := s.LayerKVHeads(), s.LayerRecurrent()
	for i, c := range s.Pattern {
		if (kv[i] == 8) != (c == '*') || kv[i] != 0 && kv[i] != 8 || rec[i] != (c == 'M') {
			t.Errorf("block %d (%c): %d KV heads, recurrent %v", i, c, kv[i], rec[i])
		}
	}
	if s.KVLayers() != 4 || s.RecurrentBytes() != 4*(3*(10240+2*8*128)+128*10240) {
		t.Errorf("%d KV layers, %d bytes of state per layer", s.KVLayers(), s.RecurrentBytes())
	}
	if rec := tiny.LayerRecurrent(); !slices.Equal(rec, []bool{false, false}) {
		t.Errorf("llama: recurrent %v", rec)
	}
	if rec := tinyGranite.LayerRecurrent(); !slices.Equal(rec, []bool{true, false, true, true}) {
		t.Errorf("granitehybrid: recurrent %v", rec)
	}
	checkRefused(t, tinyNemotron, map[string]func(*Shape){
		"pattern too short":                func(s *Shape) { s.Pattern = "M-M*-" },
		"pattern with experts":             func(s *Shape) { s.Pattern = "M-M*-E" },
		"pattern with an unknown":          func(s *Shape) { s.Pattern = "M-M*-x" },
		"no Mamba-2 block":                 func(s *Shape) { s.Pattern = "*-*--*" },
		"no attention block":               func(s *Shape) { s.Pattern = "M-M--M" },
		"no Mamba-2 head size":             func(s *Shape) { s.SSMHeadDim = 0 },
		"inner size of 4×20":               func(s *Shape) { s.SSMHeadDim = 20 },
		"groups not dividing heads":        func(s *Shape) { s.SSMGroups = 3 },
		"no state":                         func(s *Shape) { s.SSMState = 0 },
		"a convolution of 1":               func(s *Shape) { s.SSMConv = 1 },
		"a convolution of 5 (CUDA aborts)": func(s *Shape) { s.SSMConv = 5 },
		"experts":                          func(s *Shape) { s.Experts, s.ExpertsUsed = 4, 2 },
		"attention layers":                 func(s *Shape) { s.AttnLayers = []int{3} },
		"pattern on granitehybrid":         func(s *Shape) { s.Arch = "granitehybrid" },
		"Mamba-2 head size on llama":       func(s *Shape) { s.Arch, s.Pattern, s.SSMHeads, s.SSMState, s.SSMGroups, s.SSMConv = "", "", 0, 0, 0, 0 },
	})
}

// TestKQuantFallback: in a k-quant file, llama.cpp gives matrices whose
// rows are not a multiple of 256 values a fallback type (Q4_K_M: Q5_0,
// the output Q8_0; Q6_K: Q8_0); WeightBytes counts them at that size, so
// that a shape like Nemotron Nano 2's (hidden size 4480) is not
// underestimated. Here every row is 96 or 160 values: the estimate is
// within 3% of the real Q4_K_M file (the average 4.89 bits per weight
// alone would be far below it), and Q6_K is exact.
func TestKQuantFallback(t *testing.T) {
	s := Shape{Name: "odd", Vocab: 1000, Embd: 96, FF: 160, Layers: 2, Heads: 3, KVHeads: 1, Context: 256, RopeTheta: 10000, NormEps: 1e-5}
	path := filepath.Join(t.TempDir(), "q4km.gguf")
	if err := Create(context.Background(), path, s, "Q4_K_M", 1, 1); err != nil {
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
	est, err := s.WeightBytes("Q4_K_M")
	if err != nil {
		t.Fatal(err)
	}
	if r := float64(est) / float64(size); r < 0.97 || r > 1.03 {
		t.Errorf("Q4_K_M: WeightBytes %d, the file holds %d (%.3f)", est, size, r)
	}
	if avg := uint64(float64(s.Params()) * bitsPerWeight["Q4_K_M"] / 8); float64(avg) > 0.95*float64(size) {
		t.Errorf("the average alone gives %d of %d: this shape does not test the fallback", avg, size)
	}
	createChecked(t, s, "Q6_K")
	// IQ4_XS's 256-value blocks fall back to IQ4_NL: sized, within 3%.
	xs := filepath.Join(t.TempDir(), "iq4xs.gguf")
	if err := Create(context.Background(), xs, s, "IQ4_XS", 1, 1); err != nil {
		t.Fatal(err)
	}
	fx, err := gguf.Open(xs)
	if err != nil {
		t.Fatal(err)
	}
	var xsSize uint64
	for _, ti := range fx.Tensors {
		xsSize += ti.Size
	}
	if est, err := s.WeightBytes("IQ4_XS"); err != nil || float64(est) < 0.97*float64(xsSize) || float64(est) > 1.03*float64(xsSize) {
		t.Errorf("IQ4_XS: WeightBytes %d, %v; the file holds %d", est, err, xsSize)
	}
}

// tinyLFM2 and tinyLFM2MoE are small LFM2 shapes: attention in layers 1
// and 3 of 4 (5), short convolutions in the others; LFM2-MoE's first
// layer dense, then 4 experts (2 used).
var (
	tinyLFM2 = Shape{Name: "tiny-lfm2", Arch: "lfm2", Vocab: 1000, Embd: 64, FF: 96, Layers: 4, Heads: 4, KVHeads: 2,
		Context: 512, RopeTheta: 1e6, NormEps: 1e-5, TiedEmbeddings: true, AttnLayers: []int{1, 3}, ConvWidth: 3}
	tinyLFM2MoE = Shape{Name: "tiny-lfm2moe", Arch: "lfm2moe", Vocab: 1000, Embd: 64, FF: 32, Layers: 5, Heads: 4, KVHeads: 2,
		Context: 512, RopeTheta: 1e6, NormEps: 1e-5, TiedEmbeddings: true, Experts: 4, ExpertsUsed: 2, DenseLayers: 1, DenseFF: 128,
		AttnLayers: []int{1, 3}, ConvWidth: 3}
)

// TestLFM2 writes LFM2 and LFM2-MoE shapes in F32 and Q8_0 (whose sizes
// WeightBytes gives exactly): the keys llama.cpp's lfm2 and lfm2moe read,
// the convolution kept F32, the final norm under the name this llama.cpp
// loads; llama.cpp loads each as a recurrent model and decodes a few
// hundred tokens to finite logits.
func TestLFM2(t *testing.T) {
	for _, s := range []Shape{tinyLFM2, tinyLFM2MoE} {
		for _, q := range []string{"F32", "Q8_0"} {
			t.Run(s.Name+"/"+q, func(t *testing.T) {
				path, f := createChecked(t, s, q)
				a := s.Arch
				if v, ok := f.Lookup(a + ".attention.head_count_kv"); !ok {
					t.Error("no head_count_kv")
				} else if kv, _ := v.AsUints(); !slices.Equal(kv, []uint64{0, 2, 0, 2, 0}[:s.Layers]) {
					t.Errorf("head_count_kv %v", v)
				}
				want := map[string]uint64{"shortconv.l_cache": 3, "feed_forward_length": uint64(s.FF)}
				if a == "lfm2moe" {
					want = map[string]uint64{"shortconv.l_cache": 3, "feed_forward_length": 128, "expert_feed_forward_length": 32,
						"leading_dense_block_count": 1, "expert_gating_func": 2, "expert_count": 4, "expert_used_count": 2}
				}
				checkUints(t, f, want)
				if ti, ok := f.Tensor("blk.0.shortconv.conv.weight"); !ok || ti.Type != gguf.TypeF32 {
					t.Errorf("convolution %+v (%v), want F32", ti, ok)
				}
				if _, ok := f.Tensor(s.lfm2OutputNorm()); !ok {
					t.Errorf("no %s", s.lfm2OutputNorm())
				}
				decodeLong(t, path, s)
			})
		}
	}
}

// TestLFM2Shapes: the LFM2 shapes have the parameters their cards give
// (354,483,968 and 1,170,340,608; 8.3B), KV caches in 6 layers and the
// convolutions' state in the others; shapes llama.cpp cannot load are
// refused.
func TestLFM2Shapes(t *testing.T) {
	for name, want := range map[string]float64{"lfm2-350m": 354483968, "lfm2-1.2b": 1170340608, "lfm2-8b-a1b": 8.3e9} {
		s := Shapes[name]
		if got := float64(s.Params()); got < want*0.995 || got > want*1.005 {
			t.Errorf("%s: %.10g parameters, want about %.10g", name, got, want)
		}
		rec := s.LayerRecurrent()
		if s.KVLayers() != 6 || s.RecurrentBytes() != uint64(4*2*s.Embd) || rec[2] || !rec[0] || !rec[s.Layers-1] {
			t.Errorf("%s: %d KV layers, %d bytes of state, recurrent %v", name, s.KVLayers(), s.RecurrentBytes(), rec)
		}
	}
	checkRefused(t, tinyLFM2MoE, map[string]func(*Shape){
		"a convolution of 5 (CUDA aborts)": func(s *Shape) { s.ConvWidth = 5 },
		"heads of 32":                      func(s *Shape) { s.HeadSize = 32 },
		"all attention":                    func(s *Shape) { s.AttnLayers = []int{0, 1, 2, 3, 4} },
		"no attention":                     func(s *Shape) { s.AttnLayers = nil },
		"untied":                           func(s *Shape) { s.TiedEmbeddings = false },
		"all dense":                        func(s *Shape) { s.DenseLayers = 5 },
		"no experts":                       func(s *Shape) { s.Experts, s.ExpertsUsed = 0, 0 },
		"experts on lfm2":                  func(s *Shape) { s.Arch = "lfm2" },
		"convolution on llama": func(s *Shape) {
			s.Arch, s.AttnLayers, s.Experts, s.ExpertsUsed, s.DenseLayers, s.DenseFF = "", nil, 0, 0, 0, 0
		},
	})
}

// tinyQwen3Next is a small Qwen3-Next shape: 3 Gated DeltaNet layers (2
// key heads, 4 value heads of 32) and an attention layer (4 heads of 32, 8
// rotated); 4 experts (2 used) beside a shared expert.
var tinyQwen3Next = Shape{Name: "tiny-qwen3next", Arch: "qwen3next", Vocab: 1000, Embd: 64, FF: 32, Layers: 4, Heads: 4, KVHeads: 2, HeadSize: 32,
	Context: 512, RopeTheta: 1e4, NormEps: 1e-6, Experts: 4, ExpertsUsed: 2, SharedFF: 64, RopeDim: 8, SSMHeads: 4, SSMGroups: 2, SSMState: 32, SSMConv: 4}

// TestQwen3Next writes a Qwen3-Next shape in F32 and Q8_0 (whose sizes
// WeightBytes gives exactly): the keys llama.cpp's qwen3next reads, the
// convolution kept F32; llama.cpp loads it as a recurrent model and
// decodes a few hundred tokens to finite logits. Qwen3-Next-80B-A3B has
// the parameters its card gives (80B, without the multi-token prediction
// layer), KV caches in 12 of its 48 layers and the DeltaNets' state in the
// others.
func TestQwen3Next(t *testing.T) {
	s := tinyQwen3Next
	for _, q := range []string{"F32", "Q8_0"} {
		t.Run(q, func(t *testing.T) {
			path, f := createChecked(t, s, q)
			checkUints(t, f, map[string]uint64{"ssm.conv_kernel": 4, "ssm.inner_size": 128, "ssm.state_size": 32, "ssm.time_step_rank": 4,
				"ssm.group_count": 2, "rope.dimension_count": 8, "attention.key_length": 32, "expert_shared_feed_forward_length": 64})
			if ti, ok := f.Tensor("blk.0.ssm_conv1d.weight"); !ok || ti.Type != gguf.TypeF32 {
				t.Errorf("convolution %+v (%v), want F32", ti, ok)
			}
			decodeLong(t, path, s)
		})
	}
	big := Shapes["qwen3-next-80b-a3b"]
	if got := float64(big.Params()); got < 79e9 || got > 81e9 {
		t.Errorf("qwen3-next-80b-a3b: %.4g parameters, want about 80e9", got)
	}
	rec := big.LayerRecurrent()
	if big.KVLayers() != 12 || rec[3] || !rec[0] || !rec[46] || rec[47] || big.RecurrentBytes() != 4*(3*(4096+2*16*128)+128*4096) {
		t.Errorf("qwen3-next-80b-a3b: %d KV layers, %d bytes of state, recurrent %v", big.KVLayers(), big.RecurrentBytes(), rec)
	}
	checkRefused(t, tinyQwen3Next, map[string]func(*Shape){
		"3 layers":             func(s *Shape) { s.Layers = 3 },
		"no shared expert":     func(s *Shape) { s.SharedFF = 0 },
		"no experts":           func(s *Shape) { s.Experts, s.ExpertsUsed = 0, 0 },
		"key heads not divide": func(s *Shape) { s.SSMGroups = 3 },
		"convolution of 5":     func(s *Shape) { s.SSMConv = 5 },
		"odd rope":             func(s *Shape) { s.RopeDim = 7 },
	})
}

// tinyMiniMax is a small MiniMax-M2 shape: 4 heads of 32 (2 KV heads),
// 16 of each head's 32 dimensions rotated, 4 experts (2 used).
var tinyMiniMax = Shape{Name: "tiny-minimax", Arch: "minimax-m2", Vocab: 1000, Embd: 64, FF: 32, Layers: 2, Heads: 4, KVHeads: 2, HeadSize: 32,
	Context: 512, RopeTheta: 1e4, NormEps: 1e-6, Experts: 4, ExpertsUsed: 2, RopeDim: 16}

// TestMiniMaxM2 writes a MiniMax-M2 shape in F32 and Q8_0 (whose sizes
// WeightBytes gives exactly) with the keys llama.cpp's minimax-m2 reads;
// llama.cpp loads it and generates.
func TestMiniMaxM2(t *testing.T) {
	s := tinyMiniMax
	for _, q := range []string{"F32", "Q8_0"} {
		t.Run(q, func(t *testing.T) {
			path, f := createChecked(t, s, q)
			checkUints(t, f, map[string]uint64{"rope.dimension_count": 16, "expert_gating_func": 2, "expert_feed_forward_length": 32, "attention.key_length": 32})
			decodeFinite(t, path)
		})
	}
	checkRefused(t, tinyMiniMax, map[string]func(*Shape){
		"no experts": func(s *Shape) { s.Experts, s.ExpertsUsed = 0, 0 },
		"tied":       func(s *Shape) { s.TiedEmbeddings = true },
		"odd rope":   func(s *Shape) { s.RopeDim = 15 },
	})
}

// tinyLlama4 is a small Llama 4 shape: 4 layers (the fourth attends fully
// without rope), 4 heads of 32 (2 KV heads), 4 experts of 32 (1 used)
// beside a shared expert in layers 1 and 3, dense MLPs of 96 in 0 and 2.
var tinyLlama4 = Shape{Name: "tiny-llama4", Arch: "llama4", Vocab: 1000, Embd: 64, FF: 32, DenseFF: 96, Layers: 4, Heads: 4, KVHeads: 2, HeadSize: 32,
	Context: 512, RopeTheta: 5e5, NormEps: 1e-5, Experts: 4, ExpertsUsed: 1, MoEStep: 2}

// TestLlama4 writes a Llama 4 shape in F32 and Q8_0 with the keys
// llama.cpp's llama4 reads; llama.cpp loads it and generates. Scout's and
// Maverick's shapes have the 17B active parameters of their names and
// Maverick the 400B of its card (Scout's 109B counts its vision model).
func TestLlama4(t *testing.T) {
	s := tinyLlama4
	for _, q := range []string{"F32", "Q8_0"} {
		t.Run(q, func(t *testing.T) {
			path, f := createChecked(t, s, q)
			checkUints(t, f, map[string]uint64{"feed_forward_length": 96, "expert_feed_forward_length": 32, "interleave_moe_layer_step": 2,
				"expert_count": 4, "expert_used_count": 1})
			for name, want := range map[string]bool{"blk.1.ffn_gate_shexp.weight": true, "blk.0.ffn_gate.weight": true, "blk.0.ffn_gate_inp.weight": false} {
				if _, ok := f.Tensor(name); ok != want {
					t.Errorf("%s present %v, want %v", name, ok, want)
				}
			}
			decodeFinite(t, path)
		})
	}
	for name, want := range map[string]struct{ active, total float64 }{
		"llama-4-scout-17b-16e": {17e9, 0}, "llama-4-maverick-17b-128e": {17e9, 400e9},
	} {
		s := Shapes[name]
		b := s.Breakdown()
		total := float64(s.Params())
		active := total - float64(b.Experts) + float64(b.Experts)/float64(s.Experts)*float64(s.ExpertsUsed)
		if active < want.active*0.99 || active > want.active*1.02 || want.total > 0 && (total < want.total*0.99 || total > want.total*1.01) {
			t.Errorf("%s: %.4g active of %.4g parameters, want %.4g of %.4g", name, active, total, want.active, want.total)
		}
	}
	checkRefused(t, tinyLlama4, map[string]func(*Shape){
		"no experts":    func(s *Shape) { s.Experts, s.ExpertsUsed = 0, 0 },
		"step 0":        func(s *Shape) { s.MoEStep = 0 },
		"no dense FF":   func(s *Shape) { s.DenseFF = 0 },
		"shared count":  func(s *Shape) { s.SharedExperts = 1 },
		"step on llama": func(s *Shape) { s.Arch = "" },
	})
}

// TestEncoders writes small nomic-bert, jina-bert-v2, jina-bert-v3 and EmbeddingGemma shapes in F32 and
// Q8_0 with the keys llama.cpp reads; llama.cpp loads each and pools a
// finite embedding of 12 tokens (a window of 8: 4 positions each side).
// The real shapes have their cards' parameters: 137M for nomic-embed-text
// v1.5 and jina-embeddings-v2-base-en, 308M for EmbeddingGemma with its
// projections, 558M for jina-embeddings-v3 without its task adapters
// (llama.cpp's size label; the card's 572M counts them and the pooler).
func TestEncoders(t *testing.T) {
	for _, s := range []Shape{
		{Name: "tiny-nomic", Arch: "nomic-bert", Vocab: 1000, Embd: 64, FF: 96, Layers: 2, Heads: 4, KVHeads: 4, Context: 512, RopeTheta: 1000, NormEps: 1e-12},
		{Name: "tiny-jina", Arch: "jina-bert-v2", Vocab: 1000, Embd: 64, FF: 96, Layers: 2, Heads: 4, KVHeads: 4, Context: 512, NormEps: 1e-12},
		{Name: "tiny-jina-v3", Arch: "jina-bert-v3", Vocab: 1000, Embd: 64, FF: 96, Layers: 2, Heads: 4, KVHeads: 4, Context: 512, RopeTheta: 20000, NormEps: 1e-5},
		{Name: "tiny-gemma-embedding", Arch: "gemma-embedding", Vocab: 1000, Embd: 64, FF: 96, Layers: 7, Heads: 2, KVHeads: 1, HeadSize: 32,
			Context: 512, RopeTheta: 1e6, NormEps: 1e-6, SlidingWindow: 8, DenseFF: 128},
	} {
		for _, q := range []string{"F32", "Q8_0"} {
			t.Run(s.Arch+"/"+q, func(t *testing.T) {
				path, _ := createChecked(t, s, q)
				ctx := context.Background()
				m, err := engine.LoadModel(ctx, path, engine.ModelOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if !m.NonCausal() {
					t.Error("not an encoder")
				}
				c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, Threads: 1, Embeddings: true})
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
					b.Add(engine.Token(10+i), engine.Pos(i), true, 0)
				}
				if err := c.Decode(ctx, b); err != nil {
					t.Fatal(err)
				}
				v, err := c.SequenceEmbeddings(0)
				if err != nil {
					t.Fatal(err)
				}
				if len(v) != s.Embd {
					t.Fatalf("embedding of %d, want %d", len(v), s.Embd)
				}
				for _, x := range v {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						t.Fatal("non-finite embedding")
					}
				}
			})
		}
	}
	for name, want := range map[string]float64{"nomic-embed-text-v1.5": 137e6, "embeddinggemma-300m": 308e6, "jina-embeddings-v2-base-en": 137e6, "jina-embeddings-v3": 558e6} {
		if got := float64(Shapes[name].Params()); got < want*0.99 || got > want*1.01 {
			t.Errorf("%s: %.4g parameters, want about %.4g", name, got, want)
		}
	}
}
