package convert_test

import (
	"context"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/loader/convert"
)

// The Ling 2.0 fixture: hidden 64, 4 heads of 16 over 2 key/value heads,
// half of each head rotated, one dense layer of 48, then two with 8
// experts of 16 (3 used) in 4 groups of which the best 2 are chosen, one
// shared expert, routed_scaling_factor 2, the selection bias.
const lingLayers, lingFFN, lingExpertFFN, lingExperts, lingUsed = 3, 48, 16, 8, 3

func lingFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"BailingMoeV2ForCausalLM"}, "model_type": "bailing_moe", "hidden_size": 64,
		"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "partial_rotary_factor": 0.5, "num_hidden_layers": lingLayers,
		"intermediate_size": lingFFN, "moe_intermediate_size": lingExpertFFN, "num_experts": lingExperts, "num_experts_per_tok": lingUsed,
		"num_shared_experts": 1, "first_k_dense_replace": 1, "n_group": 4, "topk_group": 2, "norm_topk_prob": true,
		"routed_scaling_factor": 2.0, "score_function": "sigmoid", "moe_router_enable_expert_bias": true, "use_qk_norm": true,
		"use_qkv_bias": false, "use_bias": false, "norm_head": false, "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 600000.0,
		"max_position_embeddings": 32768, "rope_scaling": nil, "num_nextn_predict_layers": 0, "vocab_size": 32000,
		"tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(71, 3))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.word_embeddings.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("model.norm.weight", 64, 1, 0.1), w.mat("lm_head.weight", 32000, 64)}
	for l := range lingLayers {
		ts = append(ts, w.lingLayer(l, true)...)
		ts = append(ts, w.smoeMLP(layerPrefix(l), 64, l == 0, lingFFN, lingExperts, lingExpertFFN, lingExpertFFN, lingBias)...)
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// lingBias is Ling 2.0's name of the selection bias under mlp.gate.
const lingBias = "expert_bias"

// lingLayer is layer l's norms and attention in a Ling fixture:
// query_key_value for 4 heads of 16 over 2 key/value heads, dense, and
// with qkNorm Ling 2.0's per-head q/k norms.
func (w randWeights) lingLayer(l int, qkNorm bool) []stTensor {
	p := layerPrefix(l)
	ts := []stTensor{w.vec(p+"input_layernorm.weight", 64, 1, 0.1), w.vec(p+"post_attention_layernorm.weight", 64, 1, 0.1),
		w.mat(p+"attention.query_key_value.weight", 64+2*32, 64), w.mat(p+"attention.dense.weight", 64, 64)}
	if qkNorm {
		ts = append(ts, w.vec(p+"attention.query_layernorm.weight", 16, 1, 0.2), w.vec(p+"attention.key_layernorm.weight", 16, 1, 0.2))
	}
	return ts
}

// lingAttention reads layer prefix p's norms and attention of a Ling
// fixture: query_key_value as the query, key and value blocks, dense, and
// the q/k norms when present.
func lingAttention(r *stReader, p string) refLayer {
	qkv := r.get(p + "attention.query_key_value.weight")
	L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "post_attention_layernorm.weight"),
		wq: qkv[:64*64], wk: qkv[64*64 : 96*64], wv: qkv[96*64:], wo: r.get(p + "attention.dense.weight")}
	if r.has(p + "attention.query_layernorm.weight") {
		L.qNorm, L.kNorm = r.get(p+"attention.query_layernorm.weight"), r.get(p+"attention.key_layernorm.weight")
	}
	return L
}

