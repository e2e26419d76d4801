package convert_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// olmoFixture writes a tiny OLMo 2 (olmo3: OLMo 3) checkpoint from
// tiny-llama-st's weights: no input norm, its MLP norm as the attention's
// post norm, and random post-MLP norms and whole-projection q/k norms.
// layers 4 repeats the base's two layers twice. edit, when not nil,
// changes the config and tensors before they are written.
func olmoFixture(t *testing.T, olmo3 bool, layers int, edit func(cfg map[string]any, ts []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		m["architectures"], m["model_type"], m["num_hidden_layers"] = []string{"Olmo2ForCausalLM"}, "olmo2", layers
		if olmo3 {
			m["architectures"], m["model_type"] = []string{"Olmo3ForCausalLM"}, "olmo3"
			m["sliding_window"] = 3
			m["max_position_embeddings"] = 256
			m["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "beta_fast": 32.0, "beta_slow": 1.0}
			types := make([]string, layers)
			for i := range types {
				types[i] = "sliding_attention"
				if i%4 == 3 {
					types[i] = "full_attention"
				}
			}
			m["layer_types"] = types
		}
		cfg = m
	})
	r := rand.New(rand.NewPCG(5, 6))
	var ts []stTensor
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil) {
		if strings.HasSuffix(s.name, "input_layernorm.weight") {
			continue
		}
		ts = append(ts, s)
		prefix, ok := strings.CutSuffix(s.name, "post_attention_layernorm.weight")
		if !ok {
			continue
		}
		for _, n := range []struct {
			name  string
			width int64
		}{{"post_feedforward_layernorm.weight", 64}, {"self_attn.q_norm.weight", 64}, {"self_attn.k_norm.weight", 32}} {
			g := randn(r, int(n.width), 0.2)
			for i := range g {
				g[i]++
			}
			ts = append(ts, f32Tensor(prefix+n.name, []int64{n.width}, g))
		}
	}
	if layers == 4 { // layers 2 and 3 copy 0 and 1
		for _, s := range slices.Clone(ts) {
			for l := range 2 {
				if rest, ok := strings.CutPrefix(s.name, layerPrefix(l)); ok {
					c := s
					c.name = layerPrefix(l+2) + rest
					ts = append(ts, c)
				}
			}
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// olmoReference reads the checkpoint in dir as transformers' Olmo2Model
// (Olmo3Model): norms after the sublayers, whole-projection q/k norms,
// and for OLMo 3 the sliding window and yarn rope in the full layers only.
func olmoReference(t *testing.T, dir string, olmo3 bool, layers int) *refModel {
	t.Helper()
	r := openST(t, dir)
	m := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}
	m.emb, m.norm, m.out = r.get("model.embed_tokens.weight"), r.get("model.norm.weight"), r.get("lm_head.weight")
	yarn, mscale := ossYarn(10000, 16)
	for l := range layers {
		p := layerPrefix(l)
		L := refLayer{
			wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"),
			wv: r.get(p + "self_attn.v_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight"),
			qNormFull: r.get(p + "self_attn.q_norm.weight"), kNormFull: r.get(p + "self_attn.k_norm.weight"),
			postAttnNorm: r.get(p + "post_attention_layernorm.weight"), postFFNNorm: r.get(p + "post_feedforward_layernorm.weight"),
			wg: r.get(p + "mlp.gate_proj.weight"), wu: r.get(p + "mlp.up_proj.weight"), wd: r.get(p + "mlp.down_proj.weight"),
		}
		L.ffn = len(L.wg) / m.hidden
		if olmo3 {
			if l%4 == 3 {
				L.invFreq, L.mscale = yarn, mscale
			} else {
				L.window = 3
			}
		}
		m.layers = append(m.layers, L)
	}
	return &m
}

// TestOLMoReference converts tiny OLMo 2 and OLMo 3 checkpoints to F32 and
// checks llama.cpp's logits against the float64 reference, and that the
// reference would see the post norms, the q/k norms, OLMo 3's sliding
// window and its yarn rope (full layers only) left out.
func TestOLMoReference(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, tc := range []struct {
		name   string
		olmo3  bool
		layers int
	}{{"OLMo 2", false, 2}, {"OLMo 3", true, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := olmoFixture(t, tc.olmo3, tc.layers, nil)
			out, f := convertDir(t, dir, "f32")
			if f.Architecture() != "olmo2" {
				t.Errorf("architecture %q", f.Architecture())
			}
			if v, ok := f.Uint("olmo2.attention.sliding_window"); ok != tc.olmo3 || (ok && v != 3) {
				t.Errorf("sliding_window %v (%v)", v, ok)
			}
			for name, shape := range map[string][]uint64{"blk.1.attn_q_norm.weight": {64}, "blk.1.attn_k_norm.weight": {32},
				"blk.1.post_attention_norm.weight": {64}, "blk.1.post_ffw_norm.weight": {64}} {
				if ti, ok := f.Tensor(name); !ok || !slices.Equal(ti.Shape, shape) {
					t.Errorf("%s: %v %+v, want shape %v", name, ok, ti, shape)
				}
			}
			if _, ok := f.Tensor("blk.0.attn_norm.weight"); ok {
				t.Error("an attn_norm was written")
			}
			ctx := refContext(t, out)
			checkRef(t, ctx, prompts, olmoReference(t, dir, tc.olmo3, tc.layers).forward, 1e-5)

			edits := map[string]func(m *refModel){
				"no post norms": func(m *refModel) {
					for i := range m.layers {
						m.layers[i].postAttnNorm, m.layers[i].postFFNNorm = nil, nil
					}
				},
				"per-head q/k norms": func(m *refModel) {
					for i := range m.layers {
						m.layers[i].qNorm, m.layers[i].kNorm = m.layers[i].qNormFull[:16], m.layers[i].kNormFull[:16]
						m.layers[i].qNormFull, m.layers[i].kNormFull = nil, nil
					}
				},
			}
			if tc.olmo3 {
				edits["no sliding window"] = func(m *refModel) { m.layers[0].window = 0 }
				edits["yarn everywhere"] = func(m *refModel) {
					for i := range m.layers {
						m.layers[i].invFreq, m.layers[i].mscale = m.layers[3].invFreq, m.layers[3].mscale
					}
				}
				edits["no yarn"] = func(m *refModel) { m.layers[3].invFreq, m.layers[3].mscale = nil, 0 }
			}
			checkSensitive(t, ctx, prompts, func() *refModel { return olmoReference(t, dir, tc.olmo3, tc.layers) }, edits)
		})
	}
}

