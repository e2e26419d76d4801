package convert_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"testing"

	ref64 "github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/loader/convert"
)

// bigCodeFixture writes a tiny GPTBigCode (StarCoder) checkpoint with
// tiny-random-gpt2's tokenizer: hidden size 64, 4 heads of 16 sharing one
// key/value head (without mq, a key/value head each, c_attn holding each
// head's q, k and v in turn), an MLP of 128, 128 learned positions,
// LayerNorms and biases everywhere, the head tied to the embeddings.
func bigCodeFixture(t *testing.T, mq bool, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"GPTBigCodeForCausalLM"}, "model_type": "gpt_bigcode", "n_embd": 64, "n_head": 4,
		"n_layer": 2, "n_inner": 128, "n_positions": 128, "vocab_size": 1000, "layer_norm_epsilon": 1e-5, "multi_query": mq,
		"activation_function": "gelu_pytorch_tanh", "scale_attn_weights": true, "bos_token_id": 98, "eos_token_id": 98}
	copyHFFiles(t, "tiny-random-gpt2", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(29, 4))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("transformer.wte.weight", []int64{1000, 64}, randn(r, 1000*64, 1)), w.mat("transformer.wpe.weight", 128, 64),
		w.vec("transformer.ln_f.weight", 64, 1, 0.1), w.vec("transformer.ln_f.bias", 64, 0, 0.1)}
	for l := range 2 {
		p := fmt.Sprintf("transformer.h.%d.", l)
		for _, n := range []string{"ln_1", "ln_2"} {
			ts = append(ts, w.vec(p+n+".weight", 64, 1, 0.1), w.vec(p+n+".bias", 64, 0, 0.1))
		}
		qkv := int64(64 + 2*16)
		if !mq {
			qkv = 3 * 64
		}
		for _, m := range []struct {
			name    string
			out, in int64
		}{{"attn.c_attn", qkv, 64}, {"attn.c_proj", 64, 64}, {"mlp.c_fc", 128, 64}, {"mlp.c_proj", 64, 128}} {
			ts = append(ts, w.mat(p+m.name+".weight", m.out, m.in), w.vec(p+m.name+".bias", m.out, 0, 0.1))
		}
	}
	return finishFixture(t, "tiny-random-gpt2", dir, cfg, ts, edit)
}

// bigCodeRef is transformers' GPTBigCode of the fixture; kvHeads other
// than 1 reads c_attn's keys and values as that many heads (wrongly, for
// the sensitivity check), noPos leaves the learned positions out.
type bigCodeRef struct {
	r              *stReader
	perHead        bool // multi_query false: c_attn holds each head's q, k, v in turn
	kvAsQueryHeads bool
	noPos          bool
}

func (m *bigCodeRef) affine(p string, x []float64) []float64 { return m.r.affine(p, x) }

func (m *bigCodeRef) norm(p string, x []float64) []float64 { return m.r.layerNorm(p, x, 1e-5) }

