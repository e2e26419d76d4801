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

// falconLayout is one of Falcon's attention layouts.
type falconLayout struct {
	name       string
	multiQuery bool // one key/value head after the queries (Falcon-7B)
	newDecoder bool // groups per key/value head (Falcon-40B, Falcon2)
	kv         int  // key/value heads
	oneNorm    bool // with newDecoder, num_ln_in_parallel_attn 1 (Falcon2-11B)
}

var falconLayouts = []falconLayout{
	{name: "falcon-7b", multiQuery: true, kv: 1, oneNorm: true},
	{name: "falcon-40b", newDecoder: true, kv: 2},
	{name: "falcon2-11b", newDecoder: true, kv: 2, oneNorm: true},
	{name: "per-head", kv: 4, oneNorm: true},
}

// falconFixture writes a tiny FalconForCausalLM checkpoint of layout l
// (tiny-llama-st's tokenizer): hidden size 64, 4 heads of 16, an MLP of
// 256 (4 × hidden), LayerNorms, no biases, the head tied.
func falconFixture(t *testing.T, l falconLayout, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"FalconForCausalLM"}, "model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4,
		"num_hidden_layers": 2, "vocab_size": 32000, "layer_norm_epsilon": 1e-5, "rope_theta": 10000.0, "alibi": false, "bias": false,
		"parallel_attn": true, "multi_query": l.multiQuery, "new_decoder_architecture": l.newDecoder, "bos_token_id": 1, "eos_token_id": 2}
	if l.newDecoder {
		cfg["num_kv_heads"] = l.kv
		if l.oneNorm {
			cfg["num_ln_in_parallel_attn"] = 1
		}
	}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(41, 7))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("transformer.word_embeddings.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("transformer.ln_f.weight", 64, 1, 0.1), w.vec("transformer.ln_f.bias", 64, 0, 0.1)}
	for i := range 2 {
		p := fmt.Sprintf("transformer.h.%d.", i)
		norms := []string{"input_layernorm"}
		if l.newDecoder && !l.oneNorm {
			norms = []string{"ln_attn", "ln_mlp"}
		}
		for _, n := range norms {
			ts = append(ts, w.vec(p+n+".weight", 64, 1, 0.1), w.vec(p+n+".bias", 64, 0, 0.1))
		}
		ts = append(ts, w.mat(p+"self_attention.query_key_value.weight", int64((4+2*l.kv)*16), 64), w.mat(p+"self_attention.dense.weight", 64, 64),
			w.mat(p+"mlp.dense_h_to_4h.weight", 256, 64), w.mat(p+"mlp.dense_4h_to_h.weight", 64, 256))
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// falconRef is transformers' Falcon of the fixture; blocks reads
// query_key_value as q, k, v blocks whatever the layout (the sensitivity
// check).
type falconRef struct {
	r      *stReader
	l      falconLayout
	blocks bool
}

// forward returns the logits after the last of ids.
func (m *falconRef) forward(ids []int) []float64 {
	const H, heads, d = 64, 4, 16
	kv := m.l.kv
	emb := m.r.get("transformer.word_embeddings.weight")
	x := make([][]float64, len(ids))
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[id*H:(id+1)*H]...)
	}
	freq := defaultInvFreq(10000, d)
	for l := range 2 {
		p := fmt.Sprintf("transformer.h.%d.", l)
		attnNorm, mlpNorm := p+"input_layernorm", p+"input_layernorm"
		if m.l.newDecoder && !m.l.oneNorm {
			attnNorm, mlpNorm = p+"ln_attn", p+"ln_mlp"
		}
		wqkv := m.r.get(p + "self_attention.query_key_value.weight")
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for i := range ids {
			qkv := matvec(wqkv, m.r.layerNorm(attnNorm, x[i], 1e-5), (heads+2*kv)*d)
			q, k, v := make([]float64, heads*d), make([]float64, kv*d), make([]float64, kv*d)
			g := heads / kv
			for hd := range heads {
				src := hd * d // blocks, and multi_query
				switch {
				case m.blocks:
				case m.l.newDecoder:
					src = (hd/g)*(g+2)*d + (hd%g)*d
				case kv > 1:
					src = 3 * hd * d
				}
				copy(q[hd*d:(hd+1)*d], qkv[src:src+d])
			}
			for h := range kv {
				ksrc, vsrc := heads*d+h*d, heads*d+kv*d+h*d
				switch {
				case m.blocks:
				case m.l.newDecoder:
					ksrc, vsrc = h*(g+2)*d+g*d, h*(g+2)*d+(g+1)*d
				case kv > 1:
					ksrc, vsrc = (3*h+1)*d, (3*h+2)*d
				}
				copy(k[h*d:(h+1)*d], qkv[ksrc:ksrc+d])
				copy(v[h*d:(h+1)*d], qkv[vsrc:vsrc+d])
			}
			for hd := range heads {
				rope(q[hd*d:(hd+1)*d], i, freq, 1)
			}
			for h := range kv {
				rope(k[h*d:(h+1)*d], i, freq, 1)
			}
			qs[i], ks[i], vs[i] = q, k, v
		}
		wo, up, down := m.r.get(p+"self_attention.dense.weight"), m.r.get(p+"mlp.dense_h_to_4h.weight"), m.r.get(p+"mlp.dense_4h_to_h.weight")
		for i, att := range causalAttention(qs, ks, vs, heads, kv, d) {
			o := matvec(wo, att, H)
			u := matvec(up, m.r.layerNorm(mlpNorm, x[i], 1e-5), 256)
			for e := range u {
				u[e] = 0.5 * u[e] * (1 + math.Erf(u[e]/math.Sqrt2))
			}
			dn := matvec(down, u, H)
			for e := range H {
				x[i][e] += o[e] + dn[e]
			}
		}
	}
	return matvec(emb, m.r.layerNorm("transformer.ln_f", x[len(ids)-1], 1e-5), 32000)
}

