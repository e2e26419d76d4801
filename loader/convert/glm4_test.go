package convert_test

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// GLM-4's tiny shape: hidden 64 in 4 heads of 16 (2 KV heads), the first
// half of each head rotated, MLP 96.
const glm4Hidden, glm4Heads, glm4KV, glm4HeadDim, glm4FFN, glm4Layers = 64, 4, 2, 16, 96, 2

// glm4Fixture writes a random GLM-4 with tiny-llama-st's tokenizer; edit
// changes it.
func glm4Fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"Glm4ForCausalLM"}, "model_type": "glm4",
		"hidden_size": glm4Hidden, "num_hidden_layers": glm4Layers, "num_attention_heads": glm4Heads, "num_key_value_heads": glm4KV,
		"head_dim": glm4HeadDim, "partial_rotary_factor": 0.5, "attention_bias": true, "intermediate_size": glm4FFN,
		"rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048, "vocab_size": dsVocab,
		"tie_word_embeddings": false, "eos_token_id": []int{2},
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(9, 4))
	H, Q, KV, F := int64(glm4Hidden), int64(glm4Heads*glm4HeadDim), int64(glm4KV*glm4HeadDim), int64(glm4FFN)
	w := randWeights{r}
	mat, vec := w.mat, w.vec
	ts := []stTensor{
		f32Tensor("model.embed_tokens.weight", []int64{dsVocab, H}, randn(r, dsVocab*glm4Hidden, 1)),
		vec("model.norm.weight", H, 1, 0.1), mat("lm_head.weight", dsVocab, H),
	}
	for l := range glm4Layers {
		p := layerPrefix(l)
		ts = append(ts, vec(p+"input_layernorm.weight", H, 1, 0.1), vec(p+"post_self_attn_layernorm.weight", H, 1, 0.1),
			vec(p+"post_attention_layernorm.weight", H, 1, 0.1), vec(p+"post_mlp_layernorm.weight", H, 1, 0.1),
			mat(p+"self_attn.q_proj.weight", Q, H), mat(p+"self_attn.k_proj.weight", KV, H), mat(p+"self_attn.v_proj.weight", KV, H),
			vec(p+"self_attn.q_proj.bias", Q, 0, 0.3), vec(p+"self_attn.k_proj.bias", KV, 0, 0.3), vec(p+"self_attn.v_proj.bias", KV, 0, 0.3),
			mat(p+"self_attn.o_proj.weight", H, Q), mat(p+"mlp.gate_up_proj.weight", 2*F, H), mat(p+"mlp.down_proj.weight", H, F))
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// glm4Reference is the float64 GLM-4 of the checkpoint in dir
// (transformers' Glm4: rotate_half_llm on interleaved pairs, sandwich
// norms, gate and up the halves of gate_up_proj).
func glm4Reference(t *testing.T, dir string) *refModel {
	t.Helper()
	r := openST(t, dir)
	m := &refModel{hidden: glm4Hidden, heads: glm4Heads, kvHeads: glm4KV, headDim: glm4HeadDim, eps: 1e-5,
		invFreq: defaultInvFreq(10000, glm4HeadDim/2), ropePairs: true}
	m.emb, m.out, m.norm = r.get("model.embed_tokens.weight"), r.get("lm_head.weight"), r.get("model.norm.weight")
	for l := range glm4Layers {
		p := layerPrefix(l)
		gu := r.get(p + "mlp.gate_up_proj.weight")
		m.layers = append(m.layers, refLayer{attnNorm: r.get(p + "input_layernorm.weight"), postAttnNorm: r.get(p + "post_self_attn_layernorm.weight"),
			ffnNorm: r.get(p + "post_attention_layernorm.weight"), postFFNNorm: r.get(p + "post_mlp_layernorm.weight"),
			wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"), wv: r.get(p + "self_attn.v_proj.weight"),
			bq: r.get(p + "self_attn.q_proj.bias"), bk: r.get(p + "self_attn.k_proj.bias"), bv: r.get(p + "self_attn.v_proj.bias"),
			wo: r.get(p + "self_attn.o_proj.weight"), wg: gu[:len(gu)/2], wu: gu[len(gu)/2:], wd: r.get(p + "mlp.down_proj.weight"), ffn: glm4FFN})
	}
	return m
}

// TestGLM4 converts a GLM-4 checkpoint to llama.cpp's glm4 and checks the
// logits against the float64 reference, which would see each feature left
// out; checkpoints llama.cpp's glm4 cannot take are refused.
func TestGLM4(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := glm4Fixture(t, nil)
	out := filepath.Join(t.TempDir(), "glm4.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Uint("glm4.rope.dimension_count"); f.Architecture() != "glm4" || v != glm4HeadDim/2 {
		t.Errorf("arch %q, rope.dimension_count %d", f.Architecture(), v)
	}
	if ti, ok := f.Tensor("blk.0.ffn_up.weight"); !ok || ti.Shape[1] != 2*glm4FFN {
		t.Errorf("ffn_up %+v %v, want the fused gate and up", ti, ok)
	}
	// Without partial_rotary_factor, Glm4Config's 0.5.
	noPartial := glm4Fixture(t, func(cfg map[string]any, ts []stTensor) []stTensor { delete(cfg, "partial_rotary_factor"); return ts })
	out2 := filepath.Join(t.TempDir(), "glm4.gguf")
	if err := convert.Convert(context.Background(), noPartial, out2, convert.Options{Type: "f16", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if f2, err := gguf.Open(out2); err != nil {
		t.Fatal(err)
	} else if v, _ := f2.Uint("glm4.rope.dimension_count"); v != glm4HeadDim/2 {
		t.Errorf("no partial_rotary_factor: rope.dimension_count %d, want %d", v, glm4HeadDim/2)
	}
	ctx := refContext(t, out)
	fresh := func() *refModel { return glm4Reference(t, dir) }
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
		"interleaved rope": func(m *refModel) { m.ropePairs = false },
		"post-attention norm": func(m *refModel) {
			for i := range m.layers {
				m.layers[i].postAttnNorm = nil
			}
		},
		"post-MLP norm": func(m *refModel) {
			for i := range m.layers {
				m.layers[i].postFFNNorm = nil
			}
		},
		"gate and up swapped": func(m *refModel) {
			for i := range m.layers {
				m.layers[i].wg, m.layers[i].wu = m.layers[i].wu, m.layers[i].wg
			}
		},
		"partial rope": func(m *refModel) { m.invFreq = defaultInvFreq(10000, glm4HeadDim) },
	})
	for _, tc := range []struct {
		name string
		edit func(map[string]any, []stTensor) []stTensor
		msg  string
	}{
		{"split gate and up", func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.mlp.gate_proj.weight", []int64{glm4FFN, glm4Hidden}, make([]float32, glm4FFN*glm4Hidden)))
		}, "fused gate_up_proj"},
		{"output bias", func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.self_attn.o_proj.bias", []int64{glm4Hidden}, make([]float32, glm4Hidden)))
		}, "output bias"},
		{"head_dim × heads ≠ hidden", setConfig("head_dim", 32), "hidden size"},
	} {
		dir := glm4Fixture(t, tc.edit)
		err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want ErrUnsupported naming %q", tc.name, err, tc.msg)
		}
	}
}

