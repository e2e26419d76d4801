package convert_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// A Granite 4.0 fixture: hidden size 64 (tiny-llama-st's tokenizer), 4
// attention heads of 16 (2 KV heads), Mamba-2 mixers of 8 heads of 16
// (inner size 128) with a state of 16 and a kernel of 4, 4 experts of 32
// (2 used) and a shared MLP of 48; Granite's multipliers.
const (
	g4Hidden, g4Heads, g4KV, g4MHeads, g4State, g4Conv = 64, 4, 2, 8, 16, 4
	g4Experts, g4ExpertFFN, g4Used, g4Shared, g4Vocab  = 4, 32, 2, 48, 32000
)

// g4Case is one fixture's layout.
type g4Case struct {
	layers   []string // layer_types
	groups   int      // mamba_n_groups
	experts  int      // num_local_experts (0: a dense shared MLP)
	rope     bool     // position_embedding_type "rope"
	convBias bool     // mamba_conv_bias
}

var g4Hybrid = g4Case{layers: []string{"mamba", "attention", "mamba", "mamba"}, groups: 1, experts: g4Experts, convBias: true}

func (c g4Case) config() map[string]any {
	m := map[string]any{
		"architectures": []string{"GraniteMoeHybridForCausalLM"}, "model_type": "granitemoehybrid",
		"hidden_size": g4Hidden, "num_hidden_layers": len(c.layers), "num_attention_heads": g4Heads, "num_key_value_heads": g4KV,
		"intermediate_size": g4ExpertFFN, "shared_intermediate_size": g4Shared, "num_local_experts": c.experts, "num_experts_per_tok": g4Used,
		"layer_types": c.layers, "mamba_n_heads": g4MHeads, "mamba_n_groups": c.groups, "mamba_d_state": g4State, "mamba_d_head": 16,
		"mamba_d_conv": g4Conv, "mamba_expand": 2, "mamba_conv_bias": c.convBias, "mamba_proj_bias": false, "mamba_chunk_size": 256,
		"embedding_multiplier": 12.0, "residual_multiplier": 0.22, "attention_multiplier": 0.0625, "logits_scaling": 8.0,
		"hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096, "vocab_size": g4Vocab,
		"tie_word_embeddings": true, "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2, "normalization_function": "rmsnorm",
	}
	if c.experts == 0 {
		m["shared_intermediate_size"] = 2 * g4Shared
	}
	if c.rope {
		m["position_embedding_type"] = "rope"
	} else {
		m["position_embedding_type"] = "nope"
	}
	return m
}