// TestOLMoErrors: OLMo checkpoints llama.cpp's olmo2 graph cannot run are
// refused with the reason.
func TestOLMoErrors(t *testing.T) {
	setCfg := setConfig
	for _, tc := range []struct {
		name   string
		olmo3  bool
		edit   func(map[string]any, []stTensor) []stTensor
		target error
		want   string
	}{
		{"an input norm", false, func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.input_layernorm.weight", []int64{64}, make([]float32, 64)))
		}, convert.ErrUnsupported, "input_layernorm"},
		{"per-head q norms", false, func(_ map[string]any, ts []stTensor) []stTensor {
			ts = slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "model.layers.1.self_attn.q_norm.weight" })
			return append(ts, f32Tensor("model.layers.1.self_attn.q_norm.weight", []int64{16}, make([]float32, 16)))
		}, convert.ErrMismatch, "config.json implies [64]"},
		{"a missing post norm", false, func(_ map[string]any, ts []stTensor) []stTensor {
			return slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "model.layers.0.post_feedforward_layernorm.weight" })
		}, convert.ErrMismatch, "blk.0.post_ffw_norm"},
		{"another head size", false, setCfg("head_dim", 32), convert.ErrUnsupported, "head_dim 32"},
		{"full attention everywhere", true, setCfg("layer_types", []string{"full_attention", "full_attention", "full_attention", "full_attention"}), convert.ErrUnsupported, "layer_types"},
		{"layer_types of the wrong length", true, setCfg("layer_types", []string{"sliding_attention"}), convert.ErrMismatch, "1 entries for 4 layers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layers := 2
			if tc.olmo3 {
				layers = 4
			}
			dir := olmoFixture(t, tc.olmo3, layers, tc.edit)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %v naming %q", err, tc.target, tc.want)
			}
		})
	}
}

// olmoeCase is a tiny OLMoE checkpoint: tiny-llama-st's attention with 4
// KV heads and whole-projection q/k norms (both added by olmoeNorms), and 4 random experts
// of 48 per layer, 2 used, their weights not renormalised.
var olmoeCase = moeCase{
	name: "OLMoE", base: "tiny-llama-st", arch: "olmoe",
	config: map[string]any{"architectures": []string{"OlmoeForCausalLM"}, "model_type": "olmoe", "num_experts": 4,
		"num_experts_per_tok": 2, "intermediate_size": 48, "norm_topk_prob": false, "clip_qkv": nil},
	router: "mlp.gate.weight",
	expert: func(e int, proj string) string { return fmt.Sprintf("mlp.experts.%d.%s_proj.weight", e, proj) },
	ffn:    48,
	refHP:  refModel{hidden: 64, heads: 4, kvHeads: 4, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(1e4, 16)},
	noNorm: true,
}

