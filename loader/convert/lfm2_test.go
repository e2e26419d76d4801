package convert_test

import (
	"cmp"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// An LFM2 fixture: hidden size 64 (tiny-llama-st's tokenizer), the layers
// conv, attention, conv, conv; attention of 4 heads of 16 (2 KV heads);
// convolutions over 3 positions; block_ff_dim 150, which LFM2's sizing
// makes an MLP of 128 (two thirds, 100, rounded up to a multiple of 32).
// The MoE layout has one dense layer, then 8 experts of 32 (3 used).
const (
	lfHidden, lfHeads, lfKV, lfHeadDim, lfLCache, lfFF = 64, 4, 2, 16, 3, 128
	lfExperts, lfUsed, lfExpertFF, lfDenseFF           = 8, 3, 32, 96
)

var lfLayers = []string{"conv", "full_attention", "conv", "conv"}

// lfCase is one LFM2 fixture's layout.
type lfCase struct {
	moe        bool // Lfm2MoeForCausalLM, layer 0 dense
	fused      bool // the experts fused as transformers 5 stores them
	expertBias bool // use_expert_bias
	idxs       bool // full_attn_idxs in place of layer_types
	// vl: an LFM2-VL checkpoint, whose language model this is (its
	// config in text_config, its tensors under model.language_model.),
	// beside a vision tower and projector.
	vl bool
}

func (c lfCase) config() map[string]any {
	m := map[string]any{
		"architectures": []string{"Lfm2ForCausalLM"}, "model_type": "lfm2",
		"hidden_size": lfHidden, "num_hidden_layers": len(lfLayers), "num_attention_heads": lfHeads, "num_key_value_heads": lfKV,
		"block_ff_dim": 150, "block_multiple_of": 32, "block_ffn_dim_multiplier": 1.0, "block_auto_adjust_ff_dim": true,
		"conv_L_cache": lfLCache, "conv_bias": false, "norm_eps": 1e-5, "rope_theta": 10000.0,
		"max_position_embeddings": 4096, "vocab_size": g4Vocab, "tie_embedding": true, "bos_token_id": 1, "eos_token_id": 2,
	}
	if c.idxs {
		m["full_attn_idxs"] = []int{1}
	} else {
		m["layer_types"] = lfLayers
	}
	if c.vl {
		delete(m, "architectures")
		return map[string]any{"architectures": []string{"Lfm2VlForConditionalGeneration"}, "model_type": "lfm2-vl", "text_config": m,
			"vision_config": map[string]any{"model_type": "siglip2_vision_model", "hidden_size": 32}, "downsample_factor": 2, "image_token_index": 396}
	}
	if c.moe {
		m["architectures"], m["model_type"] = []string{"Lfm2MoeForCausalLM"}, "lfm2_moe"
		delete(m, "block_ff_dim")
		m["intermediate_size"], m["moe_intermediate_size"], m["num_experts"], m["num_experts_per_tok"] = lfDenseFF, lfExpertFF, lfExperts, lfUsed
		m["num_dense_layers"], m["use_expert_bias"], m["norm_topk_prob"], m["routed_scaling_factor"] = 1, c.expertBias, true, 1.0
	}
	return m
}

func (c lfCase) fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := c.config()
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(41, 2))
	w := randWeights{r}
	H, D, KV, E, I := int64(lfHidden), int64(lfHeadDim), int64(lfKV*lfHeadDim), int64(lfExperts), int64(lfExpertFF)
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{g4Vocab, H}, randn(r, g4Vocab*lfHidden, 0.1)), w.vec("model.embedding_norm.weight", H, 1, 0.1)}
	for l, typ := range lfLayers {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"operator_norm.weight", H, 1, 0.1), w.vec(p+"ffn_norm.weight", H, 1, 0.1))
		if typ == "full_attention" {
			ts = append(ts, w.mat(p+"self_attn.q_proj.weight", H, H), w.mat(p+"self_attn.k_proj.weight", KV, H),
				w.mat(p+"self_attn.v_proj.weight", KV, H), w.mat(p+"self_attn.out_proj.weight", H, H),
				w.vec(p+"self_attn.q_layernorm.weight", D, 1, 0.2), w.vec(p+"self_attn.k_layernorm.weight", D, 1, 0.2))
		} else {
			ts = append(ts, w.mat(p+"conv.in_proj.weight", 3*H, H), w.mat(p+"conv.out_proj.weight", H, H),
				f32Tensor(p+"conv.conv.weight", []int64{H, 1, lfLCache}, randn(r, lfHidden*lfLCache, 0.6)))
		}
		switch {
		case !c.moe:
			ts = append(ts, w.mat(p+"feed_forward.w1.weight", lfFF, H), w.mat(p+"feed_forward.w3.weight", lfFF, H), w.mat(p+"feed_forward.w2.weight", H, lfFF))
		case l == 0:
			ts = append(ts, w.mat(p+"feed_forward.w1.weight", lfDenseFF, H), w.mat(p+"feed_forward.w3.weight", lfDenseFF, H), w.mat(p+"feed_forward.w2.weight", H, lfDenseFF))
		default:
			// Router logits spread wide enough that the bias changes the choice.
			ts = append(ts, f32Tensor(p+"feed_forward.gate.weight", []int64{E, H}, randn(r, lfExperts*lfHidden, 0.3)))
			if c.expertBias {
				ts = append(ts, w.vec(p+"feed_forward.expert_bias", E, 0, 0.3))
			}
			if c.fused {
				gu, down := w.mat(p+"feed_forward.experts.gate_up_proj", E*2*I, H), w.mat(p+"feed_forward.experts.down_proj", E*H, I)
				gu.shape, down.shape = []int64{E, 2 * I, H}, []int64{E, H, I}
				ts = append(ts, gu, down)
				continue
			}
			for e := range lfExperts {
				q := p + "feed_forward.experts." + strconv.Itoa(e) + "."
				ts = append(ts, w.mat(q+"w1.weight", I, H), w.mat(q+"w3.weight", I, H), w.mat(q+"w2.weight", H, I))
			}
		}
	}
	if c.vl {
		for i := range ts {
			ts[i].name = "model.language_model." + strings.TrimPrefix(ts[i].name, "model.")
		}
		ts = append(ts, w.mat("model.vision_tower.encoder.layers.0.mlp.fc1.weight", 32, 32), w.mat("model.multi_modal_projector.linear_1.weight", H, 128))
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// shortConvRef is LFM2's gated short convolution (transformers'
// Lfm2ShortConv): in_proj to B, C and x; B·x convolved causally per
// channel over the last L positions; times C; out_proj.
type shortConvRef struct {
	inProj, conv, outProj []float64
	hidden, l             int
	// Left out for the sensitivity checks.
	noB, noC, noConv bool
}

func (s *shortConvRef) forward(hs [][]float64) [][]float64 {
	H, L := s.hidden, s.l
	bx, c := make([][]float64, len(hs)), make([][]float64, len(hs))
	for t, h := range hs {
		p := matvec(s.inProj, h, 3*H)
		bx[t], c[t] = make([]float64, H), p[H:2*H]
		for i := range H {
			bx[t][i] = p[2*H+i]
			if !s.noB {
				bx[t][i] *= p[i]
			}
		}
	}
	outs := make([][]float64, len(hs))
	for t := range hs {
		y := make([]float64, H)
		for i := range H {
			if s.noConv {
				y[i] = bx[t][i]
			} else {
				for k := range L {
					if src := t - L + 1 + k; src >= 0 {
						y[i] += s.conv[i*L+k] * bx[src][i]
					}
				}
			}
			if !s.noC {
				y[i] *= c[t][i]
			}
		}
		outs[t] = matvec(s.outProj, y, H)
	}
	return outs
}

// lfRef holds a reference and its parts, for the edits.
type lfRef struct {
	*refModel
	convs  []*shortConvRef
	router *lfRouter
}

// lfRouter is LFM2-MoE's routing: sigmoid scores, the top k of scores
// plus the selection bias, their unbiased scores renormalised.
type lfRouter struct {
	noBias, noNorm bool
}

func (lr *lfRouter) moe(m *refModel, L refLayer, bias []float64, h []float64) []float64 {
	logits := matvec(L.router, h, len(L.experts))
	s, sel := make([]float64, len(logits)), make([]float64, len(logits))
	for i, v := range logits {
		s[i] = 1 / (1 + math.Exp(-v))
		sel[i] = s[i]
		if !lr.noBias {
			sel[i] += bias[i]
		}
	}
	order := make([]int, len(s))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(sel[b], sel[a]) })
	top := order[:L.topK]
	sum := 1.0
	if !lr.noNorm {
		sum = 1e-6
		for _, e := range top {
			sum += s[e]
		}
	}
	out := make([]float64, m.hidden)
	for _, e := range top {
		g, u := matvec(L.experts[e][0], h, L.ffn), matvec(L.experts[e][1], h, L.ffn)
		for i := range g {
			g[i] = silu(g[i]) * u[i]
		}
		for i, v := range matvec(L.experts[e][2], g, m.hidden) {
			out[i] += s[e] / sum * v
		}
	}
	return out
}

