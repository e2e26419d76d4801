package convert

import (
	"fmt"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// JinaBertModel and JinaBertForMaskedLM (jina-embeddings-v2; Jina AI's
// custom modeling code, BertConfig's names) → GGUF arch "jina-bert-v2":
// BERT's post-norm encoder (word and token type 0 embeddings, LayerNormed;
// query, key and value with biases; the attention output, added to the
// input and LayerNormed) with two differences:
//
//   - no position embeddings: every head adds ALiBi's -slope×|i-j| to its
//     attention scores, with the ALiBi paper's slopes: 2^(-8(h+1)/n) when
//     the head count n is a power of two; otherwise those of c =
//     2^⌊log₂n⌋ heads, then every other one of 2c heads' (what ggml's
//     soft_max computes from llama.cpp's fixed maximum bias of 8);
//   - a GEGLU MLP of twice intermediate_size, GELU of one half times the
//     other.
//
// Two layouts are converted:
//
//   - jina-embeddings-v2-small-en and -base-en's: mlp.gated_layers (GELU
//     of the first half; written whole as ffn_up, which llama.cpp splits
//     the same way), mlp.wo with a bias, then mlp.layernorm over the sum
//     with the MLP's input.
//   - jina-embeddings-v2-base-code's (jinaai/jina-bert-v2-qk-post-norm):
//     the queries and keys LayerNormed over the whole projection
//     (attention.self.layer_norm_q/k, llama.cpp's attn_q_norm/attn_k_norm),
//     the attention's LayerNormed output added to the block's input again
//     and LayerNormed (layer_norm_1, llama.cpp's attn_norm_2),
//     mlp.up_gated_layer with the multiplier first and the gate second,
//     written with its halves swapped: ggml's GEGLU passes the first half
//     through GELU, which must be Jina's second. (convert_hf_to_gguf.py,
//     as read here, writes it unswapped, which would gate the multiplier;
//     the swap is deliberate, and the test's reference fails without it.)
//     Then mlp.down_layer and layer_norm_2 over the sum.
//
// Both say feed_forward_type "geglu" and position_embedding_type "alibi";
// JinaBertConfig's defaults ("original", "absolute"), which llama.cpp's
// jina-bert-v2 does not run, and ReGLU are refused. The tokenizer is
// WordPiece (the English models) or RoBERTa's byte-level BPE (the code,
// German and Spanish models; see readVocab). The context is
// max_position_embeddings (8192 as released; ALiBi has no learned limit).

// jinaBertCheck refuses the JinaBertConfig settings llama.cpp's
// jina-bert-v2 cannot run.
func (c *hfConfig) jinaBertCheck(arch archSpec) error {
	switch {
	case c.PositionEmbeddingType != "alibi":
		return fmt.Errorf("%w: %s with position_embedding_type %s: llama.cpp's jina-bert-v2 has ALiBi (\"alibi\") and no position embeddings",
			ErrUnsupported, arch.hf, orDefault(c.PositionEmbeddingType, "absolute"))
	case c.FeedForwardType != "geglu":
		return fmt.Errorf("%w: %s with feed_forward_type %s: llama.cpp's jina-bert-v2 runs a GEGLU MLP (\"geglu\")",
			ErrUnsupported, arch.hf, orDefault(c.FeedForwardType, "original"))
	case c.IsDecoder:
		return fmt.Errorf("%w: %s with is_decoder true (llama.cpp's jina-bert-v2 is a bidirectional encoder)", ErrUnsupported, arch.hf)
	}
	return nil
}

// orDefault describes a JinaBertConfig string: quoted, or absent with its
// default.
func orDefault(v, def string) string {
	if v == "" {
		return fmt.Sprintf("absent (JinaBertConfig's default %q)", def)
	}
	return fmt.Sprintf("%q", v)
}

// jinaLayer turns planBERT's block tensors into JinaBert's, in the layout
// the checkpoint has (see above): the GEGLU MLP in place of BERT's
// intermediate and output layers, and the code model's norms.
func jinaLayer(layer map[string]bertTensor, st *safetensors.Model, h hparams) {
	H, I := int64(h.hidden), int64(h.ffn)
	code := false
	for _, t := range st.Tensors() {
		code = code || strings.Contains(t.Name, ".mlp.up_gated_layer.")
	}
	for k := range layer {
		if strings.HasPrefix(k, "intermediate.") || strings.HasPrefix(k, "output.") {
			delete(layer, k)
		}
	}
	vec := func(name string) bertTensor { return bertTensor{name, []int64{H}} }
	if !code {
		layer["mlp.gated_layers.weight"] = bertTensor{"ffn_up.weight", []int64{2 * I, H}}
		layer["mlp.wo.weight"] = bertTensor{"ffn_down.weight", []int64{H, I}}
		layer["mlp.wo.bias"] = vec("ffn_down.bias")
		layer["mlp.layernorm.weight"] = vec("layer_output_norm.weight")
		layer["mlp.layernorm.bias"] = vec("layer_output_norm.bias")
		return
	}
	for hf, gg := range map[string]string{
		"attention.self.layer_norm_q": "attn_q_norm", "attention.self.layer_norm_k": "attn_k_norm",
		"layer_norm_1": "attn_norm_2", "layer_norm_2": "layer_output_norm", "mlp.down_layer": "ffn_down",
	} {
		layer[hf+".weight"], layer[hf+".bias"] = vec(gg+".weight"), vec(gg+".bias")
	}
	layer["mlp.down_layer.weight"] = bertTensor{"ffn_down.weight", []int64{H, I}}
	// Its halves swapped by planBERT.
	layer["mlp.up_gated_layer.weight"] = bertTensor{"ffn_up.weight", []int64{2 * I, H}}
}
