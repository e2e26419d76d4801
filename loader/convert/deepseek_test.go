package convert_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// dsCase is a tiny DeepSeek checkpoint: V3 (q_lora_rank, sigmoid router
// with score-correction bias and groups, renormalised and scaled weights,
// a multi-token-prediction layer) or V2-Lite (q_proj, 26 layers, softmax
// router, scaled weights).
type dsCase struct {
	v3                                   bool
	layers, hidden, heads, qLora, kvLora int
	nope, rope, vHead, ffn, expertFFN    int
	experts, used, shared, dense         int
	groups, groupsUsed                   int
	norm                                 bool
	scale, mscale                        float64
	ropeFactor, ropeOrig                 float64
}

func newDSCase(v3 bool) dsCase {
	c := dsCase{v3: v3, hidden: 32, heads: 4, kvLora: 16, nope: 8, rope: 4, vHead: 6, ffn: 48, expertFFN: 16,
		experts: 8, used: 3, dense: 1, ropeFactor: 4, ropeOrig: 64}
	if v3 {
		c.layers, c.qLora, c.shared, c.groups, c.groupsUsed, c.norm, c.scale, c.mscale = 3, 12, 1, 4, 2, true, 2.5, 1
	} else {
		c.layers, c.shared, c.scale, c.mscale = 26, 2, 1.5, 0.707
	}
	return c
}

const dsVocab = 32000

// config is the case's config.json.
func (c dsCase) config() map[string]any {
	m := map[string]any{
		"architectures": []string{"DeepseekV2ForCausalLM"}, "model_type": "deepseek_v2",
		"hidden_size": c.hidden, "num_hidden_layers": c.layers, "num_attention_heads": c.heads, "num_key_value_heads": c.heads,
		"kv_lora_rank": c.kvLora, "qk_nope_head_dim": c.nope, "qk_rope_head_dim": c.rope, "v_head_dim": c.vHead,
		"intermediate_size": c.ffn, "moe_intermediate_size": c.expertFFN, "n_routed_experts": c.experts, "num_experts_per_tok": c.used,
		"n_shared_experts": c.shared, "first_k_dense_replace": c.dense, "moe_layer_freq": 1, "routed_scaling_factor": c.scale,
		"norm_topk_prob": c.norm, "scoring_func": "softmax", "topk_method": "greedy", "n_group": 1, "topk_group": 1,
		"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": int(c.ropeFactor * c.ropeOrig), "vocab_size": dsVocab,
		"tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "attention_bias": false, "hidden_act": "silu",
		"rope_scaling": map[string]any{"type": "yarn", "factor": c.ropeFactor, "original_max_position_embeddings": c.ropeOrig,
			"beta_fast": 32.0, "beta_slow": 1.0, "mscale": c.mscale, "mscale_all_dim": c.mscale},
		"q_lora_rank": nil,
	}
	if c.v3 {
		m["architectures"], m["model_type"] = []string{"DeepseekV3ForCausalLM"}, "deepseek_v3"
		m["q_lora_rank"], m["scoring_func"], m["topk_method"] = c.qLora, "sigmoid", "noaux_tc"
		m["n_group"], m["topk_group"], m["num_nextn_predict_layers"], m["rope_interleave"] = c.groups, c.groupsUsed, 1, true
	}
	return m
}