// reference reads the fixture in dir as a float64 model.
func (c lfCase) reference(t *testing.T, dir string) *lfRef {
	t.Helper()
	r := openST(t, dir)
	m := &refModel{hidden: lfHidden, heads: lfHeads, kvHeads: lfKV, headDim: lfHeadDim, eps: 1e-5, invFreq: defaultInvFreq(10000, lfHeadDim)}
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.embedding_norm.weight")
	m.out = m.emb
	ref := &lfRef{refModel: m, router: &lfRouter{}}
	for l, typ := range lfLayers {
		p := layerPrefix(l)
		L := refLayer{attnNorm: r.get(p + "operator_norm.weight"), ffnNorm: r.get(p + "ffn_norm.weight")}
		if typ == "full_attention" {
			L.wq, L.wk, L.wv, L.wo = r.get(p+"self_attn.q_proj.weight"), r.get(p+"self_attn.k_proj.weight"), r.get(p+"self_attn.v_proj.weight"), r.get(p+"self_attn.out_proj.weight")
			L.qNorm, L.kNorm = r.get(p+"self_attn.q_layernorm.weight"), r.get(p+"self_attn.k_layernorm.weight")
		} else {
			sc := &shortConvRef{inProj: r.get(p + "conv.in_proj.weight"), conv: r.get(p + "conv.conv.weight"), outProj: r.get(p + "conv.out_proj.weight"), hidden: lfHidden, l: lfLCache}
			ref.convs = append(ref.convs, sc)
			L.mixer = sc.forward
		}
		if !c.moe || l == 0 {
			L.wg, L.wu, L.wd = r.get(p+"feed_forward.w1.weight"), r.get(p+"feed_forward.w3.weight"), r.get(p+"feed_forward.w2.weight")
			L.ffn = lfFF
			if c.moe {
				L.ffn = lfDenseFF
			}
			m.layers = append(m.layers, L)
			continue
		}
		L.router, L.topK, L.ffn = r.get(p+"feed_forward.gate.weight"), lfUsed, lfExpertFF
		bias := make([]float64, lfExperts)
		if c.expertBias {
			bias = r.get(p + "feed_forward.expert_bias")
		}
		const I, H = lfExpertFF, lfHidden
		if c.fused {
			L.experts = fusedExpertsRef(r.get(p+"feed_forward.experts.gate_up_proj"), r.get(p+"feed_forward.experts.down_proj"), lfExperts, I, H)
		} else {
			for e := range lfExperts {
				q := p + "feed_forward.experts." + strconv.Itoa(e) + "."
				L.experts = append(L.experts, [3][]float64{r.get(q + "w1.weight"), r.get(q + "w3.weight"), r.get(q + "w2.weight")})
			}
		}
		moeL := L
		L.mlp = func(h []float64) []float64 { return ref.router.moe(m, moeL, bias, h) }
		m.layers = append(m.layers, L)
	}
	return ref
}

