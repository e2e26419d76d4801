package convert_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// apertusXIELU are the fixture's raw xIELU parameters per layer (alpha_p,
// alpha_n, beta, eps), as stored in mlp.act_fn: different in each layer, so
// that a layer reading another's would be seen. They are near transformers'
// initial values (softplus(alpha_p) = 0.8, beta + softplus(alpha_n) = 0.8,
// beta 0.5, eps -1e-6), with eps large enough in layer 1 to matter.
var apertusXIELU = [][4]float32{
	{-0.0457, -1.0502, 0.5, -1e-6},
	{0.9, 0.3, 0.25, -0.05},
}

// apertusFixture writes tiny-llama-st as an Apertus checkpoint: its norms
// renamed attention_layernorm and feedforward_layernorm, no gate, random
// per-head q/k norms, and each layer's xIELU parameters (alpha_p and
// alpha_n of shape [1], beta and eps scalars, as transformers saves them).
func apertusFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		m["architectures"], m["model_type"], m["hidden_act"] = []string{"ApertusForCausalLM"}, "apertus", "xielu"
		m["qk_norm"], m["post_norm"], m["attention_bias"], m["mlp_bias"] = true, false, false, false
		cfg = m
	})
	w := randWeights{rand.New(rand.NewPCG(41, 7))}
	var ts []stTensor
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil) {
		_, suffix, _ := strings.Cut(s.name, "layers.")
		_, suffix, _ = strings.Cut(suffix, ".")
		switch suffix {
		case "mlp.gate_proj.weight":
			continue
		case "input_layernorm.weight":
			s.name = strings.Replace(s.name, "input_layernorm", "attention_layernorm", 1)
		case "post_attention_layernorm.weight":
			s.name = strings.Replace(s.name, "post_attention_layernorm", "feedforward_layernorm", 1)
		case "self_attn.q_proj.weight":
			l := strings.TrimSuffix(s.name, ".self_attn.q_proj.weight")
			ts = append(ts, w.vec(l+".self_attn.q_norm.weight", 16, 1, 0.3), w.vec(l+".self_attn.k_norm.weight", 16, 1, 0.3))
			n := l[len(l)-1] - '0'
			x := apertusXIELU[n]
			ts = append(ts, f32Tensor(l+".mlp.act_fn.alpha_p", []int64{1}, x[:1]), f32Tensor(l+".mlp.act_fn.alpha_n", []int64{1}, x[1:2]),
				f32Tensor(l+".mlp.act_fn.beta", []int64{}, x[2:3]), f32Tensor(l+".mlp.act_fn.eps", []int64{}, x[3:4]))
		}
		ts = append(ts, s)
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// apertusReleased edits the fixture to what ApertusConfig assumes and the
// released checkpoints store: no rope_theta, rope_scaling or
// max_position_embeddings in config.json, tied embeddings, and the xIELU
// parameters in BF16.
func apertusReleased(cfg map[string]any, ts []stTensor) []stTensor {
	delete(cfg, "rope_theta")
	delete(cfg, "rope_scaling")
	delete(cfg, "max_position_embeddings")
	cfg["tie_word_embeddings"] = true
	ts = slices.DeleteFunc(ts, func(s stTensor) bool { return s.name == "lm_head.weight" })
	for i, s := range ts {
		if !strings.Contains(s.name, ".act_fn.") {
			continue
		}
		var buf bytes.Buffer
		if err := s.data(&buf); err != nil {
			panic(err)
		}
		v := math.Float32frombits(binary.LittleEndian.Uint32(buf.Bytes()))
		ts[i] = bf16Scalar(s.name, s.shape, v)
	}
	return ts
}

// bf16Scalar is a one-value BF16 tensor of the given shape ([1] or []),
// rounded to nearest even.
func bf16Scalar(name string, shape []int64, v float32) stTensor {
	b := math.Float32bits(v)
	b += 0x7fff + (b>>16)&1
	raw := binary.LittleEndian.AppendUint16(nil, uint16(b>>16))
	return stTensor{name: name, dtype: "BF16", shape: shape, data: func(w io.Writer) error { _, err := w.Write(raw); return err }}
}

// apertusRef is the float64 reference: Llama's attention with per-head
// q/k norms and rotate_half rope, and the MLP down·xIELU(up·h) of
// transformers' XIELUActivation with the layer's parameters.
type apertusRef struct {
	*refModel
	ropeTheta float64
	xielu     [][4]float64 // per layer: softplus(alpha_p), beta + softplus(alpha_n), beta, eps
}

// xielu is XIELUActivation with the parameters p already taken through
// their softplus.
func xielu(x float64, p [4]float64) float64 {
	ap, an, beta, eps := p[0], p[1], p[2], p[3]
	if x > 0 {
		return ap*x*x + beta*x
	}
	return (math.Expm1(math.Min(x, eps))-x)*an + beta*x
}

// newApertusRef reads the fixture in dir; invFreq are the rope
// frequencies.
func newApertusRef(t *testing.T, dir string, theta float64, invFreq []float64) *apertusRef {
	t.Helper()
	r := openST(t, dir)
	m := &apertusRef{ropeTheta: theta, refModel: &refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: invFreq}}
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	if r.has("lm_head.weight") {
		m.out = r.get("lm_head.weight")
	}
	for l := range apertusXIELU {
		p := layerPrefix(l)
		L := refLayer{
			attnNorm: r.get(p + "attention_layernorm.weight"), ffnNorm: r.get(p + "feedforward_layernorm.weight"),
			wq: r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"),
			wv: r.get(p + "self_attn.v_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight"),
			qNorm: r.get(p + "self_attn.q_norm.weight"), kNorm: r.get(p + "self_attn.k_norm.weight"),
			wu: r.get(p + "mlp.up_proj.weight"), wd: r.get(p + "mlp.down_proj.weight"),
		}
		L.ffn = len(L.wu) / m.hidden
		x := [4]float64{r.get(p + "mlp.act_fn.alpha_p")[0], r.get(p + "mlp.act_fn.alpha_n")[0], r.get(p + "mlp.act_fn.beta")[0], r.get(p + "mlp.act_fn.eps")[0]}
		m.xielu = append(m.xielu, [4]float64{softplus(x[0]), x[2] + softplus(x[1]), x[2], x[3]})
		m.layers = append(m.layers, L)
	}
	for l := range m.layers {
		L := &m.layers[l]
		L.mlp = func(h []float64) []float64 {
			u := matvec(L.wu, h, L.ffn)
			for i := range u {
				u[i] = xielu(u[i], m.xielu[l])
			}
			return matvec(L.wd, u, m.hidden)
		}
	}
	return m
}