// fixture writes the case with random weights; edit changes it.
func (c dsCase) fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := c.config()
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(7, 11))
	H, qk := int64(c.hidden), int64(c.nope+c.rope)
	w := randWeights{r}
	mat := w.mat
	norm := func(name string, n int64) stTensor { return w.vec(name, n, 1, 0.1) }
	ts := []stTensor{
		f32Tensor("model.embed_tokens.weight", []int64{dsVocab, H}, randn(r, dsVocab*c.hidden, 1)),
		norm("model.norm.weight", H), mat("lm_head.weight", dsVocab, H),
	}
	layers := c.layers
	if c.v3 {
		layers++ // the multi-token-prediction layer, skipped
	}
	for l := range layers {
		p := layerPrefix(l)
		ts = append(ts, norm(p+"input_layernorm.weight", H), norm(p+"post_attention_layernorm.weight", H),
			mat(p+"self_attn.kv_a_proj_with_mqa.weight", int64(c.kvLora+c.rope), H), norm(p+"self_attn.kv_a_layernorm.weight", int64(c.kvLora)),
			mat(p+"self_attn.kv_b_proj.weight", int64(c.heads*(c.nope+c.vHead)), int64(c.kvLora)),
			mat(p+"self_attn.o_proj.weight", H, int64(c.heads*c.vHead)))
		if c.qLora > 0 {
			ts = append(ts, mat(p+"self_attn.q_a_proj.weight", int64(c.qLora), H), norm(p+"self_attn.q_a_layernorm.weight", int64(c.qLora)),
				mat(p+"self_attn.q_b_proj.weight", int64(c.heads)*qk, int64(c.qLora)))
		} else {
			ts = append(ts, mat(p+"self_attn.q_proj.weight", int64(c.heads)*qk, H))
		}
		if l < c.dense {
			F := int64(c.ffn)
			ts = append(ts, mat(p+"mlp.gate_proj.weight", F, H), mat(p+"mlp.up_proj.weight", F, H), mat(p+"mlp.down_proj.weight", H, F))
			continue
		}
		I, S := int64(c.expertFFN), int64(c.shared*c.expertFFN)
		ts = append(ts, mat(p+"mlp.gate.weight", int64(c.experts), H),
			mat(p+"mlp.shared_experts.gate_proj.weight", S, H), mat(p+"mlp.shared_experts.up_proj.weight", S, H),
			mat(p+"mlp.shared_experts.down_proj.weight", H, S))
		if c.v3 {
			ts = append(ts, f32Tensor(p+"mlp.gate.e_score_correction_bias", []int64{int64(c.experts)}, randn(r, c.experts, 0.3)))
		}
		for e := range c.experts {
			q := p + "mlp.experts." + strconv.Itoa(e) + "."
			ts = append(ts, mat(q+"gate_proj.weight", I, H), mat(q+"up_proj.weight", I, H), mat(q+"down_proj.weight", H, I))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// dsRef is the float64 DeepSeek of transformers' DeepseekV3 (and the V2
// remote code): multi-head latent attention with the rope on the last
// qk_rope_head_dim dimensions of each query head and on one key shared
// by the heads, in interleaved pairs; yarn's frequencies, cos and sin
// scaled by 1, and the scores by get_mscale(factor, mscale_all_dim)²;
// the routed experts with shared ones.
type dsRef struct {
	c              dsCase
	invFreq        []float64
	scale          float64 // the attention scores' scale
	emb, out, norm []float64
	layers         []dsLayer
	moe            smoeRef
	// halvesRope rotates rotate_half's pairs: a feature left out
	// (MiniCPM3's layout).
	halvesRope bool
	// MiniCPM3's scales (0: 1): embScale multiplies the embeddings,
	// resScale each block's attention and MLP outputs, and logitDiv
	// divides the final hidden state.
	embScale, resScale, logitDiv float64
}

type dsLayer struct {
	attnNorm, ffnNorm, wq, wqa, qaNorm, wqb, wkva, kvaNorm, wkvb, wo []float64
	wg, wu, wd                                                       []float64
	moe                                                              *smoeLayer // nil in the dense layers
}

// smoeRef is the float64 MLP of DeepSeek V2/V3 and GLM-4.5 (sharedMoE):
// softmax or sigmoid router, the selection bias, groups ranked by the sum
// of their best two scores, the top experts' unbiased scores renormalised
// (norm) and scaled, plus the shared experts; and the features the
// sensitivity checks leave out.
type smoeRef struct {
	hidden, experts, used, expertFFN, sharedFFN, groups, groupsUsed int
	sigmoid, norm                                                   bool
	scale                                                           float64
	noShared, noBias, noGroups                                      bool
}

// dsBias is DeepSeek V3's name of the selection bias under mlp.gate.
const dsBias = "e_score_correction_bias"

// layerMLP sets L's MLP from layer prefix p of a sharedMoE checkpoint: a
// dense MLP of width ffn, or s's experts (with the selection bias
// mlp.gate.<bias>, see readSMoE).
func (s *smoeRef) layerMLP(r *stReader, L *refLayer, p string, dense bool, ffn int, bias string) {
	if dense {
		L.wg, L.wu, L.wd, L.ffn = r.get(p+"mlp.gate_proj.weight"), r.get(p+"mlp.up_proj.weight"), r.get(p+"mlp.down_proj.weight"), ffn
		return
	}
	ml := readSMoE(r, p, s.experts, bias)
	L.mlp = func(h []float64) []float64 { return s.forward(ml, h) }
}

// smoeMLP is layer prefix p's MLP in a sharedMoE checkpoint of hidden
// size H: a dense MLP of width ffn, or a router over experts of width
// expertFFN, shared experts of total width sharedFFN and, when bias is not
// "", the selection bias mlp.gate.<bias>.
func (w randWeights) smoeMLP(p string, H int64, dense bool, ffn, experts, expertFFN, sharedFFN int64, bias string) []stTensor {
	if dense {
		return []stTensor{w.mat(p+"mlp.gate_proj.weight", ffn, H), w.mat(p+"mlp.up_proj.weight", ffn, H), w.mat(p+"mlp.down_proj.weight", H, ffn)}
	}
	ts := []stTensor{w.mat(p+"mlp.gate.weight", experts, H), w.mat(p+"mlp.shared_experts.gate_proj.weight", sharedFFN, H),
		w.mat(p+"mlp.shared_experts.up_proj.weight", sharedFFN, H), w.mat(p+"mlp.shared_experts.down_proj.weight", H, sharedFFN)}
	if bias != "" {
		ts = append(ts, w.vec(p+"mlp.gate."+bias, experts, 0, 0.3))
	}
	for e := range experts {
		q := p + "mlp.experts." + strconv.Itoa(int(e)) + "."
		ts = append(ts, w.mat(q+"gate_proj.weight", expertFFN, H), w.mat(q+"up_proj.weight", expertFFN, H), w.mat(q+"down_proj.weight", H, expertFFN))
	}
	return ts
}

// smoeLayer holds one layer's router, selection bias (or nil), experts
// (gate, up, down) and shared experts.
type smoeLayer struct {
	router, bias []float64
	experts      [][3][]float64
	shared       [3][]float64
}

// readSMoE reads the MLP of layer prefix p, with the selection bias
// mlp.gate.<bias> when bias is not "" and the checkpoint has it.
func readSMoE(r *stReader, p string, experts int, bias string) *smoeLayer {
	L := &smoeLayer{router: r.get(p + "mlp.gate.weight")}
	if bias != "" && r.has(p+"mlp.gate."+bias) {
		L.bias = r.get(p + "mlp.gate." + bias)
	}
	L.shared = [3][]float64{r.get(p + "mlp.shared_experts.gate_proj.weight"), r.get(p + "mlp.shared_experts.up_proj.weight"), r.get(p + "mlp.shared_experts.down_proj.weight")}
	for e := range experts {
		q := p + "mlp.experts." + strconv.Itoa(e) + "."
		L.experts = append(L.experts, [3][]float64{r.get(q + "gate_proj.weight"), r.get(q + "up_proj.weight"), r.get(q + "down_proj.weight")})
	}
	return L
}

func (c dsCase) reference(t *testing.T, dir string) *dsRef {
	t.Helper()
	r := openST(t, dir)
	invFreq, _ := hfYarn(10000, c.rope, c.ropeFactor, c.ropeOrig, 32, 1)
	ms := 0.1*c.mscale*math.Log(c.ropeFactor) + 1
	m := &dsRef{c: c, invFreq: invFreq, scale: ms * ms / math.Sqrt(float64(c.nope+c.rope))}
	m.moe = smoeRef{hidden: c.hidden, experts: c.experts, used: c.used, expertFFN: c.expertFFN, sharedFFN: c.shared * c.expertFFN,
		groups: c.groups, groupsUsed: c.groupsUsed, sigmoid: c.v3, norm: c.norm, scale: c.scale}
	if !c.v3 && c.norm {
		m.moe.scale = 1
	}
	m.emb, m.out, m.norm = r.get("model.embed_tokens.weight"), r.get("lm_head.weight"), r.get("model.norm.weight")
	for l := range c.layers {
		p := layerPrefix(l)
		L := dsLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "post_attention_layernorm.weight"),
			wkva: r.get(p + "self_attn.kv_a_proj_with_mqa.weight"), kvaNorm: r.get(p + "self_attn.kv_a_layernorm.weight"),
			wkvb: r.get(p + "self_attn.kv_b_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight")}
		if c.qLora > 0 {
			L.wqa, L.qaNorm, L.wqb = r.get(p+"self_attn.q_a_proj.weight"), r.get(p+"self_attn.q_a_layernorm.weight"), r.get(p+"self_attn.q_b_proj.weight")
		} else {
			L.wq = r.get(p + "self_attn.q_proj.weight")
		}
		if l < c.dense {
			L.wg, L.wu, L.wd = r.get(p+"mlp.gate_proj.weight"), r.get(p+"mlp.up_proj.weight"), r.get(p+"mlp.down_proj.weight")
		} else {
			bias := ""
			if c.v3 {
				bias = dsBias
			}
			L.moe = readSMoE(r, p, c.experts, bias)
		}
		m.layers = append(m.layers, L)
	}
	return m
}

