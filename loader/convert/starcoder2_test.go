package convert_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// sc2Fixture writes a tiny StarCoder2 checkpoint (tiny-llama-st's
// tokenizer): hidden size 64, 4 heads of 16 (2 KV heads), an MLP of 96,
// LayerNorms, biases everywhere, tied or untied embeddings, a sliding
// window of 128 in 512 positions.
func sc2Fixture(t *testing.T, tied bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"Starcoder2ForCausalLM"}, "model_type": "starcoder2", "hidden_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96, "norm_epsilon": 1e-5, "hidden_act": "gelu_pytorch_tanh",
		"rope_theta": 1000.0, "max_position_embeddings": 512, "sliding_window": 128, "use_bias": true, "vocab_size": 32000,
		"tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(23, 2))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("model.norm.weight", 64, 1, 0.1), w.vec("model.norm.bias", 64, 0, 0.1)}
	if !tied {
		ts = append(ts, w.mat("lm_head.weight", 32000, 64))
	}
	for l := range 2 {
		p := layerPrefix(l)
		for _, n := range []string{"input_layernorm", "post_attention_layernorm"} {
			ts = append(ts, w.vec(p+n+".weight", 64, 1, 0.1), w.vec(p+n+".bias", 64, 0, 0.1))
		}
		for _, m := range []struct {
			name    string
			out, in int64
		}{{"self_attn.q_proj", 64, 64}, {"self_attn.k_proj", 32, 64}, {"self_attn.v_proj", 32, 64}, {"self_attn.o_proj", 64, 64},
			{"mlp.c_fc", 96, 64}, {"mlp.c_proj", 64, 96}} {
			ts = append(ts, w.mat(p+m.name+".weight", m.out, m.in), w.vec(p+m.name+".bias", m.out, 0, 0.1))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// sc2Ref is transformers' Starcoder2 of the fixture (within its window),
// with knobs that change one feature each.
type sc2Ref struct {
	r        *stReader
	pairs    bool // the rope on adjacent pairs (q and k permuted as for Llama)
	noBias   bool // the projections' biases left out
	noOutput bool // the head tied although lm_head.weight is there
}

func (m *sc2Ref) layerNorm(x []float64, p string) []float64 {
	w, b := m.r.get(p+".weight"), m.r.get(p+".bias")
	var mean, v float64
	for _, e := range x {
		mean += e
	}
	mean /= float64(len(x))
	for _, e := range x {
		v += (e - mean) * (e - mean)
	}
	s := 1 / math.Sqrt(v/float64(len(x))+1e-5)
	out := make([]float64, len(x))
	for i, e := range x {
		out[i] = (e-mean)*s*w[i] + b[i]
	}
	return out
}

func (m *sc2Ref) affine(p string, x []float64) []float64 {
	w := m.r.get(p + ".weight")
	b := make([]float64, len(w)/len(x))
	if !m.noBias {
		b = m.r.get(p + ".bias")
	}
	return ref64.Affine(w, b, x)
}

// forward returns the logits after the last of ids.
func (m *sc2Ref) forward(ids []int) []float64 {
	const H, heads, kv, d = 64, 4, 2, 16
	emb := m.r.get("model.embed_tokens.weight")
	x := make([][]float64, len(ids))
	for i, id := range ids {
		x[i] = slicesClone(emb[id*H : (id+1)*H])
	}
	freq := defaultInvFreq(1000, d)
	for l := range 2 {
		p := layerPrefix(l)
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for i := range ids {
			h := m.layerNorm(x[i], p+"input_layernorm")
			qs[i], ks[i], vs[i] = m.affine(p+"self_attn.q_proj", h), m.affine(p+"self_attn.k_proj", h), m.affine(p+"self_attn.v_proj", h)
			for _, v := range [][]float64{qs[i], ks[i]} {
				for hd := range len(v) / d {
					if m.pairs {
						ropePairs(v[hd*d:(hd+1)*d], i, freq, 1)
					} else {
						rope(v[hd*d:(hd+1)*d], i, freq, 1)
					}
				}
			}
		}
		for i, att := range causalAttention(qs, ks, vs, heads, kv, d) {
			o := m.affine(p+"self_attn.o_proj", att)
			for e := range H {
				x[i][e] += o[e]
			}
			u := m.affine(p+"mlp.c_fc", m.layerNorm(x[i], p+"post_attention_layernorm"))
			for e := range u {
				u[e] = ref64.GELUTanh(u[e])
			}
			dn := m.affine(p+"mlp.c_proj", u)
			for e := range H {
				x[i][e] += dn[e]
			}
		}
	}
	last := m.layerNorm(x[len(ids)-1], "model.norm")
	out := emb
	if m.r.has("lm_head.weight") && !m.noOutput {
		out = m.r.get("lm_head.weight")
	}
	return matvec(out, last, len(out)/H)
}

func slicesClone(v []float64) []float64 { return append([]float64(nil), v...) }

// TestStarcoder2 converts StarCoder2 checkpoints (tied, as the 3B, and
// untied) to llama.cpp's starcoder2 and checks the keys (the context cut
// to the window, LayerNorm's epsilon) and the logits against the float64
// reference, which would see the rope on pairs, the biases left out or
// the head tied; other settings are refused.
func TestStarcoder2(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, tied := range []bool{true, false} {
		t.Run(fmt.Sprint("tied=", tied), func(t *testing.T) {
			dir := sc2Fixture(t, tied, nil)
			out := filepath.Join(t.TempDir(), "sc2.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := f.Uint("starcoder2.context_length"); f.Architecture() != "starcoder2" || n != 128 {
				t.Errorf("arch %q, context_length %d (want the window, 128)", f.Architecture(), n)
			}
			if eps, ok := f.Float("starcoder2.attention.layer_norm_epsilon"); !ok || math.Abs(eps-1e-5) > 1e-12 {
				t.Errorf("layer_norm_epsilon %v (%v)", eps, ok)
			}
			if _, ok := f.Tensor("output.weight"); ok == tied {
				t.Errorf("output.weight %v with tied %v", ok, tied)
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			// ggml's GELU reads a table of F16 values: about 2e-4 here.
			checkRef(t, ctx, prompts, (&sc2Ref{r: r}).forward, 1e-3)
			edits := map[string]func(*sc2Ref){
				"rope on pairs": func(m *sc2Ref) { m.pairs = true },
				"no biases":     func(m *sc2Ref) { m.noBias = true },
			}
			if !tied {
				edits["head tied"] = func(m *sc2Ref) { m.noOutput = true }
			}
			checkSensitive(t, ctx, prompts, func() *sc2Ref { return &sc2Ref{r: r} }, edits)
		})
	}
	noBias := func(c map[string]any, ts []stTensor) []stTensor {
		c["use_bias"] = false
		return ts
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"relu":                       {setConfig("hidden_act", "relu"), convert.ErrUnsupported},
		"biases with use_bias false": {noBias, convert.ErrUnsupported},
		"no norm bias":               {dropTensor("model.layers.0.input_layernorm.bias"), convert.ErrMismatch},
		"a window of 0":              {setConfig("sliding_window", 0), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), sc2Fixture(t, true, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Without a window the context is max_position_embeddings.
	dir := sc2Fixture(t, true, setConfig("sliding_window", nil))
	out := filepath.Join(t.TempDir(), "sc2.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil {
		t.Fatal(err)
	} else if n, _ := f.Uint("starcoder2.context_length"); n != 512 {
		t.Errorf("context_length %d without a window, want 512", n)
	}
}