func (c g4Case) fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := c.config()
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(40, uint64(c.groups)))
	w := randWeights{r}
	H, DI, N, NH := int64(g4Hidden), int64(2*g4Hidden), int64(g4State), int64(g4MHeads)
	CD := DI + 2*int64(c.groups)*N
	Q, KV, S, E, I := int64(g4Heads*16), int64(g4KV*16), int64(g4Shared), int64(c.experts), int64(g4ExpertFFN)
	if c.experts == 0 {
		S = 2 * g4Shared
	}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{g4Vocab, H}, randn(r, g4Vocab*g4Hidden, 0.1)), w.vec("model.norm.weight", H, 1, 0.1)}
	for l, typ := range c.layers {
		p := layerPrefix(l)
		ts = append(ts, w.vec(p+"input_layernorm.weight", H, 1, 0.1), w.vec(p+"post_attention_layernorm.weight", H, 1, 0.1),
			w.mat(p+"shared_mlp.input_linear.weight", 2*S, H), w.mat(p+"shared_mlp.output_linear.weight", H, S))
		if E > 0 {
			in, out := w.mat(p+"block_sparse_moe.input_linear.weight", E*2*I, H), w.mat(p+"block_sparse_moe.output_linear.weight", E*H, I)
			in.shape, out.shape = []int64{E, 2 * I, H}, []int64{E, H, I}
			ts = append(ts, in, out, w.mat(p+"block_sparse_moe.router.layer.weight", E, H))
		}
		if typ == "attention" {
			ts = append(ts, w.mat(p+"self_attn.q_proj.weight", Q, H), w.mat(p+"self_attn.k_proj.weight", KV, H),
				w.mat(p+"self_attn.v_proj.weight", KV, H), w.mat(p+"self_attn.o_proj.weight", H, Q))
			continue
		}
		conv := f32Tensor(p+"mamba.conv1d.weight", []int64{CD, 1, g4Conv}, randn(r, int(CD*g4Conv), 0.5))
		aLog := make([]float32, NH)
		for i := range aLog {
			aLog[i] = float32(math.Log(1 + 15*r.Float64())) // A in [-16, -1]
		}
		ts = append(ts, w.mat(p+"mamba.in_proj.weight", DI+CD+NH, H), conv, w.vec(p+"mamba.dt_bias", NH, -1, 0.5),
			f32Tensor(p+"mamba.A_log", []int64{NH}, aLog), w.vec(p+"mamba.D", NH, 1, 0.2), w.vec(p+"mamba.norm.weight", DI, 1, 0.1),
			w.mat(p+"mamba.out_proj.weight", H, DI))
		if c.convBias {
			ts = append(ts, w.vec(p+"mamba.conv1d.bias", CD, 0, 0.2))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// mamba2Ref is a float64 Mamba-2 mixer as transformers' GraniteMoeHybrid
// runs it: in_proj to z, x·B·C and dt; a causal depthwise convolution of
// x·B·C and SiLU; per head dt = softplus(dt + dt_bias), the state decayed
// by exp(dt·A), A = -exp(A_log), and fed dt·x⊗B; y = C·state + D·x; then
// y·SiLU(z) RMS-normed per group; out_proj.
type mamba2Ref struct {
	inProj, convW, convB, dtBias, aLog, d, norm, outProj []float64
	hidden, dInner, dState, heads, groups, dConv         int
	eps                                                  float64
	// Left out for the sensitivity checks (wholeNorm: the gated norm over
	// the whole inner size, not per group).
	noD, noGate, noConvBias, negA, wholeNorm bool
	// noNorm: the mixer has no gated norm (Falcon-H1 without
	// mamba_rms_norm); zxbcdt, if not nil, multiplies in_proj's z, x, B,
	// C and dt outputs (Falcon-H1's ssm_multipliers).
	noNorm bool
	zxbcdt []float64
}

func softplus(x float64) float64 { return math.Log1p(math.Exp(x)) }

func (mr *mamba2Ref) forward(hs [][]float64) [][]float64 {
	DI, N, NH, G, K := mr.dInner, mr.dState, mr.heads, mr.groups, mr.dConv
	P, CD := DI/NH, DI+2*G*N
	proj := make([][]float64, len(hs))
	for t, h := range hs {
		proj[t] = matvec(mr.inProj, h, DI+CD+NH)
		if mr.zxbcdt != nil {
			ends := [5]int{DI, 2 * DI, 2*DI + G*N, 2*DI + 2*G*N, DI + CD + NH}
			for i, from := 0, 0; i < 5; from, i = ends[i], i+1 {
				for j := from; j < ends[i]; j++ {
					proj[t][j] *= mr.zxbcdt[i]
				}
			}
		}
	}
	state := make([]float64, NH*P*N)
	outs := make([][]float64, len(hs))
	for t := range hs {
		conv := make([]float64, CD)
		for c := range CD {
			var s float64
			if !mr.noConvBias {
				s = mr.convB[c]
			}
			for k := range K {
				if src := t - K + 1 + k; src >= 0 {
					s += mr.convW[c*K+k] * proj[src][DI+c]
				}
			}
			conv[c] = silu(s)
		}
		x, B, C := conv[:DI], conv[DI:DI+G*N], conv[DI+G*N:]
		z, dtRaw := proj[t][:DI], proj[t][DI+CD:]
		y := make([]float64, DI)
		for h := range NH {
			g := h / (NH / G)
			dt := softplus(dtRaw[h] + mr.dtBias[h])
			a := -math.Exp(mr.aLog[h])
			if mr.negA {
				a = -a
			}
			dA := math.Exp(dt * a)
			for p := range P {
				xv := x[h*P+p]
				var acc float64
				for n := range N {
					i := (h*P+p)*N + n
					state[i] = state[i]*dA + dt*B[g*N+n]*xv
					acc += state[i] * C[g*N+n]
				}
				if !mr.noD {
					acc += mr.d[h] * xv
				}
				y[h*P+p] = acc
			}
		}
		if !mr.noGate {
			for i := range y {
				y[i] *= silu(z[i])
			}
		}
		ng := G
		if mr.wholeNorm {
			ng = 1
		}
		if mr.noNorm {
			ng = 0
		}
		gs := DI / max(ng, 1)
		for g := range ng {
			part := y[g*gs : (g+1)*gs]
			var ss float64
			for _, v := range part {
				ss += v * v
			}
			r := 1 / math.Sqrt(ss/float64(gs)+mr.eps)
			for i := range part {
				part[i] *= r * mr.norm[g*gs+i]
			}
		}
		outs[t] = matvec(mr.outProj, y, mr.hidden)
	}
	return outs
}

// g4Ref holds a reference and its Mamba-2 mixers, for the edits.
type g4Ref struct {
	*refModel
	mixers []*mamba2Ref
	shared bool // the shared MLP is added to the experts
}

// reference reads the fixture in dir as a float64 model.
func (c g4Case) reference(t *testing.T, dir string) *g4Ref {
	t.Helper()
	r := openST(t, dir)
	m := &refModel{hidden: g4Hidden, heads: g4Heads, kvHeads: g4KV, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
		embScale: 12, residualScale: 0.22, attnScale: 0.0625, logitDiv: 8}
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	ref := &g4Ref{refModel: m, shared: true}
	S := g4Shared
	if c.experts == 0 {
		S = 2 * g4Shared
	}
	for l, typ := range c.layers {
		p := layerPrefix(l)
		L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "post_attention_layernorm.weight"), noRope: !c.rope}
		if typ == "attention" {
			L.wq, L.wk, L.wv, L.wo = r.get(p+"self_attn.q_proj.weight"), r.get(p+"self_attn.k_proj.weight"), r.get(p+"self_attn.v_proj.weight"), r.get(p+"self_attn.o_proj.weight")
		} else {
			mr := &mamba2Ref{inProj: r.get(p + "mamba.in_proj.weight"), convW: r.get(p + "mamba.conv1d.weight"), dtBias: r.get(p + "mamba.dt_bias"),
				aLog: r.get(p + "mamba.A_log"), d: r.get(p + "mamba.D"), norm: r.get(p + "mamba.norm.weight"), outProj: r.get(p + "mamba.out_proj.weight"),
				hidden: g4Hidden, dInner: 2 * g4Hidden, dState: g4State, heads: g4MHeads, groups: c.groups, dConv: g4Conv, eps: 1e-5}
			mr.convB = make([]float64, mr.dInner+2*c.groups*g4State)
			if c.convBias {
				mr.convB = r.get(p + "mamba.conv1d.bias")
			}
			ref.mixers = append(ref.mixers, mr)
			L.mixer = mr.forward
		}
		in, out := r.get(p+"shared_mlp.input_linear.weight"), r.get(p+"shared_mlp.output_linear.weight")
		sh := [3][]float64{in[:S*g4Hidden], in[S*g4Hidden:], out}
		if c.experts == 0 {
			L.wg, L.wu, L.wd, L.ffn = sh[0], sh[1], sh[2], S
			m.layers = append(m.layers, L)
			continue
		}
		L.router, L.topK, L.ffn = r.get(p+"block_sparse_moe.router.layer.weight"), g4Used, g4ExpertFFN
		L.experts = fusedExpertsRef(r.get(p+"block_sparse_moe.input_linear.weight"), r.get(p+"block_sparse_moe.output_linear.weight"),
			c.experts, g4ExpertFFN, g4Hidden)
		moeL := L
		L.mlp = func(h []float64) []float64 {
			o := m.moe(moeL, h)
			if ref.shared {
				for i, v := range gatedMLP(sh, h, S, g4Hidden) {
					o[i] += v
				}
			}
			return o
		}
		m.layers = append(m.layers, L)
	}
	return ref
}

