package convert_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// A Qwen3-Next fixture: hidden size 64 (tiny-llama-st's tokenizer), 4
// layers (3 Gated DeltaNet, then attention); attention of 4 heads of 32 (2
// KV heads) rotated over a quarter of each head, with an output gate;
// DeltaNets of 2 key heads and 4 value heads of 16 with a convolution of 4;
// 4 experts of 32 (2 used) and a shared expert of 48.
const (
	q3nHidden, q3nHeads, q3nKV, q3nHeadDim, q3nRot   = 64, 4, 2, 32, 8
	q3nKHeads, q3nVHeads, q3nLHeadDim, q3nConv       = 2, 4, 16, 4
	q3nExperts, q3nUsed, q3nFF, q3nShared, q3nLayers = 4, 2, 32, 48, 4
)

// q3nCase is one fixture's variant.
type q3nCase struct {
	fused bool // experts fused as transformers 5 stores them
}

func (c q3nCase) fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"Qwen3NextForCausalLM"}, "model_type": "qwen3_next",
		"hidden_size": q3nHidden, "num_hidden_layers": q3nLayers, "num_attention_heads": q3nHeads, "num_key_value_heads": q3nKV,
		"head_dim": q3nHeadDim, "partial_rotary_factor": 0.25, "intermediate_size": 96, "moe_intermediate_size": q3nFF,
		"shared_expert_intermediate_size": q3nShared, "num_experts": q3nExperts, "num_experts_per_tok": q3nUsed, "norm_topk_prob": true,
		"decoder_sparse_step": 1, "mlp_only_layers": []int{}, "linear_conv_kernel_dim": q3nConv, "linear_key_head_dim": q3nLHeadDim,
		"linear_value_head_dim": q3nLHeadDim, "linear_num_key_heads": q3nKHeads, "linear_num_value_heads": q3nVHeads,
		"full_attention_interval": 4, "layer_types": []string{"linear_attention", "linear_attention", "linear_attention", "full_attention"},
		"hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 4096, "vocab_size": g4Vocab,
		"tie_word_embeddings": false, "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2,
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(44, 1))
	w := randWeights{r}
	H, D, Q, KV := int64(q3nHidden), int64(q3nHeadDim), int64(q3nHeads*q3nHeadDim), int64(q3nKV*q3nHeadDim)
	KD, VD, NV := int64(q3nKHeads*q3nLHeadDim), int64(q3nVHeads*q3nLHeadDim), int64(q3nVHeads)
	CD, E, I, S := 2*KD+VD, int64(q3nExperts), int64(q3nFF), int64(q3nShared)
	// Qwen3-Next's norms are zero-centred: weights near 0 scale by about 1.
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{g4Vocab, H}, randn(r, g4Vocab*q3nHidden, 0.1)), w.vec("model.norm.weight", H, 0, 0.1),
		w.mat("lm_head.weight", g4Vocab, H)}
	for l := range q3nLayers {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"input_layernorm.weight", H, 0, 0.1), w.vec(p+"post_attention_layernorm.weight", H, 0, 0.1))
		if l == 3 {
			ts = append(ts, w.mat(p+"self_attn.q_proj.weight", 2*Q, H), w.mat(p+"self_attn.k_proj.weight", KV, H), w.mat(p+"self_attn.v_proj.weight", KV, H),
				w.mat(p+"self_attn.o_proj.weight", H, Q), w.vec(p+"self_attn.q_norm.weight", D, 0, 0.2), w.vec(p+"self_attn.k_norm.weight", D, 0, 0.2))
		} else {
			aLog := make([]float32, NV)
			for i := range aLog {
				aLog[i] = float32(math.Log(1 + 15*r.Float64()))
			}
			ts = append(ts, w.mat(p+"linear_attn.in_proj_qkvz.weight", 2*KD+2*VD, H), w.mat(p+"linear_attn.in_proj_ba.weight", 2*NV, H),
				f32Tensor(p+"linear_attn.conv1d.weight", []int64{CD, 1, q3nConv}, randn(r, int(CD*q3nConv), 0.5)), w.vec(p+"linear_attn.dt_bias", NV, 0, 0.5),
				f32Tensor(p+"linear_attn.A_log", []int64{NV}, aLog), w.vec(p+"linear_attn.norm.weight", q3nLHeadDim, 1, 0.1),
				w.mat(p+"linear_attn.out_proj.weight", H, VD))
		}
		ts = append(ts, f32Tensor(p+"mlp.gate.weight", []int64{E, H}, randn(r, q3nExperts*q3nHidden, 0.3)),
			w.mat(p+"mlp.shared_expert.gate_proj.weight", S, H), w.mat(p+"mlp.shared_expert.up_proj.weight", S, H),
			w.mat(p+"mlp.shared_expert.down_proj.weight", H, S), w.mat(p+"mlp.shared_expert_gate.weight", 1, H))
		if c.fused {
			gu, down := w.mat(p+"mlp.experts.gate_up_proj", E*2*I, H), w.mat(p+"mlp.experts.down_proj", E*H, I)
			gu.shape, down.shape = []int64{E, 2 * I, H}, []int64{E, H, I}
			ts = append(ts, gu, down)
			continue
		}
		for e := range q3nExperts {
			q := p + "mlp.experts." + strconv.Itoa(e) + "."
			ts = append(ts, w.mat(q+"gate_proj.weight", I, H), w.mat(q+"up_proj.weight", I, H), w.mat(q+"down_proj.weight", H, I))
		}
	}
	ts = append(ts, w.mat("mtp.fc.weight", H, 2*H)) // multi-token prediction: skipped
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// rmsOffset RMS-normalises x and scales it by offset + w.
func rmsOffset(x, w []float64, offset, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * r * (offset + w[i])
	}
	return out
}