// TestGLM4V converts GLM-4.1V's layout of the GLM-4 fixture (text_config
// with a multimodal rope, model.language_model.*, a vision tower) and
// checks it gives the text model's logits.
func TestGLM4V(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	plain := glm4Fixture(t, nil)
	vl := glm4Fixture(t, glmVisionLayout("Glm4vForConditionalGeneration", "glm4v"))
	outPlain, _ := convertDir(t, plain, "f32")
	outVL, f := convertDir(t, vl, "f32")
	if v, _ := f.Uint("glm4.rope.dimension_count"); f.Architecture() != "glm4" || v != glm4HeadDim/2 {
		t.Errorf("arch %q, rope.dimension_count %d", f.Architecture(), v)
	}
	checkSameLogits(t, prompts, outPlain, outVL, "GLM-4.1V's layout")
}

// glmVisionLayout is a fixture edit that writes a GLM text checkpoint in
// its vision-language model's layout (GLM-4.1V's, GLM-4.5V's): the config
// as text_config (model_type modelType+"_text") with a multimodal rope of
// 8 rotated dimensions (4 frequencies in temporal, height and width
// sections, one position for text), the tensors under
// model.language_model., and a vision tower.
func glmVisionLayout(arch, modelType string) func(map[string]any, []stTensor) []stTensor {
	return func(cfg map[string]any, ts []stTensor) []stTensor {
		text := maps.Clone(cfg)
		text["model_type"] = modelType + "_text"
		delete(text, "architectures")
		text["rope_scaling"] = map[string]any{"rope_type": "default", "mrope_section": []int{2, 1, 1}}
		clear(cfg)
		cfg["architectures"], cfg["model_type"], cfg["text_config"] = []string{arch}, modelType, text
		cfg["vision_config"] = map[string]any{"hidden_size": 8}
		for i := range ts {
			if strings.HasPrefix(ts[i].name, "model.") {
				ts[i].name = "model.language_model." + strings.TrimPrefix(ts[i].name, "model.")
			}
		}
		return append(ts, f32Tensor("model.visual.patch_embed.proj.weight", []int64{8, 8}, make([]float32, 64)))
	}
}

