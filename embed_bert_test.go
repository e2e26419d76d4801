package llm_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/loader/gguf"
)

// bertShape is a tiny BERT encoder: the shape of all-MiniLM or bge, scaled
// down.
const (
	bertEmbd   = 32
	bertHeads  = 4
	bertLayers = 2
	bertFF     = 64
	bertCtx    = 64
	bertEps    = 1e-12
)

// bertWeights are a random BERT's tensors, row-major [out][in] as GGUF
// stores a matrix of shape {in, out}.
type bertWeights map[string][]float32

func (w bertWeights) add(rng *rand.Rand, name string, n int, scale float64, offset float32) {
	v := make([]float32, n)
	for i := range v {
		v[i] = offset + float32(rng.NormFloat64()*scale)
	}
	w[name] = v
}

// writeBERT writes a BERT GGUF with a WordPiece vocabulary and mean
// pooling, and returns its path and weights.
func writeBERT(t *testing.T) (string, bertWeights) {
	t.Helper()
	// BERT's special ids: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103.
	var tokens []string
	for i := range 104 {
		switch i {
		case 0:
			tokens = append(tokens, "[PAD]")
		case 100:
			tokens = append(tokens, "[UNK]")
		case 101:
			tokens = append(tokens, "[CLS]")
		case 102:
			tokens = append(tokens, "[SEP]")
		case 103:
			tokens = append(tokens, "[MASK]")
		default:
			tokens = append(tokens, fmt.Sprintf("[unused%d]", i))
		}
	}
	tokens = append(tokens, "the", "cat", "sat", "on", "mat", "dog", "ran", "a", "park", "in", "##s", ".", ",", "hello", "world", "!")
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = 1 // normal
		if i == 0 || i >= 100 && i <= 103 {
			types[i] = 3 // control
		}
	}
	nVocab := len(tokens)

	rng := rand.New(rand.NewPCG(7, 11))
	w := bertWeights{}
	w.add(rng, "token_embd.weight", nVocab*bertEmbd, 0.5, 0)
	w.add(rng, "token_types.weight", 2*bertEmbd, 0.1, 0)
	w.add(rng, "position_embd.weight", bertCtx*bertEmbd, 0.1, 0)
	w.add(rng, "token_embd_norm.weight", bertEmbd, 0.1, 1)
	w.add(rng, "token_embd_norm.bias", bertEmbd, 0.1, 0)
	s := 1 / math.Sqrt(bertEmbd)
	for l := range bertLayers {
		p := fmt.Sprintf("blk.%d.", l)
		for _, m := range []string{"attn_q", "attn_k", "attn_v", "attn_output"} {
			w.add(rng, p+m+".weight", bertEmbd*bertEmbd, s, 0)
			w.add(rng, p+m+".bias", bertEmbd, 0.05, 0)
		}
		w.add(rng, p+"attn_output_norm.weight", bertEmbd, 0.1, 1)
		w.add(rng, p+"attn_output_norm.bias", bertEmbd, 0.1, 0)
		w.add(rng, p+"ffn_up.weight", bertFF*bertEmbd, s, 0)
		w.add(rng, p+"ffn_up.bias", bertFF, 0.05, 0)
		w.add(rng, p+"ffn_down.weight", bertEmbd*bertFF, 1/math.Sqrt(bertFF), 0)
		w.add(rng, p+"ffn_down.bias", bertEmbd, 0.05, 0)
		w.add(rng, p+"layer_output_norm.weight", bertEmbd, 0.1, 1)
		w.add(rng, p+"layer_output_norm.bias", bertEmbd, 0.1, 0)
	}
	shapes := map[string][]uint64{
		"token_embd.weight":    {bertEmbd, uint64(nVocab)},
		"token_types.weight":   {bertEmbd, 2},
		"position_embd.weight": {bertEmbd, bertCtx},
	}

	gw := gguf.NewWriter()
	set := func(k string, v gguf.Value) { gw.Set(k, v) }
	set("general.architecture", gguf.String("bert"))
	set("general.name", gguf.String("tiny-bert"))
	set("bert.context_length", gguf.Uint32(bertCtx))
	set("bert.embedding_length", gguf.Uint32(bertEmbd))
	set("bert.feed_forward_length", gguf.Uint32(bertFF))
	set("bert.block_count", gguf.Uint32(bertLayers))
	set("bert.attention.head_count", gguf.Uint32(bertHeads))
	set("bert.attention.layer_norm_epsilon", gguf.Float32(bertEps))
	set("bert.attention.causal", gguf.Bool(false))
	set("bert.pooling_type", gguf.Uint32(1)) // mean
	set("tokenizer.ggml.model", gguf.String("bert"))
	set("tokenizer.ggml.pre", gguf.String("default"))
	set("tokenizer.ggml.tokens", gguf.Strings(tokens))
	set("tokenizer.ggml.token_type", gguf.Int32s(types))
	set("tokenizer.ggml.token_type_count", gguf.Uint32(2))
	set("tokenizer.ggml.unknown_token_id", gguf.Uint32(100))
	set("tokenizer.ggml.cls_token_id", gguf.Uint32(101))
	set("tokenizer.ggml.seperator_token_id", gguf.Uint32(102))
	set("tokenizer.ggml.padding_token_id", gguf.Uint32(0))
	set("tokenizer.ggml.mask_token_id", gguf.Uint32(103))
	for _, name := range slices.Sorted(maps.Keys(w)) {
		data := w[name]
		shape, ok := shapes[name]
		switch {
		case ok:
		case len(data) == bertEmbd || len(data) == bertFF:
			shape = []uint64{uint64(len(data))}
		case len(data) == bertFF*bertEmbd && filepath.Ext(name) == ".weight" && strings.Contains(name, "ffn_up"):
			shape = []uint64{bertEmbd, bertFF}
		case len(data) == bertFF*bertEmbd:
			shape = []uint64{bertFF, bertEmbd}
		default:
			shape = []uint64{bertEmbd, bertEmbd}
		}
		if err := gw.AddTensor(name, gguf.TypeF32, shape, func(out io.Writer) error {
			return binary.Write(out, binary.LittleEndian, data)
		}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "tiny-bert.gguf")
	if err := gw.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path, w
}

