package convert_test

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"testing"

	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/loader/safetensors"
)

// refModel is a float64 decoder-only transformer in Hugging Face's layout
// (rotate_half rope on the first 2·len(invFreq) dimensions of each head,
// pre-norm blocks, gated MLP), with the knobs the Llama, Phi-3 and Gemma
// families need. It is the reference the converted models are checked
// against.
type refModel struct {
	hidden, heads, kvHeads, headDim int
	eps                             float64
	invFreq                         []float64 // per rotated pair: the rope frequencies
	// ropeAttn multiplies the rotated dimensions' cos and sin, of q and k
	// alike (longrope's attention factor; 0: 1).
	ropeAttn float64
	// embScale multiplies the embeddings (0: 1).
	embScale float64
	// normOffset is added to every RMS norm weight (Gemma: 1).
	normOffset float64
	// gelu selects tanh-approximated GELU in place of SiLU for the gate.
	gelu bool
	// attnScale scales the attention scores (0: 1/sqrt(headDim)).
	attnScale float64
	// attnSoftcap and finalSoftcap, if not 0, cap the attention scores
	// and the logits with c·tanh(x/c).
	attnSoftcap, finalSoftcap float64
	// residualScale multiplies each block's attention and MLP outputs
	// before they are added, and logitDiv divides the logits (Granite; 0:
	// 1).
	residualScale, logitDiv float64
	// reluSq makes the MLP ungated: down·relu(up·h)² (Arcee).
	reluSq bool
	// layerNorm makes every norm a LayerNorm without bias (the mean
	// subtracted; Cohere); parallel runs the attention and the MLP on
	// the same normed input, both added to the residual (attnNorm only);
	// logitScale multiplies the logits (0: 1).
	layerNorm, parallel bool
	logitScale          float64
	// ropePairs rotates adjacent pairs (2i, 2i+1) of the rotated
	// dimensions (GLM-4's interleaved layout) instead of rotate_half's.
	ropePairs bool
	// tempBeta and tempOrig, when tempBeta is not 0, are Llama 4's
	// attention temperature (Ministral 3): each query, after its rope, is
	// multiplied by 1 + tempBeta·ln(1 + ⌊pos/tempOrig⌋).
	tempBeta float64
	tempOrig int
	// bidir: every position attends to every other (an encoder,
	// EmbeddingGemma), each layer's symWindow limiting how far.
	bidir bool
	// clampQKV, when not 0, clamps the queries, keys and values to
	// ±clampQKV after their projections (OLMo's clip_qkv).
	clampQKV float64

	emb, out, norm []float64 // out: the [vocab, hidden] head
	layers         []refLayer
}