// lingReference is Ling 2.0's model of the checkpoint in dir in float64:
// query_key_value split into the query, key and value blocks (perHead
// reads it as one block of q, k and v per key/value group instead); edit
// changes its MLP's routing.
func lingReference(t *testing.T, dir string, perHead bool, edit func(*smoeRef)) *refModel {
	t.Helper()
	r := openST(t, dir)
	moe := &smoeRef{hidden: 64, experts: lingExperts, used: lingUsed, expertFFN: lingExpertFFN, sharedFFN: lingExpertFFN, sigmoid: true, norm: true,
		scale: 2, groups: 4, groupsUsed: 2}
	if edit != nil {
		edit(moe)
	}
	m := &refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: defaultInvFreq(600000, 8)}
	m.emb, m.out, m.norm = r.get("model.word_embeddings.weight"), r.get("lm_head.weight"), r.get("model.norm.weight")
	for l := range lingLayers {
		p := layerPrefix(l)
		L := lingAttention(r, p)
		if perHead {
			qkv := r.get(p + "attention.query_key_value.weight")
			// Per key/value group: its 2 query heads, its key, its value.
			L.wq, L.wk, L.wv = nil, nil, nil
			for g := range 2 {
				b := qkv[g*64*64 : (g+1)*64*64]
				L.wq = append(L.wq, b[:32*64]...)
				L.wk = append(L.wk, b[32*64:48*64]...)
				L.wv = append(L.wv, b[48*64:]...)
			}
		}
		moe.layerMLP(r, &L, p, l == 0, lingFFN, lingBias)
		m.layers = append(m.layers, L)
	}
	return m
}

