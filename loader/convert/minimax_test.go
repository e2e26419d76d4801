package convert_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// A MiniMax-M2 fixture: hidden size 64 (tiny-llama-st's tokenizer), 2
// layers, 4 heads of 32 (2 KV heads: heads × head size is twice the hidden
// size) rotated over their first 16 dimensions, q/k norms over the whole
// projections, 8 experts of 32 (3 used) routed by sigmoid scores and a
// selection bias; its own output matrix.
const (
	mmHidden, mmHeads, mmKV, mmHeadDim, mmRotary = 64, 4, 2, 32, 16
	mmExperts, mmUsed, mmFF, mmLayers            = 8, 3, 32, 2
)

func minimaxFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"MiniMaxM2ForCausalLM"}, "model_type": "minimax_m2",
		"hidden_size": mmHidden, "num_hidden_layers": mmLayers, "num_attention_heads": mmHeads, "num_key_value_heads": mmKV,
		"head_dim": mmHeadDim, "rotary_dim": mmRotary, "intermediate_size": mmFF, "num_local_experts": mmExperts, "num_experts_per_tok": mmUsed,
		"scoring_func": "sigmoid", "use_routing_bias": true, "use_qk_norm": true, "qk_norm_type": "per_layer", "attn_type_list": []int{1, 1},
		"shared_intermediate_size": 0, "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 4096,
		"vocab_size": g4Vocab, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(43, 1))
	w := randWeights{r}
	H, Q, KV, E, I := int64(mmHidden), int64(mmHeads*mmHeadDim), int64(mmKV*mmHeadDim), int64(mmExperts), int64(mmFF)
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{g4Vocab, H}, randn(r, g4Vocab*mmHidden, 0.1)), w.vec("model.norm.weight", H, 1, 0.1),
		w.mat("lm_head.weight", g4Vocab, H)}
	for l := range mmLayers {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"input_layernorm.weight", H, 1, 0.1), w.vec(p+"post_attention_layernorm.weight", H, 1, 0.1),
			w.mat(p+"self_attn.q_proj.weight", Q, H), w.mat(p+"self_attn.k_proj.weight", KV, H), w.mat(p+"self_attn.v_proj.weight", KV, H),
			w.mat(p+"self_attn.o_proj.weight", H, Q), w.vec(p+"self_attn.q_norm.weight", Q, 1, 0.2), w.vec(p+"self_attn.k_norm.weight", KV, 1, 0.2),
			f32Tensor(p+"block_sparse_moe.gate.weight", []int64{E, H}, randn(r, mmExperts*mmHidden, 0.3)), w.vec(p+"block_sparse_moe.e_score_correction_bias", E, 0, 0.3))
		for e := range mmExperts {
			q := p + "block_sparse_moe.experts." + strconv.Itoa(e) + "."
			ts = append(ts, w.mat(q+"w1.weight", I, H), w.mat(q+"w3.weight", I, H), w.mat(q+"w2.weight", H, I))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// mmRef holds a MiniMax-M2 reference and its router, for the edits.
type mmRef struct {
	*refModel
	router *lfRouter
}

// minimaxReference reads the fixture in dir as a float64 model: Mixtral's
// blocks with whole-projection q/k norms, rope over the first rotary_dim
// dimensions (rotate_half within them), and LFM2-MoE's routing (sigmoid
// scores, the top k of scores plus bias, renormalised).
func minimaxReference(t *testing.T, dir string) *mmRef {
	t.Helper()
	r := openST(t, dir)
	m := &refModel{hidden: mmHidden, heads: mmHeads, kvHeads: mmKV, headDim: mmHeadDim, eps: 1e-6, invFreq: defaultInvFreq(10000, mmRotary)}
	m.emb, m.norm, m.out = r.get("model.embed_tokens.weight"), r.get("model.norm.weight"), r.get("lm_head.weight")
	ref := &mmRef{refModel: m, router: &lfRouter{}}
	for l := range mmLayers {
		p := layerPrefix(l)
		L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "post_attention_layernorm.weight"),
			wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"), wv: r.get(p + "self_attn.v_proj.weight"),
			wo: r.get(p + "self_attn.o_proj.weight"), qNormFull: r.get(p + "self_attn.q_norm.weight"), kNormFull: r.get(p + "self_attn.k_norm.weight"),
			router: r.get(p + "block_sparse_moe.gate.weight"), topK: mmUsed, ffn: mmFF}
		for e := range mmExperts {
			q := p + "block_sparse_moe.experts." + strconv.Itoa(e) + "."
			L.experts = append(L.experts, [3][]float64{r.get(q + "w1.weight"), r.get(q + "w3.weight"), r.get(q + "w2.weight")})
		}
		bias, moeL := r.get(p+"block_sparse_moe.e_score_correction_bias"), L
		L.mlp = func(h []float64) []float64 { return ref.router.moe(m, moeL, bias, h) }
		m.layers = append(m.layers, L)
	}
	return ref
}