// refLayer holds one block's weights, row-major [out, in]. Optional ones
// are nil.
type refLayer struct {
	attnNorm, wq, wk, wv, wo []float64
	bq, bk, bv               []float64 // attention biases (Qwen2), or nil
	qNorm, kNorm             []float64 // per-head RMS norms (Qwen3, Gemma 3)
	postAttnNorm             []float64 // on the attention output (Gemma 2, 3)
	ffnNorm, wg, wu, wd      []float64
	postFFNNorm              []float64 // on the MLP output (Gemma 2, 3)
	ffn                      int
	window                   int // > 0: attend to the last window positions only
	symWindow                int // > 0, with bidir: attend to positions at most symWindow away
	// invFreq, if not nil, replaces the model's rope frequencies in this
	// layer (Gemma 3's local layers rotate with their own base).
	invFreq []float64
	// noRope leaves out the rotary embedding (SmolLM3's every 4th layer).
	noRope bool
	// mscale, if not 0, replaces the model's ropeAttn in this layer.
	mscale float64
	// qNormFull and kNormFull are RMS norms over the whole query and key
	// projections (OLMo 2); attnNorm and ffnNorm may then be nil (no norm
	// before the sublayer).
	qNormFull, kNormFull []float64
	// A mixture of experts in place of wg/wu/wd when router is not nil:
	// router [experts, hidden], each expert's gate, up and down, and the
	// experts used per token (their softmax weights renormalised).
	router  []float64
	experts [][3][]float64
	topK    int
	// noNorm keeps the top-k softmax weights as they are (Qwen2-MoE);
	// shared, when not nil, is a shared expert (gate, up, down of width
	// sharedFFN) every token runs, weighted by sigmoid(sharedGate·h).
	noNorm     bool
	shared     *[3][]float64
	sharedGate []float64
	sharedFFN  int
	// gpt-oss: the attention output's bias, per-head sink logits, the
	// router's bias, and experts whose fused gate_up rows interleave
	// gate and up ([2·ffn, hidden]), each with biases, run through the
	// clamped SwiGLU (ossMoE).
	bo, sinks, routerBias []float64
	oss                   []ossRefExpert
	// mlp, if not nil, is the layer's MLP (GLM-4.5's sharedMoE).
	mlp func(h []float64) []float64
	// mixer, if not nil, replaces the attention: it maps the normed
	// inputs of every position to the sublayer's outputs (a Mamba-2
	// layer).
	mixer func(h [][]float64) [][]float64
	// noMLP: the block is its first sublayer alone (Nemotron-H); noAttn:
	// the block is its MLP alone (DeciLM's no-op attention).
	noMLP, noAttn bool
	// kvHeads, if not 0, replaces the model's key/value heads in this
	// layer (DeciLM).
	kvHeads int
}

// ossRefExpert is one gpt-oss expert: gate_up [2·ffn, hidden] with its
// bias, down [hidden, ffn] with its bias.
type ossRefExpert struct {
	gateUp, gateUpBias, down, downBias []float64
}

// ossMoE is gpt-oss's MLP (transformers' GptOssMLP): the router's logits
// (with bias), the top-k experts by logit weighted by the softmax of
// their k logits, each expert's clamped SwiGLU: gate ≤ 7, -7 ≤ up ≤ 7,
// (up+1)·gate·sigmoid(1.702·gate).
func (m *refModel) ossMoE(L refLayer, h []float64) []float64 {
	logits := matvec(L.router, h, len(L.oss))
	addBias(logits, L.routerBias)
	order := make([]int, len(logits))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(logits[b], logits[a]) })
	top := order[:L.topK]
	mx := logits[top[0]]
	var z float64
	for _, e := range top {
		z += math.Exp(logits[e] - mx)
	}
	out := make([]float64, m.hidden)
	for _, e := range top {
		w := math.Exp(logits[e]-mx) / z
		x := L.oss[e]
		gu := matvec(x.gateUp, h, 2*L.ffn)
		addBias(gu, x.gateUpBias)
		y := make([]float64, L.ffn)
		for i := range y {
			g, u := min(gu[2*i], 7), max(-7, min(gu[2*i+1], 7))
			y[i] = (u + 1) * g / (1 + math.Exp(-1.702*g))
		}
		d := matvec(x.down, y, m.hidden)
		addBias(d, x.downBias)
		for i, v := range d {
			out[i] += w * v
		}
	}
	return out
}

// moe is the MLP of a mixture-of-experts layer (transformers'
// Qwen3MoeSparseMoeBlock and MixtralSparseMoeBlock): softmax over the
// router's logits, the top-k experts, their weights renormalised to sum
// to 1, and the weighted sum of their gated MLPs.
func (m *refModel) moe(L refLayer, h []float64) []float64 {
	logits := matvec(L.router, h, len(L.experts))
	mx := slices.Max(logits)
	probs := make([]float64, len(logits))
	var z float64
	for i, v := range logits {
		probs[i] = math.Exp(v - mx)
		z += probs[i]
	}
	order := make([]int, len(probs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(probs[b], probs[a]) })
	sum := 1.0
	if !L.noNorm {
		sum = 0
		for _, e := range order[:L.topK] {
			sum += probs[e] / z
		}
	}
	out := make([]float64, m.hidden)
	for _, e := range order[:L.topK] {
		w := probs[e] / z / sum
		g, u := matvec(L.experts[e][0], h, L.ffn), matvec(L.experts[e][1], h, L.ffn)
		for i := range g {
			g[i] = m.act(g[i]) * u[i]
		}
		for i, v := range matvec(L.experts[e][2], g, m.hidden) {
			out[i] += w * v
		}
	}
	if L.shared != nil {
		gate := 1 / (1 + math.Exp(-matvec(L.sharedGate, h, 1)[0]))
		g, u := matvec(L.shared[0], h, L.sharedFFN), matvec(L.shared[1], h, L.sharedFFN)
		for i := range g {
			g[i] = m.act(g[i]) * u[i]
		}
		for i, v := range matvec(L.shared[2], g, m.hidden) {
			out[i] += gate * v
		}
	}
	return out
}