// TestBailingMoeV2 converts a tiny Ling 2.0 to llama.cpp's bailingmoe2 and
// checks the metadata and the logits against the float64 reference, which
// would see the query_key_value layout, the partial rope, the q/k norms,
// the selection bias, the groups, the shared expert, the scaling and the
// renormalisation left out; the config's defaults; and what llama.cpp's
// bailingmoe2 does not run is refused.
func TestBailingMoeV2(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := lingFixture(t, nil)
	out, f := convertDir(t, dir, "f32")
	for k, want := range map[string]float64{"leading_dense_block_count": 1, "expert_count": lingExperts, "expert_used_count": lingUsed,
		"expert_shared_count": 1, "expert_feed_forward_length": lingExpertFFN, "expert_shared_feed_forward_length": lingExpertFFN,
		"expert_weights_scale": 2, "expert_gating_func": 2, "expert_group_count": 4, "expert_group_used_count": 2, "rope.dimension_count": 8,
		"attention.head_count_kv": 2, "attention.layer_norm_rms_epsilon": 1e-6} {
		if v, ok := f.Float("bailingmoe2." + k); !ok || float32(v) != float32(want) {
			t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
		}
	}
	if norm, _ := f.Bool("bailingmoe2.expert_weights_norm"); f.Architecture() != "bailingmoe2" || !norm {
		t.Errorf("arch %q, expert_weights_norm %v", f.Architecture(), norm)
	}
	ctx := refContext(t, out)
	ref := func(e func(*smoeRef)) *refModel { return lingReference(t, dir, false, e) }
	checkRef(t, ctx, prompts, ref(nil).forward, 1e-5)
	moeEdit := func(e func(*smoeRef)) func(*refModel) { return func(m *refModel) { *m = *ref(e) } }
	checkSensitive(t, ctx, prompts, func() *refModel { return ref(nil) }, map[string]func(*refModel){
		"query_key_value per group": func(m *refModel) { *m = *lingReference(t, dir, true, nil) },
		"whole head rotated":        func(m *refModel) { m.invFreq = defaultInvFreq(600000, 16) },
		"rope on pairs":             func(m *refModel) { m.ropePairs = true },
		"q/k norms": func(m *refModel) {
			for i := range m.layers {
				m.layers[i].qNorm, m.layers[i].kNorm = nil, nil
			}
		},
		"selection bias":   moeEdit(func(s *smoeRef) { s.noBias = true }),
		"groups":           moeEdit(func(s *smoeRef) { s.noGroups = true }),
		"shared expert":    moeEdit(func(s *smoeRef) { s.noShared = true }),
		"routed scaling":   moeEdit(func(s *smoeRef) { s.scale = 1 }),
		"no renormalising": moeEdit(func(s *smoeRef) { s.norm = false }),
	})

	// BailingMoeV2Config's defaults, rotary_dim for the rotated fraction,
	// and the gate's renormalising whatever norm_topk_prob says.
	_, fd := convertDir(t, lingFixture(t, func(c map[string]any, ts []stTensor) []stTensor {
		for _, k := range []string{"rms_norm_eps", "partial_rotary_factor", "score_function", "use_bias", "max_position_embeddings"} {
			delete(c, k)
		}
		c["n_group"], c["topk_group"], c["norm_topk_prob"], c["rotary_dim"] = 4, 4, false, 8
		return ts
	}), "f32")
	for k, want := range map[string]float64{"attention.layer_norm_rms_epsilon": 1e-6, "rope.dimension_count": 8, "context_length": 32768} {
		if v, ok := fd.Float("bailingmoe2." + k); !ok || float32(v) != float32(want) {
			t.Errorf("defaults: %s = %v (%v), want %v", k, v, ok, want)
		}
	}
	if norm, _ := fd.Bool("bailingmoe2.expert_weights_norm"); !norm {
		t.Error("norm_topk_prob false: expert_weights_norm false, want true (the gate renormalises)")
	}
	if _, ok := fd.Uint("bailingmoe2.expert_group_count"); ok {
		t.Error("every group chosen: expert_group_count written")
	}
	// A shared expert of its own width, and norm_head's normalised
	// columns of the head.
	wide := lingFixture(t, func(c map[string]any, ts []stTensor) []stTensor {
		c["moe_shared_expert_intermediate_size"], c["norm_head"] = 24, true
		r := randWeights{rand.New(rand.NewPCG(5, 9))}
		for l := 1; l < lingLayers; l++ {
			p := layerPrefix(l) + "mlp.shared_experts."
			for _, n := range []string{"gate_proj.weight", "up_proj.weight", "down_proj.weight"} {
				ts = dropTensor(p+n)(c, ts)
			}
			ts = append(ts, r.mat(p+"gate_proj.weight", 24, 64), r.mat(p+"up_proj.weight", 24, 64), r.mat(p+"down_proj.weight", 64, 24))
		}
		return ts
	})
	wOut, wf := convertDir(t, wide, "f32")
	if n, _ := wf.Uint("bailingmoe2.expert_shared_feed_forward_length"); n != 24 {
		t.Errorf("expert_shared_feed_forward_length %d, want 24", n)
	}
	wctx := refContext(t, wOut)
	wideRef := func() *refModel {
		m := lingReference(t, wide, false, func(s *smoeRef) { s.sharedFFN = 24 })
		m.out = normColumns(m.out, 64)
		return m
	}
	checkRef(t, wctx, prompts, wideRef().forward, 1e-5)
	checkSensitive(t, wctx, prompts, wideRef, map[string]func(*refModel){
		"norm_head": func(m *refModel) { *m = *lingReference(t, wide, false, func(s *smoeRef) { s.sharedFFN = 24 }) },
	})
	// The selection bias follows the checkpoint, as the gate does:
	// used with moe_router_enable_expert_bias false, absent without the
	// tensors.
	flagOff := lingFixture(t, setConfig("moe_router_enable_expert_bias", false))
	fOut, _ := convertDir(t, flagOff, "f32")
	checkRef(t, refContext(t, fOut), prompts, lingReference(t, flagOff, false, nil).forward, 1e-5)
	noBias := lingFixture(t, func(c map[string]any, ts []stTensor) []stTensor {
		for l := 1; l < lingLayers; l++ {
			ts = dropTensor(layerPrefix(l)+"mlp.gate.expert_bias")(c, ts)
		}
		return ts
	})
	bOut, fb := convertDir(t, noBias, "f32")
	if _, ok := fb.Tensor("blk.1.exp_probs_b.bias"); ok {
		t.Error("no expert_bias: exp_probs_b written")
	}
	bctx := refContext(t, bOut)
	checkRef(t, bctx, prompts, lingReference(t, noBias, false, nil).forward, 1e-5)

	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"use_bias true": {setConfig("use_bias", true), convert.ErrUnsupported},
		"no routed_scaling_factor": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "routed_scaling_factor")
			return ts
		}, convert.ErrUnsupported},
		"no rotated fraction": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "partial_rotary_factor")
			return ts
		}, convert.ErrUnsupported},
		"rotary_dim disagreeing": {setConfig("rotary_dim", 16), convert.ErrMismatch},
		"use_qkv_bias true":      {setConfig("use_qkv_bias", true), convert.ErrUnsupported},
		"use_qk_norm false":      {setConfig("use_qk_norm", false), convert.ErrUnsupported},
		"use_qk_norm left out":   {func(c map[string]any, ts []stTensor) []stTensor { delete(c, "use_qk_norm"); return ts }, nil},
		"norm_head tied": {func(c map[string]any, ts []stTensor) []stTensor {
			c["norm_head"], c["tie_word_embeddings"] = true, true
			return ts
		}, convert.ErrUnsupported},
		"shared width 0":          {setConfig("moe_shared_expert_intermediate_size", 0), convert.ErrMismatch},
		"use_sliding_window true": {setConfig("use_sliding_window", true), convert.ErrUnsupported},
		"softmax scores":          {setConfig("score_function", "softmax"), convert.ErrUnsupported},
		"no shared experts":       {setConfig("num_shared_experts", nil), convert.ErrUnsupported},
		"heads × head_dim":        {setConfig("head_dim", 32), convert.ErrUnsupported},
		"one expert":              {setConfig("num_experts", 1), convert.ErrMismatch},
		"default groups": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "n_group")
			delete(c, "topk_group")
			return ts
		}, convert.ErrMismatch},
		"no query norm": {dropTensor(layerPrefix(1) + "attention.query_layernorm.weight"), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), lingFixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// normColumns divides each column of the [rows, cols] matrix w by its L2
