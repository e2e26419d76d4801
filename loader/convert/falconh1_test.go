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

// A Falcon-H1 fixture: hidden size 64 (tiny-llama-st's tokenizer), 3
// layers each with attention (4 heads of 16, 2 KV heads) beside a Mamba-2
// mixer (6 heads of 16: an inner size of 96, not twice the hidden size; 2
// groups, a state of 16, a kernel of 4), an MLP of 96, and every µP
// multiplier other than 1.
const (
	fhHidden, fhHeads, fhKV, fhHeadDim, fhLayers, fhFF = 64, 4, 2, 16, 3, 96
	fhMHeads, fhDInner, fhGroups, fhState, fhConv      = 6, 96, 2, 16, 4
)

// fhMult are the fixture's multipliers.
var fhMult = map[string]any{
	"embedding_multiplier": 2.0, "lm_head_multiplier": 0.5, "key_multiplier": 0.7, "attention_in_multiplier": 1.3,
	"attention_out_multiplier": 0.8, "ssm_in_multiplier": 1.1, "ssm_out_multiplier": 0.9, "mlp_multipliers": []float64{1.2, 0.6},
	"ssm_multipliers": []float64{0.9, 1.1, 1.2, 0.8, 1.5},
}

// fhCase is one fixture's variant.
type fhCase struct {
	norm bool // mamba_rms_norm
	tied bool // tie_word_embeddings
}

