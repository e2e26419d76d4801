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
)

// The BLOOM fixture: hidden size 96, 6 heads of 16 (so that ALiBi's slopes
// take both of BLOOM's series: 2^(-2(h+1)) for heads 0 to 3, 2^-1 and 2^-3
// for heads 4 and 5), two
// layers, tiny-random-gpt2's vocabulary; names without "transformer." as
// bloom-560m's, or with it.
const bloomH, bloomHeads, bloomD = 96, 6, 16

func bloomFixture(t *testing.T, prefix string, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"BloomForCausalLM"}, "model_type": "bloom", "n_embed": bloomH, "n_layer": 2,
		"num_attention_heads": bloomHeads, "vocab_size": 1000, "layer_norm_epsilon": 1e-5, "seq_length": 128,
		"apply_residual_connection_post_layernorm": false, "bos_token_id": 98, "eos_token_id": 98}
	copyHFFiles(t, "tiny-random-gpt2", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(83, 2))
	w := randWeights{r}
	ln := func(name string) []stTensor {
		return []stTensor{w.vec(name+".weight", bloomH, 1, 0.1), w.vec(name+".bias", bloomH, 0, 0.1)}
	}
	ts := []stTensor{f32Tensor(prefix+"word_embeddings.weight", []int64{1000, bloomH}, randn(r, 1000*bloomH, 1))}
	ts = append(ts, ln(prefix+"word_embeddings_layernorm")...)
	ts = append(ts, ln(prefix+"ln_f")...)
	for l := range 2 {
		p := fmt.Sprintf("%sh.%d.", prefix, l)
		ts = append(ts, ln(p+"input_layernorm")...)
		ts = append(ts, ln(p+"post_attention_layernorm")...)
		for _, m := range []struct {
			name    string
			out, in int64
		}{{"self_attention.query_key_value", 3 * bloomH, bloomH}, {"self_attention.dense", bloomH, bloomH},
			{"mlp.dense_h_to_4h", 4 * bloomH, bloomH}, {"mlp.dense_4h_to_h", bloomH, 4 * bloomH}} {
			ts = append(ts, w.mat(p+m.name+".weight", m.out, m.in), w.vec(p+m.name+".bias", m.out, 0, 0.1))
		}
	}
	return finishFixture(t, "tiny-random-gpt2", dir, cfg, ts, edit)
}

// bloomRef is transformers' BLOOM of the fixture in float64, and the
// features the sensitivity checks leave out.
type bloomRef struct {
	r                     *stReader
	prefix                string
	noAlibi, qkvAsBlocks  bool
	noEmbNorm, powerOfTwo bool // powerOfTwo: every slope from the first series
}

func (m *bloomRef) norm(p string, x []float64) []float64 { return m.r.layerNorm(m.prefix+p, x, 1e-5) }

// slope is BLOOM's ALiBi slope of head h.
func (m *bloomRef) slope(h int) float64 {
	const closest = 4 // the largest power of two up to 6 heads
	if h < closest || m.powerOfTwo {
		return math.Pow(math.Pow(2, -8.0/closest), float64(h+1))
	}
	return math.Pow(math.Pow(2, -8.0/(2*closest)), float64(2*(h-closest)+1))
}

