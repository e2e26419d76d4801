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

// lnFixture writes a tiny StarCoder2, Nemotron or Phi-2 checkpoint
// (tiny-llama-st's tokenizer): hidden size 64, 4 heads of 16 (2 KV heads),
// an MLP of 96, LayerNorms with biases (Nemotron's around 0: LayerNorm1P
// adds 1), a LayerNorm epsilon of 1e-6; StarCoder2's with biases
// everywhere and a sliding window of 128 in 512 positions, Nemotron's with
// attention biases only and half of each head rotated, Phi-2's with one
// norm per block, biases everywhere (the head's too) and a quarter of each
// head rotated.
func lnFixture(t *testing.T, arch string, tied bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"Starcoder2ForCausalLM"}, "model_type": "starcoder2", "hidden_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96, "norm_epsilon": 1e-6, "hidden_act": "gelu_pytorch_tanh",
		"rope_theta": 1000.0, "max_position_embeddings": 512, "sliding_window": 128, "use_bias": true, "vocab_size": 32000,
		"tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2}
	up, down, o, final, normMean := "mlp.c_fc", "mlp.c_proj", "self_attn.o_proj", "model.norm", 1.0
	nemotron, phi2 := arch == "nemotron", arch == "phi2"
	if phi2 {
		cfg = map[string]any{"architectures": []string{"PhiForCausalLM"}, "model_type": "phi", "hidden_size": 64, "num_hidden_layers": 2,
			"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96, "layer_norm_eps": 1e-6, "hidden_act": "gelu_new",
			"rope_theta": 1000.0, "partial_rotary_factor": 0.25, "max_position_embeddings": 512, "qk_layernorm": false,
			"vocab_size": 32000, "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2}
		up, down, o, final = "mlp.fc1", "mlp.fc2", "self_attn.dense", "model.final_layernorm"
	}
	if nemotron {
		cfg = map[string]any{"architectures": []string{"NemotronForCausalLM"}, "model_type": "nemotron", "hidden_size": 64, "num_hidden_layers": 2,
			"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 96, "norm_eps": 1e-6, "hidden_act": "relu2",
			"rope_theta": 1000.0, "partial_rotary_factor": 0.5, "max_position_embeddings": 512, "attention_bias": true, "mlp_bias": false,
			"vocab_size": 32000, "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2}
		up, down, normMean = "mlp.up_proj", "mlp.down_proj", 0
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(23, 2))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec(final+".weight", 64, normMean, 0.1), w.vec(final+".bias", 64, 0, 0.1)}
	if !tied {
		ts = append(ts, w.mat("lm_head.weight", 32000, 64))
	}
	if phi2 {
		ts = append(ts, w.vec("lm_head.bias", 32000, 0, 0.5))
	}
	for l := range 2 {
		p := layerPrefix(l)
		for _, n := range []string{"input_layernorm", "post_attention_layernorm"} {
			if phi2 && n == "post_attention_layernorm" {
				continue
			}
			ts = append(ts, w.vec(p+n+".weight", 64, normMean, 0.1), w.vec(p+n+".bias", 64, 0, 0.1))
		}
		for _, m := range []struct {
			name    string
			out, in int64
			bias    bool
		}{{"self_attn.q_proj", 64, 64, true}, {"self_attn.k_proj", 32, 64, true}, {"self_attn.v_proj", 32, 64, true}, {o, 64, 64, true},
			{up, 96, 64, !nemotron}, {down, 64, 96, !nemotron}} {
			ts = append(ts, w.mat(p+m.name+".weight", m.out, m.in))
			if m.bias {
				ts = append(ts, w.vec(p+m.name+".bias", m.out, 0, 0.1))
			}
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// lnRef is transformers' Starcoder2 (within its window) or Nemotron of the
// fixture, with knobs that change one feature each.
type lnRef struct {
	r        *stReader
	arch     string
	pairs    bool    // the rope on adjacent pairs (q and k permuted as for Llama)
	noBias   bool    // the projections' biases left out
	noOutput bool    // the head tied although lm_head.weight is there
	shift    float64 // added to the norm weights (Nemotron's LayerNorm1P: 1)
}

func (m *lnRef) layerNorm(x []float64, p string) []float64 {
	w := m.r.get(p + ".weight")
	for i := range w {
		w[i] += m.shift
	}
	return ref64.LayerNorm(x, w, m.r.get(p+".bias"), 1e-6)
}

func (m *lnRef) affine(p string, x []float64) []float64 {
	w := m.r.get(p + ".weight")
	b := make([]float64, len(w)/len(x))
	if !m.noBias && m.r.has(p+".bias") {
		b = m.r.get(p + ".bias")
	}
	return ref64.Affine(w, b, x)
}

// forward returns the logits after the last of ids.
func (m *lnRef) forward(ids []int) []float64 {
	const H, heads, kv, d = 64, 4, 2, 16
	up, down, o, final, rot := "mlp.c_fc", "mlp.c_proj", "self_attn.o_proj", "model.norm", d
	switch m.arch {
	case "nemotron":
		up, down, rot = "mlp.up_proj", "mlp.down_proj", d/2
	case "phi2":
		up, down, o, final, rot = "mlp.fc1", "mlp.fc2", "self_attn.dense", "model.final_layernorm", d/4
	}
	emb := m.r.get("model.embed_tokens.weight")
	x := make([][]float64, len(ids))
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[id*H:(id+1)*H]...)
	}
	freq := defaultInvFreq(1000, rot)
	for l := range 2 {
		p := layerPrefix(l)
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for i := range ids {
			h := m.layerNorm(x[i], p+"input_layernorm")
			qs[i], ks[i], vs[i] = m.affine(p+"self_attn.q_proj", h), m.affine(p+"self_attn.k_proj", h), m.affine(p+"self_attn.v_proj", h)
			for _, v := range [][]float64{qs[i], ks[i]} {
				for hd := range len(v) / d {
					if m.pairs {
						ropePairs(v[hd*d:hd*d+rot], i, freq, 1)
					} else {
						rope(v[hd*d:hd*d+rot], i, freq, 1)
					}
				}
			}
		}
		for i, att := range causalAttention(qs, ks, vs, heads, kv, d) {
			a := m.affine(p+o, att)
			normed := m.layerNorm(x[i], p+"input_layernorm") // Phi-2's MLP input, beside the attention
			for e := range H {
				x[i][e] += a[e]
			}
			if m.arch != "phi2" {
				normed = m.layerNorm(x[i], p+"post_attention_layernorm")
			}
			u := m.affine(p+up, normed)
			for e := range u {
				if m.arch == "nemotron" {
					u[e] = max(u[e], 0) * max(u[e], 0)
				} else {
					u[e] = ref64.GELUTanh(u[e])
				}
			}
			dn := m.affine(p+down, u)
			for e := range H {
				x[i][e] += dn[e]
			}
		}
	}
	last := m.layerNorm(x[len(ids)-1], final)
	out := emb
	if m.r.has("lm_head.weight") && !m.noOutput {
		out = m.r.get("lm_head.weight")
	}
	logits := matvec(out, last, len(out)/H)
	if m.r.has("lm_head.bias") && !m.noBias {
		for i, b := range m.r.get("lm_head.bias") {
			logits[i] += b
		}
	}
	return logits
}

// TestLayerNormLlamas converts StarCoder2, Nemotron and Phi-2 checkpoints
// (tied and untied) to llama.cpp's starcoder2, nemotron and phi2 and
// checks the keys (StarCoder2's context cut to the window, LayerNorm's
// epsilon, Nemotron's and Phi-2's output written from tied embeddings) and
// the logits against the float64 reference, which would see the rope on
// pairs, the biases left out, the head tied, or Nemotron's norms without
// their 1; other settings are refused.
func TestLayerNormLlamas(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, arch := range []string{"starcoder2", "nemotron", "phi2"} {
		nemotron := arch == "nemotron"
		for _, tied := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/tied=%v", arch, tied), func(t *testing.T) {
				dir := lnFixture(t, arch, tied, nil)
				out, f := convertDir(t, dir, "f32")
				wantCtx := uint64(512)
				if arch == "starcoder2" {
					wantCtx = 128
				}
				if n, _ := f.Uint(arch + ".context_length"); f.Architecture() != arch || n != wantCtx {
					t.Errorf("arch %q, context_length %d, want %d", f.Architecture(), n, wantCtx)
				}
				if eps, ok := f.Float(arch + ".attention.layer_norm_epsilon"); !ok || math.Abs(eps-1e-6) > 1e-12 {
					t.Errorf("layer_norm_epsilon %v (%v), want 1e-6", eps, ok)
				}
				if _, ok := f.Tensor("output.weight"); ok != (!tied || arch != "starcoder2") {
					t.Errorf("output.weight %v with tied %v", ok, tied)
				}
				ctx := refContext(t, out)
				r := openST(t, dir)
				fresh := func() *lnRef {
					m := &lnRef{r: r, arch: arch}
					if nemotron {
						m.shift = 1
					}
					return m
				}
				// ggml's GELU reads a table of F16 values: about 2e-4 here.
				checkRef(t, ctx, prompts, fresh().forward, 1e-3)
				edits := map[string]func(*lnRef){
					"rope on pairs": func(m *lnRef) { m.pairs = true },
					"no biases":     func(m *lnRef) { m.noBias = true },
				}
				if !tied {
					edits["head tied"] = func(m *lnRef) { m.noOutput = true }
				}
				if nemotron {
					edits["norms without 1"] = func(m *lnRef) { m.shift = 0 }
				}
				checkSensitive(t, ctx, prompts, fresh, edits)
			})
		}
	}
	for name, tc := range map[string]struct {
		arch string
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"starcoder2 relu":                  {"starcoder2", setConfig("hidden_act", "relu"), convert.ErrUnsupported},
		"starcoder2 use_bias false":        {"starcoder2", setConfig("use_bias", false), convert.ErrUnsupported},
		"starcoder2 no norm bias":          {"starcoder2", dropTensor("model.layers.0.input_layernorm.bias"), convert.ErrMismatch},
		"starcoder2 a window of 0":         {"starcoder2", setConfig("sliding_window", 0), convert.ErrMismatch},
		"starcoder2 heads of 32":           {"starcoder2", setConfig("head_dim", 32), convert.ErrUnsupported},
		"nemotron gelu":                    {"nemotron", setConfig("hidden_act", "gelu"), convert.ErrUnsupported},
		"nemotron biases not listed":       {"nemotron", setConfig("attention_bias", false), convert.ErrUnsupported},
		"phi2 qk_layernorm":                {"phi2", setConfig("qk_layernorm", true), convert.ErrUnsupported},
		"phi2 phi-msft":                    {"phi2", setConfig("model_type", "phi-msft"), convert.ErrUnsupported},
		"nemotron mlp_bias without biases": {"nemotron", setConfig("mlp_bias", true), convert.ErrMismatch},
		"nemotron untied without lm_head": {"nemotron", func(c map[string]any, ts []stTensor) []stTensor {
			c["tie_word_embeddings"] = false
			return ts
		}, convert.ErrMismatch},
		"phi2 no head bias": {"phi2", dropTensor("lm_head.bias"), convert.ErrMismatch},
		"phi2 a second norm": {"phi2", func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.post_attention_layernorm.weight", []int64{64}, make([]float32, 64)))
		}, convert.ErrUnsupported},
	} {
		err := convert.Convert(context.Background(), lnFixture(t, tc.arch, true, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// NemotronConfig's defaults where keys are absent: half of each head
	// rotated, ReLU², 4096 positions.
	_, nf := convertDir(t, lnFixture(t, "nemotron", true, func(c map[string]any, ts []stTensor) []stTensor {
		for _, k := range []string{"partial_rotary_factor", "hidden_act", "max_position_embeddings"} {
			delete(c, k)
		}
		return ts
	}), "f32")
	if n, _ := nf.Uint("nemotron.rope.dimension_count"); n != 8 {
		t.Errorf("nemotron without partial_rotary_factor: rope.dimension_count %d, want 8", n)
	}
	if n, _ := nf.Uint("nemotron.context_length"); n != 4096 {
		t.Errorf("nemotron without max_position_embeddings: context_length %d, want 4096", n)
	}
	// Without a window StarCoder2's context is max_position_embeddings.
	dir := lnFixture(t, "starcoder2", true, setConfig("sliding_window", nil))
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