// defaultInvFreq returns the plain rope frequencies theta^(-2i/dim).
func defaultInvFreq(theta float64, dim int) []float64 {
	out := make([]float64, dim/2)
	for i := range out {
		out[i] = math.Pow(theta, -2*float64(i)/float64(dim))
	}
	return out
}

// stReader reads checkpoint tensors as float64.
type stReader struct {
	t  *testing.T
	st *safetensors.Model
}

func openST(t *testing.T, dir string) *stReader {
	t.Helper()
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &stReader{t, st}
}

func (r *stReader) get(name string) []float64 {
	r.t.Helper()
	f, err := r.st.Float32s(name)
	if err != nil {
		r.t.Fatal(err)
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

// affine is the checkpoint's linear layer p (p.weight, p.bias) applied
// to x.
func (r *stReader) affine(p string, x []float64) []float64 {
	return ref64.Affine(r.get(p+".weight"), r.get(p+".bias"), x)
}

// layerNorm is the checkpoint's LayerNorm p (p.weight, p.bias) of x.
func (r *stReader) layerNorm(p string, x []float64, eps float64) []float64 {
	return ref64.LayerNorm(x, r.get(p+".weight"), r.get(p+".bias"), eps)
}

func (r *stReader) has(name string) bool {
	_, ok := r.st.Tensor(name)
	return ok
}

// layerPrefix is "model.layers.N.".
func layerPrefix(l int) string { return "model.layers." + strconv.Itoa(l) + "." }

func (m *refModel) rms(x, g []float64) []float64 {
	var mean float64
	if m.layerNorm {
		for _, v := range x {
			mean += v
		}
		mean /= float64(len(x))
	}
	var s float64
	for _, v := range x {
		s += (v - mean) * (v - mean)
	}
	r := 1 / math.Sqrt(s/float64(len(x))+m.eps)
	out := make([]float64, len(x))
	for i := range x {
		out[i] = (x[i] - mean) * r * (g[i] + m.normOffset)
	}
	return out
}

// matvec multiplies the row-major [rows, len(x)] matrix W by x.
func matvec(W, x []float64, rows int) []float64 {
	cols := len(x)
	out := make([]float64, rows)
	for r := range rows {
		var s float64
		for c, w := range W[r*cols : (r+1)*cols] {
			s += w * x[c]
		}
		out[r] = s
	}
	return out
}

// rope rotates one head in place, rotate_half style, with the
// frequencies invFreq, cos and sin multiplied by mscale.
func rope(v []float64, pos int, invFreq []float64, mscale float64) {
	half := len(invFreq)
	for i, f := range invFreq {
		c, s := mscale*math.Cos(float64(pos)*f), mscale*math.Sin(float64(pos)*f)
		x0, x1 := v[i], v[i+half]
		v[i], v[i+half] = x0*c-x1*s, x1*c+x0*s
	}
}

// ropePairs rotates one head in place in adjacent pairs (2i, 2i+1), each
// by pos·invFreq[i], cos and sin scaled by mscale.
func ropePairs(v []float64, pos int, invFreq []float64, mscale float64) {
	for i, f := range invFreq {
		c, s := mscale*math.Cos(float64(pos)*f), mscale*math.Sin(float64(pos)*f)
		x0, x1 := v[2*i], v[2*i+1]
		v[2*i], v[2*i+1] = x0*c-x1*s, x1*c+x0*s
	}
}

// clamp clamps v to ±clampQKV in place, when clampQKV is not 0.
func (m *refModel) clamp(v []float64) {
	if m.clampQKV == 0 {
		return
	}
	for i := range v {
		v[i] = max(-m.clampQKV, min(m.clampQKV, v[i]))
	}
}

// addBias adds b to v, when b is not nil.
func addBias(v, b []float64) {
	for i := range b {
		v[i] += b[i]
	}
}

func softcap(x, c float64) float64 {
	if c == 0 {
		return x
	}
	return c * math.Tanh(x/c)
}

func (m *refModel) act(x float64) float64 {
	if m.gelu {
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	}
	return x / (1 + math.Exp(-x))
}

// forward returns the logits after ids.
func (m *refModel) forward(ids []int) []float64 {
	x := m.run(ids)
	H, T := m.hidden, len(ids)
	logits := matvec(m.out, m.rms(x[T-1], m.norm), len(m.out)/H)
	for i := range logits {
		logits[i] = softcap(logits[i], m.finalSoftcap)
		if m.logitDiv != 0 {
			logits[i] /= m.logitDiv
		}
		if m.logitScale != 0 {
			logits[i] *= m.logitScale
		}
	}
	return logits
}

// states returns every position's final hidden state (after the final
// norm).
func (m *refModel) states(ids []int) [][]float64 {
	x := m.run(ids)
	for i := range x {
		x[i] = m.rms(x[i], m.norm)
	}
	return x
}

// run returns every position's hidden state after the blocks.
func (m *refModel) run(ids []int) [][]float64 {
	H, nh, nkv, hd := m.hidden, m.heads, m.kvHeads, m.headDim
	scale := m.attnScale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(hd))
	}
	T := len(ids)
	x := make([][]float64, T)
	for i, id := range ids {
		x[i] = append([]float64(nil), m.emb[id*H:(id+1)*H]...)
		if m.embScale != 0 {
			for e := range x[i] {
				x[i][e] *= m.embScale
			}
		}
	}
	headNorm := func(v, g []float64, n int) {
		for j := range n {
			h := v[j*hd : (j+1)*hd]
			switch {
			case len(g) == n*hd: // one weight vector per head (Cohere)
				copy(h, m.rms(h, g[j*hd:(j+1)*hd]))
			case g != nil:
				copy(h, m.rms(h, g))
			}
		}
	}
	mscale := m.ropeAttn
	if mscale == 0 {
		mscale = 1
	}
	for _, L := range m.layers {
		freqs := m.invFreq
		if L.invFreq != nil {
			freqs = L.invFreq
		}
		ms := mscale
		if L.mscale != 0 {
			ms = L.mscale
		}
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		normed := make([][]float64, T) // the attention's inputs, for a parallel MLP
		nkv := nkv
		if L.kvHeads != 0 {
			nkv = L.kvHeads
		}
		var mixed [][]float64
		if L.mixer != nil {
			for i := range T {
				normed[i] = m.rms(x[i], L.attnNorm)
			}
			mixed = L.mixer(normed)
		}
		for i := range T {
			if L.mixer != nil || L.noAttn {
				break
			}
			h := x[i]
			if L.attnNorm != nil {
				h = m.rms(x[i], L.attnNorm)
			}
			normed[i] = h
			q, k := matvec(L.wq, h, nh*hd), matvec(L.wk, h, nkv*hd)
			addBias(q, L.bq)
			addBias(k, L.bk)
			m.clamp(q)
			m.clamp(k)
			if L.qNormFull != nil {
				q, k = m.rms(q, L.qNormFull), m.rms(k, L.kNormFull)
			}
			headNorm(q, L.qNorm, nh)
			headNorm(k, L.kNorm, nkv)
			rot := rope
			if m.ropePairs {
				rot = ropePairs
			}
			for j := range nh {
				if !L.noRope {
					rot(q[j*hd:(j+1)*hd], i, freqs, ms)
				}
			}
			if m.tempBeta != 0 {
				s := 1 + m.tempBeta*math.Log(1+math.Floor(float64(i)/float64(m.tempOrig)))
				for e := range q {
					q[e] *= s
				}
			}
			for j := range nkv {
				if !L.noRope {
					rot(k[j*hd:(j+1)*hd], i, freqs, ms)
				}
			}
			v := matvec(L.wv, h, nkv*hd)
			addBias(v, L.bv)
			m.clamp(v)
			qs[i], ks[i], vs[i] = q, k, v
		}
		for i := range T {
			var o []float64
			switch {
			case L.noAttn:
				o = make([]float64, H)
			case L.mixer != nil:
				o = mixed[i]
			default:
				o = m.attend(L, qs, ks, vs, i, scale)
			}
			if L.postAttnNorm != nil {
				o = m.rms(o, L.postAttnNorm)
			}
			if m.residualScale != 0 {
				for e := range o {
					o[e] *= m.residualScale
				}
			}
			for e := range H {
				x[i][e] += o[e]
			}
			if L.noMLP {
				continue
			}
			h := x[i]
			switch {
			case m.parallel:
				h = normed[i]
			case L.ffnNorm != nil:
				h = m.rms(x[i], L.ffnNorm)
			}
			var d []float64
			switch {
			case L.mlp != nil:
				d = L.mlp(h)
			case L.oss != nil:
				d = m.ossMoE(L, h)
			case L.router != nil:
				d = m.moe(L, h)
			case m.reluSq:
				u := matvec(L.wu, h, L.ffn)
				for e := range u {
					u[e] = max(u[e], 0) * max(u[e], 0)
				}
				d = matvec(L.wd, u, H)
			default:
				g, u := matvec(L.wg, h, L.ffn), matvec(L.wu, h, L.ffn)
				for e := range g {
					g[e] = m.act(g[e]) * u[e]
				}
				d = matvec(L.wd, g, H)
			}
			if L.postFFNNorm != nil {
				d = m.rms(d, L.postFFNNorm)
			}
			if m.residualScale != 0 {
				for e := range d {
					d[e] *= m.residualScale
				}
			}
			for e := range H {
				x[i][e] += d[e]
			}
		}
	}
	return x
}