func dsRMS(x, g []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+1e-6)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * s * g[i]
	}
	return out
}

// rotate applies the rope at pos to v: interleaved pairs (2i, 2i+1), as
// DeepSeek's checkpoints store them, or (halvesRope) rotate_half's (i,
// i+d/2).
func (m *dsRef) rotate(v []float64, pos int) {
	k := len(m.invFreq)
	for i, f := range m.invFreq {
		a, b := 2*i, 2*i+1
		if m.halvesRope {
			a, b = i, i+k
		}
		s, c := math.Sincos(float64(pos) * f)
		x, y := v[a], v[b]
		v[a], v[b] = x*c-y*s, x*s+y*c
	}
}

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

// gatedMLP is SiLU(gate·h)·(up·h) through down, of the given width.
func gatedMLP(w [3][]float64, h []float64, width, hidden int) []float64 {
	g, u := matvec(w[0], h, width), matvec(w[1], h, width)
	for i := range g {
		g[i] = silu(g[i]) * u[i]
	}
	return matvec(w[2], g, hidden)
}

// route returns the experts a token uses and their weights.
func (s *smoeRef) route(L *smoeLayer, h []float64) ([]int, []float64) {
	logits := matvec(L.router, h, s.experts)
	probs := make([]float64, len(logits))
	if s.sigmoid {
		for i, x := range logits {
			probs[i] = 1 / (1 + math.Exp(-x))
		}
	} else {
		mx := slices.Max(logits)
		var z float64
		for i, x := range logits {
			probs[i] = math.Exp(x - mx)
			z += probs[i]
		}
		for i := range probs {
			probs[i] /= z
		}
	}
	sel := slices.Clone(probs)
	if L.bias != nil && !s.noBias {
		for i := range sel {
			sel[i] += L.bias[i]
		}
	}
	byScore := func(sc []float64, idx []int) {
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(sc[b], sc[a]) })
	}
	if s.groups > 1 && !s.noGroups {
		per := s.experts / s.groups
		gs := make([]float64, s.groups)
		for g := range gs {
			x := slices.Clone(sel[g*per : (g+1)*per])
			slices.Sort(x)
			gs[g] = x[per-1] + x[per-2]
		}
		order := []int{}
		for g := range gs {
			order = append(order, g)
		}
		byScore(gs, order)
		for _, g := range order[s.groupsUsed:] {
			for e := g * per; e < (g+1)*per; e++ {
				sel[e] = math.Inf(-1)
			}
		}
	}
	idx := make([]int, s.experts)
	for i := range idx {
		idx[i] = i
	}
	byScore(sel, idx)
	top := idx[:s.used]
	w := make([]float64, len(top))
	var sum float64
	for i, e := range top {
		w[i] = probs[e]
		sum += w[i]
	}
	for i := range w {
		if s.norm {
			w[i] /= sum
		}
		w[i] *= s.scale
	}
	return top, w
}