// deltaNetRef is Qwen3-Next's Gated DeltaNet as transformers runs it (its
// recurrent form): in_proj_qkvz split per key head into q, k, v, z and
// in_proj_ba into β, α; q·k·v convolved causally and SiLU'd; per value
// head (sharing key head h/(value heads/key heads)) q and k L2-normalised,
// q scaled by 1/√d, the state decayed by exp(-exp(A_log)·softplus(α +
// dt_bias)) and corrected by the delta rule with sigmoid(β); each head's
// output RMS-normed, times SiLU(z); out_proj.
type deltaNetRef struct {
	qkvz, ba, conv, dtBias, aLog, norm, out []float64
	// Left out for the sensitivity checks.
	noGate, noConv, noDecay, noBeta, noL2, flatSplit bool
}

func (dn *deltaNetRef) forward(hs [][]float64) [][]float64 {
	const nk, nv, d, K = q3nKHeads, q3nVHeads, q3nLHeadDim, q3nConv
	const rep, kd, vd = nv / nk, nk * d, nv * d
	T := len(hs)
	mixed, zs, bs, as := make([][]float64, T), make([][]float64, T), make([][]float64, T), make([][]float64, T)
	for t, h := range hs {
		p, ba := matvec(dn.qkvz, h, 2*kd+2*vd), matvec(dn.ba, h, 2*nv)
		q, k, v, z := make([]float64, 0, kd), make([]float64, 0, kd), make([]float64, 0, vd), make([]float64, 0, vd)
		var b, a []float64
		if dn.flatSplit { // q, k, v, z one after the other, not per key head
			q, k, v, z = p[:kd], p[kd:2*kd], p[2*kd:2*kd+vd], p[2*kd+vd:]
			b, a = ba[:nv], ba[nv:]
		} else {
			g := 2*d + 2*rep*d
			for i := range nk {
				blk := p[i*g : (i+1)*g]
				q, k = append(q, blk[:d]...), append(k, blk[d:2*d]...)
				v, z = append(v, blk[2*d:2*d+rep*d]...), append(z, blk[2*d+rep*d:]...)
				bb := ba[i*2*rep : (i+1)*2*rep]
				b, a = append(b, bb[:rep]...), append(a, bb[rep:]...)
			}
		}
		mixed[t], zs[t], bs[t], as[t] = slices.Concat(q, k, v), z, b, a
	}
	const cd = 2*kd + vd
	state := make([]float64, nv*d*d)
	outs := make([][]float64, T)
	for t := range hs {
		c := make([]float64, cd)
		for ch := range cd {
			var s float64
			if dn.noConv {
				s = mixed[t][ch]
			} else {
				for j := range K {
					if src := t - K + 1 + j; src >= 0 {
						s += dn.conv[ch*K+j] * mixed[src][ch]
					}
				}
			}
			c[ch] = silu(s)
		}
		o := make([]float64, vd)
		for h := range nv {
			kh := h / rep
			q, k, v := slices.Clone(c[kh*d:(kh+1)*d]), slices.Clone(c[kd+kh*d:kd+(kh+1)*d]), c[2*kd+h*d:2*kd+(h+1)*d]
			if !dn.noL2 {
				for _, x := range [][]float64{q, k} {
					var ss float64
					for _, e := range x {
						ss += e * e
					}
					r := 1 / math.Sqrt(ss+1e-6)
					for i := range x {
						x[i] *= r
					}
				}
			}
			for i := range q {
				q[i] /= math.Sqrt(d)
			}
			beta := 1 / (1 + math.Exp(-bs[t][h]))
			if dn.noBeta {
				beta = 1
			}
			decay := math.Exp(-math.Exp(dn.aLog[h]) * softplus(as[t][h]+dn.dtBias[h]))
			if dn.noDecay {
				decay = 1
			}
			S := state[h*d*d : (h+1)*d*d] // [key dim][value dim]
			for i := range S {
				S[i] *= decay
			}
			for j := range d {
				var mem float64
				for i := range d {
					mem += S[i*d+j] * k[i]
				}
				delta := (v[j] - mem) * beta
				for i := range d {
					S[i*d+j] += k[i] * delta
				}
			}
			for j := range d {
				var s float64
				for i := range d {
					s += S[i*d+j] * q[i]
				}
				o[h*d+j] = s
			}
			head := rmsOffset(o[h*d:(h+1)*d], dn.norm, 0, 1e-6)
			for j := range head {
				if !dn.noGate {
					head[j] *= silu(zs[t][h*d+j])
				}
			}
			copy(o[h*d:(h+1)*d], head)
		}
		outs[t] = matvec(dn.out, o, q3nHidden)
	}
	return outs
}

