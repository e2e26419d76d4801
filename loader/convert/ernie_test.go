package convert_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// ernieFixture writes tiny-llama-st as an ERNIE 4.5 checkpoint (whose
// rope turns interleaved pairs) with tied embeddings; with headDim 32 its
// attention projections are random ones for 4 heads of 32 over the hidden
// size of 64, as ERNIE-4.5-0.3B's heads × head_dim exceed its hidden size.
// edit changes it.
func ernieFixture(t *testing.T, headDim int, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		m["architectures"], m["model_type"], m["use_bias"], m["tie_word_embeddings"] = []string{"Ernie4_5ForCausalLM"}, "ernie4_5", false, true
		m["head_dim"] = headDim
		cfg = m
	})
	w := randWeights{rand.New(rand.NewPCG(9, 10))}
	var ts []stTensor
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil) {
		if s.name == "lm_head.weight" {
			continue
		}
		ts = append(ts, w.wideHeads(s, headDim))
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// TestErnie45 converts ERNIE 4.5 checkpoints (head_dim 16, and 32 with
// heads × head_dim twice the hidden size) to llama.cpp's ernie4_5 and
// checks the logits against the float64 reference, which would see the
// rope on halves instead of interleaved pairs; use_bias is refused.
func TestErnie45(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, hd := range []int{16, 32} {
		dir := ernieFixture(t, hd, nil)
		out := filepath.Join(t.TempDir(), "ernie.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Architecture() != "ernie4_5" {
			t.Errorf("architecture %q", f.Architecture())
		}
		if v, ok := f.Uint("ernie4_5.attention.key_length"); (hd == 32) != ok || ok && v != 32 {
			t.Errorf("head_dim %d: key_length %d (%v)", hd, v, ok)
		}
		fresh := func() *refModel {
			return loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: hd, eps: 1e-5, invFreq: defaultInvFreq(10000, hd), ropePairs: true}, 2)
		}
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh().forward, 1e-5)
		checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
			"interleaved rope": func(m *refModel) { m.ropePairs = false },
		})
	}
	// Without rope_theta, rms_norm_eps and tie_word_embeddings,
	// Ernie4_5Config's defaults: 500000, 1e-5, tied.
	bare := ernieFixture(t, 16, func(c map[string]any, ts []stTensor) []stTensor {
		delete(c, "rope_theta")
		delete(c, "rms_norm_eps")
		delete(c, "tie_word_embeddings")
		return ts
	})
	out := filepath.Join(t.TempDir(), "bare.gguf")
	if err := convert.Convert(context.Background(), bare, out, convert.Options{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil {
		t.Fatal(err)
	} else {
		theta, _ := f.Float("ernie4_5.rope.freq_base")
		eps, _ := f.Float("ernie4_5.attention.layer_norm_rms_epsilon")
		if _, untied := f.Tensor("output.weight"); theta != 500000 || float32(eps) != 1e-5 || untied {
			t.Errorf("defaults: freq_base %v, eps %v, output.weight %v", theta, eps, untied)
		}
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"use_bias": setConfig("use_bias", true),
		"gelu":     setConfig("hidden_act", "gelu"),
		"a q bias": func(_ map[string]any, ts []stTensor) []stTensor {
			b := make([]float32, 64)
			b[3] = 0.25 // a zero bias would be left out
			return append(ts, f32Tensor("model.layers.0.self_attn.q_proj.bias", []int64{64}, b))
		},
	} {
		err := convert.Convert(context.Background(), ernieFixture(t, 16, edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// An ERNIE 4.5 MoE fixture: hidden size 32, 4 heads of 16 (so heads ×
// head_dim is twice the hidden size, which the arch allows), one dense
// layer of 48 then two with 8 experts of 16 (3 used) and 2 shared ones,
// and multi-token-prediction tensors.
const (
	ernieHidden, ernieHeads, ernieKV, ernieHeadDim, ernieLayers    = 32, 4, 2, 16, 3
	ernieFFN, ernieExpertFFN, ernieExperts, ernieUsed, ernieShared = 48, 16, 8, 3, 2
)

func ernieMoEFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"Ernie4_5_MoeForCausalLM"}, "model_type": "ernie4_5_moe",
		"hidden_size": ernieHidden, "num_hidden_layers": ernieLayers, "num_attention_heads": ernieHeads, "num_key_value_heads": ernieKV,
		"head_dim": ernieHeadDim, "intermediate_size": ernieFFN, "moe_intermediate_size": ernieExpertFFN,
		"moe_num_experts": ernieExperts, "moe_k": ernieUsed, "moe_num_shared_experts": ernieShared,
		"moe_layer_start_index": 1, "moe_layer_end_index": ernieLayers - 1, "moe_layer_interval": 1, "moe_use_aux_free": true,
		"use_bias": false, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048, "vocab_size": 32000,
		"tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(11, 12))
	w := randWeights{r}
	H, Q, KV, I, S := int64(ernieHidden), int64(ernieHeads*ernieHeadDim), int64(ernieKV*ernieHeadDim), int64(ernieExpertFFN), int64(ernieShared*ernieExpertFFN)
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, H}, randn(r, 32000*ernieHidden, 1)), w.vec("model.norm.weight", H, 1, 0.1),
		w.mat("model.mtp_block.0.self_attn.q_proj.weight", Q, H), w.vec("model.mtp_emb_norm.0.weight", H, 1, 0), w.mat("model.mtp_linear_proj.0.weight", H, 2*H)}
	for l := range ernieLayers {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"input_layernorm.weight", H, 1, 0.1), w.vec(p+"post_attention_layernorm.weight", H, 1, 0.1),
			w.mat(p+"self_attn.q_proj.weight", Q, H), w.mat(p+"self_attn.k_proj.weight", KV, H), w.mat(p+"self_attn.v_proj.weight", KV, H),
			w.mat(p+"self_attn.o_proj.weight", H, Q))
		if l == 0 {
			ts = append(ts, w.mat(p+"mlp.gate_proj.weight", ernieFFN, H), w.mat(p+"mlp.up_proj.weight", ernieFFN, H), w.mat(p+"mlp.down_proj.weight", H, ernieFFN))
			continue
		}
		bias := w.vec(p+"mlp.moe_statics.e_score_correction_bias", ernieExperts, 0, 0.1)
		bias.shape = []int64{1, ernieExperts}
		ts = append(ts, w.mat(p+"mlp.gate.weight", ernieExperts, H), bias,
			w.mat(p+"mlp.shared_experts.gate_proj.weight", S, H), w.mat(p+"mlp.shared_experts.up_proj.weight", S, H),
			w.mat(p+"mlp.shared_experts.down_proj.weight", H, S))
		for e := range ernieExperts {
			q := p + "mlp.experts." + strconv.Itoa(e) + "."
			ts = append(ts, w.mat(q+"gate_proj.weight", I, H), w.mat(q+"up_proj.weight", I, H), w.mat(q+"down_proj.weight", H, I))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// ernieMoEReference is the float64 ERNIE 4.5 MoE of the checkpoint in dir
// (transformers' Ernie4_5_Moe: softmax router, the bias only choosing,
// renormalised top-k weights, shared experts added).
func ernieMoEReference(t *testing.T, dir string) (*refModel, *smoeRef) {
	t.Helper()
	r := openST(t, dir)
	moe := &smoeRef{hidden: ernieHidden, experts: ernieExperts, used: ernieUsed, expertFFN: ernieExpertFFN, sharedFFN: ernieShared * ernieExpertFFN, norm: true, scale: 1}
	m := &refModel{hidden: ernieHidden, heads: ernieHeads, kvHeads: ernieKV, headDim: ernieHeadDim, eps: 1e-5, invFreq: defaultInvFreq(10000, ernieHeadDim), ropePairs: true}
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	for l := range ernieLayers {
		p := layerPrefix(l)
		L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "post_attention_layernorm.weight"),
			wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"), wv: r.get(p + "self_attn.v_proj.weight"),
			wo: r.get(p + "self_attn.o_proj.weight")}
		if l == 0 {
			L.wg, L.wu, L.wd, L.ffn = r.get(p+"mlp.gate_proj.weight"), r.get(p+"mlp.up_proj.weight"), r.get(p+"mlp.down_proj.weight"), ernieFFN
		} else {
			ml := readSMoE(r, p, ernieExperts, "")
			ml.bias = r.get(p + "mlp.moe_statics.e_score_correction_bias")
			L.mlp = func(h []float64) []float64 { return moe.forward(ml, h) }
		}
		m.layers = append(m.layers, L)
	}
	return m, moe
}