// convertG4 converts dir to F32 and returns the GGUF's path and file.
func convertG4(t *testing.T, dir string) (string, *gguf.File) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "g4.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, f
}

// TestGraniteHybrid converts Granite 4.0-H checkpoints (Mamba-2 layers
// with one attention layer; experts with a shared MLP, or the shared MLP
// alone; attention with rope; with and without conv1d's bias) to
// llama.cpp's granitehybrid and checks the keys and the logits against the
// float64 reference, which would see D, the gate, conv1d's bias, A's
// sign, the shared MLP, the residual multiplier or the rope left out.
func TestGraniteHybrid(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dense := g4Hybrid
	dense.experts = 0
	rope := g4Hybrid
	rope.rope = true
	noBias := g4Hybrid
	noBias.convBias = false
	for name, c := range map[string]g4Case{"experts": g4Hybrid, "dense": dense, "rope": rope, "no conv bias": noBias} {
		t.Run(name, func(t *testing.T) {
			dir := c.fixture(t, nil)
			out, f := convertG4(t, dir)
			if f.Architecture() != "granitehybrid" {
				t.Fatalf("architecture %q", f.Architecture())
			}
			want := map[string]uint64{"ssm.conv_kernel": g4Conv, "ssm.inner_size": 2 * g4Hidden, "ssm.state_size": g4State,
				"ssm.time_step_rank": g4MHeads, "ssm.group_count": uint64(c.groups), "feed_forward_length": g4ExpertFFN}
			if c.experts > 0 {
				want["expert_count"], want["expert_used_count"], want["expert_shared_feed_forward_length"] = g4Experts, g4Used, g4Shared
			} else {
				want["feed_forward_length"] = 2 * g4Shared
			}
			for k, v := range want {
				if got, ok := f.Uint("granitehybrid." + k); !ok || got != v {
					t.Errorf("%s = %v (%v), want %v", k, got, ok, v)
				}
			}
			if v, ok := f.Lookup("granitehybrid.attention.head_count_kv"); !ok {
				t.Error("no head_count_kv")
			} else if kv, ok := v.AsUints(); !ok || !slices.Equal(kv, []uint64{0, g4KV, 0, 0}) {
				t.Errorf("head_count_kv %v", v)
			}
			if v, ok := f.Bool("granitehybrid.rope.scaling.finetuned"); !ok || v != c.rope {
				t.Errorf("rope.scaling.finetuned %v (%v), want %v", v, ok, c.rope)
			}
			if ti, ok := f.Tensor("blk.0.ssm_a"); !ok || !slices.Equal(ti.Shape, []uint64{1, g4MHeads}) {
				t.Errorf("ssm_a %+v (%v)", ti, ok)
			}
			if m := loadModel(t, out, engine.ModelOptions{}); !m.IsRecurrent() || m.Info().KVHeads != g4KV {
				t.Errorf("recurrent %v, KV heads %d", m.IsRecurrent(), m.Info().KVHeads)
			}
			fresh := func() *g4Ref { return c.reference(t, dir) }
			ctx := refContext(t, out)
			checkRef(t, ctx, prompts, fresh().forward, 1e-5)
			edits := map[string]func(*g4Ref){
				"D":                   func(m *g4Ref) { m.mixers[0].noD, m.mixers[1].noD, m.mixers[2].noD = true, true, true },
				"gate":                func(m *g4Ref) { m.mixers[0].noGate, m.mixers[1].noGate, m.mixers[2].noGate = true, true, true },
				"A's sign":            func(m *g4Ref) { m.mixers[0].negA, m.mixers[1].negA, m.mixers[2].negA = true, true, true },
				"residual multiplier": func(m *g4Ref) { m.residualScale = 0 },
			}
			if c.convBias {
				edits["conv1d bias"] = func(m *g4Ref) {
					m.mixers[0].noConvBias, m.mixers[1].noConvBias, m.mixers[2].noConvBias = true, true, true
				}
			}
			if c.experts > 0 {
				edits["shared MLP"] = func(m *g4Ref) { m.shared = false }
			}
			if c.rope {
				edits["rope"] = func(m *g4Ref) {
					for i := range m.layers {
						m.layers[i].noRope = true
					}
				}
			}
			checkSensitive(t, ctx, prompts, fresh, edits)
		})
	}
}