// gatedAttnRef is Qwen3-Next's attention: q_proj gives each head's query
// and its output gate; (1 + weight) RMS norms on q and k per head, rope
// over the first q3nRot dimensions, softmax attention, the output times
// sigmoid(gate), o_proj.
type gatedAttnRef struct {
	wq, wk, wv, wo, qNorm, kNorm []float64
	invFreq                      []float64
	noGate                       bool
}

func (ga *gatedAttnRef) forward(hs [][]float64) [][]float64 {
	const nh, nkv, d = q3nHeads, q3nKV, q3nHeadDim
	T := len(hs)
	qs, gates, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T), make([][]float64, T)
	for t, h := range hs {
		qg := matvec(ga.wq, h, 2*nh*d)
		k, v := matvec(ga.wk, h, nkv*d), matvec(ga.wv, h, nkv*d)
		q, g := make([]float64, 0, nh*d), make([]float64, 0, nh*d)
		for j := range nh {
			head := rmsOffset(qg[j*2*d:j*2*d+d], ga.qNorm, 1, 1e-6)
			rope(head, t, ga.invFreq, 1)
			q, g = append(q, head...), append(g, qg[j*2*d+d:(j+1)*2*d]...)
		}
		for j := range nkv {
			head := rmsOffset(k[j*d:(j+1)*d], ga.kNorm, 1, 1e-6)
			rope(head, t, ga.invFreq, 1)
			copy(k[j*d:], head)
		}
		qs[t], gates[t], ks[t], vs[t] = q, g, k, v
	}
	outs := causalAttention(qs, ks, vs, nh, nkv, d)
	for t, att := range outs {
		if !ga.noGate {
			for i := range att {
				att[i] /= 1 + math.Exp(-gates[t][i])
			}
		}
		outs[t] = matvec(ga.wo, att, q3nHidden)
	}
	return outs
}

// q3nRef holds a reference and its parts, for the edits.
type q3nRef struct {
	*refModel
	nets []*deltaNetRef
	attn *gatedAttnRef
}

