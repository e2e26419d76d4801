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
	"testing"

	"github.com/llm-go/llm/loader/convert"
)

// mambaCase is one Mamba-1 checkpoint layout.
type mambaCase struct {
	name     string
	hf       string // architectures[0]
	falcon   bool   // FalconMamba: dt, B and C RMS-normed
	tied     bool
	convBias bool
}

var mambaCases = []mambaCase{
	{name: "mamba", hf: "MambaForCausalLM", tied: true, convBias: true},
	{name: "falcon-mamba", hf: "FalconMambaForCausalLM", falcon: true, convBias: true},
	{name: "no-conv-bias", hf: "MambaForCausalLM", tied: true},
}

// The fixture's sizes: hidden 64, inner 128, state 16, dt rank 4
// ("auto": 64/16), kernel 4, two blocks.
const mambaHidden, mambaInner, mambaState, mambaRank, mambaConv = 64, 128, 16, 4, 4

// mambaFixture writes a tiny Mamba-1 checkpoint of case c (tiny-llama-st's
// tokenizer).
func mambaFixture(t *testing.T, c mambaCase, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{c.hf}, "model_type": "mamba", "hidden_size": mambaHidden, "intermediate_size": mambaInner,
		"state_size": mambaState, "num_hidden_layers": 2, "vocab_size": 32000, "layer_norm_epsilon": 1e-5, "expand": 2, "conv_kernel": mambaConv,
		"use_bias": false, "use_conv_bias": c.convBias, "hidden_act": "silu", "time_step_rank": "auto", "tie_word_embeddings": c.tied,
		"bos_token_id": 1, "eos_token_id": 2}
	if c.falcon {
		cfg["model_type"], cfg["mixer_rms_eps"] = "falcon_mamba", 1e-6
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(47, 3))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("backbone.embeddings.weight", []int64{32000, mambaHidden}, randn(r, 32000*mambaHidden, 1)),
		w.vec("backbone.norm_f.weight", mambaHidden, 1, 0.1)}
	if !c.tied {
		ts = append(ts, w.mat("lm_head.weight", 32000, mambaHidden))
	}
	for i := range 2 {
		p := fmt.Sprintf("backbone.layers.%d.", i)
		aLog := make([]float32, mambaInner*mambaState)
		for j := range aLog {
			aLog[j] = float32(math.Log(float64(1+j%mambaState))) + float32(r.NormFloat64()*0.1) // S4D-real's initialisation
		}
		ts = append(ts, w.vec(p+"norm.weight", mambaHidden, 1, 0.1), w.mat(p+"mixer.in_proj.weight", 2*mambaInner, mambaHidden),
			f32Tensor(p+"mixer.conv1d.weight", []int64{mambaInner, 1, mambaConv}, randn(r, mambaInner*mambaConv, 0.5)),
			w.mat(p+"mixer.x_proj.weight", mambaRank+2*mambaState, mambaInner), w.mat(p+"mixer.dt_proj.weight", mambaInner, mambaRank),
			w.vec(p+"mixer.dt_proj.bias", mambaInner, -2, 0.5), f32Tensor(p+"mixer.A_log", []int64{mambaInner, mambaState}, aLog),
			w.vec(p+"mixer.D", mambaInner, 1, 0.3), w.mat(p+"mixer.out_proj.weight", mambaHidden, mambaInner))
		if c.convBias {
			ts = append(ts, w.vec(p+"mixer.conv1d.bias", mambaInner, 0, 0.3))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// mamba1Mixer is a float64 Mamba-1 mixer as transformers' MambaMixer
// (slow path) runs it: in_proj to x and the gate z; a causal depthwise
// convolution of x and SiLU; x_proj to dt, B and C (RMS-normed when
// normEps is not 0, by the weights dtNorm, bNorm and cNorm when not nil);
// per channel dt = softplus(dt_proj(dt)), the state decayed by exp(dt·A),
// A = -exp(A_log), and fed dt·x·B; y = C·state + D·x; y·SiLU(z); out_proj.
type mamba1Mixer struct {
	inProj, convW, convB, xProj, dtW, dtB, aLog, d, outProj []float64
	dtNorm, bNorm, cNorm                                    []float64
	normEps                                                 float64
	// Left out for the sensitivity checks (aLogAsA: A_log read as A;
	// noDtBCNorm: the dt/B/C norms).
	noD, noGate, aLogAsA, noDtBCNorm bool
}

// readMamba1 reads the mixer whose tensors' names begin with p, conv1d's
// bias zeros when convBias is false.
func readMamba1(r *stReader, p string, convBias bool) *mamba1Mixer {
	mx := &mamba1Mixer{inProj: r.get(p + "in_proj.weight"), convW: r.get(p + "conv1d.weight"), xProj: r.get(p + "x_proj.weight"),
		dtW: r.get(p + "dt_proj.weight"), dtB: r.get(p + "dt_proj.bias"), aLog: r.get(p + "A_log"), d: r.get(p + "D"), outProj: r.get(p + "out_proj.weight")}
	mx.convB = make([]float64, len(mx.d))
	if convBias {
		mx.convB = r.get(p + "conv1d.bias")
	}
	return mx
}

// rmsPlain is an RMS norm without weights, in place.
func rmsPlain(v []float64, eps float64) {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	s := 1 / math.Sqrt(ss/float64(len(v))+eps)
	for i := range v {
		v[i] *= s
	}
}

// norm RMS-normalises v in place by the weights g (none when nil).
func (mx *mamba1Mixer) norm(v, g []float64) {
	rmsPlain(v, mx.normEps)
	for i := range g {
		v[i] *= g[i]
	}
}

// forward maps the normed inputs of every position to the mixer's outputs.
func (mx *mamba1Mixer) forward(hs [][]float64) [][]float64 {
	DI, H := len(mx.d), len(hs[0])
	N := len(mx.aLog) / DI
	R := len(mx.dtW) / DI
	K := len(mx.convW) / DI
	xz := make([][]float64, len(hs))
	for t, h := range hs {
		xz[t] = matvec(mx.inProj, h, 2*DI)
	}
	state := make([]float64, DI*N)
	outs := make([][]float64, len(hs))
	for t := range hs {
		xc := make([]float64, DI)
		for c := range DI {
			s := mx.convB[c]
			for k := range K {
				if src := t - K + 1 + k; src >= 0 {
					s += mx.convW[c*K+k] * xz[src][c]
				}
			}
			xc[c] = silu(s)
		}
		dbc := matvec(mx.xProj, xc, R+2*N)
		dtIn, B, C := dbc[:R], dbc[R:R+N], dbc[R+N:]
		if mx.normEps != 0 && !mx.noDtBCNorm {
			mx.norm(dtIn, mx.dtNorm)
			mx.norm(B, mx.bNorm)
			mx.norm(C, mx.cNorm)
		}
		dt := matvec(mx.dtW, dtIn, DI)
		y := make([]float64, DI)
		for c := range DI {
			d := softplus(dt[c] + mx.dtB[c])
			var acc float64
			for n := range N {
				a := -math.Exp(mx.aLog[c*N+n])
				if mx.aLogAsA {
					a = mx.aLog[c*N+n]
				}
				i := c*N + n
				state[i] = state[i]*math.Exp(d*a) + d*B[n]*xc[c]
				acc += state[i] * C[n]
			}
			if !mx.noD {
				acc += mx.d[c] * xc[c]
			}
			if !mx.noGate {
				acc *= silu(xz[t][DI+c])
			}
			y[c] = acc
		}
		outs[t] = matvec(mx.outProj, y, H)
	}
	return outs
}

// mambaRef is transformers' Mamba-1 model of the fixture: each block an
// RMS norm and a mixer added to its input.
type mambaRef struct {
	*refModel
	mixers []*mamba1Mixer
}

func newMambaRef(r *stReader, c mambaCase) *mambaRef {
	m := &mambaRef{refModel: &refModel{hidden: mambaHidden, eps: 1e-5}}
	m.emb, m.norm = r.get("backbone.embeddings.weight"), r.get("backbone.norm_f.weight")
	m.out = m.emb
	if !c.tied {
		m.out = r.get("lm_head.weight")
	}
	for l := range 2 {
		p := fmt.Sprintf("backbone.layers.%d.", l)
		mx := readMamba1(r, p+"mixer.", c.convBias)
		if c.falcon {
			// transformers' mixer_rms_eps; llama.cpp's 1e-5 puts the
			// logits 3e-5 away (3e-7 with the same epsilon).
			mx.normEps = 1e-6
		}
		m.mixers = append(m.mixers, mx)
		m.layers = append(m.layers, refLayer{attnNorm: r.get(p + "norm.weight"), mixer: mx.forward, noMLP: true})
	}
	return m
}

// eachMixer is the edit that applies f to every mixer.
func eachMixer(f func(*mamba1Mixer)) func(*mambaRef) {
	return func(m *mambaRef) {
		for _, mx := range m.mixers {
			f(mx)
		}
	}
}

// TestMamba converts tiny Mamba-1 checkpoints (Mamba's, FalconMamba's with
// its dt/B/C norms and an untied head, one without conv1d's bias) to
// llama.cpp's mamba and checks the keys and the logits against the
// float64 reference, which would see D, the gate, A's sign and FalconMamba's
// norms left out; bad configs are refused.
func TestMamba(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, c := range mambaCases {
		t.Run(c.name, func(t *testing.T) {
			dir := mambaFixture(t, c, nil)
			out, f := convertDir(t, dir, "f32")
			keys := map[string]uint64{"ssm.conv_kernel": mambaConv, "ssm.inner_size": mambaInner, "ssm.state_size": mambaState, "ssm.time_step_rank": mambaRank,
				"context_length": 1 << 20}
			for k, want := range keys {
				if v, _ := f.Uint("mamba." + k); v != want {
					t.Errorf("mamba.%s = %d, want %d", k, v, want)
				}
			}
			rms, _ := f.Bool("mamba.ssm.dt_b_c_rms")
			_, out0 := f.Tensor("output.weight")
			if f.Architecture() != "mamba" || rms != c.falcon || out0 == c.tied {
				t.Errorf("arch %q, dt_b_c_rms %v, output.weight %v", f.Architecture(), rms, out0)
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			checkRef(t, ctx, prompts, newMambaRef(r, c).forward, 1e-4)
			edits := map[string]func(*mambaRef){
				"no D":            eachMixer(func(mx *mamba1Mixer) { mx.noD = true }),
				"no gate":         eachMixer(func(mx *mamba1Mixer) { mx.noGate = true }),
				"A_log read as A": eachMixer(func(mx *mamba1Mixer) { mx.aLogAsA = true }),
			}
			if c.falcon {
				edits["no dt/B/C norms"] = eachMixer(func(mx *mamba1Mixer) { mx.noDtBCNorm = true })
			}
			checkSensitive(t, ctx, prompts, func() *mambaRef { return newMambaRef(r, c) }, edits)
		})
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"expand 4":       setConfig("intermediate_size", 4*mambaHidden),
		"in_proj biases": setConfig("use_bias", true),
		"gelu":           setConfig("hidden_act", "gelu"),
		"a kernel of 5":  setConfig("conv_kernel", 5),
		"an unknown bias": func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("backbone.layers.0.mixer.out_proj.bias", []int64{mambaHidden}, make([]float32, mambaHidden)))
		},
	} {
		err := convert.Convert(context.Background(), mambaFixture(t, mambaCases[0], edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"time_step_rank \"big\"":            setConfig("time_step_rank", "big"),
		"a conv1d bias config.json disowns": setConfig("use_conv_bias", false),
		"x_proj of another rank":            setConfig("time_step_rank", 8),
	} {
		err := convert.Convert(context.Background(), mambaFixture(t, mambaCases[0], edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// The Mamba-2 fixture's sizes: hidden 64, inner 128 in 8 heads of 16, 2
// groups (so that the gated norm's groups show), state 16, kernel 4.
const mamba2Heads, mamba2Groups = 8, 2

// mamba2Fixture writes a tiny Mamba2ForCausalLM checkpoint (tiny-llama-st's
// tokenizer), conv1d's bias as convBias says.
func mamba2Fixture(t *testing.T, convBias bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"Mamba2ForCausalLM"}, "model_type": "mamba2", "hidden_size": mambaHidden, "num_heads": mamba2Heads,
		"head_dim": mambaInner / mamba2Heads, "n_groups": mamba2Groups, "state_size": mambaState, "num_hidden_layers": 2, "vocab_size": 32000,
		"layer_norm_epsilon": 1e-5, "expand": 2, "conv_kernel": mambaConv, "use_bias": false, "use_conv_bias": convBias, "hidden_act": "silu",
		"rms_norm": true, "time_step_limit": []any{0.0, 1e30}, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(59, 2))
	w := randWeights{r}
	CD := int64(mambaInner + 2*mamba2Groups*mambaState)
	ts := []stTensor{f32Tensor("backbone.embeddings.weight", []int64{32000, mambaHidden}, randn(r, 32000*mambaHidden, 1)),
		w.vec("backbone.norm_f.weight", mambaHidden, 1, 0.1), w.mat("lm_head.weight", 32000, mambaHidden)}
	for i := range 2 {
		p := fmt.Sprintf("backbone.layers.%d.", i)
		ts = append(ts, w.vec(p+"norm.weight", mambaHidden, 1, 0.1), w.mat(p+"mixer.in_proj.weight", mambaInner+CD+mamba2Heads, mambaHidden),
			f32Tensor(p+"mixer.conv1d.weight", []int64{CD, 1, mambaConv}, randn(r, int(CD)*mambaConv, 0.5)),
			w.vec(p+"mixer.dt_bias", mamba2Heads, -1, 0.5), w.vec(p+"mixer.A_log", mamba2Heads, 0.5, 0.5), w.vec(p+"mixer.D", mamba2Heads, 1, 0.3),
			w.vec(p+"mixer.norm.weight", mambaInner, 1, 0.2), w.mat(p+"mixer.out_proj.weight", mambaHidden, mambaInner))
		if convBias {
			ts = append(ts, w.vec(p+"mixer.conv1d.bias", CD, 0, 0.3))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// mamba2Model is a Mamba2ForCausalLM of the fixture in float64 (its
// mixers mamba_ssm's, the gated norm per group).
type mamba2Model struct {
	r      *stReader
	mixers []*mamba2Ref
}

func newMamba2Model(r *stReader, convBias bool) *mamba2Model {
	m := &mamba2Model{r: r}
	for l := range 2 {
		p := fmt.Sprintf("backbone.layers.%d.mixer.", l)
		mr := &mamba2Ref{inProj: r.get(p + "in_proj.weight"), convW: r.get(p + "conv1d.weight"), dtBias: r.get(p + "dt_bias"), aLog: r.get(p + "A_log"),
			d: r.get(p + "D"), norm: r.get(p + "norm.weight"), outProj: r.get(p + "out_proj.weight"), hidden: mambaHidden, dInner: mambaInner,
			dState: mambaState, heads: mamba2Heads, groups: mamba2Groups, dConv: mambaConv, eps: 1e-5}
		mr.convB = make([]float64, mambaInner+2*mamba2Groups*mambaState)
		if convBias {
			mr.convB = r.get(p + "conv1d.bias")
		}
		m.mixers = append(m.mixers, mr)
	}
	return m
}

// forward returns the logits after the last of ids.
func (m *mamba2Model) forward(ids []int) []float64 {
	const H = mambaHidden
	rms := func(x, g []float64) []float64 {
		out := slices.Clone(x)
		rmsPlain(out, 1e-5)
		for i := range out {
			out[i] *= g[i]
		}
		return out
	}
	emb := m.r.get("backbone.embeddings.weight")
	x := make([][]float64, len(ids))
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[id*H:(id+1)*H]...)
	}
	for l, mr := range m.mixers {
		norm := m.r.get(fmt.Sprintf("backbone.layers.%d.norm.weight", l))
		normed := make([][]float64, len(ids))
		for i := range x {
			normed[i] = rms(x[i], norm)
		}
		for i, o := range mr.forward(normed) {
			for e := range H {
				x[i][e] += o[e]
			}
		}
	}
	return matvec(m.r.get("lm_head.weight"), rms(x[len(ids)-1], m.r.get("backbone.norm_f.weight")), 32000)
}

// TestMamba2 converts tiny Mamba2ForCausalLM checkpoints (with and without
// conv1d's bias) to llama.cpp's mamba2 and checks the keys and the logits
// against the float64 reference, which would see the gated norm taken
// over the whole inner size, D, the gate and A's sign; bad configs are
// refused.
func TestMamba2(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, convBias := range []bool{true, false} {
		t.Run(fmt.Sprintf("conv_bias=%v", convBias), func(t *testing.T) {
			dir := mamba2Fixture(t, convBias, nil)
			out, f := convertDir(t, dir, "f32")
			for k, want := range map[string]uint64{"ssm.conv_kernel": mambaConv, "ssm.inner_size": mambaInner, "ssm.state_size": mambaState,
				"ssm.time_step_rank": mamba2Heads, "ssm.group_count": mamba2Groups, "context_length": 1 << 20} {
				if v, _ := f.Uint("mamba2." + k); v != want {
					t.Errorf("mamba2.%s = %d, want %d", k, v, want)
				}
			}
			if norm, _ := f.Tensor("blk.0.ssm_norm.weight"); f.Architecture() != "mamba2" || !slices.Equal(norm.Shape, []uint64{mambaInner / mamba2Groups, mamba2Groups}) {
				t.Errorf("arch %q, ssm_norm %v", f.Architecture(), norm.Shape)
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			checkRef(t, ctx, prompts, newMamba2Model(r, convBias).forward, 1e-4)
			each := func(f func(*mamba2Ref)) func(*mamba2Model) {
				return func(m *mamba2Model) {
					for _, mr := range m.mixers {
						f(mr)
					}
				}
			}
			checkSensitive(t, ctx, prompts, func() *mamba2Model { return newMamba2Model(r, convBias) }, map[string]func(*mamba2Model){
				"the gated norm over the whole inner size": each(func(mr *mamba2Ref) { mr.wholeNorm = true }),
				"no D":    each(func(mr *mamba2Ref) { mr.noD = true }),
				"no gate": each(func(mr *mamba2Ref) { mr.noGate = true }),
				"A > 0":   each(func(mr *mamba2Ref) { mr.negA = true }),
			})
		})
	}
	for name, c := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"rms_norm false":          {setConfig("rms_norm", false), convert.ErrUnsupported},
		"a clamped time step":     {setConfig("time_step_limit", []any{0.001, 0.1}), convert.ErrUnsupported},
		"expand 4":                {setConfig("intermediate_size", 4*mambaHidden), convert.ErrUnsupported},
		"3 groups":                {setConfig("n_groups", 3), convert.ErrMismatch},
		"head_dim × heads":        {setConfig("head_dim", 8), convert.ErrMismatch},
		"a state of another size": {setConfig("state_size", 8), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), mamba2Fixture(t, true, c.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