// bertReference computes what sentence-transformers computes for a BERT
// model with mean pooling: the encoder's last hidden states averaged over
// the tokens (CLS and SEP included), normalised to unit length. It follows
// transformers' BertModel, with GELU's tanh form as llama.cpp computes it.
func bertReference(w bertWeights, ids []int32) []float64 {
	n := len(ids)
	linear := func(x []float64, name string, in, out int) []float64 {
		W, b := w[name+".weight"], w[name+".bias"]
		y := make([]float64, out)
		for o := range out {
			s := float64(b[o])
			for i := range in {
				s += float64(W[o*in+i]) * x[i]
			}
			y[o] = s
		}
		return y
	}
	norm := func(x []float64, name string) []float64 {
		var mean, vr float64
		for _, v := range x {
			mean += v
		}
		mean /= float64(len(x))
		for _, v := range x {
			vr += (v - mean) * (v - mean)
		}
		vr /= float64(len(x))
		g, b := w[name+".weight"], w[name+".bias"]
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = (v-mean)/math.Sqrt(vr+bertEps)*float64(g[i]) + float64(b[i])
		}
		return y
	}
	h := make([][]float64, n)
	for t, id := range ids {
		x := make([]float64, bertEmbd)
		for i := range x {
			x[i] = float64(w["token_embd.weight"][int(id)*bertEmbd+i]) + float64(w["token_types.weight"][i]) +
				float64(w["position_embd.weight"][t*bertEmbd+i])
		}
		h[t] = norm(x, "token_embd_norm")
	}
	hd := bertEmbd / bertHeads
	for l := range bertLayers {
		p := fmt.Sprintf("blk.%d.", l)
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for t := range n {
			q[t], k[t], v[t] = linear(h[t], p+"attn_q", bertEmbd, bertEmbd), linear(h[t], p+"attn_k", bertEmbd, bertEmbd), linear(h[t], p+"attn_v", bertEmbd, bertEmbd)
		}
		next := make([][]float64, n)
		for t := range n {
			att := make([]float64, bertEmbd)
			for hh := range bertHeads {
				scores := make([]float64, n)
				maxS := math.Inf(-1)
				for u := range n {
					var s float64
					for d := range hd {
						s += q[t][hh*hd+d] * k[u][hh*hd+d]
					}
					scores[u] = s / math.Sqrt(float64(hd))
					maxS = max(maxS, scores[u])
				}
				var z float64
				for u := range scores {
					scores[u] = math.Exp(scores[u] - maxS)
					z += scores[u]
				}
				for u := range n {
					for d := range hd {
						att[hh*hd+d] += scores[u] / z * v[u][hh*hd+d]
					}
				}
			}
			o := linear(att, p+"attn_output", bertEmbd, bertEmbd)
			for i := range o {
				o[i] += h[t][i]
			}
			a := norm(o, p+"attn_output_norm")
			up := linear(a, p+"ffn_up", bertEmbd, bertFF)
			for i, x := range up {
				up[i] = 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
			}
			down := linear(up, p+"ffn_down", bertFF, bertEmbd)
			for i := range down {
				down[i] += a[i]
			}
			next[t] = norm(down, p+"layer_output_norm")
		}
		h = next
	}
	out := make([]float64, bertEmbd)
	for t := range n {
		for i := range out {
			out[i] += h[t][i] / float64(n)
		}
	}
	var ss float64
	for _, v := range out {
		ss += v * v
	}
	for i := range out {
		out[i] /= math.Sqrt(ss)
	}
	return out
}