func (c q3nCase) reference(t *testing.T, dir string) *q3nRef {
	t.Helper()
	r := openST(t, dir)
	m := &refModel{hidden: q3nHidden, heads: q3nHeads, kvHeads: q3nKV, headDim: q3nHeadDim, eps: 1e-6, normOffset: 1}
	m.emb, m.norm, m.out = r.get("model.embed_tokens.weight"), r.get("model.norm.weight"), r.get("lm_head.weight")
	ref := &q3nRef{refModel: m}
	for l := range q3nLayers {
		p := layerPrefix(l)
		L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "post_attention_layernorm.weight"),
			router: r.get(p + "mlp.gate.weight"), topK: q3nUsed, ffn: q3nFF, sharedGate: r.get(p + "mlp.shared_expert_gate.weight"), sharedFFN: q3nShared,
			shared: &[3][]float64{r.get(p + "mlp.shared_expert.gate_proj.weight"), r.get(p + "mlp.shared_expert.up_proj.weight"), r.get(p + "mlp.shared_expert.down_proj.weight")}}
		if l == 3 {
			ref.attn = &gatedAttnRef{wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"), wv: r.get(p + "self_attn.v_proj.weight"),
				wo: r.get(p + "self_attn.o_proj.weight"), qNorm: r.get(p + "self_attn.q_norm.weight"), kNorm: r.get(p + "self_attn.k_norm.weight"),
				invFreq: defaultInvFreq(10000, q3nRot)}
			L.mixer = ref.attn.forward
		} else {
			dn := &deltaNetRef{qkvz: r.get(p + "linear_attn.in_proj_qkvz.weight"), ba: r.get(p + "linear_attn.in_proj_ba.weight"),
				conv: r.get(p + "linear_attn.conv1d.weight"), dtBias: r.get(p + "linear_attn.dt_bias"), aLog: r.get(p + "linear_attn.A_log"),
				norm: r.get(p + "linear_attn.norm.weight"), out: r.get(p + "linear_attn.out_proj.weight")}
			ref.nets = append(ref.nets, dn)
			L.mixer = dn.forward
		}
		const I, H = q3nFF, q3nHidden
		if c.fused {
			L.experts = fusedExpertsRef(r.get(p+"mlp.experts.gate_up_proj"), r.get(p+"mlp.experts.down_proj"), q3nExperts, I, H)
		} else {
			for e := range q3nExperts {
				q := p + "mlp.experts." + strconv.Itoa(e) + "."
				L.experts = append(L.experts, [3][]float64{r.get(q + "gate_proj.weight"), r.get(q + "up_proj.weight"), r.get(q + "down_proj.weight")})
			}
		}
		m.layers = append(m.layers, L)
	}
	return ref
}

// TestQwen3Next converts Qwen3-Next checkpoints (experts per expert and
// fused) and checks the keys and the logits against the float64
// reference, which would see the DeltaNet's grouping of q·k·v·z, its
// convolution, decay, β, L2 norms or output gate, the attention's output
// gate, the zero-centred norms or the shared expert left out.
func TestQwen3Next(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for name, c := range map[string]q3nCase{"per expert": {}, "fused": {fused: true}} {
		t.Run(name, func(t *testing.T) {
			dir := c.fixture(t, nil)
			out := filepath.Join(t.TempDir(), "q3n.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if f.Architecture() != "qwen3next" {
				t.Fatalf("architecture %q", f.Architecture())
			}
			for k, v := range map[string]uint64{"ssm.conv_kernel": q3nConv, "ssm.inner_size": q3nVHeads * q3nLHeadDim, "ssm.state_size": q3nLHeadDim,
				"ssm.time_step_rank": q3nVHeads, "ssm.group_count": q3nKHeads, "rope.dimension_count": q3nRot, "attention.key_length": q3nHeadDim,
				"expert_count": q3nExperts, "expert_used_count": q3nUsed, "expert_feed_forward_length": q3nFF, "expert_shared_feed_forward_length": q3nShared} {
				if got, ok := f.Uint("qwen3next." + k); !ok || got != v {
					t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
				}
			}
			if _, ok := f.Tensor("mtp.fc.weight"); ok {
				t.Error("multi-token prediction written")
			}
			if m := loadModel(t, out, engine.ModelOptions{}); !m.IsRecurrent() {
				t.Error("not recurrent")
			}
			fresh := func() *q3nRef { return c.reference(t, dir) }
			ctx := refContext(t, out)
			checkRef(t, ctx, prompts, fresh().forward, 1e-5)
			// A prompt of two of llama.cpp's DeltaNet chunks (64 tokens),
			// in one batch and a token at a time (its single-token path).
			long := make([]int, 100)
			for i := range long {
				long[i] = 3 + (i*37)%5000
			}
			want := fresh().forward(long)
			_, batched := greedy(t, ctx, toTokens(long), 1)
			for how, got := range map[string][]float32{"one batch": batched, "a token at a time": stepwise(t, ctx, long)} {
				if d := relErr(got, want); d > 1e-4 {
					t.Errorf("100 tokens, %s: relative logit error %.3g", how, d)
				} else {
					t.Logf("100 tokens, %s: relative logit error %.3g", how, d)
				}
			}
			all := func(edit func(*deltaNetRef)) func(*q3nRef) {
				return func(m *q3nRef) {
					for _, n := range m.nets {
						edit(n)
					}
				}
			}
			checkSensitive(t, ctx, prompts, fresh, map[string]func(*q3nRef){
				"q·k·v·z not grouped": all(func(n *deltaNetRef) { n.flatSplit = true }),
				"convolution":         all(func(n *deltaNetRef) { n.noConv = true }),
				"decay":               all(func(n *deltaNetRef) { n.noDecay = true }),
				"β":                   all(func(n *deltaNetRef) { n.noBeta = true }),
				"L2 norms":            all(func(n *deltaNetRef) { n.noL2 = true }),
				"DeltaNet gate":       all(func(n *deltaNetRef) { n.noGate = true }),
				"attention gate":      func(m *q3nRef) { m.attn.noGate = true },
				"1 + weight":          func(m *q3nRef) { m.normOffset = 0 },
				"shared expert": func(m *q3nRef) {
					for i := range m.layers {
						m.layers[i].shared = nil
					}
				},
			})
		})
	}
}

