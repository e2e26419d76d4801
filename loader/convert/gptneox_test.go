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

	"github.com/llm-go/llm/loader/convert"
)

// neoxFixture writes a tiny GPTNeoXForCausalLM checkpoint (tiny-random-gpt2's
// tokenizer): hidden size 64, 4 heads of 16, an MLP of 128, a quarter of
// each head rotated (base 1000, as rotary_emb_base), LayerNorms and biases,
// query_key_value interleaved per head, an untied embed_out; parallel
// residual unless edited.
func neoxFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"GPTNeoXForCausalLM"}, "model_type": "gpt_neox", "hidden_size": 64,
		"num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 128, "max_position_embeddings": 256, "vocab_size": 1000,
		"layer_norm_eps": 1e-5, "rotary_pct": 0.25, "rotary_emb_base": 1000, "use_parallel_residual": true, "hidden_act": "gelu",
		"tie_word_embeddings": false, "bos_token_id": 98, "eos_token_id": 98}
	copyHFFiles(t, "tiny-random-gpt2", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(31, 5))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("gpt_neox.embed_in.weight", []int64{1000, 64}, randn(r, 1000*64, 1)), w.mat("embed_out.weight", 1000, 64),
		w.vec("gpt_neox.final_layer_norm.weight", 64, 1, 0.1), w.vec("gpt_neox.final_layer_norm.bias", 64, 0, 0.1)}
	for l := range 2 {
		p := fmt.Sprintf("gpt_neox.layers.%d.", l)
		for _, n := range []string{"input_layernorm", "post_attention_layernorm"} {
			ts = append(ts, w.vec(p+n+".weight", 64, 1, 0.1), w.vec(p+n+".bias", 64, 0, 0.1))
		}
		for _, m := range []struct {
			name    string
			out, in int64
		}{{"attention.query_key_value", 3 * 64, 64}, {"attention.dense", 64, 64}, {"mlp.dense_h_to_4h", 128, 64}, {"mlp.dense_4h_to_h", 64, 128}} {
			ts = append(ts, w.mat(p+m.name+".weight", m.out, m.in), w.vec(p+m.name+".bias", m.out, 0, 0.1))
		}
	}
	return finishFixture(t, "tiny-random-gpt2", dir, cfg, ts, edit)
}

// neoxRef is transformers' GPTNeoX of the fixture, with knobs that change
// one feature each.
type neoxRef struct {
	r          *stReader
	sequential bool // the MLP after the attention (use_parallel_residual false)
	blocks     bool // query_key_value read as q, k, v blocks
	wholeRope  bool // every dimension of a head rotated
}

func (m *neoxRef) affine(p string, x []float64) []float64 { return m.r.affine(p, x) }

func (m *neoxRef) norm(p string, x []float64) []float64 { return m.r.layerNorm(p, x, 1e-5) }

func (m *neoxRef) forward(ids []int) []float64 {
	const H, heads, d = 64, 4, 16
	rot := 4
	if m.wholeRope {
		rot = d
	}
	freq := defaultInvFreq(1000, rot)
	emb := m.r.get("gpt_neox.embed_in.weight")
	x := make([][]float64, len(ids))
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[id*H:(id+1)*H]...)
	}
	for l := range 2 {
		p := fmt.Sprintf("gpt_neox.layers.%d.", l)
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for i := range ids {
			qkv := m.affine(p+"attention.query_key_value", m.norm(p+"input_layernorm", x[i]))
			q, k, v := make([]float64, H), make([]float64, H), make([]float64, H)
			for hd := range heads {
				for j := range d {
					if m.blocks {
						q[hd*d+j], k[hd*d+j], v[hd*d+j] = qkv[hd*d+j], qkv[H+hd*d+j], qkv[2*H+hd*d+j]
					} else {
						q[hd*d+j], k[hd*d+j], v[hd*d+j] = qkv[(hd*3)*d+j], qkv[(hd*3+1)*d+j], qkv[(hd*3+2)*d+j]
					}
				}
				rope(q[hd*d:hd*d+rot], i, freq, 1)
				rope(k[hd*d:hd*d+rot], i, freq, 1)
			}
			qs[i], ks[i], vs[i] = q, k, v
		}
		for i, att := range causalAttention(qs, ks, vs, heads, heads, d) {
			a := m.affine(p+"attention.dense", att)
			in := x[i]
			mid := make([]float64, H)
			for e := range H {
				mid[e] = in[e] + a[e]
			}
			mlpIn := m.norm(p+"post_attention_layernorm", in)
			if m.sequential {
				mlpIn = m.norm(p+"post_attention_layernorm", mid)
			}
			u := m.affine(p+"mlp.dense_h_to_4h", mlpIn)
			for e := range u {
				u[e] = 0.5 * u[e] * (1 + math.Erf(u[e]/math.Sqrt2)) // GPTNeoX's exact GELU
			}
			dn := m.affine(p+"mlp.dense_4h_to_h", u)
			for e := range H {
				x[i][e] = mid[e] + dn[e]
			}
		}
	}
	return matvec(m.r.get("embed_out.weight"), m.norm("gpt_neox.final_layer_norm", x[len(ids)-1]), 1000)
}

