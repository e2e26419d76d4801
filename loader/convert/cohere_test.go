package convert_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// cohereFixture writes tiny-llama-st as a Command R checkpoint: no MLP
// norm, tied embeddings, layer_norm_eps and logit_scale, and with qkNorm
// per-head q/k norm weights ([heads, head_dim]) and 64 layers (its two
// repeated), as llama.cpp reads those norms only then; edit changes it.
func cohereFixture(t *testing.T, qkNorm bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	layers := 2
	if qkNorm {
		layers = 64
	}
	return cohereFixtureN(t, "CohereForCausalLM", layers, qkNorm, edit)
}

// cohereFixtureN writes the Command R fixture as arch with layers layers
// (tiny-llama-st's two repeated).
func cohereFixtureN(t *testing.T, arch string, layers int, qkNorm bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		m["architectures"], m["model_type"] = []string{arch}, "cohere"
		m["layer_norm_eps"], m["logit_scale"], m["use_qk_norm"], m["tie_word_embeddings"] = 1e-5, 0.125, qkNorm, true
		delete(m, "rms_norm_eps")
		m["num_hidden_layers"] = layers
		cfg = m
	})
	w := randWeights{rand.New(rand.NewPCG(5, 6))}
	var ts []stTensor
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil) {
		if s.name == "lm_head.weight" || strings.HasSuffix(s.name, "post_attention_layernorm.weight") {
			continue
		}
		if !strings.HasPrefix(s.name, "model.layers.") {
			ts = append(ts, s)
			continue
		}
		src := strings.TrimPrefix(s.name, "model.layers.")
		n, rest, _ := strings.Cut(src, ".")
		for l := n[0] - '0'; int(l) < layers; l += 2 { // layer l repeats layer l%2
			c := s
			c.name = layerPrefix(int(l)) + rest
			ts = append(ts, c)
			if qkNorm && rest == "input_layernorm.weight" {
				p := layerPrefix(int(l))
				q, k := w.vec(p+"self_attn.q_norm.weight", 4*16, 1, 0.2), w.vec(p+"self_attn.k_norm.weight", 2*16, 1, 0.2)
				q.shape, k.shape = []int64{4, 16}, []int64{2, 16}
				ts = append(ts, q, k)
			}
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// TestCohere converts Command R checkpoints (with and without q/k norms) to
// llama.cpp's command-r and checks the logits against the float64
// reference (LayerNorms, the parallel block, interleaved rope, the logit
// scale), which would see each left out.
func TestCohere(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, qkNorm := range []bool{false, true} {
		dir := cohereFixture(t, qkNorm, nil)
		out := filepath.Join(t.TempDir(), "cr.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := f.Float("command-r.logit_scale"); f.Architecture() != "command-r" || v != 0.125 {
			t.Errorf("arch %q, logit_scale %v", f.Architecture(), v)
		}
		if _, ok := f.Float("command-r.attention.layer_norm_rms_epsilon"); ok {
			t.Error("an RMS norm epsilon written for LayerNorms")
		}
		layers := 2
		if qkNorm {
			layers = 64
		}
		fresh := func() *refModel {
			return loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
				ropePairs: true, layerNorm: true, parallel: true, logitScale: 0.125}, layers)
		}
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh().forward, 1e-5)
		edits := map[string]func(*refModel){
			"LayerNorm":        func(m *refModel) { m.layerNorm = false },
			"interleaved rope": func(m *refModel) { m.ropePairs = false },
			"logit scale":      func(m *refModel) { m.logitScale = 0 },
		}
		if !qkNorm { // 64 sequential blocks of these weights overflow
			edits["parallel block"] = func(m *refModel) { m.parallel = false }
		}
		if qkNorm {
			edits["per-head q/k norms"] = func(m *refModel) {
				for i := range m.layers {
					m.layers[i].qNorm, m.layers[i].kNorm = m.layers[i].qNorm[:16], m.layers[i].kNorm[:16]
				}
			}
		}
		checkSensitive(t, ctx, prompts, fresh, edits)
	}
	// F16 (the CLI's default): the per-head q/k norms [heads, head_dim]
	// stay F32, which ggml's norm multiply requires (F16 ones abort it).
	f16 := filepath.Join(t.TempDir(), "cr16.gguf")
	dir := cohereFixture(t, true, setConfig("model_max_length", 131072))
	if err := convert.Convert(context.Background(), dir, f16, convert.Options{Type: "f16", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(f16)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"blk.63.attn_q_norm.weight", "blk.63.attn_k_norm.weight"} {
		if ti, ok := f.Tensor(name); !ok || ti.Type != gguf.TypeF32 {
			t.Errorf("%s: %v %+v, want F32", name, ok, ti)
		}
	}
	if v, _ := f.Uint("command-r.context_length"); v != 131072 {
		t.Errorf("context_length %d, want model_max_length 131072", v)
	}
	ref := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
		ropePairs: true, layerNorm: true, parallel: true, logitScale: 0.125}, 64)
	checkRef(t, refContext(t, f16), readReference(t, "tiny-llama-st").Prompts[:1], ref.forward, 5e-2)
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"q_norm without use_qk_norm": func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.self_attn.q_norm.weight", []int64{4, 16}, make([]float32, 64)))
		},
		"head_dim × heads ≠ hidden": setConfig("head_dim", 32),
		"use_qk_norm with 2 layers": setConfig("use_qk_norm", true),
		"hidden_act gelu":           setConfig("hidden_act", "gelu"),
		"an MLP norm": func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.post_attention_layernorm.weight", []int64{64}, make([]float32, 64)))
		},
	} {
		err := convert.Convert(context.Background(), cohereFixture(t, false, edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// TestCohere2 converts Command R7B's layout (cohere2: three sliding-window
// layers with rope, then a global one without) and checks the logits
// against the float64 reference, which would see the window or the global
// layers' missing rope left out; other layer patterns are refused.
func TestCohere2(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	const window = 4
	sliding := func(cfg map[string]any, ts []stTensor) []stTensor {
		cfg["sliding_window"], cfg["sliding_window_pattern"] = window, 4
		return ts
	}
	dir := cohereFixtureN(t, "Cohere2ForCausalLM", 8, false, sliding)
	out := filepath.Join(t.TempDir(), "c2.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Uint("cohere2.attention.sliding_window"); f.Architecture() != "cohere2" || v != window {
		t.Errorf("arch %q, sliding_window %d", f.Architecture(), v)
	}
	fresh := func() *refModel {
		m := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
			ropePairs: true, layerNorm: true, parallel: true, logitScale: 0.125}, 8)
		for i := range m.layers {
			if (i+1)%4 == 0 {
				m.layers[i].noRope = true
			} else {
				m.layers[i].window = window
			}
		}
		return m
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
		"sliding window": func(m *refModel) {
			for i := range m.layers {
				m.layers[i].window = 0
			}
		},
		"no rope in the global layers": func(m *refModel) {
			for i := range m.layers {
				m.layers[i].noRope = false
			}
		},
	})
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"pattern 6": func(cfg map[string]any, ts []stTensor) []stTensor {
			sliding(cfg, ts)
			cfg["sliding_window_pattern"] = 6
			return ts
		},
		"window 0": func(cfg map[string]any, ts []stTensor) []stTensor { cfg["sliding_window"] = 0; return ts },
		"a global layer sliding": func(cfg map[string]any, ts []stTensor) []stTensor {
			cfg["layer_types"] = slices.Repeat([]string{"sliding_attention"}, 8)
			return ts
		},
	} {
		err := convert.Convert(context.Background(), cohereFixtureN(t, "Cohere2ForCausalLM", 8, false, edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) && !errors.Is(err, convert.ErrMismatch) {
			t.Errorf("%s: %v, want ErrUnsupported or ErrMismatch", name, err)
		}
	}
	// Zero attention biases (as some Cohere2 releases ship) are left out;
	// others are refused.
	biases := func(v float32) func(map[string]any, []stTensor) []stTensor {
		return func(_ map[string]any, ts []stTensor) []stTensor {
			for l := range 8 {
				for _, p := range []string{"q", "k", "v", "o"} {
					n := map[string]int64{"q": 64, "k": 32, "v": 32, "o": 64}[p]
					b := make([]float32, n)
					b[n-1] = v
					ts = append(ts, f32Tensor(layerPrefix(l)+"self_attn."+p+"_proj.bias", []int64{n}, b))
				}
			}
			return ts
		}
	}
	zeros := filepath.Join(t.TempDir(), "zeros.gguf")
	if err := convert.Convert(context.Background(), cohereFixtureN(t, "Cohere2ForCausalLM", 8, false, biases(0)), zeros, convert.Options{Name: "x"}); err != nil {
		t.Fatalf("zero biases: %v", err)
	}
	if f, err := gguf.Open(zeros); err != nil {
		t.Fatal(err)
	} else if _, ok := f.Tensor("blk.0.attn_q.bias"); ok {
		t.Error("zero biases written")
	}
	if err := convert.Convert(context.Background(), cohereFixtureN(t, "Cohere2ForCausalLM", 8, false, biases(0.5)), zeros, convert.Options{}); !errors.Is(err, convert.ErrUnsupported) {
		t.Errorf("biases: %v, want ErrUnsupported", err)
	}
	// Without sliding_window: Cohere2Config's 4096.
	def := filepath.Join(t.TempDir(), "def.gguf")
	if err := convert.Convert(context.Background(), cohereFixtureN(t, "Cohere2ForCausalLM", 8, false, nil), def, convert.Options{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(def); err != nil {
		t.Fatal(err)
	} else if v, _ := f.Uint("cohere2.attention.sliding_window"); v != 4096 {
		t.Errorf("default sliding_window %d, want 4096", v)
	}
}
