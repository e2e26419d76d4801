package testmodel

import (
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/loader/gguf"
)

// The shape of BERT's model, a tiny encoder: all-MiniLM's or bge's, scaled
// down.
const (
	BERTEmbd   = 32
	BERTHeads  = 4
	BERTLayers = 2
	BERTFF     = 64
	BERTCtx    = 64
	BERTEps    = 1e-12
)

// BERTWeights are a random BERT's tensors, row-major [out][in] as GGUF
// stores a matrix of shape {in, out}.
type BERTWeights map[string][]float32

func (w BERTWeights) add(rng *rand.Rand, name string, n int, scale float64, offset float32) {
	v := make([]float32, n)
	for i := range v {
		v[i] = offset + float32(rng.NormFloat64()*scale)
	}
	w[name] = v
}

// BERT writes a BERT GGUF with a WordPiece vocabulary ([PAD] 0, [UNK] 100,
// [CLS] 101, [SEP] 102, [MASK] 103, then a few words) and random weights,
// with mean pooling or, with rerank, a reranker: the same encoder with
// RoBERTa's classification head (cls: a dense layer and tanh; cls.output:
// one score) and rank pooling. It returns its path and weights.
func BERT(t testing.TB, rerank bool) (string, BERTWeights) {
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
	w := BERTWeights{}
	w.add(rng, "token_embd.weight", nVocab*BERTEmbd, 0.5, 0)
	w.add(rng, "token_types.weight", 2*BERTEmbd, 0.1, 0)
	w.add(rng, "position_embd.weight", BERTCtx*BERTEmbd, 0.1, 0)
	w.add(rng, "token_embd_norm.weight", BERTEmbd, 0.1, 1)
	w.add(rng, "token_embd_norm.bias", BERTEmbd, 0.1, 0)
	s := 1 / math.Sqrt(BERTEmbd)
	for l := range BERTLayers {
		p := fmt.Sprintf("blk.%d.", l)
		for _, m := range []string{"attn_q", "attn_k", "attn_v", "attn_output"} {
			w.add(rng, p+m+".weight", BERTEmbd*BERTEmbd, s, 0)
			w.add(rng, p+m+".bias", BERTEmbd, 0.05, 0)
		}
		w.add(rng, p+"attn_output_norm.weight", BERTEmbd, 0.1, 1)
		w.add(rng, p+"attn_output_norm.bias", BERTEmbd, 0.1, 0)
		w.add(rng, p+"ffn_up.weight", BERTFF*BERTEmbd, s, 0)
		w.add(rng, p+"ffn_up.bias", BERTFF, 0.05, 0)
		w.add(rng, p+"ffn_down.weight", BERTEmbd*BERTFF, 1/math.Sqrt(BERTFF), 0)
		w.add(rng, p+"ffn_down.bias", BERTEmbd, 0.05, 0)
		w.add(rng, p+"layer_output_norm.weight", BERTEmbd, 0.1, 1)
		w.add(rng, p+"layer_output_norm.bias", BERTEmbd, 0.1, 0)
	}
	shapes := map[string][]uint64{
		"token_embd.weight":    {BERTEmbd, uint64(nVocab)},
		"token_types.weight":   {BERTEmbd, 2},
		"position_embd.weight": {BERTEmbd, BERTCtx},
	}
	pooling := uint32(1) // mean
	if rerank {
		pooling = 4 // rank
		w.add(rng, "cls.weight", BERTEmbd*BERTEmbd, s, 0)
		w.add(rng, "cls.bias", BERTEmbd, 0.05, 0)
		w.add(rng, "cls.output.weight", BERTEmbd, 1, 0)
		w.add(rng, "cls.output.bias", 1, 0.1, 0)
		shapes["cls.output.weight"] = []uint64{BERTEmbd, 1}
		shapes["cls.output.bias"] = []uint64{1}
	}

	gw := gguf.NewWriter()
	set := func(k string, v gguf.Value) { gw.Set(k, v) }
	set("general.architecture", gguf.String("bert"))
	set("general.name", gguf.String("tiny-bert"))
	set("bert.context_length", gguf.Uint32(BERTCtx))
	set("bert.embedding_length", gguf.Uint32(BERTEmbd))
	set("bert.feed_forward_length", gguf.Uint32(BERTFF))
	set("bert.block_count", gguf.Uint32(BERTLayers))
	set("bert.attention.head_count", gguf.Uint32(BERTHeads))
	set("bert.attention.layer_norm_epsilon", gguf.Float32(BERTEps))
	set("bert.attention.causal", gguf.Bool(false))
	set("bert.pooling_type", gguf.Uint32(pooling))
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
		case len(data) == BERTEmbd || len(data) == BERTFF:
			shape = []uint64{uint64(len(data))}
		case len(data) == BERTFF*BERTEmbd && filepath.Ext(name) == ".weight" && strings.Contains(name, "ffn_up"):
			shape = []uint64{BERTEmbd, BERTFF}
		case len(data) == BERTFF*BERTEmbd:
			shape = []uint64{BERTFF, BERTEmbd}
		default:
			shape = []uint64{BERTEmbd, BERTEmbd}
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