// TestQwen3NextRefused checks the Qwen3-Next layouts llama.cpp's qwen3next
// cannot run, or that contradict their config, are refused with the error
// kind.
func TestQwen3NextRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"attention every 2nd layer": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "layer_types")
			c["full_attention_interval"] = 2
			return ts
		}, convert.ErrUnsupported},
		"interval 0": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "layer_types")
			c["full_attention_interval"] = 0
			return ts
		}, convert.ErrMismatch},
		"layer types":         {setConfig("layer_types", []string{"linear_attention", "full_attention", "linear_attention", "full_attention"}), convert.ErrUnsupported},
		"value head size":     {setConfig("linear_value_head_dim", 32), convert.ErrUnsupported},
		"3 key heads":         {setConfig("linear_num_key_heads", 3), convert.ErrMismatch},
		"convolution of 5":    {setConfig("linear_conv_kernel_dim", 5), convert.ErrUnsupported},
		"attention bias":      {setConfig("attention_bias", true), convert.ErrUnsupported},
		"dense layers":        {setConfig("mlp_only_layers", []int{0}), convert.ErrUnsupported},
		"shared expert width": {setConfig("shared_expert_intermediate_size", 64), convert.ErrMismatch},
		"fused and per expert": {func(_ map[string]any, ts []stTensor) []stTensor {
			n := q3nExperts * 2 * q3nFF * q3nHidden
			return append(ts, f32Tensor("model.layers.1.mlp.experts.gate_up_proj", []int64{q3nExperts, 2 * q3nFF, q3nHidden}, make([]float32, n)),
				f32Tensor("model.layers.1.mlp.experts.down_proj", []int64{q3nExperts, q3nHidden, q3nFF}, make([]float32, n/2)))
		}, convert.ErrMismatch},
		"attention weights in a DeltaNet layer": {func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.self_attn.k_norm.weight", []int64{q3nHeadDim}, make([]float32, q3nHeadDim)))
		}, convert.ErrMismatch},
		"norm_topk_prob false": {setConfig("norm_topk_prob", false), convert.ErrUnsupported},
		"no A_log":             {dropTensor("model.layers.1.linear_attn.A_log"), convert.ErrMismatch},
		"no shared gate":       {dropTensor("model.layers.2.mlp.shared_expert_gate.weight"), convert.ErrMismatch},
		"an expert missing":    {dropTensor("model.layers.0.mlp.experts.1.up_proj.weight"), convert.ErrMismatch},
	} {
		t.Run(name, func(t *testing.T) {
			err := convert.Convert(context.Background(), q3nCase{}.fixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// stepwise decodes ids one token per batch from an empty memory and
// returns the last position's logits.
func stepwise(t *testing.T, c *engine.Context, ids []int) []float32 {
	t.Helper()
	if err := c.ClearMemory(false); err != nil {
		t.Fatal(err)
	}
	b, err := engine.NewBatch(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, id := range ids {
		b.Clear()
		if err := b.Add(engine.Token(id), engine.Pos(i), true); err != nil {
			t.Fatal(err)
		}
		if err := c.Decode(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.Logits(0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestQwen3NextConfig converts configs transformers completes: without
// layer_types (from the interval), without the DeltaNet's and experts'
// sizes (Qwen3NextConfig's defaults, here those of the fixture's where
// they agree), with tied embeddings (no output matrix written).
func TestQwen3NextConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		edit   func(map[string]any, []stTensor) []stTensor
		output bool
	}{
		"no layer_types": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "layer_types")
			delete(c, "full_attention_interval")
			return ts
		}, true},
		"tied": {func(c map[string]any, ts []stTensor) []stTensor {
			c["tie_word_embeddings"] = true
			return slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "lm_head.weight" })
		}, false},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.gguf")
			if err := convert.Convert(context.Background(), q3nCase{}.fixture(t, tc.edit), out, convert.Options{}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := f.Tensor("output.weight"); ok != tc.output {
				t.Errorf("output.weight written: %v, want %v", ok, tc.output)
			}
			loadModel(t, out, engine.ModelOptions{})
		})
	}
}