// TestLFM2 converts LFM2 checkpoints (layer_types or full_attn_idxs) and
// LFM2-MoE ones (experts per expert or fused, with and without a
// selection bias) and checks the keys and the logits against the float64
// reference, which would see the convolution, its B or C gate, the q/k
// norms, the rope, the selection bias or the renormalisation left out.
func TestLFM2(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for name, c := range map[string]lfCase{
		"lfm2": {}, "full_attn_idxs": {idxs: true},
		"moe": {moe: true, expertBias: true}, "moe fused": {moe: true, fused: true, expertBias: true}, "moe without bias": {moe: true},
		"lfm2-vl": {vl: true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := c.fixture(t, nil)
			refDir := dir
			if c.vl { // the same weights under the text model's names
				text := c
				text.vl = false
				refDir = text.fixture(t, nil)
			}
			out := filepath.Join(t.TempDir(), "lfm2.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			a := "lfm2"
			want := map[string]uint64{"shortconv.l_cache": lfLCache, "feed_forward_length": lfFF, "embedding_length": lfHidden}
			if c.moe {
				a = "lfm2moe"
				want = map[string]uint64{"shortconv.l_cache": lfLCache, "feed_forward_length": lfDenseFF, "expert_count": lfExperts,
					"expert_used_count": lfUsed, "expert_feed_forward_length": lfExpertFF, "leading_dense_block_count": 1, "expert_gating_func": 2}
			}
			if f.Architecture() != a {
				t.Fatalf("architecture %q, want %q", f.Architecture(), a)
			}
			for k, v := range want {
				if got, ok := f.Uint(a + "." + k); !ok || got != v {
					t.Errorf("%s = %v (%v), want %v", k, got, ok, v)
				}
			}
			if v, ok := f.Lookup(a + ".attention.head_count_kv"); !ok {
				t.Error("no head_count_kv")
			} else if kv, ok := v.AsUints(); !ok || !slices.Equal(kv, []uint64{0, lfKV, 0, 0}) {
				t.Errorf("head_count_kv %v", v)
			}
			if ti, ok := f.Tensor("blk.0.shortconv.conv.weight"); !ok || !slices.Equal(ti.Shape, []uint64{lfLCache, lfHidden}) || ti.Type != gguf.TypeF32 {
				t.Errorf("shortconv.conv %+v (%v)", ti, ok)
			}
			if m := loadModel(t, out, engine.ModelOptions{}); !m.IsRecurrent() || m.Info().KVHeads != lfKV {
				t.Errorf("recurrent %v, KV heads %d", m.IsRecurrent(), m.Info().KVHeads)
			}
			fresh := func() *lfRef { return c.reference(t, refDir) }
			ctx := refContext(t, out)
			checkRef(t, ctx, prompts, fresh().forward, 1e-5)
			all := func(edit func(*shortConvRef)) func(*lfRef) {
				return func(m *lfRef) {
					for _, s := range m.convs {
						edit(s)
					}
				}
			}
			edits := map[string]func(*lfRef){
				"convolution": all(func(s *shortConvRef) { s.noConv = true }),
				"B":           all(func(s *shortConvRef) { s.noB = true }),
				"C":           all(func(s *shortConvRef) { s.noC = true }),
				"q/k norms":   func(m *lfRef) { m.layers[1].qNorm, m.layers[1].kNorm = nil, nil },
				"rope":        func(m *lfRef) { m.layers[1].noRope = true },
			}
			if c.moe {
				edits["renormalisation"] = func(m *lfRef) { m.router.noNorm = true }
				if c.expertBias {
					edits["selection bias"] = func(m *lfRef) { m.router.noBias = true }
				}
			}
			checkSensitive(t, ctx, prompts, fresh, edits)
		})
	}
}

