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

	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/loader/convert"
)

// stableLMLayout is one of StableLM's block layouts.
type stableLMLayout struct {
	name     string
	kv       int  // key/value heads
	qkvBias  bool // use_qkv_bias (StableLM 2 1.6B)
	qkNorm   bool // qk_layernorm (StableLM 2 12B)
	parallel bool // use_parallel_residual (StableLM 2 12B)
}

var stableLMLayouts = []stableLMLayout{
	{name: "stablelm-3b-4e1t", kv: 4},
	{name: "stablelm-2-1.6b", kv: 4, qkvBias: true},
	{name: "stablelm-2-12b", kv: 2, qkNorm: true, parallel: true},
}

// stableLMFixture writes a tiny StableLmForCausalLM checkpoint of layout l
// (tiny-llama-st's tokenizer): hidden size 64, 4 heads of 16 with a
// quarter rotated, an MLP of 96, an untied head.
func stableLMFixture(t *testing.T, l stableLMLayout, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"StableLmForCausalLM"}, "model_type": "stablelm", "hidden_size": 64, "num_attention_heads": 4,
		"num_key_value_heads": l.kv, "num_hidden_layers": 2, "intermediate_size": 96, "vocab_size": 32000, "layer_norm_eps": 1e-5,
		"rope_theta": 10000.0, "partial_rotary_factor": 0.25, "hidden_act": "silu", "use_qkv_bias": l.qkvBias, "qk_layernorm": l.qkNorm,
		"use_parallel_residual": l.parallel, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(43, 9))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("model.norm.weight", 64, 1, 0.1), w.vec("model.norm.bias", 64, 0, 0.1), w.mat("lm_head.weight", 32000, 64)}
	for i := range 2 {
		p := layerPrefix(i)
		ts = append(ts, w.vec(p+"input_layernorm.weight", 64, 1, 0.1), w.vec(p+"input_layernorm.bias", 64, 0, 0.1),
			w.mat(p+"self_attn.q_proj.weight", 64, 64), w.mat(p+"self_attn.k_proj.weight", int64(l.kv*16), 64),
			w.mat(p+"self_attn.v_proj.weight", int64(l.kv*16), 64), w.mat(p+"self_attn.o_proj.weight", 64, 64),
			w.mat(p+"mlp.gate_proj.weight", 96, 64), w.mat(p+"mlp.up_proj.weight", 96, 64), w.mat(p+"mlp.down_proj.weight", 64, 96))
		if !l.parallel {
			ts = append(ts, w.vec(p+"post_attention_layernorm.weight", 64, 1, 0.1), w.vec(p+"post_attention_layernorm.bias", 64, 0, 0.1))
		}
		if l.qkvBias {
			ts = append(ts, w.vec(p+"self_attn.q_proj.bias", 64, 0, 0.5), w.vec(p+"self_attn.k_proj.bias", int64(l.kv*16), 0, 0.5),
				w.vec(p+"self_attn.v_proj.bias", int64(l.kv*16), 0, 0.5))
		}
		if l.qkNorm {
			for h := range 4 {
				ts = append(ts, w.vec(fmt.Sprintf("%sself_attn.q_layernorm.norms.%d.weight", p, h), 16, 1, 0.3))
			}
			for h := range l.kv {
				ts = append(ts, w.vec(fmt.Sprintf("%sself_attn.k_layernorm.norms.%d.weight", p, h), 16, 1, 0.3))
			}
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// stableLMRef is transformers' StableLM of the fixture; its fields leave
// out a feature (the sensitivity checks).
type stableLMRef struct {
	r *stReader
	l stableLMLayout
	// wholeRope rotates the whole head, noQKNorm leaves out the per-head
	// norms, sequential runs the MLP after the attention.
	wholeRope, noQKNorm, sequential bool
}

// forward returns the logits after the last of ids.
func (m *stableLMRef) forward(ids []int) []float64 {
	const H, heads, d, F = 64, 4, 16, 96
	kv := m.l.kv
	rot := d / 4
	if m.wholeRope {
		rot = d
	}
	emb := m.r.get("model.embed_tokens.weight")
	x := make([][]float64, len(ids))
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[id*H:(id+1)*H]...)
	}
	freq := defaultInvFreq(10000, rot)
	headNorm := func(v []float64, name string, n int) {
		for h := range n {
			w := m.r.get(fmt.Sprintf("%s%d.weight", name, h))
			copy(v[h*d:(h+1)*d], ref64.LayerNorm(v[h*d:(h+1)*d], w, make([]float64, d), 1e-5))
		}
	}
	for l := range 2 {
		p := layerPrefix(l)
		proj := func(name string, a []float64, rows int) []float64 {
			out := matvec(m.r.get(p+name+".weight"), a, rows)
			if m.l.qkvBias {
				addBias(out, m.r.get(p+name+".bias"))
			}
			return out
		}
		normed := make([][]float64, len(ids))
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for i := range ids {
			a := m.r.layerNorm(p+"input_layernorm", x[i], 1e-5)
			normed[i] = a
			q, k := proj("self_attn.q_proj", a, heads*d), proj("self_attn.k_proj", a, kv*d)
			if m.l.qkNorm && !m.noQKNorm {
				headNorm(q, p+"self_attn.q_layernorm.norms.", heads)
				headNorm(k, p+"self_attn.k_layernorm.norms.", kv)
			}
			for h := range heads {
				rope(q[h*d:h*d+rot], i, freq, 1)
			}
			for h := range kv {
				rope(k[h*d:h*d+rot], i, freq, 1)
			}
			qs[i], ks[i], vs[i] = q, k, proj("self_attn.v_proj", a, kv*d)
		}
		wo := m.r.get(p + "self_attn.o_proj.weight")
		gate, up, down := m.r.get(p+"mlp.gate_proj.weight"), m.r.get(p+"mlp.up_proj.weight"), m.r.get(p+"mlp.down_proj.weight")
		mlp := func(a []float64) []float64 {
			g, u := matvec(gate, a, F), matvec(up, a, F)
			for e := range g {
				g[e] = g[e] / (1 + math.Exp(-g[e])) * u[e]
			}
			return matvec(down, g, H)
		}
		for i, att := range causalAttention(qs, ks, vs, heads, kv, d) {
			o := matvec(wo, att, H)
			switch {
			case m.l.parallel && !m.sequential:
				dn := mlp(normed[i])
				for e := range H {
					x[i][e] += o[e] + dn[e]
				}
			default:
				for e := range H {
					x[i][e] += o[e]
				}
				norm := p + "post_attention_layernorm"
				if m.l.parallel {
					norm = p + "input_layernorm" // the sensitivity check: no norm of its own
				}
				dn := mlp(m.r.layerNorm(norm, x[i], 1e-5))
				for e := range H {
					x[i][e] += dn[e]
				}
			}
		}
	}
	return matvec(m.r.get("lm_head.weight"), m.r.layerNorm("model.norm", x[len(ids)-1], 1e-5), 32000)
}