// TestGraniteNonHybrid converts Granite 4.0 checkpoints without Mamba-2
// layers (Granite 4.0 Micro's layout: rope, a dense shared MLP; and one
// with experts) to llama.cpp's granite and granitemoe, as
// convert_hf_to_gguf.py does, and checks the logits against the reference.
func TestGraniteNonHybrid(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, tc := range []struct {
		experts int
		arch    string
	}{{0, "granite"}, {g4Experts, "granitemoe"}} {
		c := g4Case{layers: []string{"attention", "attention"}, groups: 1, experts: tc.experts, rope: true, convBias: true}
		dir := c.fixture(t, nil)
		out, f := convertG4(t, dir)
		if f.Architecture() != tc.arch {
			t.Fatalf("architecture %q, want %q", f.Architecture(), tc.arch)
		}
		if v, ok := f.Lookup(tc.arch + ".rope.scaling.finetuned"); !ok || v.String() != "true" {
			t.Errorf("%s: rope.scaling.finetuned %v (%v)", tc.arch, v, ok)
		}
		if _, ok := f.Lookup(tc.arch + ".ssm.inner_size"); ok {
			t.Errorf("%s: Mamba-2 keys written", tc.arch)
		}
		fresh := func() *g4Ref { return c.reference(t, dir) }
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh().forward, 1e-5)
		checkSensitive(t, ctx, prompts, fresh, map[string]func(*g4Ref){
			"rope": func(m *g4Ref) {
				for i := range m.layers {
					m.layers[i].noRope = true
				}
			},
		})
	}
}