// attend is position i's attention output (before the residual) over the
// queries, keys and values of positions 0..i.
func (m *refModel) attend(L refLayer, qs, ks, vs [][]float64, i int, scale float64) []float64 {
	nh, nkv, hd := m.heads, m.kvHeads, m.headDim
	if L.kvHeads != 0 {
		nkv = L.kvHeads
	}
	att := make([]float64, nh*hd)
	for j := range nh {
		kv := j / (nh / nkv)
		s0, last := 0, i
		if L.window > 0 {
			s0 = max(0, i-L.window+1)
		}
		if m.bidir {
			last = len(ks) - 1
			if L.symWindow > 0 {
				s0, last = max(0, i-L.symWindow), min(last, i+L.symWindow)
			}
		}
		sc := make([]float64, last+1)
		mx := math.Inf(-1)
		for s := range last + 1 {
			if s < s0 {
				sc[s] = math.Inf(-1)
				continue
			}
			var d float64
			for e := range hd {
				d += qs[i][j*hd+e] * ks[s][kv*hd+e]
			}
			sc[s] = softcap(d*scale, m.attnSoftcap)
			mx = max(mx, sc[s])
		}
		if L.sinks != nil {
			mx = max(mx, L.sinks[j])
		}
		var z float64
		for s := range sc {
			sc[s] = math.Exp(sc[s] - mx)
			z += sc[s]
		}
		if L.sinks != nil {
			// The sink takes part in the softmax but has no value.
			z += math.Exp(L.sinks[j] - mx)
		}
		for s := range sc {
			for e := range hd {
				att[j*hd+e] += sc[s] / z * vs[s][kv*hd+e]
			}
		}
	}
	o := matvec(L.wo, att, m.hidden)
	addBias(o, L.bo)
	return o
}