// TestApertus converts Apertus checkpoints, with plain and llama3-scaled
// rope, to llama.cpp's apertus and checks the logits against the float64
// reference, which would see the q/k norms, the softplus of alpha_p and
// alpha_n, beta, eps, or the layers' parameters swapped; a SiLU, post
// norms, biases, a gate and missing or malformed xIELU parameters are
// refused.
func TestApertus(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, tc := range []struct {
		name    string
		edit    func(map[string]any, []stTensor) []stTensor
		invFreq []float64
		ctx     uint64 // context_length
		scaled  bool   // rope_freqs written
	}{
		{"plain rope", nil, defaultInvFreq(10000, 16), 2048, false},
		{"llama3 rope", setConfig("rope_scaling", llama3Scaling), hfLlama3InvFreq(10000, 16, 8, 1, 4, 64), 2048, true},
		// ApertusConfig's defaults, a tied head (which llama.cpp's
		// apertus needs written as output.weight) and the xIELU
		// parameters in BF16, of shapes [1] and [], as released.
		{"defaults, tied, bf16", apertusReleased, hfLlama3InvFreq(12e6, 16, 8, 1, 4, 8192), 65536, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := apertusFixture(t, tc.edit)
			out := filepath.Join(t.TempDir(), "apertus.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if f.Architecture() != "apertus" {
				t.Errorf("arch %q", f.Architecture())
			}
			if n, ok := f.Uint("apertus.context_length"); !ok || n != tc.ctx {
				t.Errorf("context_length %d, want %d", n, tc.ctx)
			}
			for _, name := range []string{"output.weight", "blk.1.attn_q_norm.weight", "blk.1.ffn_norm.weight"} {
				if _, ok := f.Tensor(name); !ok {
					t.Errorf("%s not written", name)
				}
			}
			if _, ok := f.Tensor("blk.0.ffn_gate.weight"); ok {
				t.Error("ffn_gate written")
			}
			if _, ok := f.Tensor("rope_freqs.weight"); ok != tc.scaled {
				t.Errorf("rope_freqs written %v", ok)
			}
			r := openST(t, dir)
			for _, param := range []string{"alpha_p", "alpha_n", "beta", "eps"} {
				kv, found := f.Lookup("xielu." + param)
				v, ok := kv.AsFloat32s()
				want := []float32{float32(r.get(layerPrefix(0) + "mlp.act_fn." + param)[0]), float32(r.get(layerPrefix(1) + "mlp.act_fn." + param)[0])}
				if !found || !ok || !slices.Equal(v, want) {
					t.Errorf("xielu.%s = %v (%v), want the raw per-layer values %v", param, v, ok, want)
				}
			}
			theta := 10000.0
			if tc.ctx == 65536 {
				theta = 12e6
			}
			fresh := func() *apertusRef { return newApertusRef(t, dir, theta, tc.invFreq) }
			ctx := refContext(t, out)
			checkRef(t, ctx, prompts, fresh().forward, 1e-5)
			edits := map[string]func(*apertusRef){
				"q/k norms": func(m *apertusRef) {
					for l := range m.layers {
						m.layers[l].qNorm, m.layers[l].kNorm = nil, nil
					}
				},
				"softplus": func(m *apertusRef) {
					for l := range m.xielu {
						m.xielu[l][0], m.xielu[l][1] = float64(apertusXIELU[l][0]), m.xielu[l][1]-softplus(float64(apertusXIELU[l][1]))+float64(apertusXIELU[l][1])
					}
				},
				"beta":                  func(m *apertusRef) { m.xielu[0][2], m.xielu[1][2] = 0, 0 },
				"eps":                   func(m *apertusRef) { m.xielu[1][3] = 0 },
				"layers' xIELU swapped": func(m *apertusRef) { m.xielu[0], m.xielu[1] = m.xielu[1], m.xielu[0] },
			}
			switch {
			case tc.ctx == 65536:
				// Over 8192 positions llama3 scaling barely moves these
				// prompts; the default theta does.
				edits["rope_theta 1e4"] = func(m *apertusRef) { m.invFreq = hfLlama3InvFreq(10000, 16, 8, 1, 4, 8192) }
			case tc.scaled:
				edits["llama3 scaling"] = func(m *apertusRef) { m.invFreq = defaultInvFreq(m.ropeTheta, 16) }
			}
			checkSensitive(t, ctx, prompts, fresh, edits)
			// Q8_0: the scalar xIELU tensors stay keys, the rest quantized.
			q8 := filepath.Join(t.TempDir(), "apertus-q8_0.gguf")
			if err := convert.Convert(context.Background(), dir, q8, convert.Options{Type: "q8_0", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			checkRef(t, refContext(t, q8), prompts, fresh().forward, 0.15)
		})
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"silu": {setConfig("hidden_act", "silu"), convert.ErrUnsupported},
		"an MLP bias": {func(_ map[string]any, ts []stTensor) []stTensor {
			b := make([]float32, 128)
			b[0] = 1
			return append(ts, f32Tensor("model.layers.0.mlp.up_proj.bias", []int64{128}, b))
		}, convert.ErrUnsupported},
		"no alpha_n": {dropTensor("model.layers.0.mlp.act_fn.alpha_n"), convert.ErrMismatch},
		// ApertusMLP has no biases whatever mlp_bias says.
		"mlp_bias without biases": {setConfig("mlp_bias", true), nil},
		"post_norm":               {setConfig("post_norm", true), convert.ErrUnsupported},
		"qk_norm false":           {setConfig("qk_norm", false), convert.ErrUnsupported},
		"attention_bias":          {setConfig("attention_bias", true), convert.ErrUnsupported},
		"post_norm as a string":   {setConfig("post_norm", "true"), convert.ErrMismatch},
		"a gate": {func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.mlp.gate_proj.weight", []int64{128, 64}, make([]float32, 128*64)))
		}, convert.ErrUnsupported},
		"no beta":   {dropTensor("model.layers.1.mlp.act_fn.beta"), convert.ErrMismatch},
		"no k_norm": {dropTensor("model.layers.0.self_attn.k_norm.weight"), convert.ErrMismatch},
		"two alpha_p": {func(_ map[string]any, ts []stTensor) []stTensor {
			ts = dropTensor("model.layers.0.mlp.act_fn.alpha_p")(nil, ts)
			return append(ts, f32Tensor("model.layers.0.mlp.act_fn.alpha_p", []int64{2}, []float32{1, 2}))
		}, convert.ErrMismatch},
		"a NaN eps": {func(_ map[string]any, ts []stTensor) []stTensor {
			ts = dropTensor("model.layers.1.mlp.act_fn.eps")(nil, ts)
			return append(ts, f32Tensor("model.layers.1.mlp.act_fn.eps", []int64{}, []float32{float32(math.NaN())}))
		}, convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), apertusFixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