// TestErnie45MoE converts an ERNIE 4.5 MoE checkpoint to llama.cpp's
// ernie4_5-moe, checks its keys and the logits against the float64
// reference, which would see the shared experts, the selection bias, the
// renormalisation or the interleaved rope left out; layouts llama.cpp
// cannot run are refused.
func TestErnie45MoE(t *testing.T) {
	dir := ernieMoEFixture(t, nil)
	out := filepath.Join(t.TempDir(), "ernie-moe.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Architecture() != "ernie4_5-moe" {
		t.Errorf("architecture %q", f.Architecture())
	}
	for key, want := range map[string]uint64{"expert_count": ernieExperts, "expert_used_count": ernieUsed, "expert_feed_forward_length": ernieExpertFFN,
		"expert_shared_feed_forward_length": ernieShared * ernieExpertFFN, "leading_dense_block_count": 1, "interleave_moe_layer_step": 1,
		"feed_forward_length": ernieFFN, "attention.key_length": ernieHeadDim} {
		if v, ok := f.Uint("ernie4_5-moe." + key); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
		}
	}
	if ti, ok := f.Tensor("blk.1.exp_probs_b.bias"); !ok || len(ti.Shape) != 1 || ti.Shape[0] != ernieExperts {
		t.Errorf("exp_probs_b: %v %+v", ok, ti)
	}
	ref, _ := ernieMoEReference(t, dir)
	ctx := refContext(t, out)
	prompts := readReference(t, "tiny-llama-st").Prompts
	checkRef(t, ctx, prompts, ref.forward, 1e-5)
	fresh := func() *refModel { m, _ := ernieMoEReference(t, dir); return m }
	moeEdit := func(f func(*smoeRef)) func(*refModel) {
		return func(m *refModel) { // the layers' closures read their smoeRef: rebuild with the edit
			m2, moe := ernieMoEReference(t, dir)
			f(moe)
			*m = *m2
		}
	}
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
		"shared experts":   moeEdit(func(s *smoeRef) { s.noShared = true }),
		"selection bias":   moeEdit(func(s *smoeRef) { s.noBias = true }),
		"renormalisation":  moeEdit(func(s *smoeRef) { s.norm = false }),
		"interleaved rope": func(m *refModel) { m.ropePairs = false },
	})
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"moe_layer_interval 2":    {setConfig("moe_layer_interval", 2), convert.ErrUnsupported},
		"moe_layer_end_index 1":   {setConfig("moe_layer_end_index", 1), convert.ErrUnsupported},
		"use_bias":                {setConfig("use_bias", true), convert.ErrUnsupported},
		"no moe_k":                {func(c map[string]any, ts []stTensor) []stTensor { delete(c, "moe_k"); return ts }, convert.ErrMismatch},
		"no selection bias":       {dropTensor("model.layers.2.mlp.moe_statics.e_score_correction_bias"), convert.ErrMismatch},
		"a shared expert missing": {dropTensor("model.layers.1.mlp.shared_experts.up_proj.weight"), convert.ErrMismatch},
		"an unknown tensor": {func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.vision_model.proj.weight", []int64{4}, make([]float32, 4)))
		}, convert.ErrUnsupported},
	} {
		err := convert.Convert(context.Background(), ernieMoEFixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