func (m *bloomRef) forward(ids []int) []float64 {
	const H, heads, d = bloomH, bloomHeads, bloomD
	emb := m.r.get(m.prefix + "word_embeddings.weight")
	x := make([][]float64, len(ids))
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[id*H:(id+1)*H]...)
		if !m.noEmbNorm {
			x[i] = m.norm("word_embeddings_layernorm", x[i])
		}
	}
	for l := range 2 {
		p := fmt.Sprintf("h.%d.", l)
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for i := range ids {
			qkv := m.r.affine(m.prefix+p+"self_attention.query_key_value", m.norm(p+"input_layernorm", x[i]))
			q, k, v := make([]float64, H), make([]float64, H), make([]float64, H)
			for hd := range heads {
				if m.qkvAsBlocks {
					copy(q[hd*d:], qkv[hd*d:(hd+1)*d])
					copy(k[hd*d:], qkv[H+hd*d:H+(hd+1)*d])
					copy(v[hd*d:], qkv[2*H+hd*d:2*H+(hd+1)*d])
					continue
				}
				copy(q[hd*d:], qkv[3*hd*d:(3*hd+1)*d])
				copy(k[hd*d:], qkv[(3*hd+1)*d:(3*hd+2)*d])
				copy(v[hd*d:], qkv[(3*hd+2)*d:(3*hd+3)*d])
			}
			qs[i], ks[i], vs[i] = q, k, v
		}
		var alibi func(head, key int) float64
		if !m.noAlibi {
			alibi = func(hd, j int) float64 { return m.slope(hd) * float64(j) } // BLOOM adds slope·key position
		}
		for i, att := range biasedAttention(qs, ks, vs, heads, heads, d, alibi) {
			o := m.r.affine(m.prefix+p+"self_attention.dense", att)
			for e := range H {
				x[i][e] += o[e]
			}
			u := m.r.affine(m.prefix+p+"mlp.dense_h_to_4h", m.norm(p+"post_attention_layernorm", x[i]))
			for e := range u {
				u[e] = ref64.GELUTanh(u[e])
			}
			dn := m.r.affine(m.prefix+p+"mlp.dense_4h_to_h", u)
			for e := range H {
				x[i][e] += dn[e]
			}
		}
	}
	return matvec(emb, m.norm("ln_f", x[len(ids)-1]), 1000)
}

// TestBloom converts tiny BLOOMs (names with and without "transformer.")
// to llama.cpp's bloom and checks the logits against the float64
// reference, which would see ALiBi, its second series of slopes, the
// query_key_value layout and the embeddings' LayerNorm left out; what
// llama.cpp's bloom does not run is refused.
func TestBloom(t *testing.T) {
	prompts := []refPrompt{{Text: "a", PromptIDs: []int{98, 5, 17, 300, 42}}, {Text: "b", PromptIDs: []int{98, 700, 3, 3, 12, 999, 64, 128, 1, 77}}}
	for _, prefix := range []string{"", "transformer."} {
		t.Run("prefix "+prefix, func(t *testing.T) {
			dir := bloomFixture(t, prefix, nil)
			out, f := convertDir(t, dir, "f32")
			if f.Architecture() != "bloom" {
				t.Fatalf("arch %q", f.Architecture())
			}
			if eps, ok := f.Float("bloom.attention.layer_norm_epsilon"); !ok || float32(eps) != 1e-5 {
				t.Errorf("layer_norm_epsilon %v (%v)", eps, ok)
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			fresh := func() *bloomRef { return &bloomRef{r: r, prefix: prefix} }
			// ggml's GELU reads a table of F16 values.
			checkRef(t, ctx, prompts, fresh().forward, 1e-3)
			checkSensitive(t, ctx, prompts, fresh, map[string]func(*bloomRef){
				"no ALiBi":                  func(m *bloomRef) { m.noAlibi = true },
				"one series of slopes":      func(m *bloomRef) { m.powerOfTwo = true },
				"query_key_value as blocks": func(m *bloomRef) { m.qkvAsBlocks = true },
				"no embedding LayerNorm":    func(m *bloomRef) { m.noEmbNorm = true },
			})
		})
	}
	// bloom-560m's spellings: hidden_size and n_head; no seq_length.
	_, fs := convertDir(t, bloomFixture(t, "", func(c map[string]any, ts []stTensor) []stTensor {
		delete(c, "n_embed")
		delete(c, "num_attention_heads")
		delete(c, "seq_length")
		c["hidden_size"], c["n_head"] = bloomH, bloomHeads
		return ts
	}), "f32")
	for k, want := range map[string]float64{"embedding_length": bloomH, "attention.head_count": bloomHeads, "context_length": 2048} {
		if v, ok := fs.Float("bloom." + k); !ok || v != want {
			t.Errorf("other spellings: %s = %v (%v), want %v", k, v, ok, want)
		}
	}
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"post-LayerNorm residual": {setConfig("apply_residual_connection_post_layernorm", true), convert.ErrUnsupported},
		"no embedding LayerNorm": {func(c map[string]any, ts []stTensor) []stTensor {
			return dropTensor("word_embeddings_layernorm.bias")(c, ts)
		}, convert.ErrMismatch},
		"heads not dividing": {setConfig("num_attention_heads", 5), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), bloomFixture(t, "", tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