// forward is the layer's MLP output for h.
func (s *smoeRef) forward(L *smoeLayer, h []float64) []float64 {
	out := make([]float64, s.hidden)
	if !s.noShared {
		out = gatedMLP(L.shared, h, s.sharedFFN, s.hidden)
	}
	top, w := s.route(L, h)
	for n, e := range top {
		y := gatedMLP(L.experts[e], h, s.expertFFN, s.hidden)
		for d := range out {
			out[d] += w[n] * y[d]
		}
	}
	return out
}

func (m *dsRef) forward(ids []int) []float64 {
	c := m.c
	H, qk := c.hidden, c.nope+c.rope
	T := len(ids)
	x := make([][]float64, T)
	or1 := func(v float64) float64 {
		if v == 0 {
			return 1
		}
		return v
	}
	embScale, resScale, logitDiv := or1(m.embScale), or1(m.resScale), or1(m.logitDiv)
	for i, id := range ids {
		x[i] = slices.Clone(m.emb[id*H : (id+1)*H])
		for e := range x[i] {
			x[i][e] *= embScale
		}
	}
	for _, L := range m.layers {
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for i := range T {
			h := dsRMS(x[i], L.attnNorm)
			var q []float64
			if L.wq != nil {
				q = matvec(L.wq, h, c.heads*qk)
			} else {
				q = matvec(L.wqb, dsRMS(matvec(L.wqa, h, c.qLora), L.qaNorm), c.heads*qk)
			}
			ckv := matvec(L.wkva, h, c.kvLora+c.rope)
			kpe := slices.Clone(ckv[c.kvLora:])
			m.rotate(kpe, i)
			kv := matvec(L.wkvb, dsRMS(ckv[:c.kvLora], L.kvaNorm), c.heads*(c.nope+c.vHead))
			k, v := make([]float64, c.heads*qk), make([]float64, c.heads*c.vHead)
			for j := range c.heads {
				m.rotate(q[j*qk+c.nope:(j+1)*qk], i)
				copy(k[j*qk:], kv[j*(c.nope+c.vHead):j*(c.nope+c.vHead)+c.nope])
				copy(k[j*qk+c.nope:], kpe)
				copy(v[j*c.vHead:], kv[j*(c.nope+c.vHead)+c.nope:(j+1)*(c.nope+c.vHead)])
			}
			qs[i], ks[i], vs[i] = q, k, v
		}
		for i := range T {
			att := make([]float64, c.heads*c.vHead)
			for j := range c.heads {
				sc := make([]float64, i+1)
				mx := math.Inf(-1)
				for s := range i + 1 {
					var d float64
					for e := range qk {
						d += qs[i][j*qk+e] * ks[s][j*qk+e]
					}
					sc[s] = d * m.scale
					mx = max(mx, sc[s])
				}
				var z float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - mx)
					z += sc[s]
				}
				for s := range sc {
					for e := range c.vHead {
						att[j*c.vHead+e] += sc[s] / z * vs[s][j*c.vHead+e]
					}
				}
			}
			o := matvec(L.wo, att, H)
			for e := range o {
				x[i][e] += resScale * o[e]
			}
		}
		for i := range T {
			h := dsRMS(x[i], L.ffnNorm)
			var out []float64
			if L.moe == nil {
				out = gatedMLP([3][]float64{L.wg, L.wu, L.wd}, h, c.ffn, H)
			} else {
				out = m.moe.forward(L.moe, h)
			}
			for e := range out {
				x[i][e] += resScale * out[e]
			}
		}
	}
	last := dsRMS(x[T-1], m.norm)
	for e := range last {
		last[e] /= logitDiv
	}
	return matvec(m.out, last, dsVocab)
}

