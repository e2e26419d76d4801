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
	"github.com/llm-go/llm/internal/reference"
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
// the tokens (CLS and SEP included), normalised to unit length.
func bertReference(w bertWeights, ids []int) []float64 {
	f := func(name string) []float64 {
		out := make([]float64, len(w[name]))
		for i, v := range w[name] {
			out[i] = float64(v)
		}
		return out
	}
	m := &reference.BERT{Hidden: bertEmbd, Heads: bertHeads, Eps: bertEps,
		WordEmb: f("token_embd.weight"), PosEmb: f("position_embd.weight"), TypeEmb: f("token_types.weight"),
		EmbNormW: f("token_embd_norm.weight"), EmbNormB: f("token_embd_norm.bias")}
	for l := range bertLayers {
		p := fmt.Sprintf("blk.%d.", l)
		m.Layers = append(m.Layers, reference.BERTLayer{
			WQ: f(p + "attn_q.weight"), BQ: f(p + "attn_q.bias"), WK: f(p + "attn_k.weight"), BK: f(p + "attn_k.bias"),
			WV: f(p + "attn_v.weight"), BV: f(p + "attn_v.bias"), WO: f(p + "attn_output.weight"), BO: f(p + "attn_output.bias"),
			AttnNormW: f(p + "attn_output_norm.weight"), AttnNormB: f(p + "attn_output_norm.bias"),
			WUp: f(p + "ffn_up.weight"), BUp: f(p + "ffn_up.bias"), WDown: f(p + "ffn_down.weight"), BDown: f(p + "ffn_down.bias"),
			OutNormW: f(p + "layer_output_norm.weight"), OutNormB: f(p + "layer_output_norm.bias"),
		})
	}
	return reference.Normalize(reference.Pool(m.Forward(ids), false))
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
		ints := make([]int, len(ids))
		for j, id := range ids {
			ints[j] = int(id)
		}
		want := bertReference(w, ints)
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
	if n := p.EmbedContextLength(); n != bertCtx {
		t.Errorf("EmbedContextLength %d, want the position table's %d", n, bertCtx)
	}
	long := ""
	for range bertCtx {
		long += "cat "
	}
	if _, err := p.Embed(context.Background(), long); !errors.Is(err, llm.ErrPromptTooLong) {
		t.Errorf("a text longer than the position table: %v", err)
	}
}