// TestGraniteHybridRefused checks the Granite 4.0 layouts llama.cpp cannot
// run, or that contradict their config, are refused with the error kind;
// layers_block_type, layer_types' alias, is read.
func TestGraniteHybridRefused(t *testing.T) {
	alias := g4Hybrid.fixture(t, func(c map[string]any, ts []stTensor) []stTensor {
		c["layers_block_type"] = c["layer_types"]
		delete(c, "layer_types")
		return ts
	})
	if _, f := convertG4(t, alias); f.Architecture() != "granitehybrid" {
		t.Errorf("layers_block_type: arch %q", f.Architecture())
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"mamba_expand 4":           {setConfig("mamba_expand", 4), convert.ErrUnsupported},
		"mamba_proj_bias":          {setConfig("mamba_proj_bias", true), convert.ErrUnsupported},
		"attention_bias":           {setConfig("attention_bias", true), convert.ErrUnsupported},
		"position_embedding alibi": {setConfig("position_embedding_type", "alibi"), convert.ErrUnsupported},
		"gelu":                     {setConfig("hidden_act", "gelu"), convert.ErrUnsupported},
		"3 groups of 8 heads":      {setConfig("mamba_n_groups", 3), convert.ErrMismatch},
		"mamba_d_conv 2":           {setConfig("mamba_d_conv", 2), convert.ErrUnsupported},
		"2 groups":                 {setConfig("mamba_n_groups", 2), convert.ErrUnsupported},
		"time step clamped":        {setConfig("time_step_limit", []float64{0.001, 0.1}), convert.ErrUnsupported},
		"layer_types empty":        {setConfig("layer_types", []string{}), convert.ErrUnsupported}, // all Mamba-2: layer 1's attention refused
		"mamba_d_head 32":          {setConfig("mamba_d_head", 32), convert.ErrMismatch},
		"a layer type":             {setConfig("layer_types", []string{"mamba", "attention", "mamba", "mlp"}), convert.ErrMismatch},
		"too few layer types":      {setConfig("layer_types", []string{"mamba", "attention"}), convert.ErrMismatch},
		"one expert":               {setConfig("num_local_experts", 1), convert.ErrMismatch},
		"no A_log":                 {dropTensor("model.layers.2.mamba.A_log"), convert.ErrMismatch},
		"no shared MLP":            {dropTensor("model.layers.1.shared_mlp.output_linear.weight"), convert.ErrMismatch},
		"no experts":               {dropTensor("model.layers.3.block_sparse_moe.input_linear.weight"), convert.ErrMismatch},
		"attention as Mamba-2":     {setConfig("layer_types", []string{"mamba", "mamba", "mamba", "mamba"}), convert.ErrUnsupported},
		"conv1d [C, K]": {func(_ map[string]any, ts []stTensor) []stTensor {
			for i := range ts {
				if ts[i].name == "model.layers.0.mamba.conv1d.weight" {
					ts[i].shape = []int64{ts[i].shape[0], g4Conv}
				}
			}
			return ts
		}, convert.ErrMismatch},
		"an in_proj bias": {func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.mamba.in_proj.bias", []int64{4}, make([]float32, 4)))
		}, convert.ErrUnsupported},
	} {
		err := convert.Convert(context.Background(), g4Hybrid.fixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if tc.want == convert.ErrUnsupported && name == "layer_types empty" && (err == nil || !strings.Contains(err.Error(), "a Mamba-2 layer")) {
			t.Errorf("%s: %v, want layer 1 read as a Mamba-2 layer", name, err)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