// TestDeepSeek converts DeepSeek V3 and V2-Lite checkpoints to llama.cpp's
// deepseek2 (absorbed MLA) and checks the logits against the float64
// reference, which would see each feature left out; the metadata is
// convert_hf_to_gguf.py's.
func TestDeepSeek(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, v3 := range []bool{true, false} {
		c := newDSCase(v3)
		name := map[bool]string{true: "V3", false: "V2-Lite"}[v3]
		t.Run(name, func(t *testing.T) {
			dir := c.fixture(t, nil)
			out := filepath.Join(t.TempDir(), "ds.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]float64{
				"attention.head_count_kv": 1, "attention.key_length": float64(c.kvLora + c.rope), "attention.value_length": float64(c.kvLora),
				"attention.key_length_mla": float64(c.nope + c.rope), "attention.value_length_mla": float64(c.vHead),
				"attention.kv_lora_rank": float64(c.kvLora), "rope.dimension_count": float64(c.rope),
				"leading_dense_block_count": float64(c.dense), "expert_count": float64(c.experts), "expert_used_count": float64(c.used),
				"expert_shared_count": float64(c.shared), "expert_feed_forward_length": float64(c.expertFFN),
				"expert_weights_scale": float64(float32(c.scale)), "rope.scaling.yarn_log_multiplier": float64(float32(0.1 * c.mscale)),
				"block_count": float64(c.layers),
			}
			if v3 {
				want["attention.q_lora_rank"], want["expert_gating_func"] = float64(c.qLora), 2
				want["expert_group_count"], want["expert_group_used_count"] = float64(c.groups), float64(c.groupsUsed)
			} else {
				want["expert_gating_func"] = 1
			}
			for k, w := range want {
				if v, ok := f.Float("deepseek2." + k); !ok || v != w {
					t.Errorf("%s = %v (%v), want %v", k, v, ok, w)
				}
			}
			if b, ok := f.Bool("deepseek2.expert_weights_norm"); !ok || b != c.norm {
				t.Errorf("expert_weights_norm %v (%v), want %v", b, ok, c.norm)
			}
			for _, k := range []string{"rope.scaling.attn_factor", "attention.q_lora_rank"} {
				if _, ok := f.Float("deepseek2." + k); ok && (k != "attention.q_lora_rank" || !v3) {
					t.Errorf("%s written", k)
				}
			}
			ctx := refContext(t, out)
			fresh := func() *dsRef { return c.reference(t, dir) }
			checkRef(t, ctx, prompts, fresh().forward, 1e-5)
			edits := map[string]func(*dsRef){
				"shared experts":         func(m *dsRef) { m.moe.noShared = true },
				"yarn's attention scale": func(m *dsRef) { m.scale = 1 / math.Sqrt(float64(c.nope+c.rope)) },
				"interleaved rope":       func(m *dsRef) { m.halvesRope = true },
				"weight scale":           func(m *dsRef) { m.moe.scale = 1 },
			}
			if v3 {
				edits["score bias"] = func(m *dsRef) { m.moe.noBias = true }
				edits["groups"] = func(m *dsRef) { m.moe.noGroups = true }
			}
			checkSensitive(t, ctx, prompts, fresh, edits)
		})
	}
}