// llamaAttention reads layer prefix p's norms and attention under
// Llama's names: input_layernorm, post_attention_layernorm (when present),
// self_attn's q/k/v/o projections and q_norm/k_norm (when present).
func llamaAttention(r *stReader, p string) refLayer {
	L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"),
		wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"),
		wv: r.get(p + "self_attn.v_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight")}
	if r.has(p + "post_attention_layernorm.weight") {
		L.ffnNorm = r.get(p + "post_attention_layernorm.weight")
	}
	if r.has(p + "self_attn.q_norm.weight") {
		L.qNorm, L.kNorm = r.get(p+"self_attn.q_norm.weight"), r.get(p+"self_attn.k_norm.weight")
	}
	return L
}

// loadLlamaRef reads a Llama-layout checkpoint (separate q/k/v and
// gate/up projections, optional q_norm/k_norm) of the given shape.
func loadLlamaRef(t *testing.T, dir string, m refModel, layers int) *refModel {
	t.Helper()
	r := openST(t, dir)
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	if r.has("lm_head.weight") {
		m.out = r.get("lm_head.weight")
	}
	for l := range layers {
		p := layerPrefix(l)
		L := llamaAttention(r, p)
		L.wu, L.wd = r.get(p+"mlp.up_proj.weight"), r.get(p+"mlp.down_proj.weight")
		if r.has(p + "mlp.gate_proj.weight") {
			L.wg = r.get(p + "mlp.gate_proj.weight")
		}
		L.ffn = len(L.wu) / m.hidden
		m.layers = append(m.layers, L)
	}
	return &m
}