// TestLFM2Q8 converts LFM2-MoE to Q8_0: the convolution stays F32, which
// ggml's convolution requires, as does the router, and the model loads
// and decodes close to the reference. The fixture's products of three
// random projections (B·x·C) amplify the rounding of llama.cpp's 8-bit
// activations: 0.026 to 0.087 measured, where TestLFM2's edits move the
// logits by 0.2 or more.
func TestLFM2Q8(t *testing.T) {
	c := lfCase{moe: true, expertBias: true}
	dir := c.fixture(t, nil)
	out := filepath.Join(t.TempDir(), "lfm2.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "q8_0", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]gguf.Type{"blk.0.shortconv.conv.weight": gguf.TypeF32, "blk.0.shortconv.in_proj.weight": gguf.TypeQ8_0,
		"blk.1.ffn_gate_inp.weight": gguf.TypeF32, "blk.1.ffn_up_exps.weight": gguf.TypeQ8_0} {
		if ti, ok := f.Tensor(name); !ok || ti.Type != typ {
			t.Errorf("%s: %+v (%v), want %v", name, ti, ok, typ)
		}
	}
	prompts := readReference(t, "tiny-llama-st").Prompts
	checkRef(t, refContext(t, out), prompts, c.reference(t, dir).forward, 0.15)
}