// TestMiniMaxM2 converts a MiniMax-M2 checkpoint and checks the keys and
// the logits against the float64 reference, which would see the q/k
// norms, the partial rope (as a whole-head one), the selection bias or
// the renormalisation left out.
func TestMiniMaxM2(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := minimaxFixture(t, nil)
	out := filepath.Join(t.TempDir(), "mm.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Architecture() != "minimax-m2" {
		t.Fatalf("architecture %q", f.Architecture())
	}
	for k, v := range map[string]uint64{"rope.dimension_count": mmRotary, "attention.key_length": mmHeadDim, "attention.value_length": mmHeadDim,
		"expert_count": mmExperts, "expert_used_count": mmUsed, "expert_feed_forward_length": mmFF, "feed_forward_length": mmFF, "expert_gating_func": 2} {
		if got, ok := f.Uint("minimax-m2." + k); !ok || got != v {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
		}
	}
	for name, shape := range map[string][]uint64{"blk.0.attn_q_norm.weight": {mmHeads * mmHeadDim}, "blk.0.attn_k_norm.weight": {mmKV * mmHeadDim},
		"blk.1.exp_probs_b.bias": {mmExperts}, "blk.1.ffn_up_exps.weight": {mmHidden, mmFF, mmExperts}} {
		if ti, ok := f.Tensor(name); !ok || !slices.Equal(ti.Shape, shape) {
			t.Errorf("%s: %+v (%v), want shape %v", name, ti, ok, shape)
		}
	}
	fresh := func() *mmRef { return minimaxReference(t, dir) }
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*mmRef){
		"q/k norms": func(m *mmRef) {
			for i := range m.layers {
				m.layers[i].qNormFull, m.layers[i].kNormFull = nil, nil
			}
		},
		"whole-head rope":  func(m *mmRef) { m.invFreq = defaultInvFreq(10000, mmHeadDim) },
		"selection bias":   func(m *mmRef) { m.router.noBias = true },
		"renormalisation":  func(m *mmRef) { m.router.noNorm = true },
		"rope on adjacent": func(m *mmRef) { m.ropePairs = true },
	})
}

// TestMiniMaxM2Refused checks the MiniMax layouts llama.cpp's minimax-m2
// cannot run, or that contradict their config, are refused with the
// error kind.
func TestMiniMaxM2Refused(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"softmax router":        {setConfig("scoring_func", "softmax"), convert.ErrUnsupported},
		"no routing bias":       {setConfig("use_routing_bias", false), convert.ErrUnsupported},
		"no q/k norm":           {setConfig("use_qk_norm", false), convert.ErrUnsupported},
		"per-head q/k norm":     {setConfig("qk_norm_type", "per_head"), convert.ErrUnsupported},
		"shared experts":        {setConfig("shared_intermediate_size", 64), convert.ErrUnsupported},
		"lightning attention":   {setConfig("attn_type_list", []int{0, 1}), convert.ErrUnsupported},
		"attn_type_list short":  {setConfig("attn_type_list", []int{1}), convert.ErrMismatch},
		"rotary_dim odd":        {setConfig("rotary_dim", 15), convert.ErrMismatch},
		"rotary_dim over head":  {setConfig("rotary_dim", 64), convert.ErrMismatch},
		"rotary_dim and factor": {setConfig("partial_rotary_factor", 0.25), convert.ErrMismatch},
		"no selection bias":     {dropTensor("model.layers.1.block_sparse_moe.e_score_correction_bias"), convert.ErrMismatch},
		"an expert missing":     {dropTensor("model.layers.0.block_sparse_moe.experts.3.w3.weight"), convert.ErrMismatch},
		"q_norm per head": {func(_ map[string]any, ts []stTensor) []stTensor {
			return resize(ts, "model.layers.0.self_attn.q_norm.weight", mmHeadDim)
		}, convert.ErrMismatch},
		"a dense MLP": {func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.mlp.gate_proj.weight", []int64{4, 4}, make([]float32, 16)))
		}, convert.ErrUnsupported},
	} {
		t.Run(name, func(t *testing.T) {
			err := convert.Convert(context.Background(), minimaxFixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// resize replaces the tensor name in ts by zeros of n values.
func resize(ts []stTensor, name string, n int) []stTensor {
	for i := range ts {
		if ts[i].name == name {
			ts[i] = f32Tensor(name, []int64{int64(n)}, make([]float32, n))
		}
	}
	return ts
}

// TestMiniMaxM2Config converts configs transformers reads the same:
// without rope_theta (5e6), without rotary_dim (the whole head rotated),
// with norm_topk_prob false (MiniMax's router renormalises whatever it
// says), with tied embeddings (the embeddings written again as the output
// matrix llama.cpp requires).
func TestMiniMaxM2Config(t *testing.T) {
	for name, tc := range map[string]struct {
		edit  func(map[string]any, []stTensor) []stTensor
		theta float64
		rot   uint64
	}{
		"no rope_theta":        {func(c map[string]any, ts []stTensor) []stTensor { delete(c, "rope_theta"); return ts }, 5e6, mmRotary},
		"no rotary_dim":        {func(c map[string]any, ts []stTensor) []stTensor { delete(c, "rotary_dim"); return ts }, 1e4, mmHeadDim},
		"norm_topk_prob false": {setConfig("norm_topk_prob", false), 1e4, mmRotary},
		"tied": {func(c map[string]any, ts []stTensor) []stTensor {
			c["tie_word_embeddings"] = true
			return slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "lm_head.weight" })
		}, 1e4, mmRotary},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.gguf")
			if err := convert.Convert(context.Background(), minimaxFixture(t, tc.edit), out, convert.Options{}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := f.Float("minimax-m2.rope.freq_base"); got != tc.theta {
				t.Errorf("freq_base %v, want %v", got, tc.theta)
			}
			if got, _ := f.Uint("minimax-m2.rope.dimension_count"); got != tc.rot {
				t.Errorf("rope.dimension_count %d, want %d", got, tc.rot)
			}
			if _, ok := f.Tensor("output.weight"); !ok {
				t.Error("no output.weight")
			}
		})
	}
}