// TestGPTNeoX converts tiny GPT-NeoX checkpoints (parallel residual, the
// default, and sequential) to llama.cpp's gptneox and checks the logits
// against the float64 reference, which would see query_key_value read as
// blocks, the other residual order or the whole head rotated.
func TestGPTNeoX(t *testing.T) {
	prompts := []refPrompt{{Text: "a", PromptIDs: []int{98, 5, 17, 300, 42}}, {Text: "b", PromptIDs: []int{98, 700, 3, 3, 12, 999, 64, 128, 1, 77}}}
	for _, parallel := range []bool{true, false} {
		t.Run(fmt.Sprint("parallel=", parallel), func(t *testing.T) {
			dir := neoxFixture(t, setConfig("use_parallel_residual", parallel))
			out, f := convertDir(t, dir, "f32")
			if v, ok := f.Bool("gptneox.use_parallel_residual"); !ok || v != parallel {
				t.Errorf("use_parallel_residual %v (%v), want %v", v, ok, parallel)
			}
			if n, _ := f.Uint("gptneox.rope.dimension_count"); n != 4 {
				t.Errorf("rope.dimension_count %d, want 4", n)
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			// Exact GELU against ggml's tanh form from a table of F16 values.
			checkRef(t, ctx, prompts, (&neoxRef{r: r, sequential: !parallel}).forward, 2e-3)
			checkSensitive(t, ctx, prompts, func() *neoxRef { return &neoxRef{r: r, sequential: !parallel} }, map[string]func(*neoxRef){
				"query_key_value as blocks": func(m *neoxRef) { m.blocks = true },
				"the other residual order":  func(m *neoxRef) { m.sequential = parallel },
				"the whole head rotated":    func(m *neoxRef) { m.wholeRope = true },
			})
		})
	}
	// The rotated fraction from GPTNeoXConfig's default (0.25), or from
	// rope_parameters as transformers 5 writes it.
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		dims uint64
	}{
		"default": {func(c map[string]any, ts []stTensor) []stTensor { delete(c, "rotary_pct"); return ts }, 4},
		"rope_parameters": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "rotary_pct")
			delete(c, "rotary_emb_base")
			c["rope_parameters"] = map[string]any{"rope_type": "default", "rope_theta": 1000.0, "partial_rotary_factor": 0.5}
			return ts
		}, 8},
	} {
		_, f := convertDir(t, neoxFixture(t, tc.edit), "f32")
		if n, _ := f.Uint("gptneox.rope.dimension_count"); n != tc.dims {
			t.Errorf("%s: rope.dimension_count %d, want %d", name, n, tc.dims)
		}
		if b, _ := f.Float("gptneox.rope.freq_base"); name == "rope_parameters" && b != 1000 {
			t.Errorf("%s: rope.freq_base %v, want 1000", name, b)
		}
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"relu":                 {setConfig("hidden_act", "relu"), convert.ErrUnsupported},
		"attention_bias false": {setConfig("attention_bias", false), convert.ErrUnsupported},
		"no dense bias":        {dropTensor("gpt_neox.layers.0.attention.dense.bias"), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), neoxFixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