// forward returns the logits after the last of ids.
func (m *bigCodeRef) forward(ids []int) []float64 {
	const H, heads, d = 64, 4, 16
	wte, wpe := m.r.get("transformer.wte.weight"), m.r.get("transformer.wpe.weight")
	x := make([][]float64, len(ids))
	for i, id := range ids {
		x[i] = append([]float64(nil), wte[id*H:(id+1)*H]...)
		if !m.noPos {
			for e := range H {
				x[i][e] += wpe[i*H+e]
			}
		}
	}
	for l := range 2 {
		p := fmt.Sprintf("transformer.h.%d.", l)
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for i := range ids {
			qkv := m.affine(p+"attn.c_attn", m.norm(p+"ln_1", x[i]))
			qs[i], ks[i], vs[i] = qkv[:H], qkv[H:H+d], qkv[H+d:]
			if m.kvAsQueryHeads {
				// The key and value read as the first query head's rows.
				ks[i], vs[i] = qkv[:d], qkv[d:2*d]
			}
			if m.perHead {
				q, k, v := make([]float64, H), make([]float64, H), make([]float64, H)
				for hd := range heads {
					copy(q[hd*d:], qkv[3*hd*d:(3*hd+1)*d])
					copy(k[hd*d:], qkv[(3*hd+1)*d:(3*hd+2)*d])
					copy(v[hd*d:], qkv[(3*hd+2)*d:(3*hd+3)*d])
				}
				qs[i], ks[i], vs[i] = q, k, v
			}
		}
		kv := 1
		if m.perHead {
			kv = heads
		}
		for i, att := range causalAttention(qs, ks, vs, heads, kv, d) {
			o := m.affine(p+"attn.c_proj", att)
			for e := range H {
				x[i][e] += o[e]
			}
			u := m.affine(p+"mlp.c_fc", m.norm(p+"ln_2", x[i]))
			for e := range u {
				u[e] = ref64.GELUTanh(u[e])
			}
			dn := m.affine(p+"mlp.c_proj", u)
			for e := range H {
				x[i][e] += dn[e]
			}
		}
	}
	return matvec(wte, m.norm("transformer.ln_f", x[len(ids)-1]), 1000)
}

// TestGPTBigCode converts a tiny StarCoder (GPTBigCodeForCausalLM) to
// llama.cpp's starcoder and checks its logits against the float64
// reference, which would see c_attn split wrongly or the positions left
// out; multi_query false and other activations are refused.
func TestGPTBigCode(t *testing.T) {
	dir := bigCodeFixture(t, true, nil)
	out, f := convertDir(t, dir, "f32")
	if n, _ := f.Uint("starcoder.attention.head_count_kv"); f.Architecture() != "starcoder" || n != 1 {
		t.Errorf("arch %q, head_count_kv %d, want starcoder with 1", f.Architecture(), n)
	}
	if ti, ok := f.Tensor("blk.0.attn_qkv.weight"); !ok || ti.Shape[1] != 96 {
		t.Errorf("attn_qkv %+v (%v), want 96 rows", ti, ok)
	}
	prompts := []refPrompt{{Text: "a", PromptIDs: []int{98, 5, 17, 300, 42}}, {Text: "b", PromptIDs: []int{98, 700, 3, 3, 12, 999, 64, 128, 1, 77}}}
	ctx := refContext(t, out)
	r := openST(t, dir)
	// ggml's GELU reads a table of F16 values.
	checkRef(t, ctx, prompts, (&bigCodeRef{r: r}).forward, 1e-3)
	checkSensitive(t, ctx, prompts, func() *bigCodeRef { return &bigCodeRef{r: r} }, map[string]func(*bigCodeRef){
		"c_attn split as three full projections": func(m *bigCodeRef) { m.kvAsQueryHeads = true },
		"no positions":                           func(m *bigCodeRef) { m.noPos = true },
	})
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"relu":                     {setConfig("activation_function", "relu"), convert.ErrUnsupported},
		"scale_attn_weights false": {setConfig("scale_attn_weights", false), convert.ErrUnsupported},
		"no c_attn bias":           {dropTensor("transformer.h.0.attn.c_attn.bias"), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), bigCodeFixture(t, true, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}

	// Without multi_query: a key/value head each, c_attn regrouped.
	dir = bigCodeFixture(t, false, nil)
	out, f = convertDir(t, dir, "f32")
	if n, _ := f.Uint("starcoder.attention.head_count_kv"); n != 4 {
		t.Errorf("multi_query false: head_count_kv %d, want 4", n)
	}
	ctx = refContext(t, out)
	r = openST(t, dir)
	checkRef(t, ctx, prompts, (&bigCodeRef{r: r, perHead: true}).forward, 1e-3)
	checkSensitive(t, ctx, prompts, func() *bigCodeRef { return &bigCodeRef{r: r, perHead: true} }, map[string]func(*bigCodeRef){
		"c_attn read as blocks": func(m *bigCodeRef) {
			m.perHead = false
			m.kvAsQueryHeads = false
		},
	})
}
