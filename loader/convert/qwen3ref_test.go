package convert_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/safetensors"
)

// qwen3Forward evaluates transformers' modeling_qwen3 in float64 on the
// checkpoint in dir (tiny-qwen2-st's shape: hidden 64, 4 heads of 16, 2 KV
// heads, 2 layers, tied embeddings) and returns the logits after ids.
func qwen3Forward(t *testing.T, dir string, ids []int) []float64 {
	t.Helper()
	const (
		H, nh, nkv, hd, I, L, V = 64, 4, 2, 16, 128, 2, 32000
		eps, theta              = 1e-6, 1e6
	)
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := func(name string) []float64 {
		f, err := st.Float32s(name)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	}
	rms := func(x, g []float64) []float64 {
		var s float64
		for _, v := range x {
			s += v * v
		}
		r := 1 / math.Sqrt(s/float64(len(x))+eps)
		out := make([]float64, len(x))
		for i := range x {
			out[i] = x[i] * r * g[i]
		}
		return out
	}
	// matvec: W [rows, cols] row-major times x.
	matvec := func(W, x []float64, rows int) []float64 {
		cols := len(x)
		out := make([]float64, rows)
		for r := range rows {
			var s float64
			for c := range cols {
				s += W[r*cols+c] * x[c]
			}
			out[r] = s
		}
		return out
	}
	rope := func(v []float64, pos int) { // rotate_half on one head
		half := hd / 2
		for i := range half {
			a := float64(pos) * math.Pow(theta, -2*float64(i)/hd)
			c, s := math.Cos(a), math.Sin(a)
			x0, x1 := v[i], v[i+half]
			v[i], v[i+half] = x0*c-x1*s, x1*c+x0*s
		}
	}
	emb := w("model.embed_tokens.weight")
	T := len(ids)
	x := make([][]float64, T)
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[id*H:(id+1)*H]...)
	}
	for l := range L {
		p := "model.layers." + string(rune('0'+l)) + "."
		wq, wk, wv, wo := w(p+"self_attn.q_proj.weight"), w(p+"self_attn.k_proj.weight"), w(p+"self_attn.v_proj.weight"), w(p+"self_attn.o_proj.weight")
		qn, kn := w(p+"self_attn.q_norm.weight"), w(p+"self_attn.k_norm.weight")
		g1, g2 := w(p+"input_layernorm.weight"), w(p+"post_attention_layernorm.weight")
		wg, wu, wd := w(p+"mlp.gate_proj.weight"), w(p+"mlp.up_proj.weight"), w(p+"mlp.down_proj.weight")
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for i := range T {
			h := rms(x[i], g1)
			q, k := matvec(wq, h, nh*hd), matvec(wk, h, nkv*hd)
			for j := range nh {
				copy(q[j*hd:(j+1)*hd], rms(q[j*hd:(j+1)*hd], qn))
				rope(q[j*hd:(j+1)*hd], i)
			}
			for j := range nkv {
				copy(k[j*hd:(j+1)*hd], rms(k[j*hd:(j+1)*hd], kn))
				rope(k[j*hd:(j+1)*hd], i)
			}
			qs[i], ks[i], vs[i] = q, k, matvec(wv, h, nkv*hd)
		}
		for i := range T {
			att := make([]float64, nh*hd)
			for j := range nh {
				kv := j / (nh / nkv)
				sc := make([]float64, i+1)
				m := math.Inf(-1)
				for s := range i + 1 {
					var d float64
					for e := range hd {
						d += qs[i][j*hd+e] * ks[s][kv*hd+e]
					}
					sc[s] = d / math.Sqrt(hd)
					m = max(m, sc[s])
				}
				var z float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - m)
					z += sc[s]
				}
				for s := range sc {
					for e := range hd {
						att[j*hd+e] += sc[s] / z * vs[s][kv*hd+e]
					}
				}
			}
			o := matvec(wo, att, H)
			for e := range H {
				x[i][e] += o[e]
			}
			h := rms(x[i], g2)
			g, u := matvec(wg, h, I), matvec(wu, h, I)
			for e := range I {
				g[e] = g[e] / (1 + math.Exp(-g[e])) * u[e]
			}
			d := matvec(wd, g, H)
			for e := range H {
				x[i][e] += d[e]
			}
		}
	}
	return matvec(emb, rms(x[T-1], w("model.norm.weight")), V)
}

// TestQwen3Reference checks the F32 conversion of the tiny Qwen3
// checkpoint against a float64 evaluation of modeling_qwen3 (per-head
// q_norm/k_norm before NEOX rope, no biases) with an F32 KV cache and
// without flash attention.
func TestQwen3Reference(t *testing.T) {
	dir := qwen3Fixture(t, 1)
	out := filepath.Join(t.TempDir(), "qwen3.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	// An F32 KV cache and no flash attention (whose CPU path rounds to
	// F16), so that only the engine's F32 rounding remains: the error is
	// about 5e-7, against 1e-3 to 2e-3 with the defaults.
	m := loadModel(t, out, engine.ModelOptions{})
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 256, TypeK: "f32", TypeV: "f32", FlashAttention: engine.FlashAttentionOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range readReference(t, "tiny-qwen2-st").Prompts {
		_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
		want := qwen3Forward(t, dir, p.PromptIDs)
		re := relErr(got, want)
		if re > 1e-5 {
			t.Errorf("%q: relative logit error %.3g > 1e-5", p.Text, re)
		}
		t.Logf("%q: relative logit error %.3g", p.Text, re)
	}
}