// TestStableLM converts tiny StableLMs of each block layout (StableLM-3B's,
// StableLM 2 1.6B's q/k/v biases, StableLM 2 12B's per-head q/k norms,
// grouped keys and parallel blocks) to llama.cpp's stablelm and checks
// the logits against the float64 reference, which would see the partial
// rope, the per-head norms and the parallel blocks left out; bad
// checkpoints are refused.
func TestStableLM(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, l := range stableLMLayouts {
		t.Run(l.name, func(t *testing.T) {
			dir := stableLMFixture(t, l, nil)
			out, f := convertDir(t, dir, "f32")
			_, ffnNorm := f.Tensor("blk.0.ffn_norm.weight")
			qn, qNorm := f.Tensor("blk.1.attn_q_norm.weight")
			kn, kNorm := f.Tensor("blk.1.attn_k_norm.weight")
			rot, _ := f.Uint("stablelm.rope.dimension_count")
			_, bias := f.Tensor("blk.0.attn_q.bias")
			if f.Architecture() != "stablelm" || rot != 4 || ffnNorm == l.parallel || qNorm != l.qkNorm || kNorm != l.qkNorm || bias != l.qkvBias {
				t.Errorf("arch %q, rope.dimension_count %d, ffn_norm %v, attn_q_norm %v, attn_k_norm %v, attn_q.bias %v", f.Architecture(), rot, ffnNorm, qNorm, kNorm, bias)
			}
			if l.qkNorm && (!slices.Equal(qn.Shape, []uint64{16, 4}) || !slices.Equal(kn.Shape, []uint64{16, uint64(l.kv)})) {
				t.Errorf("attn_q_norm %v, attn_k_norm %v; want [16 4] and [16 %d]", qn.Shape, kn.Shape, l.kv)
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			checkRef(t, ctx, prompts, (&stableLMRef{r: r, l: l}).forward, 1e-4)
			edits := map[string]func(*stableLMRef){"the whole head rotated": func(m *stableLMRef) { m.wholeRope = true }}
			if l.qkNorm {
				edits["no q/k norms"] = func(m *stableLMRef) { m.noQKNorm = true }
			}
			if l.parallel {
				edits["sequential blocks"] = func(m *stableLMRef) { m.sequential = true }
			}
			checkSensitive(t, ctx, prompts, func() *stableLMRef { return &stableLMRef{r: r, l: l} }, edits)
		})
	}
	// StableLmConfig's defaults where config.json is silent: a quarter of
	// each head rotated, epsilon 1e-5, SiLU, no biases or q/k norms,
	// sequential blocks, an untied head.
	_, f := convertDir(t, stableLMFixture(t, stableLMLayouts[0], func(c map[string]any, ts []stTensor) []stTensor {
		for _, k := range []string{"partial_rotary_factor", "layer_norm_eps", "hidden_act", "use_qkv_bias", "qk_layernorm", "use_parallel_residual", "tie_word_embeddings"} {
			delete(c, k)
		}
		return ts
	}), "f32")
	rot, _ := f.Uint("stablelm.rope.dimension_count")
	eps, _ := f.Float("stablelm.attention.layer_norm_epsilon")
	_, head := f.Tensor("output.weight")
	if _, ffnNorm := f.Tensor("blk.0.ffn_norm.weight"); rot != 4 || math.Abs(eps-1e-5) > 1e-12 || !head || !ffnNorm {
		t.Errorf("defaults: rope.dimension_count %d, layer_norm_epsilon %v, output.weight %v, ffn_norm %v", rot, eps, head, ffnNorm)
	}
	for _, c := range []struct {
		name   string
		layout stableLMLayout
		edit   func(map[string]any, []stTensor) []stTensor
		want   error
	}{
		{"gelu", stableLMLayouts[0], setConfig("hidden_act", "gelu"), convert.ErrUnsupported},
		{"biases config.json does not announce", stableLMLayouts[1], setConfig("use_qkv_bias", false), convert.ErrUnsupported},
		{"q/k norms config.json does not announce", stableLMLayouts[2], setConfig("qk_layernorm", false), convert.ErrUnsupported},
		{"a missing head's norm", stableLMLayouts[2], dropTensor("model.layers.1.self_attn.k_layernorm.norms.1.weight"), convert.ErrMismatch},
		{"a head beyond the heads", stableLMLayouts[2], func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.self_attn.k_layernorm.norms.2.weight", []int64{16}, make([]float32, 16)))
		}, convert.ErrMismatch},
		{"a norm of the wrong size", stableLMLayouts[2], func(_ map[string]any, ts []stTensor) []stTensor {
			ts = dropTensor("model.layers.0.self_attn.q_layernorm.norms.3.weight")(nil, ts)
			return append(ts, f32Tensor("model.layers.0.self_attn.q_layernorm.norms.3.weight", []int64{8}, make([]float32, 8)))
		}, convert.ErrMismatch},
		{"a parallel block's norm", stableLMLayouts[2], func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.post_attention_layernorm.weight", []int64{64}, make([]float32, 64)))
		}, convert.ErrUnsupported},
	} {
		err := convert.Convert(context.Background(), stableLMFixture(t, c.layout, c.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		} else if !strings.Contains(err.Error(), "StableLm") && !strings.Contains(err.Error(), "tensor") {
			t.Errorf("%s: %v names neither the architecture nor the tensor", c.name, err)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}
