package convert_test

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/loader/convert"
)

// The DeepSeek-MoE fixture: hidden 64, 4 heads of 16 (2 key/value heads,
// so that k's permutation is checked apart from q's), one dense layer of
// 48, then two with 8 experts of 16 (3 used) and 2 shared ones.
const (
	dsmLayers, dsmFFN, dsmExpertFFN, dsmExperts, dsmUsed, dsmShared = 3, 48, 16, 8, 3, 2
)

// dsmFixture writes a tiny DeepseekForCausalLM checkpoint (tiny-llama-st's
// tokenizer).
func dsmFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"DeepseekForCausalLM"}, "model_type": "deepseek", "hidden_size": 64, "num_attention_heads": 4,
		"num_key_value_heads": 2, "num_hidden_layers": dsmLayers, "intermediate_size": dsmFFN, "moe_intermediate_size": dsmExpertFFN,
		"n_routed_experts": dsmExperts, "num_experts_per_tok": dsmUsed, "n_shared_experts": dsmShared, "first_k_dense_replace": 1,
		"moe_layer_freq": 1, "norm_topk_prob": false, "scoring_func": "softmax", "attention_bias": false, "hidden_act": "silu",
		"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 4096, "vocab_size": 32000, "tie_word_embeddings": false,
		"bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(53, 1))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("model.norm.weight", 64, 1, 0.1), w.mat("lm_head.weight", 32000, 64)}
	for l := range dsmLayers {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"input_layernorm.weight", 64, 1, 0.1), w.vec(p+"post_attention_layernorm.weight", 64, 1, 0.1),
			w.mat(p+"self_attn.q_proj.weight", 64, 64), w.mat(p+"self_attn.k_proj.weight", 32, 64), w.mat(p+"self_attn.v_proj.weight", 32, 64),
			w.mat(p+"self_attn.o_proj.weight", 64, 64))
		ts = append(ts, w.smoeMLP(p, 64, l == 0, dsmFFN, dsmExperts, dsmExpertFFN, dsmShared*dsmExpertFFN, "")...)
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// dsmReference is DeepSeek-MoE's modeling code of the checkpoint in dir
// in float64, with its MLP's reference for the edits.
func dsmReference(t *testing.T, dir string, edit func(*smoeRef)) *refModel {
	t.Helper()
	r := openST(t, dir)
	moe := &smoeRef{hidden: 64, experts: dsmExperts, used: dsmUsed, expertFFN: dsmExpertFFN, sharedFFN: dsmShared * dsmExpertFFN, scale: 1}
	if edit != nil {
		edit(moe)
	}
	m := &refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: defaultInvFreq(10000, 16)}
	m.emb, m.out, m.norm = r.get("model.embed_tokens.weight"), r.get("lm_head.weight"), r.get("model.norm.weight")
	for l := range dsmLayers {
		p := layerPrefix(l)
		L := llamaAttention(r, p)
		moe.layerMLP(r, &L, p, l == 0, dsmFFN, "")
		m.layers = append(m.layers, L)
	}
	return m
}

// TestDeepseekMoE converts a tiny DeepSeek-MoE to llama.cpp's deepseek and
// checks the metadata and the logits against the float64 reference, which
// would see the permutation of q and k, the shared experts and a
// renormalisation of the top-k weights; what llama.cpp's deepseek does not
// run is refused.
func TestDeepseekMoE(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := dsmFixture(t, nil)
	out, f := convertDir(t, dir, "f32")
	for k, want := range map[string]float64{"leading_dense_block_count": 1, "expert_count": dsmExperts, "expert_used_count": dsmUsed,
		"expert_shared_count": dsmShared, "expert_feed_forward_length": dsmExpertFFN, "expert_weights_scale": 1, "attention.head_count_kv": 2} {
		if v, ok := f.Float("deepseek." + k); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
		}
	}
	if _, ok := f.Tensor("blk.1.ffn_gate_exps.weight"); f.Architecture() != "deepseek" || !ok {
		t.Errorf("arch %q, blk.1.ffn_gate_exps.weight %v", f.Architecture(), ok)
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, dsmReference(t, dir, nil).forward, 1e-5)
	checkSensitive(t, ctx, prompts, func() *refModel { return dsmReference(t, dir, nil) }, map[string]func(*refModel){
		"q and k unpermuted": func(m *refModel) { m.ropePairs = true },
		"shared experts":     func(m *refModel) { *m = *dsmReference(t, dir, func(s *smoeRef) { s.noShared = true }) },
		"top-k renormalised": func(m *refModel) { *m = *dsmReference(t, dir, func(s *smoeRef) { s.norm = true }) },
	})
	// DeepSeek-MoE's defaults: no renormalisation; a routed_scaling_factor
	// (not DeepSeek-MoE's) applies nothing.
	_, fd := convertDir(t, dsmFixture(t, func(c map[string]any, ts []stTensor) []stTensor {
		delete(c, "norm_topk_prob")
		c["routed_scaling_factor"] = 2.5
		return ts
	}), "f32")
	if scale, _ := fd.Float("deepseek.expert_weights_scale"); scale != 1 {
		t.Errorf("expert_weights_scale %v, want 1", scale)
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"norm_topk_prob":    setConfig("norm_topk_prob", true),
		"sigmoid":           setConfig("scoring_func", "sigmoid"),
		"attention biases":  setConfig("attention_bias", true),
		"moe_layer_freq 2":  setConfig("moe_layer_freq", 2),
		"no shared experts": setConfig("n_shared_experts", 0),
	} {
		err := convert.Convert(context.Background(), dsmFixture(t, edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
