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

// The dots.llm1 fixture: hidden 64, 4 heads of 16 (as many key/value
// heads), one dense layer of 48, then two with 8 experts of 16 (3 used),
// one shared expert, routed_scaling_factor 2.5, the top-k weights
// renormalised.
const dotsLayers, dotsFFN, dotsExpertFFN, dotsExperts, dotsUsed = 3, 48, 16, 8, 3

func dots1Fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"Dots1ForCausalLM"}, "model_type": "dots1", "hidden_size": 64, "num_attention_heads": 4,
		"num_key_value_heads": 4, "head_dim": 16, "num_hidden_layers": dotsLayers, "intermediate_size": dotsFFN, "moe_intermediate_size": dotsExpertFFN,
		"n_routed_experts": dotsExperts, "num_experts_per_tok": dotsUsed, "n_shared_experts": 1, "first_k_dense_replace": 1, "n_group": 1,
		"topk_group": 1, "norm_topk_prob": true, "routed_scaling_factor": 2.5, "scoring_func": "noaux_tc", "attention_bias": false,
		"hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 32768, "sliding_window": nil,
		"vocab_size": 32000, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(67, 5))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("model.norm.weight", 64, 1, 0.1), w.mat("lm_head.weight", 32000, 64)}
	for l := range dotsLayers {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"input_layernorm.weight", 64, 1, 0.1), w.vec(p+"post_attention_layernorm.weight", 64, 1, 0.1),
			w.mat(p+"self_attn.q_proj.weight", 64, 64), w.mat(p+"self_attn.k_proj.weight", 64, 64), w.mat(p+"self_attn.v_proj.weight", 64, 64),
			w.mat(p+"self_attn.o_proj.weight", 64, 64), w.vec(p+"self_attn.q_norm.weight", 16, 1, 0.2), w.vec(p+"self_attn.k_norm.weight", 16, 1, 0.2))
		ts = append(ts, w.smoeMLP(p, 64, l == 0, dotsFFN, dotsExperts, dotsExpertFFN, dotsExpertFFN, dsBias)...)
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// dots1Reference is transformers' Dots1 of the checkpoint in dir in
// float64; edit changes its MLP's routing.
func dots1Reference(t *testing.T, dir string, edit func(*smoeRef)) *refModel {
	t.Helper()
	r := openST(t, dir)
	moe := &smoeRef{hidden: 64, experts: dotsExperts, used: dotsUsed, expertFFN: dotsExpertFFN, sharedFFN: dotsExpertFFN, sigmoid: true, norm: true, scale: 2.5}
	if edit != nil {
		edit(moe)
	}
	m := &refModel{hidden: 64, heads: 4, kvHeads: 4, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}
	m.emb, m.out, m.norm = r.get("model.embed_tokens.weight"), r.get("lm_head.weight"), r.get("model.norm.weight")
	for l := range dotsLayers {
		p := layerPrefix(l)
		L := llamaAttention(r, p)
		moe.layerMLP(r, &L, p, l == 0, dotsFFN, dsBias)
		m.layers = append(m.layers, L)
	}
	return m
}

// TestDots1 converts a tiny dots.llm1 to llama.cpp's dots1 and checks the
// metadata and the logits against the float64 reference, which would see
// the selection bias, the shared expert, the scaling, the renormalisation,
// the q/k norms and the groups of experts left out; what llama.cpp's dots1
// does not run is refused.
func TestDots1(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := dots1Fixture(t, nil)
	out, f := convertDir(t, dir, "f32")
	for k, want := range map[string]float64{"leading_dense_block_count": 1, "expert_count": dotsExperts, "expert_used_count": dotsUsed,
		"expert_shared_count": 1, "expert_feed_forward_length": dotsExpertFFN, "expert_weights_scale": 2.5, "expert_gating_func": 2} {
		if v, ok := f.Float("dots1." + k); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
		}
	}
	if norm, _ := f.Bool("dots1.expert_weights_norm"); f.Architecture() != "dots1" || !norm {
		t.Errorf("arch %q, expert_weights_norm %v", f.Architecture(), norm)
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, dots1Reference(t, dir, nil).forward, 1e-5)
	moeEdit := func(e func(*smoeRef)) func(*refModel) {
		return func(m *refModel) { *m = *dots1Reference(t, dir, e) }
	}
	checkSensitive(t, ctx, prompts, func() *refModel { return dots1Reference(t, dir, nil) }, map[string]func(*refModel){
		"selection bias":   moeEdit(func(s *smoeRef) { s.noBias = true }),
		"shared expert":    moeEdit(func(s *smoeRef) { s.noShared = true }),
		"routed scaling":   moeEdit(func(s *smoeRef) { s.scale = 1 }),
		"no renormalising": moeEdit(func(s *smoeRef) { s.norm = false }),
		"rope on pairs":    func(m *refModel) { m.ropePairs = true },
		"q/k norms": func(m *refModel) {
			for i := range m.layers {
				m.layers[i].qNorm, m.layers[i].kNorm = nil, nil
			}
		},
	})
	// Grouped routing: the experts chosen within the best of 2 groups.
	grouped := dots1Fixture(t, func(c map[string]any, ts []stTensor) []stTensor {
		c["n_group"], c["topk_group"] = 2, 1
		return ts
	})
	gOut, gf := convertDir(t, grouped, "f32")
	if n, _ := gf.Uint("dots1.expert_group_count"); n != 2 {
		t.Errorf("grouped: expert_group_count %d", n)
	}
	gctx := refContext(t, gOut)
	groupedRef := func(e func(*smoeRef)) *refModel {
		return dots1Reference(t, grouped, func(s *smoeRef) {
			s.groups, s.groupsUsed = 2, 1
			if e != nil {
				e(s)
			}
		})
	}
	checkRef(t, gctx, prompts, groupedRef(nil).forward, 1e-5)
	checkSensitive(t, gctx, prompts, func() *refModel { return groupedRef(nil) }, map[string]func(*refModel){
		"no groups": func(m *refModel) { *m = *groupedRef(func(s *smoeRef) { s.noGroups = true }) },
	})
	// Dots1Config's default: the top-k weights as they are.
	_, fd := convertDir(t, dots1Fixture(t, func(c map[string]any, ts []stTensor) []stTensor { delete(c, "norm_topk_prob"); return ts }), "f32")
	if norm, ok := fd.Bool("dots1.expert_weights_norm"); !ok || norm {
		t.Errorf("norm_topk_prob left out: expert_weights_norm %v (%v), want false", norm, ok)
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"grouped key/value heads": setConfig("num_key_value_heads", 2),
		"sliding layers": func(c map[string]any, ts []stTensor) []stTensor {
			c["sliding_window"], c["max_window_layers"] = 4096, 2
			return ts
		},
		"sliding layer_types": setConfig("layer_types", []string{"full_attention", "sliding_attention", "full_attention"}),
		"Dots1Config's default window": func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "sliding_window")
			c["max_window_layers"] = 2
			return ts
		},
	} {
		err := convert.Convert(context.Background(), dots1Fixture(t, edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
