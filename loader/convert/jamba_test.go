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

	"github.com/llm-go/llm/loader/convert"
)

// jambaCase is a tiny Jamba: hidden 64, 4 heads of 16 (2 key/value heads),
// 4 layers, an MLP of 48, Mamba mixers of inner size 128, state 16, dt
// rank 4; attention and experts where the periods and offsets say.
type jambaCase struct {
	name                   string
	attnPeriod, attnOffset int
	expPeriod, expOffset   int
	experts, used          int
	convBias               bool
}

var jambaCases = []jambaCase{
	// Jamba 1.5's pattern, shortened: attention in layers 1 and 3,
	// experts in the same layers.
	{name: "jamba-1.5", attnPeriod: 2, attnOffset: 1, expPeriod: 2, expOffset: 1, experts: 4, used: 2, convBias: true},
	// Jamba Reasoning 3B's: no experts (num_experts 1), attention in one
	// layer of four.
	{name: "dense", attnPeriod: 4, attnOffset: 2, expPeriod: 2, expOffset: 1, experts: 1, used: 1},
	{name: "experts-in-mamba-layers", attnPeriod: 4, attnOffset: 3, expPeriod: 2, expOffset: 0, experts: 4, used: 1, convBias: true},
}

func (c jambaCase) attn(l int) bool { return l%c.attnPeriod == c.attnOffset }
func (c jambaCase) moe(l int) bool  { return c.experts > 1 && l%c.expPeriod == c.expOffset }

// fixture writes the case's checkpoint (tiny-llama-st's tokenizer).
func (c jambaCase) fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"JambaForCausalLM"}, "model_type": "jamba", "hidden_size": mambaHidden, "num_attention_heads": 4,
		"num_key_value_heads": 2, "num_hidden_layers": 4, "intermediate_size": 48, "vocab_size": 32000, "rms_norm_eps": 1e-6, "hidden_act": "silu",
		"attn_layer_period": c.attnPeriod, "attn_layer_offset": c.attnOffset, "expert_layer_period": c.expPeriod, "expert_layer_offset": c.expOffset,
		"num_experts": c.experts, "num_experts_per_tok": c.used, "mamba_d_state": mambaState, "mamba_d_conv": mambaConv, "mamba_expand": 2,
		"mamba_dt_rank": "auto", "mamba_conv_bias": c.convBias, "mamba_proj_bias": false, "max_position_embeddings": 262144,
		"tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(61, 4))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, mambaHidden}, randn(r, 32000*mambaHidden, 1)),
		w.vec("model.final_layernorm.weight", mambaHidden, 1, 0.1), w.mat("lm_head.weight", 32000, mambaHidden)}
	for l := range 4 {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"input_layernorm.weight", mambaHidden, 1, 0.1), w.vec(p+"pre_ff_layernorm.weight", mambaHidden, 1, 0.1))
		if c.attn(l) {
			ts = append(ts, w.mat(p+"self_attn.q_proj.weight", 64, 64), w.mat(p+"self_attn.k_proj.weight", 32, 64),
				w.mat(p+"self_attn.v_proj.weight", 32, 64), w.mat(p+"self_attn.o_proj.weight", 64, 64))
		} else {
			aLog := make([]float32, mambaInner*mambaState)
			for j := range aLog {
				aLog[j] = float32(math.Log(float64(1+j%mambaState))) + float32(r.NormFloat64()*0.1)
			}
			q := p + "mamba."
			ts = append(ts, w.mat(q+"in_proj.weight", 2*mambaInner, mambaHidden),
				f32Tensor(q+"conv1d.weight", []int64{mambaInner, 1, mambaConv}, randn(r, mambaInner*mambaConv, 0.5)),
				w.mat(q+"x_proj.weight", mambaRank+2*mambaState, mambaInner), w.mat(q+"dt_proj.weight", mambaInner, mambaRank),
				w.vec(q+"dt_proj.bias", mambaInner, -2, 0.5), f32Tensor(q+"A_log", []int64{mambaInner, mambaState}, aLog),
				w.vec(q+"D", mambaInner, 1, 0.3), w.mat(q+"out_proj.weight", mambaHidden, mambaInner),
				w.vec(q+"dt_layernorm.weight", mambaRank, 1, 0.2), w.vec(q+"b_layernorm.weight", mambaState, 1, 0.2),
				w.vec(q+"c_layernorm.weight", mambaState, 1, 0.2))
			if c.convBias {
				ts = append(ts, w.vec(q+"conv1d.bias", mambaInner, 0, 0.3))
			}
		}
		if !c.moe(l) {
			ts = append(ts, w.mat(p+"feed_forward.gate_proj.weight", 48, 64), w.mat(p+"feed_forward.up_proj.weight", 48, 64),
				w.mat(p+"feed_forward.down_proj.weight", 64, 48))
			continue
		}
		ts = append(ts, w.mat(p+"feed_forward.router.weight", int64(c.experts), 64))
		for e := range c.experts {
			q := fmt.Sprintf("%sfeed_forward.experts.%d.", p, e)
			ts = append(ts, w.mat(q+"gate_proj.weight", 48, 64), w.mat(q+"up_proj.weight", 48, 64), w.mat(q+"down_proj.weight", 64, 48))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// jambaRef is transformers' Jamba of a fixture, with its mixers for the
// edits.
type jambaRef struct {
	*refModel
	mixers []*mamba1Mixer
}

func (c jambaCase) reference(r *stReader) *jambaRef {
	m := &jambaRef{refModel: &refModel{hidden: mambaHidden, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6}}
	m.emb, m.out, m.norm = r.get("model.embed_tokens.weight"), r.get("lm_head.weight"), r.get("model.final_layernorm.weight")
	for l := range 4 {
		p := layerPrefix(l)
		L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "pre_ff_layernorm.weight"), noRope: true, ffn: 48}
		if c.attn(l) {
			L.wq, L.wk, L.wv, L.wo = r.get(p+"self_attn.q_proj.weight"), r.get(p+"self_attn.k_proj.weight"), r.get(p+"self_attn.v_proj.weight"),
				r.get(p+"self_attn.o_proj.weight")
		} else {
			mx := readMamba1(r, p+"mamba.", c.convBias)
			mx.dtNorm, mx.bNorm, mx.cNorm, mx.normEps = r.get(p+"mamba.dt_layernorm.weight"), r.get(p+"mamba.b_layernorm.weight"),
				r.get(p+"mamba.c_layernorm.weight"), 1e-6
			m.mixers = append(m.mixers, mx)
			L.mixer = mx.forward
		}
		if c.moe(l) {
			L.router, L.topK, L.noNorm = r.get(p+"feed_forward.router.weight"), c.used, true
			for e := range c.experts {
				q := fmt.Sprintf("%sfeed_forward.experts.%d.", p, e)
				L.experts = append(L.experts, [3][]float64{r.get(q + "gate_proj.weight"), r.get(q + "up_proj.weight"), r.get(q + "down_proj.weight")})
			}
		} else {
			L.wg, L.wu, L.wd = r.get(p+"feed_forward.gate_proj.weight"), r.get(p+"feed_forward.up_proj.weight"), r.get(p+"feed_forward.down_proj.weight")
		}
		m.layers = append(m.layers, L)
	}
	return m
}