func (c fhCase) fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"architectures": []string{"FalconH1ForCausalLM"}, "model_type": "falcon_h1",
		"hidden_size": fhHidden, "num_hidden_layers": fhLayers, "num_attention_heads": fhHeads, "num_key_value_heads": fhKV, "head_dim": fhHeadDim,
		"intermediate_size": fhFF, "mamba_d_ssm": fhDInner, "mamba_n_heads": fhMHeads, "mamba_d_head": 16, "mamba_n_groups": fhGroups,
		"mamba_d_state": fhState, "mamba_d_conv": fhConv, "mamba_expand": 2, "mamba_conv_bias": !c.tied, "mamba_proj_bias": false,
		"mamba_rms_norm": c.norm, "mamba_norm_before_gate": false, "projectors_bias": false, "attention_bias": false, "mlp_bias": false,
		"hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096, "vocab_size": g4Vocab,
		"tie_word_embeddings": c.tied, "bos_token_id": 1, "eos_token_id": 2,
	}
	for k, v := range fhMult {
		cfg[k] = v
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	r := rand.New(rand.NewPCG(45, 1))
	w := randWeights{r}
	H, Q, KV, F := int64(fhHidden), int64(fhHeads*fhHeadDim), int64(fhKV*fhHeadDim), int64(fhFF)
	DI, NH, CD := int64(fhDInner), int64(fhMHeads), int64(fhDInner+2*fhGroups*fhState)
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{g4Vocab, H}, randn(r, g4Vocab*fhHidden, 0.1)), w.vec("model.final_layernorm.weight", H, 1, 0.1)}
	if !c.tied {
		ts = append(ts, w.mat("lm_head.weight", g4Vocab, H))
	}
	for l := range fhLayers {
		p := layerPrefix(l)
		aLog := make([]float32, NH)
		for i := range aLog {
			aLog[i] = float32(math.Log(1 + 15*r.Float64()))
		}
		ts = append(ts, w.vec(p+"input_layernorm.weight", H, 1, 0.1), w.vec(p+"pre_ff_layernorm.weight", H, 1, 0.1),
			w.mat(p+"self_attn.q_proj.weight", Q, H), w.mat(p+"self_attn.k_proj.weight", KV, H), w.mat(p+"self_attn.v_proj.weight", KV, H),
			w.mat(p+"self_attn.o_proj.weight", H, Q), w.mat(p+"feed_forward.gate_proj.weight", F, H), w.mat(p+"feed_forward.up_proj.weight", F, H),
			w.mat(p+"feed_forward.down_proj.weight", H, F),
			w.mat(p+"mamba.in_proj.weight", DI+CD+NH, H), f32Tensor(p+"mamba.conv1d.weight", []int64{CD, 1, fhConv}, randn(r, int(CD*fhConv), 0.5)),
			w.vec(p+"mamba.dt_bias", NH, -1, 0.5), f32Tensor(p+"mamba.A_log", []int64{NH}, aLog), w.vec(p+"mamba.D", NH, 1, 0.2),
			w.mat(p+"mamba.out_proj.weight", H, DI))
		if c.norm {
			ts = append(ts, w.vec(p+"mamba.norm.weight", DI, 1, 0.1))
		}
		if !c.tied {
			ts = append(ts, w.vec(p+"mamba.conv1d.bias", CD, 0, 0.2))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// fhRef holds a Falcon-H1 reference and its multipliers, for the edits
// (a multiplier set to 1 is left out).
type fhRef struct {
	*refModel
	mixers                              []*mamba2Ref
	key, attnIn, attnOut, ssmIn, ssmOut float64
	gate, down                          float64
	noAttention, noMamba                bool
	attn                                []refLayer // each layer's attention weights
	headDim, heads, kvHeads             int
	invFreq                             []float64
	flatKey                             bool
}

// attention is Falcon-H1's attention of layer l over the inputs hs (already
// times attention_in_multiplier): keys times key_multiplier, rotate_half
// rope over the whole head, softmax, o_proj.
func (m *fhRef) attention(l int, hs [][]float64) [][]float64 {
	L := m.attn[l]
	nh, nkv, d := m.heads, m.kvHeads, m.headDim
	T := len(hs)
	qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
	for t, h := range hs {
		q, k, v := matvec(L.wq, h, nh*d), matvec(L.wk, h, nkv*d), matvec(L.wv, h, nkv*d)
		for i := range k {
			k[i] *= m.key
		}
		for j := range nh {
			rope(q[j*d:(j+1)*d], t, m.invFreq, 1)
		}
		for j := range nkv {
			rope(k[j*d:(j+1)*d], t, m.invFreq, 1)
		}
		qs[t], ks[t], vs[t] = q, k, v
	}
	outs := causalAttention(qs, ks, vs, nh, nkv, d)
	for t, att := range outs {
		outs[t] = matvec(L.wo, att, m.hidden)
	}
	return outs
}

func (c fhCase) reference(t *testing.T, dir string) *fhRef {
	t.Helper()
	r := openST(t, dir)
	mul := func(k string) float64 { return fhMult[k].(float64) }
	m := &refModel{hidden: fhHidden, heads: fhHeads, kvHeads: fhKV, headDim: fhHeadDim, eps: 1e-5,
		embScale: mul("embedding_multiplier"), logitScale: mul("lm_head_multiplier")}
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.final_layernorm.weight")
	m.out = m.emb
	if !c.tied {
		m.out = r.get("lm_head.weight")
	}
	mlp, ssm := fhMult["mlp_multipliers"].([]float64), fhMult["ssm_multipliers"].([]float64)
	ref := &fhRef{refModel: m, key: mul("key_multiplier"), attnIn: mul("attention_in_multiplier"), attnOut: mul("attention_out_multiplier"),
		ssmIn: mul("ssm_in_multiplier"), ssmOut: mul("ssm_out_multiplier"), gate: mlp[0], down: mlp[1],
		headDim: fhHeadDim, heads: fhHeads, kvHeads: fhKV, invFreq: defaultInvFreq(10000, fhHeadDim)}
	for l := range fhLayers {
		p := layerPrefix(l)
		ref.attn = append(ref.attn, refLayer{wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"),
			wv: r.get(p + "self_attn.v_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight")})
		mr := &mamba2Ref{inProj: r.get(p + "mamba.in_proj.weight"), convW: r.get(p + "mamba.conv1d.weight"), dtBias: r.get(p + "mamba.dt_bias"),
			aLog: r.get(p + "mamba.A_log"), d: r.get(p + "mamba.D"), outProj: r.get(p + "mamba.out_proj.weight"),
			hidden: fhHidden, dInner: fhDInner, dState: fhState, heads: fhMHeads, groups: fhGroups, dConv: fhConv, eps: 1e-5,
			noNorm: !c.norm, zxbcdt: slices.Clone(ssm)}
		mr.convB = make([]float64, fhDInner+2*fhGroups*fhState)
		if !c.tied {
			mr.convB = r.get(p + "mamba.conv1d.bias")
		}
		if c.norm {
			mr.norm = r.get(p + "mamba.norm.weight")
		}
		ref.mixers = append(ref.mixers, mr)
		l := l
		L := refLayer{attnNorm: r.get(p + "input_layernorm.weight"), ffnNorm: r.get(p + "pre_ff_layernorm.weight")}
		L.mixer = func(hs [][]float64) [][]float64 {
			scaled := func(s float64) [][]float64 {
				out := make([][]float64, len(hs))
				for t, h := range hs {
					out[t] = make([]float64, len(h))
					for i, v := range h {
						out[t][i] = v * s
					}
				}
				return out
			}
			out := make([][]float64, len(hs))
			for t := range out {
				out[t] = make([]float64, fhHidden)
			}
			if !ref.noAttention {
				for t, a := range ref.attention(l, scaled(ref.attnIn)) {
					for i, v := range a {
						out[t][i] += v * ref.attnOut
					}
				}
			}
			if !ref.noMamba {
				for t, s := range mr.forward(scaled(ref.ssmIn)) {
					for i, v := range s {
						out[t][i] += v * ref.ssmOut
					}
				}
			}
			return out
		}
		wg, wu, wd := r.get(p+"feed_forward.gate_proj.weight"), r.get(p+"feed_forward.up_proj.weight"), r.get(p+"feed_forward.down_proj.weight")
		L.mlp = func(h []float64) []float64 {
			g, u := matvec(wg, h, fhFF), matvec(wu, h, fhFF)
			for i := range g {
				g[i] = silu(g[i]*ref.gate) * u[i]
			}
			d := matvec(wd, g, fhHidden)
			for i := range d {
				d[i] *= ref.down
			}
			return d
		}
		m.layers = append(m.layers, L)
	}
	return ref
}

// TestFalconH1 converts Falcon-H1 checkpoints (with the gated norm and its
// own head; without the norm, with tied embeddings and no conv1d bias) and
// checks the keys and the logits against the float64 reference, which
// applies the multipliers where transformers does and would see any of
// them, either branch or the rope left out.
func TestFalconH1(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for name, c := range map[string]fhCase{"norm": {norm: true}, "tied, no norm": {tied: true}} {
		t.Run(name, func(t *testing.T) {
			dir := c.fixture(t, nil)
			out := filepath.Join(t.TempDir(), "fh.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if f.Architecture() != "falcon-h1" {
				t.Fatalf("architecture %q", f.Architecture())
			}
			for k, v := range map[string]uint64{"ssm.conv_kernel": fhConv, "ssm.inner_size": fhDInner, "ssm.state_size": fhState,
				"ssm.time_step_rank": fhMHeads, "ssm.group_count": fhGroups, "attention.key_length": fhHeadDim, "feed_forward_length": fhFF} {
				if got, ok := f.Uint("falcon-h1." + k); !ok || got != v {
					t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
				}
			}
			if _, ok := f.Tensor("blk.0.ssm_norm.weight"); ok != c.norm {
				t.Errorf("ssm_norm written: %v, want %v", ok, c.norm)
			}
			if m := loadModel(t, out, engine.ModelOptions{}); !m.IsRecurrent() {
				t.Error("not recurrent")
			}
			fresh := func() *fhRef { return c.reference(t, dir) }
			ctx := refContext(t, out)
			checkRef(t, ctx, prompts, fresh().forward, 1e-5)
			edits := map[string]func(*fhRef){
				"key_multiplier":           func(m *fhRef) { m.key = 1 },
				"attention_in_multiplier":  func(m *fhRef) { m.attnIn = 1 },
				"attention_out_multiplier": func(m *fhRef) { m.attnOut = 1 },
				"ssm_in_multiplier":        func(m *fhRef) { m.ssmIn = 1 },
				"ssm_out_multiplier":       func(m *fhRef) { m.ssmOut = 1 },
				"mlp gate multiplier":      func(m *fhRef) { m.gate = 1 },
				"mlp down multiplier":      func(m *fhRef) { m.down = 1 },
				"embedding_multiplier":     func(m *fhRef) { m.embScale = 0 },
				"lm_head_multiplier":       func(m *fhRef) { m.logitScale = 0 },
				"attention":                func(m *fhRef) { m.noAttention = true },
				"Mamba-2":                  func(m *fhRef) { m.noMamba = true },
				"rope":                     func(m *fhRef) { m.invFreq = make([]float64, len(m.invFreq)) },
			}
			for i, seg := range []string{"z", "x", "B", "C", "dt"} {
				edits[seg+" multiplier"] = func(m *fhRef) {
					for _, mr := range m.mixers {
						mr.zxbcdt[i] = 1
					}
				}
			}
			checkSensitive(t, ctx, prompts, fresh, edits)
			// F16 and Q8_0: the multipliers applied on those paths too
			// (each would move the logits far beyond the rounding).
			for typ, tol := range map[string]float64{"f16": 0.01, "q8_0": 0.15} {
				p := filepath.Join(t.TempDir(), typ+".gguf")
				if err := convert.Convert(context.Background(), dir, p, convert.Options{Type: typ, Name: "x"}); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s:", typ)
				checkRef(t, refContext(t, p), prompts, fresh().forward, tol)
			}
		})
	}
}

// TestFalconH1Refused checks the Falcon-H1 layouts llama.cpp's falcon-h1
// cannot run, or that contradict their config, are refused with the error
// kind.
func TestFalconH1Refused(t *testing.T) {
	for name, tc := range map[string]struct {
		c    fhCase
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"norm before the gate":  {fhCase{norm: true}, setConfig("mamba_norm_before_gate", true), convert.ErrUnsupported},
		"projection bias":       {fhCase{}, setConfig("mamba_proj_bias", true), convert.ErrUnsupported},
		"projectors bias":       {fhCase{}, setConfig("projectors_bias", true), convert.ErrUnsupported},
		"attention bias":        {fhCase{}, setConfig("attention_bias", true), convert.ErrUnsupported},
		"mlp bias":              {fhCase{}, setConfig("mlp_bias", true), convert.ErrUnsupported},
		"kernel of 5":           {fhCase{}, setConfig("mamba_d_conv", 5), convert.ErrUnsupported},
		"time step limit":       {fhCase{}, setConfig("time_step_limit", []float64{0.001, 0.1}), convert.ErrUnsupported},
		"4 ssm multipliers":     {fhCase{}, setConfig("ssm_multipliers", []float64{1, 1, 1, 1}), convert.ErrMismatch},
		"3 mlp multipliers":     {fhCase{}, setConfig("mlp_multipliers", []float64{1, 1, 1}), convert.ErrMismatch},
		"head size":             {fhCase{}, setConfig("mamba_d_head", 32), convert.ErrMismatch},
		"groups":                {fhCase{}, setConfig("mamba_n_groups", 4), convert.ErrMismatch},
		"a norm without config": {fhCase{norm: true}, setConfig("mamba_rms_norm", false), convert.ErrMismatch},
		"no A_log":              {fhCase{}, dropTensor("model.layers.1.mamba.A_log"), convert.ErrMismatch},
		"no norm":               {fhCase{norm: true}, dropTensor("model.layers.2.mamba.norm.weight"), convert.ErrMismatch},
		"a zero multiplier":     {fhCase{}, setConfig("key_multiplier", 0.0), convert.ErrMismatch},
		"a tiny multiplier":     {fhCase{}, setConfig("ssm_multipliers", []float64{1, 1, 1e-50, 1, 1}), convert.ErrMismatch},
		"mamba_d_ssm of 0":      {fhCase{}, setConfig("mamba_d_ssm", 0), convert.ErrMismatch},
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

// TestFalconH1Defaults checks FalconH1Config's defaults for what config.json
// leaves out: rope_theta 1e5, 8 KV heads, 8192 positions, and mamba_d_ssm
// 1024 when absent but mamba_expand × hidden_size when null (neither of
// which the fixture's 6 Mamba-2 heads divide, as the errors say).
func TestFalconH1Defaults(t *testing.T) {
	dir := fhCase{}.fixture(t, func(cfg map[string]any, ts []stTensor) []stTensor {
		delete(cfg, "rope_theta")
		delete(cfg, "max_position_embeddings")
		return ts
	})
	_, f := convertDir(t, dir, "f32")
	if theta, ok := f.Float("falcon-h1.rope.freq_base"); !ok || theta != 1e5 {
		t.Errorf("rope.freq_base %v, want 1e5", theta)
	}
	if n, ok := f.Uint("falcon-h1.context_length"); !ok || n != 8192 {
		t.Errorf("context_length %d, want 8192", n)
	}
	for name, tc := range map[string]struct {
		edit  func(map[string]any, []stTensor) []stTensor
		words string
	}{
		"absent": {func(cfg map[string]any, ts []stTensor) []stTensor { delete(cfg, "mamba_d_ssm"); return ts }, "inner size 1024"},
		"null":   {setConfig("mamba_d_ssm", nil), "inner size 128"},
		"no KV heads": {func(cfg map[string]any, ts []stTensor) []stTensor {
			delete(cfg, "num_key_value_heads") // 8, more than the 4 heads
			return ts
		}, "num_key_value_heads 8"},
	} {
		err := convert.Convert(context.Background(), fhCase{}.fixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrMismatch) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("mamba_d_ssm %s: %v, want ErrMismatch naming %q", name, err, tc.words)
		}
	}
}