// norm plus 1e-7, as Ling's norm_head does to its head.
func normColumns(w []float64, cols int) []float64 {
	sums := make([]float64, cols)
	for i, v := range w {
		sums[i%cols] += v * v
	}
	out := make([]float64, len(w))
	for i, v := range w {
		out[i] = v / (math.Sqrt(sums[i%cols]) + 1e-7)
	}
	return out
}

// The Ling 1.0 fixture: hidden 64, 4 heads of 16 over 2 key/value heads,
// the whole head rotated, three layers of 8 experts of 16 (3 used) with 2
// shared experts, the top-k weights renormalised, the head normalised.
func ling1Fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"BailingMoeForCausalLM"}, "model_type": "bailing_moe", "hidden_size": 64,
		"num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": lingLayers, "intermediate_size": lingFFN,
		"moe_intermediate_size": lingExpertFFN, "num_experts": lingExperts, "num_experts_per_tok": lingUsed, "num_shared_experts": 2,
		"first_k_dense_replace": 0, "norm_topk_prob": true, "use_qkv_bias": false, "use_bias": false, "norm_head": true, "hidden_act": "silu",
		"rms_norm_eps": 1e-6, "rope_theta": 600000.0, "max_position_embeddings": 16384, "rope_scaling": nil, "vocab_size": 32000,
		"tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(73, 1))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.word_embeddings.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("model.norm.weight", 64, 1, 0.1), w.mat("lm_head.weight", 32000, 64)}
	for l := range lingLayers {
		ts = append(ts, w.lingLayer(l, false)...)
		ts = append(ts, w.smoeMLP(layerPrefix(l), 64, false, 0, lingExperts, lingExpertFFN, 2*lingExpertFFN, "")...)
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// ling1Reference is Ling 1.0's model of the checkpoint in dir in float64,
// with its head normalised; edit changes its MLP's routing.
func ling1Reference(t *testing.T, dir string, edit func(*smoeRef)) *refModel {
	t.Helper()
	r := openST(t, dir)
	moe := &smoeRef{hidden: 64, experts: lingExperts, used: lingUsed, expertFFN: lingExpertFFN, sharedFFN: 2 * lingExpertFFN, norm: true, scale: 1}
	if edit != nil {
		edit(moe)
	}
	m := &refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: defaultInvFreq(600000, 16)}
	m.emb, m.norm = r.get("model.word_embeddings.weight"), r.get("model.norm.weight")
	m.out = normColumns(r.get("lm_head.weight"), 64)
	for l := range lingLayers {
		p := layerPrefix(l)
		L := lingAttention(r, p)
		moe.layerMLP(r, &L, p, false, 0, "")
		m.layers = append(m.layers, L)
	}
	return m
}

