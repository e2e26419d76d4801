package convert_test

import (
	"context"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// exaone4Fixture writes a tiny EXAONE 4.0 checkpoint: hidden size 64, 4
// heads of 16 (2 KV heads), MLPs of 96, norms after each sublayer and
// per-head q/k norms; with window > 0 its 64 layers slide in three of
// every four (layer_types), as EXAONE 4.0 32B's.
func exaone4Fixture(t *testing.T, layers, window int, tied bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"Exaone4ForCausalLM"}, "model_type": "exaone4", "hidden_size": 64, "num_hidden_layers": layers,
		"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 96, "rms_norm_eps": 1e-5,
		"rope_theta": 10000.0, "max_position_embeddings": 4096, "vocab_size": 32000, "tie_word_embeddings": tied,
		"hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "sliding_window": nil,
	}
	if window > 0 {
		types := make([]string, layers)
		for i := range types {
			types[i] = "sliding_attention"
			if i%4 == 3 {
				types[i] = "full_attention"
			}
		}
		cfg["layer_types"], cfg["sliding_window"], cfg["sliding_window_pattern"] = types, window, "LLLG"
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(17, uint64(layers)))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)), w.vec("model.norm.weight", 64, 1, 0.1)}
	if !tied {
		ts = append(ts, w.mat("lm_head.weight", 32000, 64))
	}
	for l := range layers {
		p := layerPrefix(l)
		ts = append(ts, w.mat(p+"self_attn.q_proj.weight", 64, 64), w.mat(p+"self_attn.k_proj.weight", 32, 64), w.mat(p+"self_attn.v_proj.weight", 32, 64),
			w.mat(p+"self_attn.o_proj.weight", 64, 64), w.vec(p+"self_attn.q_norm.weight", 16, 1, 0.2), w.vec(p+"self_attn.k_norm.weight", 16, 1, 0.2),
			w.vec(p+"post_attention_layernorm.weight", 64, 1, 0.1), w.vec(p+"post_feedforward_layernorm.weight", 64, 1, 0.1),
			w.mat(p+"mlp.gate_proj.weight", 96, 64), w.mat(p+"mlp.up_proj.weight", 96, 64), w.mat(p+"mlp.down_proj.weight", 64, 96))
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// exaone4Reference is transformers' Exaone4 of the fixture in dir: each
// sublayer's output RMS-normed before the residual add, per-head q/k norms
// before the rope, and with a window the global layers without rope.
func exaone4Reference(t *testing.T, dir string, layers, window int) *refModel {
	t.Helper()
	r := openST(t, dir)
	m := &refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	if r.has("lm_head.weight") {
		m.out = r.get("lm_head.weight")
	}
	for l := range layers {
		p := layerPrefix(l)
		L := refLayer{wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"), wv: r.get(p + "self_attn.v_proj.weight"),
			wo: r.get(p + "self_attn.o_proj.weight"), qNorm: r.get(p + "self_attn.q_norm.weight"), kNorm: r.get(p + "self_attn.k_norm.weight"),
			postAttnNorm: r.get(p + "post_attention_layernorm.weight"), postFFNNorm: r.get(p + "post_feedforward_layernorm.weight"),
			wg: r.get(p + "mlp.gate_proj.weight"), wu: r.get(p + "mlp.up_proj.weight"), wd: r.get(p + "mlp.down_proj.weight"), ffn: 96}
		if window > 0 {
			if l%4 == 3 {
				L.noRope = true
			} else {
				L.window = window
			}
		}
		m.layers = append(m.layers, L)
	}
	return m
}

// TestExaone4 converts EXAONE 4.0 checkpoints (4 global layers with tied
// embeddings, as the 1.2B; 64 layers sliding in three of four, as the
// 32B) to llama.cpp's exaone4 and checks the logits against the float64
// reference, which would see the q/k norms, the post norms, the window or
// the global layers' missing rope left out; other sliding layouts are
// refused.
func TestExaone4(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, tc := range []struct {
		layers, window int
		tied           bool
	}{{4, 0, true}, {64, 3, false}} {
		dir := exaone4Fixture(t, tc.layers, tc.window, tc.tied, nil)
		out, f := convertDir(t, dir, "f32")
		if w, ok := f.Uint("exaone4.attention.sliding_window"); f.Architecture() != "exaone4" || (tc.window > 0) != ok || ok && w != uint64(tc.window) {
			t.Errorf("arch %q, sliding_window %d (%v)", f.Architecture(), w, ok)
		}
		fresh := func() *refModel { return exaone4Reference(t, dir, tc.layers, tc.window) }
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh().forward, 1e-5)
		edits := map[string]func(*refModel){
			"q/k norms": func(m *refModel) {
				for i := range m.layers {
					m.layers[i].qNorm, m.layers[i].kNorm = nil, nil
				}
			},
			"post norms": func(m *refModel) {
				for i := range m.layers {
					m.layers[i].postAttnNorm = nil
				}
			},
		}
		if tc.window > 0 {
			edits["window"] = func(m *refModel) {
				for i := range m.layers {
					m.layers[i].window = 0
				}
			}
			edits["rope in the global layers"] = func(m *refModel) {
				for i := range m.layers {
					m.layers[i].noRope = false
				}
			}
		}
		checkSensitive(t, ctx, prompts, fresh, edits)
	}
	for name, tc := range map[string]struct {
		layers int
		edit   func(map[string]any, []stTensor) []stTensor
		want   error
	}{
		"a window in 8 layers": {8, func(c map[string]any, ts []stTensor) []stTensor {
			c["sliding_window"], c["layer_types"] = 3, []string{"sliding_attention", "sliding_attention", "sliding_attention", "full_attention",
				"sliding_attention", "sliding_attention", "sliding_attention", "full_attention"}
			return ts
		}, convert.ErrUnsupported},
		"a head size beside the hidden size": {4, setConfig("head_dim", 32), convert.ErrUnsupported},
		"64 layers without a window":         {64, nil, convert.ErrUnsupported},
		"a window and no sliding layer": {4, func(c map[string]any, ts []stTensor) []stTensor {
			c["sliding_window"], c["layer_types"] = 3, []string{"full_attention", "full_attention", "full_attention", "full_attention"}
			return ts
		}, convert.ErrUnsupported},
		"the default window and pattern in 4 layers": {4, func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "sliding_window") // 4096, and the default pattern LLLG
			return ts
		}, convert.ErrUnsupported},
		"a pattern of letters": {8, func(c map[string]any, ts []stTensor) []stTensor {
			c["sliding_window"], c["sliding_window_pattern"] = 3, "LLGL"
			return ts
		}, convert.ErrUnsupported},
		"a bias": {4, func(_ map[string]any, ts []stTensor) []stTensor {
			b := make([]float32, 64)
			b[0] = 1
			return append(ts, f32Tensor("model.layers.0.self_attn.q_proj.bias", []int64{64}, b))
		}, convert.ErrUnsupported},
	} {
		err := convert.Convert(context.Background(), exaone4Fixture(t, tc.layers, 0, true, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestExaone4Layout: the 32B's config as released (64 layers, a window,
// the pattern as a string and no layer_types) gives the LLLG layout,
// llama3 rope scaling gives rope_freqs, and a pattern of other letters is
// read letter by letter (and refused, as llama.cpp fixes LLLG).
func TestExaone4Layout(t *testing.T) {
	dir := exaone4Fixture(t, 64, 0, false, func(c map[string]any, ts []stTensor) []stTensor {
		c["sliding_window"], c["sliding_window_pattern"] = 5, "LLLG"
		c["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 256}
		return ts
	})
	out := filepath.Join(t.TempDir(), "e.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := f.Uint("exaone4.attention.sliding_window"); w != 5 {
		t.Errorf("sliding_window %d, want 5", w)
	}
	if _, ok := f.Tensor("rope_freqs.weight"); !ok {
		t.Error("no rope_freqs for llama3 scaling")
	}
	loadModel(t, out, engine.ModelOptions{})
}

// exaoneFixture writes a tiny EXAONE 3.5 checkpoint in EXAONE's names and
// config keys, and the same weights in Llama's names (for the reference)
// in a directory of its own: hidden size 64, 4 heads of 16 (2 KV heads),
// MLPs of 96, llama3 rope scaling, untied or tied embeddings.
func exaoneFixture(t *testing.T, tied bool, edit func(map[string]any, []stTensor) []stTensor) (exaoneDir, llamaDir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(35, 1))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)), w.vec("model.norm.weight", 64, 1, 0.1)}
	if !tied {
		ts = append(ts, w.mat("lm_head.weight", 32000, 64))
	}
	for l := range 2 {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"input_layernorm.weight", 64, 1, 0.1), w.mat(p+"self_attn.q_proj.weight", 64, 64), w.mat(p+"self_attn.k_proj.weight", 32, 64),
			w.mat(p+"self_attn.v_proj.weight", 32, 64), w.mat(p+"self_attn.o_proj.weight", 64, 64), w.vec(p+"post_attention_layernorm.weight", 64, 1, 0.1),
			w.mat(p+"mlp.gate_proj.weight", 96, 64), w.mat(p+"mlp.up_proj.weight", 96, 64), w.mat(p+"mlp.down_proj.weight", 64, 96))
	}
	llamaDir = t.TempDir()
	llamaCfg := map[string]any{"architectures": []string{"LlamaForCausalLM"}, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
		"num_key_value_heads": 2, "intermediate_size": 96, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": 32000}
	copyHFFiles(t, "tiny-llama-st", llamaDir, func(m map[string]any) { clear(m); maps.Copy(m, llamaCfg) })
	finishFixture(t, "tiny-llama-st", llamaDir, llamaCfg, slices.Clone(ts), nil)

	names := strings.NewReplacer("model.embed_tokens.", "transformer.wte.", "model.norm.", "transformer.ln_f.", "model.layers.", "transformer.h.",
		"input_layernorm.", "ln_1.", "post_attention_layernorm.", "ln_2.", "self_attn.o_proj.", "attn.attention.out_proj.",
		"self_attn.", "attn.attention.", "mlp.gate_proj.", "mlp.c_fc_0.", "mlp.up_proj.", "mlp.c_fc_1.", "mlp.down_proj.", "mlp.c_proj.")
	for i := range ts {
		ts[i].name = names.Replace(ts[i].name)
	}
	exaoneDir = t.TempDir()
	cfg := map[string]any{"architectures": []string{"ExaoneForCausalLM"}, "model_type": "exaone", "hidden_size": 64, "num_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 96, "layer_norm_epsilon": 1e-6,
		"activation_function": "silu", "rope_theta": 10000.0, "rope_scaling": llama3Scaling, "max_position_embeddings": 512,
		"vocab_size": 32000, "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", exaoneDir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	return finishFixture(t, "tiny-llama-st", exaoneDir, cfg, ts, edit), llamaDir
}

// TestExaone converts EXAONE 3.5 checkpoints (untied, as the 7.8B and
// 32B, and tied, as the 2.4B) to llama.cpp's exaone and checks the logits
// against the float64 reference of the same weights (rotate_half rope with
// llama3 scaling), which would see the rope on adjacent pairs (q/k
// permuted as for llama), the gate and up projections swapped, or no
// rope scaling; EXAONE's other settings are refused.
func TestExaone(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	invFreq := hfLlama3InvFreq(10000, 16, 8, 1, 4, 64)
	for _, tied := range []bool{false, true} {
		dir, llamaDir := exaoneFixture(t, tied, nil)
		out, f := convertDir(t, dir, "f32")
		_, hasOut := f.Tensor("output.weight")
		_, hasFreqs := f.Tensor("rope_freqs.weight")
		if f.Architecture() != "exaone" || hasOut == tied || !hasFreqs {
			t.Errorf("arch %q, output.weight %v, rope_freqs %v", f.Architecture(), hasOut, hasFreqs)
		}
		if eps, ok := f.Float("exaone.attention.layer_norm_rms_epsilon"); !ok || math.Abs(eps-1e-6) > 1e-12 {
			t.Errorf("layer_norm_rms_epsilon %v (%v), want layer_norm_epsilon's 1e-6", eps, ok)
		}
		fresh := func() *refModel {
			return loadLlamaRef(t, llamaDir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: invFreq}, 2)
		}
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh().forward, 1e-5)
		checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
			"rope on pairs": func(m *refModel) { m.ropePairs = true },
			"gate and up swapped": func(m *refModel) {
				for i := range m.layers {
					m.layers[i].wg, m.layers[i].wu = m.layers[i].wu, m.layers[i].wg
				}
			},
			"no rope scaling": func(m *refModel) { m.invFreq = defaultInvFreq(10000, 16) },
		})
	}
	// ExaoneConfig ties the head by default: an lm_head.weight is then
	// not the head (transformers uses the embeddings).
	dir, _ := exaoneFixture(t, false, func(c map[string]any, ts []stTensor) []stTensor {
		delete(c, "tie_word_embeddings")
		return ts
	})
	out := filepath.Join(t.TempDir(), "tied.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil {
		t.Fatal(err)
	} else if _, ok := f.Tensor("output.weight"); ok {
		t.Error("tie_word_embeddings absent: the lm_head.weight was written as the head")
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"gelu": {setConfig("activation_function", "gelu"), convert.ErrUnsupported},
		"a bias": {func(_ map[string]any, ts []stTensor) []stTensor {
			b := make([]float32, 64)
			b[0] = 1
			return append(ts, f32Tensor("transformer.h.0.attn.attention.q_proj.bias", []int64{64}, b))
		}, convert.ErrUnsupported},
		"an unknown tensor": {func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("transformer.h.0.attn.attention.rotary.scale", []int64{64}, make([]float32, 64)))
		}, convert.ErrUnsupported},
	} {
		dir, _ := exaoneFixture(t, false, tc.edit)
		err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