// TestLFM2Refused checks the LFM2 layouts llama.cpp cannot run, or that
// contradict their config, are refused with the error kind.
func TestLFM2Refused(t *testing.T) {
	moe := lfCase{moe: true, expertBias: true}
	zeros := func(name string, shape ...int64) stTensor {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		return f32Tensor(name, shape, make([]float32, n))
	}
	for name, tc := range map[string]struct {
		c    lfCase
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"conv_bias":             {lfCase{}, setConfig("conv_bias", true), convert.ErrUnsupported},
		"conv_L_cache 5":        {lfCase{}, setConfig("conv_L_cache", 5), convert.ErrUnsupported},
		"head_dim 32":           {lfCase{}, setConfig("head_dim", 32), convert.ErrUnsupported},
		"moe gelu":              {moe, setConfig("hidden_act", "gelu"), convert.ErrUnsupported},
		"a layer type":          {lfCase{}, setConfig("layer_types", []string{"conv", "full_attention", "conv", "mamba"}), convert.ErrMismatch},
		"too few layer types":   {lfCase{}, setConfig("layer_types", []string{"conv", "full_attention"}), convert.ErrMismatch},
		"attention as conv":     {lfCase{}, setConfig("layer_types", []string{"conv", "conv", "conv", "conv"}), convert.ErrMismatch},
		"full_attn_idxs 9":      {lfCase{idxs: true}, setConfig("full_attn_idxs", []int{9}), convert.ErrMismatch},
		"block_ff_dim":          {lfCase{}, setConfig("block_ff_dim", 120), convert.ErrMismatch}, // two thirds, 80, rounded up: 96
		"no q_layernorm":        {lfCase{}, dropTensor("model.layers.1.self_attn.q_layernorm.weight"), convert.ErrMismatch},
		"no conv":               {lfCase{}, dropTensor("model.layers.2.conv.conv.weight"), convert.ErrMismatch},
		"untied without a head": {lfCase{}, setConfig("tie_embedding", false), convert.ErrMismatch},
		"multiplier null": {lfCase{}, func(c map[string]any, ts []stTensor) []stTensor {
			c["block_ff_dim"], c["block_ffn_dim_multiplier"] = 190, nil // 126, not rounded up to 128
			return ts
		}, convert.ErrMismatch},
		"a conv bias": {lfCase{}, func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, zeros("model.layers.0.conv.conv.bias", lfHidden))
		}, convert.ErrUnsupported},
		"moe without types":     {moe, setConfig("layer_types", nil), convert.ErrMismatch},
		"routed_scaling_factor": {moe, setConfig("routed_scaling_factor", 2.0), convert.ErrUnsupported},
		"norm_topk_prob false":  {moe, setConfig("norm_topk_prob", false), convert.ErrUnsupported},
		"num_dense_layers 5":    {moe, setConfig("num_dense_layers", 5), convert.ErrMismatch},
		"bias without use":      {moe, setConfig("use_expert_bias", false), convert.ErrMismatch},
		"an expert missing":     {moe, dropTensor("model.layers.2.feed_forward.experts.5.w2.weight"), convert.ErrMismatch},
		"dense layer 1":         {moe, setConfig("num_dense_layers", 2), convert.ErrMismatch},
		"experts in layer 0":    {moe, setConfig("num_dense_layers", 0), convert.ErrMismatch},
		"both fused and per expert": {moe, func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, zeros("model.layers.2.feed_forward.experts.gate_up_proj", lfExperts, 2*lfExpertFF, lfHidden),
				zeros("model.layers.2.feed_forward.experts.down_proj", lfExperts, lfHidden, lfExpertFF))
		}, convert.ErrMismatch},
		"VL on LFM2-MoE": {lfCase{vl: true}, func(c map[string]any, ts []stTensor) []stTensor {
			c["text_config"].(map[string]any)["model_type"] = "lfm2_moe"
			return ts
		}, convert.ErrUnsupported},
	} {
		t.Run(name, func(t *testing.T) {
			err := convert.Convert(context.Background(), tc.c.fixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestLFM2Config checks config.json's LFM2 fields are read as
// transformers reads them: theta over rope_theta (lfm2 only), 1e6 when
// neither is given, a context of 128000 by default, the MLP width from
// block_ff_dim over intermediate_size, adjusted or not, with a
// multiplier; an untied head; a gelu hidden_act on dense LFM2, whose MLP
// is SiLU whatever it says; a tied checkpoint's head left out; LFM2-VL's
// older tensor names.
func TestLFM2Config(t *testing.T) {
	moe := lfCase{moe: true, expertBias: true}
	head := f32Tensor("lm_head.weight", []int64{g4Vocab, lfHidden}, make([]float32, g4Vocab*lfHidden))
	edit := func(f func(map[string]any)) func(map[string]any, []stTensor) []stTensor {
		return func(c map[string]any, ts []stTensor) []stTensor { f(c); return ts }
	}
	for name, tc := range map[string]struct {
		c         lfCase
		edit      func(map[string]any, []stTensor) []stTensor
		theta     float64
		ctx       uint64
		hasOutput bool
	}{
		"theta over rope_theta": {lfCase{}, setConfig("theta", 5e5), 5e5, 4096, false},
		"no theta":              {lfCase{}, edit(func(c map[string]any) { delete(c, "rope_theta") }), 1e6, 4096, false},
		"moe ignores theta":     {moe, edit(func(c map[string]any) { delete(c, "rope_theta"); c["theta"] = 5e5 }), 1e6, 4096, false},
		"no context":            {lfCase{}, edit(func(c map[string]any) { delete(c, "max_position_embeddings") }), 1e4, 128000, false},
		"block_ff_dim first":    {lfCase{}, setConfig("intermediate_size", 999), 1e4, 4096, false},
		"intermediate_size": {lfCase{}, edit(func(c map[string]any) { // 192 → 128
			delete(c, "block_ff_dim")
			c["intermediate_size"] = 192
		}), 1e4, 4096, false},
		"not adjusted": {lfCase{}, edit(func(c map[string]any) {
			c["block_ff_dim"], c["block_auto_adjust_ff_dim"] = 128, false
		}), 1e4, 4096, false},
		"multiplier 1.5": {lfCase{}, edit(func(c map[string]any) { // 128 → 85 → 127 → 128
			c["block_ff_dim"], c["block_ffn_dim_multiplier"] = 128, 1.5
		}), 1e4, 4096, false},
		"untied": {lfCase{}, func(c map[string]any, ts []stTensor) []stTensor {
			c["tie_embedding"] = false
			return append(ts, head)
		}, 1e4, 4096, true},
		"gelu":      {lfCase{}, setConfig("hidden_act", "gelu"), 1e4, 4096, false},
		"tied head": {lfCase{}, func(_ map[string]any, ts []stTensor) []stTensor { return append(ts, head) }, 1e4, 4096, false},
		"VL, older names": {lfCase{vl: true}, func(_ map[string]any, ts []stTensor) []stTensor {
			for i := range ts {
				if rest, ok := strings.CutPrefix(ts[i].name, "model.language_model."); ok {
					ts[i].name = "language_model.model." + rest
				}
			}
			return ts
		}, 1e4, 4096, false},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.gguf")
			if err := convert.Convert(context.Background(), tc.c.fixture(t, tc.edit), out, convert.Options{}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			a := f.Architecture()
			if got, _ := f.Float(a + ".rope.freq_base"); got != tc.theta {
				t.Errorf("freq_base %v, want %v", got, tc.theta)
			}
			if got, _ := f.Uint(a + ".context_length"); got != tc.ctx {
				t.Errorf("context_length %v, want %v", got, tc.ctx)
			}
			if _, ok := f.Tensor("output.weight"); ok != tc.hasOutput {
				t.Errorf("output.weight written: %v, want %v", ok, tc.hasOutput)
			}
		})
	}
}