// olmoeNorms gives both layers 4 KV heads (random k and v projections, as
// OLMoE has as many as heads) and random q_norm and k_norm weights [64],
// then applies edit (when not nil).
func olmoeNorms(edit func(map[string]any, []stTensor) []stTensor) func(map[string]any, []stTensor) []stTensor {
	return func(cfg map[string]any, ts []stTensor) []stTensor {
		cfg["num_key_value_heads"] = 4
		w := randWeights{rand.New(rand.NewPCG(7, 8))}
		ts = slices.DeleteFunc(ts, func(s stTensor) bool {
			return strings.HasSuffix(s.name, "self_attn.k_proj.weight") || strings.HasSuffix(s.name, "self_attn.v_proj.weight")
		})
		for l := range 2 {
			p := layerPrefix(l)
			ts = append(ts, w.vec(p+"self_attn.q_norm.weight", 64, 1, 0.2), w.vec(p+"self_attn.k_norm.weight", 64, 1, 0.2),
				w.mat(p+"self_attn.k_proj.weight", 64, 64), w.mat(p+"self_attn.v_proj.weight", 64, 64))
		}
		if edit != nil {
			ts = edit(cfg, ts)
		}
		return ts
	}
}

// TestOLMoE converts a tiny OLMoE checkpoint to llama.cpp's olmoe and
// checks the logits against the float64 reference, which would see the
// q/k norms left out or the expert weights renormalised; settings llama.cpp
// cannot follow are refused.
func TestOLMoE(t *testing.T) {
	dir := olmoeCase.fixture(t, olmoeNorms(nil))
	out := filepath.Join(t.TempDir(), "olmoe.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Architecture() != "olmoe" {
		t.Errorf("architecture %q", f.Architecture())
	}
	for key, want := range map[string]uint64{"olmoe.expert_count": 4, "olmoe.expert_used_count": 2, "olmoe.feed_forward_length": 48} {
		if v, ok := f.Uint(key); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
		}
	}
	fresh := func() *refModel {
		m := olmoeCase.reference(t, dir)
		r := openST(t, dir)
		for l := range m.layers {
			m.layers[l].qNormFull, m.layers[l].kNormFull = r.get(layerPrefix(l)+"self_attn.q_norm.weight"), r.get(layerPrefix(l)+"self_attn.k_norm.weight")
		}
		return m
	}
	ctx := refContext(t, out)
	prompts := readReference(t, "tiny-llama-st").Prompts
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
		"q/k norms": func(m *refModel) {
			for l := range m.layers {
				m.layers[l].qNormFull, m.layers[l].kNormFull = nil, nil
			}
		},
		"renormalised expert weights": func(m *refModel) {
			for l := range m.layers {
				m.layers[l].noNorm = false
			}
		},
	})
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"norm_topk_prob true": {setConfig("norm_topk_prob", true), convert.ErrUnsupported},
		"clip_qkv":            {setConfig("clip_qkv", 8.0), convert.ErrUnsupported},
		"head_dim 32":         {setConfig("head_dim", 32), convert.ErrUnsupported},
		"2 KV heads":          {setConfig("num_key_value_heads", 2), convert.ErrUnsupported},
		"gelu":                {setConfig("hidden_act", "gelu"), convert.ErrUnsupported},
		"per-head q_norm": {func(_ map[string]any, ts []stTensor) []stTensor {
			ts = slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "model.layers.1.self_attn.q_norm.weight" })
			return append(ts, f32Tensor("model.layers.1.self_attn.q_norm.weight", []int64{16}, make([]float32, 16)))
		}, convert.ErrMismatch},
		"no k_norm": {dropTensor("model.layers.0.self_attn.k_norm.weight"), convert.ErrMismatch},
	} {
		d := olmoeCase.fixture(t, olmoeNorms(tc.edit))
		if err := convert.Convert(context.Background(), d, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{}); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// olmo1Fixture writes a tiny OLMo 1 checkpoint (no norm weights) and, in a
// directory of its own, the same weights in Llama's layout with norm
// weights of 1 (for the reference): hidden size 64, 4 heads of 16 (2 KV
// heads), an MLP of 96, clip_qkv clip (0: none), tied or untied.
func olmo1Fixture(t *testing.T, clip float64, tied bool, edit func(map[string]any, []stTensor) []stTensor) (olmoDir, llamaDir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(37, 6))
	w := randWeights{r}
	// Large activations, so that a clip of 1.5 clamps some.
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1))}
	if !tied {
		ts = append(ts, w.mat("lm_head.weight", 32000, 64))
	}
	for l := range 2 {
		p := layerPrefix(l)
		ts = append(ts, w.mat(p+"self_attn.q_proj.weight", 64, 64), w.mat(p+"self_attn.k_proj.weight", 32, 64), w.mat(p+"self_attn.v_proj.weight", 32, 64),
			w.mat(p+"self_attn.o_proj.weight", 64, 64), w.mat(p+"mlp.gate_proj.weight", 96, 64), w.mat(p+"mlp.up_proj.weight", 96, 64),
			w.mat(p+"mlp.down_proj.weight", 64, 96))
	}
	ones := func(name string) stTensor {
		v := make([]float32, 64)
		for i := range v {
			v[i] = 1
		}
		return f32Tensor(name, []int64{64}, v)
	}
	llama := append(slices.Clone(ts), ones("model.norm.weight"))
	for l := range 2 {
		llama = append(llama, ones(layerPrefix(l)+"input_layernorm.weight"), ones(layerPrefix(l)+"post_attention_layernorm.weight"))
	}
	llamaDir = t.TempDir()
	llamaCfg := map[string]any{"architectures": []string{"LlamaForCausalLM"}, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
		"num_key_value_heads": 2, "intermediate_size": 96, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 32000}
	copyHFFiles(t, "tiny-llama-st", llamaDir, func(m map[string]any) { clear(m); maps.Copy(m, llamaCfg) })
	finishFixture(t, "tiny-llama-st", llamaDir, llamaCfg, llama, nil)

	cfg := map[string]any{"architectures": []string{"OlmoForCausalLM"}, "model_type": "olmo", "hidden_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96, "rope_theta": 10000.0, "max_position_embeddings": 512,
		"vocab_size": 32000, "hidden_act": "silu", "tie_word_embeddings": tied, "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2}
	if clip > 0 {
		cfg["clip_qkv"] = clip
	}
	olmoDir = t.TempDir()
	copyHFFiles(t, "tiny-llama-st", olmoDir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	return finishFixture(t, "tiny-llama-st", olmoDir, cfg, ts, edit), llamaDir
}

// TestOlmo1 converts OLMo 1 checkpoints (with and without clip_qkv, tied
// and untied) to llama.cpp's olmo and checks the logits against the
// float64 reference (LayerNorms without weights, epsilon 1e-5), which would
// see RMS norms in their place, the rope on pairs (q and k not permuted) or
// no clamp; norm weights in the checkpoint are refused.
func TestOlmo1(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, tc := range []struct {
		clip float64
		tied bool
	}{{0, true}, {1.5, false}} {
		t.Run(fmt.Sprintf("clip=%v", tc.clip), func(t *testing.T) {
			dir, llamaDir := olmo1Fixture(t, tc.clip, tc.tied, nil)
			out, f := convertDir(t, dir, "f32")
			if c, ok := f.Float("olmo.attention.clamp_kqv"); f.Architecture() != "olmo" || ok != (tc.clip > 0) || ok && c != tc.clip {
				t.Errorf("arch %q, clamp_kqv %v (%v)", f.Architecture(), c, ok)
			}
			if eps, ok := f.Float("olmo.attention.layer_norm_epsilon"); !ok || math.Abs(eps-1e-5) > 1e-12 {
				t.Errorf("layer_norm_epsilon %v (%v), want 1e-5", eps, ok)
			}
			fresh := func() *refModel {
				return loadLlamaRef(t, llamaDir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
					layerNorm: true, clampQKV: tc.clip}, 2)
			}
			ctx := refContext(t, out)
			checkRef(t, ctx, prompts, fresh().forward, 1e-5)
			edits := map[string]func(*refModel){
				"RMS norms":     func(m *refModel) { m.layerNorm = false },
				"rope on pairs": func(m *refModel) { m.ropePairs = true },
			}
			if tc.clip > 0 {
				edits["no clamp"] = func(m *refModel) { m.clampQKV = 0 }
			}
			checkSensitive(t, ctx, prompts, fresh, edits)
		})
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"a norm weight": func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.input_layernorm.weight", []int64{64}, make([]float32, 64)))
		},
		"a final norm weight": func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.norm.weight", []int64{64}, make([]float32, 64)))
		},
		"clip_qkv 0": setConfig("clip_qkv", 0),
	} {
		dir, _ := olmo1Fixture(t, 0, true, edit)
		err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) && !errors.Is(err, convert.ErrMismatch) {
			t.Errorf("%s: %v, want a refusal", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
