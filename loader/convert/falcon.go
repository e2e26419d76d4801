package convert

import (
	"fmt"
	"regexp"

	"github.com/llm-go/llm/loader/safetensors"
)

// FalconForCausalLM (Falcon-7B, Falcon-40B, Falcon-180B, Falcon2-11B; not
// Falcon 3, which is Llama's, nor Falcon-H1) → GGUF arch "falcon": the
// attention and the MLP side by side on LayerNorms of the block's input
// (one, input_layernorm; or with new_decoder_architecture two, ln_attn for
// the attention and ln_mlp for the MLP, unless num_ln_in_parallel_attn is
// 1), a fused query_key_value without biases, the rope rotating halves
// (NEOX), an MLP of dense_h_to_4h, GELU (the exact form; llama.cpp's tanh
// form within 1e-3) and dense_4h_to_h, the head tied by default.
//
// query_key_value is written as llama.cpp's query, key and value blocks:
// as stored with multi_query (one key/value head after the queries);
// regrouped with new_decoder_architecture (per key/value head, its group
// of queries, then its key and value) and without either (per head, its
// query, key and value). ALiBi, sequential blocks and biases, which
// llama.cpp's falcon does not run, are refused.

// falconConfig holds FalconConfig's names.
type falconConfig struct {
	NumKVHeads    *int   `json:"num_kv_heads"`
	MultiQuery    *bool  `json:"multi_query"`
	NewDecoder    *bool  `json:"new_decoder_architecture"`
	ParallelAttn  *bool  `json:"parallel_attn"`
	Bias          *bool  `json:"bias"`
	Alibi         *bool  `json:"alibi"`
	NumLNParallel *int   `json:"num_ln_in_parallel_attn"`
	FFNHidden     *int   `json:"ffn_hidden_size"`
	Activation    string `json:"activation"`
}

// falconDefaults reads FalconConfig's names and defaults into the keys the
// Llama path reads (before hparams): the MLP width (ffn_hidden_size, else
// 4 × hidden), the key/value heads, 2048 positions, a tied head, exact
// GELU; and refuses what llama.cpp's falcon does not run.
func (c *hfConfig) falconDefaults(arch archSpec) error {
	if c.falconErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.falconErr)
	}
	f := c.Falcon
	is := func(b *bool, def bool) bool {
		if b == nil {
			return def
		}
		return *b
	}
	switch {
	case is(f.Alibi, false):
		return fmt.Errorf("%w: %s with alibi true: llama.cpp's falcon has a rope", ErrUnsupported, arch.hf)
	case !is(f.ParallelAttn, true):
		return fmt.Errorf("%w: %s with parallel_attn false: llama.cpp's falcon runs the attention and the MLP side by side", ErrUnsupported, arch.hf)
	case is(f.Bias, false):
		return fmt.Errorf("%w: %s with bias true: llama.cpp's falcon has no biases", ErrUnsupported, arch.hf)
	}
	if c.IntermediateSize <= 0 {
		c.IntermediateSize = 4 * c.HiddenSize
		if f.FFNHidden != nil && *f.FFNHidden > 0 {
			c.IntermediateSize = *f.FFNHidden
		}
	}
	switch {
	case is(f.NewDecoder, false):
		if f.NumKVHeads != nil {
			c.NumKeyValueHeads = *f.NumKVHeads
		} else {
			c.NumKeyValueHeads = c.NumAttentionHeads
		}
	case is(f.MultiQuery, true):
		c.NumKeyValueHeads = 1
	default:
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.MaxPositionEmbeddings <= 0 {
		c.MaxPositionEmbeddings = 2048
	}
	if c.TieWordEmbeddings == nil {
		tied := true
		c.TieWordEmbeddings = &tied
	}
	return nil
}

// falconHparams checks the activation and reads the LayerNorm epsilon
// (layer_norm_epsilon, 1e-5 by default) and the tied head.
func (c *hfConfig) falconHparams(arch archSpec, h *hparams) error {
	h.rmsEps = 1e-5
	if c.LayerNormEpsilon != nil {
		h.rmsEps = *c.LayerNormEpsilon
	}
	switch act := c.falconActivation(); act {
	case "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
	default:
		return fmt.Errorf("%w: %s with activation %q: llama.cpp's falcon runs GELU", ErrUnsupported, arch.hf, act)
	}
	if h.headDim*h.heads != h.hidden {
		return fmt.Errorf("%w: %s with %d heads of %d: llama.cpp's falcon projects the queries to hidden_size %d", ErrUnsupported, arch.hf, h.heads, h.headDim, h.hidden)
	}
	h.tied = c.TieWordEmbeddings == nil || *c.TieWordEmbeddings
	return nil
}

// falconActivation is FalconConfig's activation ("gelu" by default).
func (c *hfConfig) falconActivation() string {
	if c.Falcon.Activation != "" {
		return c.Falcon.Activation
	}
	return "gelu"
}

var falconLayerRE = regexp.MustCompile(`^transformer\.h\.(\d+)\.(.+)$`)

// planFalcon maps a FalconForCausalLM checkpoint's tensors.
func planFalcon(st *safetensors.Model, arch archSpec, h hparams, c *hfConfig) ([]tensorPlan, error) {
	H, F, D := int64(h.hidden), int64(h.ffn), h.headDim
	QKV := int64((h.heads + 2*h.kvHeads) * D)
	layer := map[string]bertTensor{
		"self_attention.query_key_value.weight": {"attn_qkv.weight", []int64{QKV, H}},
		"self_attention.dense.weight":           {"attn_output.weight", []int64{H, H}},
		"mlp.dense_h_to_4h.weight":              {"ffn_up.weight", []int64{F, H}},
		"mlp.dense_4h_to_h.weight":              {"ffn_down.weight", []int64{H, F}},
	}
	newDecoder := c.Falcon.NewDecoder != nil && *c.Falcon.NewDecoder
	twoNorms := newDecoder && (c.Falcon.NumLNParallel == nil || *c.Falcon.NumLNParallel != 1)
	if twoNorms {
		layer["ln_mlp.weight"], layer["ln_mlp.bias"] = bertTensor{"attn_norm.weight", []int64{H}}, bertTensor{"attn_norm.bias", []int64{H}}
		layer["ln_attn.weight"], layer["ln_attn.bias"] = bertTensor{"attn_norm_2.weight", []int64{H}}, bertTensor{"attn_norm_2.bias", []int64{H}}
	} else {
		layer["input_layernorm.weight"], layer["input_layernorm.bias"] = bertTensor{"attn_norm.weight", []int64{H}}, bertTensor{"attn_norm.bias", []int64{H}}
	}
	// The rows of query_key_value in llama.cpp's order (nil: as stored).
	var rows []int
	switch {
	case newDecoder:
		g := h.heads / h.kvHeads
		rows = make([]int, 0, int(QKV))
		for q := range h.heads {
			for j := range D {
				rows = append(rows, (q/g)*(g+2)*D+(q%g)*D+j)
			}
		}
		for part := range 2 {
			for kv := range h.kvHeads {
				for j := range D {
					rows = append(rows, kv*(g+2)*D+(g+part)*D+j)
				}
			}
		}
	case h.kvHeads > 1:
		rows = perHeadQKV(h.heads, D)
	}
	nc := namedCheckpoint{embed: "transformer.word_embeddings.weight", finalNorm: "transformer.ln_f", head: "lm_head.weight",
		blockRE: falconLayerRE, layer: layer}
	if rows != nil {
		nc.regroup = map[string][]int{"self_attention.query_key_value.weight": rows}
	}
	return planNamed(st, arch, h, nc)
}