// TestJamba converts tiny Jambas (Jamba 1.5's layout with experts, a
// dense one like Jamba Reasoning 3B, and experts in Mamba layers) to
// llama.cpp's jamba and checks the per-layer heads and the logits against
// the float64 reference, which would see the dt/B/C norms' weights, the
// renormalised top-k weights and the mixers' D left out; checkpoints that
// disagree with their layer pattern are refused.
func TestJamba(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, c := range jambaCases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.fixture(t, nil)
			out, f := convertDir(t, dir, "f32")
			kv, _ := f.LayerKVHeads(4)
			var want []uint64
			for l := range 4 {
				want = append(want, map[bool]uint64{true: 2, false: 0}[c.attn(l)])
			}
			experts, _ := f.Uint("jamba.expert_count")
			rank, _ := f.Uint("jamba.ssm.time_step_rank")
			if f.Architecture() != "jamba" || !slices.Equal(kv, want) || experts != uint64(map[bool]int{true: c.experts, false: 0}[c.experts > 1]) || rank != mambaRank {
				t.Errorf("arch %q, head_count_kv %v (want %v), expert_count %d, time_step_rank %d", f.Architecture(), kv, want, experts, rank)
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			checkRef(t, ctx, prompts, c.reference(r).forward, 1e-4)
			edits := map[string]func(*jambaRef){
				"dt/B/C norms without weights": func(m *jambaRef) {
					for _, mx := range m.mixers {
						mx.dtNorm, mx.bNorm, mx.cNorm = nil, nil, nil
					}
				},
				"no D": func(m *jambaRef) {
					for _, mx := range m.mixers {
						mx.noD = true
					}
				},
			}
			if c.experts > 1 && c.used > 1 {
				edits["top-k renormalised"] = func(m *jambaRef) {
					for i := range m.layers {
						m.layers[i].noNorm = false
					}
				}
			}
			checkSensitive(t, ctx, prompts, func() *jambaRef { return c.reference(r) }, edits)
		})
	}
	// JambaConfig's defaults: 8 key/value heads (a fixture of 8 heads over
	// 8 key/value heads, num_key_value_heads left out), 262144 positions.
	def := jambaCases[1]
	_, fd := convertDir(t, def.fixture(t, func(c map[string]any, ts []stTensor) []stTensor {
		delete(c, "num_key_value_heads")
		delete(c, "max_position_embeddings")
		c["num_attention_heads"] = 8
		for i := range ts {
			if strings.Contains(ts[i].name, "self_attn.k_proj") || strings.Contains(ts[i].name, "self_attn.v_proj") {
				ts[i] = f32Tensor(ts[i].name, []int64{64, 64}, make([]float32, 64*64))
			}
		}
		return ts
	}), "f32")
	if kv, _ := fd.LayerKVHeads(4); !slices.Contains(kv, 8) {
		t.Errorf("defaults: head_count_kv %v, want 8 in the attention layer", kv)
	}
	if ctxLen, _ := fd.Uint("jamba.context_length"); ctxLen != 262144 {
		t.Errorf("defaults: context_length %d, want 262144", ctxLen)
	}
	drop := func(name string) func(map[string]any, []stTensor) []stTensor {
		return func(_ map[string]any, ts []stTensor) []stTensor {
			return slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == name })
		}
	}
	for name, c := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"attention elsewhere":   {setConfig("attn_layer_offset", 0), convert.ErrUnsupported},
		"experts elsewhere":     {setConfig("expert_layer_offset", 0), convert.ErrUnsupported},
		"mamba_expand 4":        {setConfig("mamba_expand", 4), convert.ErrUnsupported},
		"projection biases":     {setConfig("mamba_proj_bias", true), convert.ErrUnsupported},
		"a missing b_layernorm": {drop("model.layers.0.mamba.b_layernorm.weight"), convert.ErrMismatch},
		"a missing expert":      {drop("model.layers.3.feed_forward.experts.2.up_proj.weight"), convert.ErrMismatch},
		"period 0":              {setConfig("attn_layer_period", 0), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), jambaCases[0].fixture(t, c.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