// TestFalcon converts tiny Falcons of every attention layout (Falcon-7B's
// multi-query, Falcon-40B's groups with two norms, Falcon2-11B's groups
// with one, and one key/value head per head) to llama.cpp's falcon and
// checks the logits against the float64 reference, which would see
// query_key_value read as blocks; ALiBi, sequential blocks and biases are
// refused.
func TestFalcon(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, l := range falconLayouts {
		t.Run(l.name, func(t *testing.T) {
			dir := falconFixture(t, l, nil)
			out, f := convertDir(t, dir, "f32")
			_, norm2 := f.Tensor("blk.0.attn_norm_2.weight")
			if n, _ := f.Uint("falcon.attention.head_count_kv"); f.Architecture() != "falcon" || n != uint64(l.kv) || norm2 != (l.newDecoder && !l.oneNorm) {
				t.Errorf("arch %q, head_count_kv %d, attn_norm_2 %v", f.Architecture(), n, norm2)
			}
			ctx := refContext(t, out)
			r := openST(t, dir)
			// Exact GELU against ggml's tanh form from a table of F16 values.
			checkRef(t, ctx, prompts, (&falconRef{r: r, l: l}).forward, 2e-3)
			if l.multiQuery {
				return // stored as blocks
			}
			checkSensitive(t, ctx, prompts, func() *falconRef { return &falconRef{r: r, l: l} }, map[string]func(*falconRef){
				"query_key_value as blocks": func(m *falconRef) { m.blocks = true },
			})
		})
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"alibi":      setConfig("alibi", true),
		"sequential": setConfig("parallel_attn", false),
		"biases":     setConfig("bias", true),
		"relu":       setConfig("activation", "relu"),
		"an unknown bias": func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("transformer.h.0.self_attention.dense.bias", []int64{64}, make([]float32, 64)))
		},
	} {
		err := convert.Convert(context.Background(), falconFixture(t, falconLayouts[0], edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