// TestDeepSeekFP8 converts DeepSeek V3 in its FP8 release layout (blocks
// of weight_block_size, here 8 × 8, kv_b_proj included, which is split
// after dequantization): the GGUF is byte for byte the conversion of the
// dequantized checkpoint.
func TestDeepSeekFP8(t *testing.T) {
	c := newDSCase(true)
	s := fp8Scheme{quant: "fp8", scale: "_scale_inv", blockRows: 8, blockCols: 8, configBlock: true}
	fp8Dir := c.fixture(t, func(cfg map[string]any, ts []stTensor) []stTensor {
		cfg["quantization_config"] = s.quantConfig()
		fp8s, _ := fp8Quantize(t, ts, s)
		return fp8s
	})
	deqDir := c.fixture(t, func(_ map[string]any, ts []stTensor) []stTensor {
		_, deqs := fp8Quantize(t, ts, s)
		return deqs
	})
	var outs [2][]byte
	for i, dir := range []string{fp8Dir, deqDir} {
		out := filepath.Join(t.TempDir(), "ds.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		var err error
		if outs[i], err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("the FP8 conversion differs from the dequantized checkpoint's")
	}
}

// TestDeepSeekRefused: configs llama.cpp's deepseek2 cannot follow, and
// checkpoints that do not match their config, are refused before anything
// is written.
func TestDeepSeekRefused(t *testing.T) {
	v3, lite := newDSCase(true), newDSCase(false)
	for _, tc := range []struct {
		name string
		c    dsCase
		edit func(map[string]any, []stTensor) []stTensor
		want error
		msg  string
	}{
		{"q_proj with 3 layers", v3, setConfig("q_lora_rank", nil), convert.ErrUnsupported, "26 or 27"},
		{"q_lora_rank with 26 layers", lite, setConfig("q_lora_rank", 12), convert.ErrUnsupported, "26 or 27"},
		{"rope halves", v3, setConfig("rope_interleave", false), convert.ErrUnsupported, "rope_interleave"},
		{"no mscale_all_dim", v3, setConfig("rope_scaling", map[string]any{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}), convert.ErrUnsupported, "mscale_all_dim"},
		{"yarn magnitude", v3, setConfig("rope_scaling", map[string]any{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "mscale": 1.0, "mscale_all_dim": 0.5}), convert.ErrUnsupported, "magnitude"},
		{"no shared experts", v3, setConfig("n_shared_experts", 0), convert.ErrUnsupported, "shared"},
		{"scoring", v3, setConfig("scoring_func", "sparsemax"), convert.ErrUnsupported, "scoring_func"},
		{"groups", v3, setConfig("n_group", 3), convert.ErrMismatch, "n_group"},
		{"moe_layer_freq", v3, setConfig("moe_layer_freq", 2), convert.ErrUnsupported, "moe_layer_freq"},
		{"n_shared_experts missing", v3, setConfig("n_shared_experts", nil), convert.ErrUnsupported, "n_shared_experts"},
		{"too many experts", v3, setConfig("n_routed_experts", 513), convert.ErrUnsupported, "at most 512"},
		{"no score bias", v3, dropTensor("model.layers.1.mlp.gate.e_score_correction_bias"), convert.ErrMismatch, "exp_probs_b"},
		{"no expert", v3, dropTensor("model.layers.2.mlp.experts.5.up_proj.weight"), convert.ErrMismatch, "expert 5"},
		{"kv_b shape", v3, setConfig("v_head_dim", 5), convert.ErrMismatch, "kv_b_proj"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.c.fixture(t, tc.edit)
			out := filepath.Join(t.TempDir(), "x.gguf")
			err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16"})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%v, want %v naming %q", err, tc.want, tc.msg)
			}
		})
	}
	// Every group chosen: no grouping is written (llama.cpp refuses
	// expert_group_used_count equal to expert_group_count).
	dir := v3.fixture(t, setConfig("topk_group", 4))
	out := filepath.Join(t.TempDir(), "x.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := f.Float("deepseek2.expert_group_count"); ok {
		t.Errorf("topk_group = n_group: expert_group_count %v written", v)
	}
	loadModel(t, out, engine.ModelOptions{}).Close()
	// V3 without norm_topk_prob: transformers' default, true.
	dir = v3.fixture(t, func(cfg map[string]any, ts []stTensor) []stTensor { delete(cfg, "norm_topk_prob"); return ts })
	out = filepath.Join(t.TempDir(), "x.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16"}); err != nil {
		t.Fatal(err)
	}
	if f, err = gguf.Open(out); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.Bool("deepseek2.expert_weights_norm"); !b {
		t.Error("V3 without norm_topk_prob: expert_weights_norm false, want transformers' default true")
	}
	// V2 renormalising: routed_scaling_factor is not applied (written as 1).
	dir = lite.fixture(t, setConfig("norm_topk_prob", true))
	out = filepath.Join(t.TempDir(), "x.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16"}); err != nil {
		t.Fatal(err)
	}
	if f, err = gguf.Open(out); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Float("deepseek2.expert_weights_scale"); v != 1 {
		t.Errorf("V2 with norm_topk_prob: expert_weights_scale %v, want 1", v)
	}
}