// TestBailingMoe converts a tiny Ling 1.0 to llama.cpp's bailingmoe and
// checks the logits against the float64 reference, which would see the
// normalised head, the rope's pairs, the shared experts and the
// renormalisation left out; what llama.cpp's bailingmoe does not run is
// refused.
func TestBailingMoe(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := ling1Fixture(t, nil)
	out, f := convertDir(t, dir, "f32")
	for k, want := range map[string]float64{"leading_dense_block_count": 0, "expert_count": lingExperts, "expert_used_count": lingUsed,
		"expert_shared_count": 2, "expert_feed_forward_length": lingExpertFFN, "expert_weights_scale": 1, "rope.dimension_count": 16} {
		if v, ok := f.Float("bailingmoe." + k); !ok || float32(v) != float32(want) {
			t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
		}
	}
	if norm, _ := f.Bool("bailingmoe.expert_weights_norm"); f.Architecture() != "bailingmoe" || !norm {
		t.Errorf("arch %q, expert_weights_norm %v", f.Architecture(), norm)
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, ling1Reference(t, dir, nil).forward, 1e-5)
	moeEdit := func(e func(*smoeRef)) func(*refModel) { return func(m *refModel) { *m = *ling1Reference(t, dir, e) } }
	checkSensitive(t, ctx, prompts, func() *refModel { return ling1Reference(t, dir, nil) }, map[string]func(*refModel){
		"norm_head":        func(m *refModel) { m.out = openST(t, dir).get("lm_head.weight") },
		"rope on pairs":    func(m *refModel) { m.ropePairs = true },
		"shared experts":   moeEdit(func(s *smoeRef) { s.noShared = true }),
		"no renormalising": moeEdit(func(s *smoeRef) { s.norm = false }),
	})
	// norm_topk_prob false: the top-k weights as they are.
	_, fn := convertDir(t, ling1Fixture(t, setConfig("norm_topk_prob", false)), "f32")
	if norm, _ := fn.Bool("bailingmoe.expert_weights_norm"); norm {
		t.Error("norm_topk_prob false: expert_weights_norm true")
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"use_bias left out":     {func(c map[string]any, ts []stTensor) []stTensor { delete(c, "use_bias"); return ts }, convert.ErrUnsupported},
		"use_qk_norm true":      {setConfig("use_qk_norm", true), convert.ErrUnsupported},
		"sigmoid scores":        {setConfig("score_function", "sigmoid"), convert.ErrUnsupported},
		"expert bias":           {setConfig("moe_router_enable_expert_bias", true), convert.ErrUnsupported},
		"groups":                {func(c map[string]any, ts []stTensor) []stTensor { c["n_group"], c["topk_group"] = 4, 2; return ts }, convert.ErrUnsupported},
		"routed scaling":        {setConfig("routed_scaling_factor", 2.5), convert.ErrUnsupported},
		"dense first layer":     {setConfig("first_k_dense_replace", 1), convert.ErrUnsupported},
		"partial rope":          {setConfig("partial_rotary_factor", 0.5), convert.ErrUnsupported},
		"rotary_dim 8":          {setConfig("rotary_dim", 8), convert.ErrUnsupported},
		"shared width":          {setConfig("moe_shared_expert_intermediate_size", 32), convert.ErrUnsupported},
		"no shared experts":     {setConfig("num_shared_experts", 0), convert.ErrUnsupported},
		"qkv of the wrong size": {setConfig("num_key_value_heads", 4), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), ling1Fixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