// causalAttention is softmax attention of each position over itself and
// the earlier ones, with nh query heads sharing nkv key/value heads of d
// (grouped in order) and scores scaled by 1/sqrt(d): per position, the
// heads' outputs side by side, before the output projection.
func causalAttention(qs, ks, vs [][]float64, nh, nkv, d int) [][]float64 {
	return biasedAttention(qs, ks, vs, nh, nkv, d, nil)
}

// biasedAttention is causalAttention with bias(head, key position) added
// to each scaled score (ALiBi's); nil adds nothing.
func biasedAttention(qs, ks, vs [][]float64, nh, nkv, d int, bias func(head, key int) float64) [][]float64 {
	outs := make([][]float64, len(qs))
	for t := range qs {
		att := make([]float64, nh*d)
		for j := range nh {
			kv := j / (nh / nkv)
			sc := make([]float64, t+1)
			mx := math.Inf(-1)
			for s := range t + 1 {
				var dot float64
				for e := range d {
					dot += qs[t][j*d+e] * ks[s][kv*d+e]
				}
				sc[s] = dot / math.Sqrt(float64(d))
				if bias != nil {
					sc[s] += bias(j, s)
				}
				mx = max(mx, sc[s])
			}
			var z float64
			for s := range sc {
				sc[s] = math.Exp(sc[s] - mx)
				z += sc[s]
			}
			for s := range sc {
				for e := range d {
					att[j*d+e] += sc[s] / z * vs[s][kv*d+e]
				}
			}
		}
		outs[t] = att
	}
	return outs
}

// fusedExpertsRef splits transformers' fused experts, gate_up [experts,
// 2·ffn, hidden] (gate rows, then up rows) and down [experts, hidden, ffn],
// into each expert's gate, up and down.
func fusedExpertsRef(gu, down []float64, experts, ffn, hidden int) [][3][]float64 {
	out := make([][3][]float64, experts)
	for e := range experts {
		x := gu[e*2*ffn*hidden : (e+1)*2*ffn*hidden]
		out[e] = [3][]float64{x[:ffn*hidden], x[ffn*hidden:], down[e*hidden*ffn : (e+1)*hidden*ffn]}
	}
	return out
}
