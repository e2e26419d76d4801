package convert

import (
	"fmt"
	"regexp"

	"github.com/llm-go/llm/loader/safetensors"
)

// BloomForCausalLM (BigScience's BLOOM 560M to 176B, BLOOMZ and their
// fine-tunes) → GGUF arch "bloom": no position embeddings but ALiBi
// (llama.cpp's bloom adds each head's -slope·distance with a maximum bias
// of 8, BLOOM's slopes), LayerNorms with biases (word_embeddings_layernorm
// on the embeddings too), a fused query_key_value holding each head's
// query, key and value in turn (regrouped into llama.cpp's blocks, as for
// GPT-NeoX), an MLP of four times the hidden size through tanh GELU
// (BLOOM's bloom_gelu), biases everywhere, and the head tied to the
// embeddings. BloomConfig's names: n_embed (or hidden_size), n_layer,
// n_head (or num_attention_heads), seq_length for the context (BLOOM's
// training length; ALiBi sets no limit). The checkpoint's names come with
// or without "transformer.". apply_residual_connection_post_layernorm, which
// llama.cpp's graph does not run, is refused.

// bloomConfig holds BloomConfig's names.
type bloomConfig struct {
	NEmbed      int   `json:"n_embed"`
	SeqLength   int   `json:"seq_length"`
	PostLNResid *bool `json:"apply_residual_connection_post_layernorm"`
}

// bloomHparams reads a BLOOM config.
func (c *hfConfig) bloomHparams(arch archSpec) (hparams, error) {
	if c.bloomErr != nil {
		return hparams{}, fmt.Errorf("convert: config.json: %w", c.bloomErr)
	}
	b := c.Bloom
	// BloomConfig takes n_embed over hidden_size, and the attribute_map
	// aliases num_hidden_layers and num_attention_heads over n_layer and
	// n_head.
	h := hparams{hidden: c.HiddenSize, layers: c.NumHiddenLayers, heads: c.NumAttentionHeads, vocab: c.VocabSize, ctxLen: b.SeqLength, rmsEps: 1e-5,
		tied: c.TieWordEmbeddings == nil || *c.TieWordEmbeddings}
	if b.NEmbed > 0 {
		h.hidden = b.NEmbed
	}
	if h.layers <= 0 {
		h.layers = c.NLayer
	}
	if h.heads <= 0 {
		h.heads = c.NHead
	}
	if h.ctxLen <= 0 {
		h.ctxLen = 2048 // BLOOM's training length
	}
	if c.LayerNormEpsilon != nil {
		h.rmsEps = *c.LayerNormEpsilon
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"n_embed (or hidden_size)", h.hidden}, {"n_layer (or num_hidden_layers)", h.layers}, {"n_head (or num_attention_heads)", h.heads}, {"vocab_size", h.vocab}} {
		if f.v <= 0 {
			return h, fmt.Errorf("%w: config.json: %s is missing or not positive", ErrMismatch, f.name)
		}
	}
	if h.hidden%h.heads != 0 {
		return h, fmt.Errorf("%w: config.json: the hidden size %d is not a multiple of the %d heads", ErrMismatch, h.hidden, h.heads)
	}
	if b.PostLNResid != nil && *b.PostLNResid {
		return h, fmt.Errorf("%w: %s with apply_residual_connection_post_layernorm true: llama.cpp's bloom adds each block's input to its output", ErrUnsupported, arch.hf)
	}
	h.kvHeads, h.headDim, h.ffn = h.heads, h.hidden/h.heads, 4*h.hidden
	return h, nil
}

// bloomIgnored are the buffers some BLOOM checkpoints carry.
var bloomIgnored = regexp.MustCompile(`(^|\.)h\.\d+\.self_attention\.(bias|masked_bias)$`)

// planBloom maps a BLOOM checkpoint's tensors.
func planBloom(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H := int64(h.hidden)
	layer := neoxBlock("self_attention", h)
	prefix := ""
	if _, ok := st.Tensor("transformer.word_embeddings.weight"); ok {
		prefix = "transformer."
	}
	regroup := perHeadQKV(h.heads, h.headDim)
	return planNamed(st, arch, h, namedCheckpoint{embed: prefix + "word_embeddings.weight", finalNorm: prefix + "ln_f", head: "lm_head.weight",
		blockRE: regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `h\.(\d+)\.(.+)$`), layer: layer, ignore: bloomIgnored,
		outer: map[string]bertTensor{
			prefix + "word_embeddings_layernorm.weight": {"token_embd_norm.weight", []int64{H}},
			prefix + "word_embeddings_layernorm.bias":   {"token_embd_norm.bias", []int64{H}},
		},
		regroup: map[string][]int{"self_attention.query_key_value.weight": regroup, "self_attention.query_key_value.bias": regroup}})
}