// TestEmbedBERT: Embed on a BERT-shaped encoder gives sentence-transformers'
// mean-pooled, normalised embedding, computed here independently.
func TestEmbedBERT(t *testing.T) {
	path, w := writeBERT(t)
	p, err := llm.New(context.Background(), path, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	texts := []string{"The cat sat on the mat.", "Hello, world!", "A dog ran in the park", "cats"}
	vecs, err := p.Embed(context.Background(), texts...)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		ids, err := p.Model().Tokenize(text, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if ids[0] != 101 || ids[len(ids)-1] != 102 {
			t.Fatalf("%q: tokens %v do not open with [CLS] and end with [SEP]", text, ids)
		}
		ids32 := make([]int32, len(ids))
		for j, id := range ids {
			ids32[j] = int32(id)
		}
		want := bertReference(w, ids32)
		if len(vecs[i]) != len(want) {
			t.Fatalf("%q: %d dimensions, want %d", text, len(vecs[i]), len(want))
		}
		var maxDiff, dot float64
		for j := range want {
			maxDiff = max(maxDiff, math.Abs(float64(vecs[i][j])-want[j]))
			dot += float64(vecs[i][j]) * want[j]
		}
		if maxDiff > 5e-3 || dot < 0.9999 {
			t.Errorf("%q (%d tokens): max difference %.2g, cosine %.6f from the reference", text, len(ids), maxDiff, dot)
		}
		t.Logf("%q: %d tokens, max difference %.2g, cosine %.7f", text, len(ids), maxDiff, dot)
	}
	// Learned positions end at the training context: a longer text is an
	// error, never a read past the position table.
	long := ""
	for range bertCtx {
		long += "cat "
	}
	if _, err := p.Embed(context.Background(), long); !errors.Is(err, llm.ErrPromptTooLong) {
		t.Errorf("a text longer than the position table: %v", err)
	}
}