// checkSameLogits checks that the models at a and b choose the same next
// token after each prompt, with the same logits.
func checkSameLogits(t *testing.T, prompts []refPrompt, a, b, what string) {
	t.Helper()
	ca, cb := refContext(t, a), refContext(t, b)
	for _, p := range prompts {
		_, want := greedy(t, ca, toTokens(p.PromptIDs), 1)
		_, got := greedy(t, cb, toTokens(p.PromptIDs), 1)
		if !slices.Equal(got, want) {
			t.Errorf("%q: %s gives other logits than the text model's", p.Text, what)
		}
	}
}

// glmLayout is a fixture edit that writes the GLM-4 fixture as a GLM
// (GlmForCausalLM) checkpoint: GLM-4's blocks without the sandwich norms.
func glmLayout(cfg map[string]any, ts []stTensor) []stTensor {
	cfg["architectures"], cfg["model_type"] = []string{"GlmForCausalLM"}, "glm"
	return slices.DeleteFunc(ts, func(s stTensor) bool {
		return strings.HasSuffix(s.name, "post_self_attn_layernorm.weight") || strings.HasSuffix(s.name, "post_mlp_layernorm.weight")
	})
}

// TestGLM converts a GLM (GlmForCausalLM: GLM-4-9B-Chat-HF, GLM-Edge)
// checkpoint to llama.cpp's chatglm and checks the logits against the
// float64 reference of GLM-4's fixture without its sandwich norms; a
// checkpoint with them is refused.
func TestGLM(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := glm4Fixture(t, glmLayout)
	out, f := convertDir(t, dir, "f32")
	if v, _ := f.Uint("chatglm.rope.dimension_count"); f.Architecture() != "chatglm" || v != glm4HeadDim/2 {
		t.Errorf("arch %q, rope.dimension_count %d", f.Architecture(), v)
	}
	for _, name := range []string{"blk.0.post_attention_norm.weight", "blk.0.post_ffw_norm.weight"} {
		if _, ok := f.Tensor(name); ok {
			t.Errorf("%s written", name)
		}
	}
	// Without rms_norm_eps, GlmConfig's 1.5625e-7.
	_, noEps := convertDir(t, glm4Fixture(t, func(cfg map[string]any, ts []stTensor) []stTensor {
		delete(cfg, "rms_norm_eps")
		return glmLayout(cfg, ts)
	}), "f16")
	if v, _ := noEps.Float("chatglm.attention.layer_norm_rms_epsilon"); float32(v) != float32(1.5625e-7) {
		t.Errorf("no rms_norm_eps: epsilon %g, want GlmConfig's 1.5625e-7", v)
	}
	// The fixture's other weights are the GLM-4 fixture's.
	glm4Dir := glm4Fixture(t, nil)
	fresh := func() *refModel {
		m := glm4Reference(t, glm4Dir)
		for i := range m.layers {
			m.layers[i].postAttnNorm, m.layers[i].postFFNNorm = nil, nil
		}
		return m
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
		"interleaved rope": func(m *refModel) { m.ropePairs = false },
		"partial rope":     func(m *refModel) { m.invFreq = defaultInvFreq(10000, glm4HeadDim) },
		"GLM-4's sandwich norms": func(m *refModel) {
			with := glm4Reference(t, glm4Dir)
			for i := range m.layers {
				m.layers[i].postAttnNorm, m.layers[i].postFFNNorm = with.layers[i].postAttnNorm, with.layers[i].postFFNNorm
			}
		},
	})
	sandwich := glm4Fixture(t, func(cfg map[string]any, ts []stTensor) []stTensor {
		glmLayout(cfg, nil)
		return ts
	})
	err := convert.Convert(context.Background(), sandwich, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "sandwich norms") {
		t.Errorf("GLM with GLM-4's post norms: %v, want ErrUnsupported naming the sandwich norms", err)
	}
}
