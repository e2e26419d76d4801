package convert

import (
	"fmt"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// JinaBertModel and JinaBertForMaskedLM (jina-embeddings-v2-small-en and
// -base-en; Jina AI's custom modeling code, BertConfig's names) → GGUF
// arch "jina-bert-v2": BERT's post-norm encoder (word and token type 0
// embeddings, LayerNormed; query, key and value with biases; the attention
// output, added to the input and LayerNormed) with two differences:
//
//   - no position embeddings: every head adds ALiBi's -slope×|i-j| to its
//     attention scores, with the ALiBi paper's slopes: 2^(-8(h+1)/n) when
//     the head count n is a power of two; otherwise those of c =
//     2^⌊log₂n⌋ heads, then every other one of 2c heads' (what ggml's
//     soft_max computes from llama.cpp's fixed maximum bias of 8);
//   - a GEGLU MLP: gated_layers projects to twice intermediate_size, GELU
//     of the first half times the second half goes through wo (with a
//     bias), is added to the MLP's input and LayerNormed (layernorm).
//     gated_layers is written whole as ffn_up, which llama.cpp splits the
//     same way.
//
// Only that layout is converted: feed_forward_type "geglu" and
// position_embedding_type "alibi" (JinaBertConfig's defaults are
// "original" and "absolute", which llama.cpp's jina-bert-v2 does not run,
// nor ReGLU). The code model's layout (jina-embeddings-v2-base-code: q/k
// LayerNorms, a second attention norm, up_gated_layer with the multiplier
// first and the gate second, down_layer) is refused: llama.cpp has the
// tensors for it, but without its modeling code at hand the converter has
// no reference to check it against. So are the German and Spanish models'
// BPE tokenizers (jina-v2-de, jina-v2-es), by the vocabulary's check. The
// context is max_position_embeddings (8192 as released; ALiBi has no
// learned limit).

// jinaBertCheck refuses the JinaBertConfig settings llama.cpp's
// jina-bert-v2 cannot run.
func (c *hfConfig) jinaBertCheck(arch archSpec) error {
	or := func(v, def string) string {
		if v == "" {
			return fmt.Sprintf("absent (JinaBertConfig's default %q)", def)
		}
		return fmt.Sprintf("%q", v)
	}
	switch {
	case c.PositionEmbeddingType != "alibi":
		return fmt.Errorf("%w: %s with position_embedding_type %s: llama.cpp's jina-bert-v2 has ALiBi (\"alibi\") and no position embeddings",
			ErrUnsupported, arch.hf, or(c.PositionEmbeddingType, "absolute"))
	case c.FeedForwardType != "geglu":
		return fmt.Errorf("%w: %s with feed_forward_type %s: llama.cpp's jina-bert-v2 runs a GEGLU MLP (\"geglu\")",
			ErrUnsupported, arch.hf, or(c.FeedForwardType, "original"))
	case c.IsDecoder:
		return fmt.Errorf("%w: %s with is_decoder true (llama.cpp's jina-bert-v2 is a bidirectional encoder)", ErrUnsupported, arch.hf)
	}
	return nil
}

// jinaLayer turns planBERT's block tensors into JinaBert's: the GEGLU MLP
// in place of BERT's intermediate and output layers.
func jinaLayer(layer map[string]bertTensor, H, I int64) {
	for k := range layer {
		if strings.HasPrefix(k, "intermediate.") || strings.HasPrefix(k, "output.") {
			delete(layer, k)
		}
	}
	layer["mlp.gated_layers.weight"] = bertTensor{"ffn_up.weight", []int64{2 * I, H}}
	layer["mlp.wo.weight"] = bertTensor{"ffn_down.weight", []int64{H, I}}
	layer["mlp.wo.bias"] = bertTensor{"ffn_down.bias", []int64{H}}
	layer["mlp.layernorm.weight"] = bertTensor{"layer_output_norm.weight", []int64{H}}
	layer["mlp.layernorm.bias"] = bertTensor{"layer_output_norm.bias", []int64{H}}
}

// checkJinaLayout refuses the jina-embeddings-v2-base-code layout by name
// before its tensors are reported one by one.
func checkJinaLayout(st *safetensors.Model, arch archSpec) error {
	for _, t := range st.Tensors() {
		for _, part := range []string{".layer_norm_q.", ".layer_norm_k.", ".up_gated_layer.", ".layer_norm_1.", ".down_layer."} {
			if strings.Contains(t.Name, part) {
				return fmt.Errorf("%w: %s: tensor %q is of jina-embeddings-v2-base-code's layout (q/k norms, a second attention norm, up_gated_layer); only jina-embeddings-v2-small-en and -base-en's are converted",
					ErrUnsupported, arch.hf, t.Name)
			}
		}
	}
	return nil
}
