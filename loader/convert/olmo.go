package convert

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// OLMo 2 (Olmo2ForCausalLM) and OLMo 3 (Olmo3ForCausalLM) → GGUF arch
// "olmo2". Their blocks normalise after each sublayer rather than before
// it: no input_layernorm; post_attention_layernorm normalises the
// attention output and post_feedforward_layernorm the MLP output, each
// before the residual add (post_attention_norm, post_ffw_norm). q_norm
// and k_norm are RMS norms over the whole query and key projections
// (hidden_size and KV heads × head size wide), not per head. Rope is
// rotate_half (NEOX): no permutation. OLMo 3 adds sliding-window attention
// in three layers of every four (layer_types; llama.cpp fixes that
// pattern), and its rope scaling applies to the full-attention layers
// only, as llama.cpp's graph applies it.

// olmoNames are OLMo 2's per-layer norm names.
var olmoNames = map[string]string{
	"post_attention_layernorm.weight":   "post_attention_norm.weight",
	"post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}

// OLMoE (OlmoeForCausalLM) → GGUF arch "olmoe": pre-norm blocks as
// Llama's, OLMo 2's q/k norms over the whole projections, NEOX rope, and
// experts in every layer (mlp.gate, mlp.experts.N.*_proj) whose top-k
// softmax weights are not renormalised (norm_topk_prob false, OlmoeConfig's
// default; llama.cpp's graph fixes that). intermediate_size is an expert's
// width. clip_qkv, which llama.cpp's olmoe graph does not apply, is refused,
// and so are fewer KV heads than heads (llama.cpp sizes k_norm by
// hidden_size).

// olmoeMoE is OLMoE's mixture of experts (OlmoeSparseMoeBlock).
var olmoeMoE = &moeSpec{router: "mlp.gate.weight", experts: regexp.MustCompile(`^mlp\.experts\.(\d+)\.(\w+_proj\.weight)$`),
	gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight"}

// olmoHparams checks what llama.cpp's olmo2 and olmoe graphs fix: a head
// size of hidden_size / num_attention_heads, no clip_qkv and, for OLMo 3,
// sliding-window attention in layers 0, 1, 2 of every four.
func (c *hfConfig) olmoHparams(arch archSpec, h *hparams) error {
	if h.headDim*h.heads != h.hidden {
		return fmt.Errorf("%w: %s with head_dim %d × %d heads ≠ hidden_size %d: llama.cpp's %s graph takes the head size from hidden_size", ErrUnsupported, arch.hf, h.headDim, h.heads, h.hidden, arch.gguf)
	}
	if arch.moe == olmoeMoE && h.kvHeads != h.heads {
		return fmt.Errorf("%w: %s with %d KV heads for %d heads: llama.cpp's olmoe graph sizes k_norm by hidden_size", ErrUnsupported, arch.hf, h.kvHeads, h.heads)
	}
	if c.ClipQKV != nil {
		return fmt.Errorf("%w: %s with clip_qkv %v: llama.cpp's %s graph does not clip q, k and v", ErrUnsupported, arch.hf, *c.ClipQKV, arch.gguf)
	}
	if arch.exaone4 {
		return c.exaone4Hparams(arch, h)
	}
	if !arch.olmo3 {
		return nil
	}
	h.slidingWindow = 4096 // Olmo3Config's default
	if sw := positiveInt(c.SlidingWindow); sw > 0 {
		h.slidingWindow = sw
	} else if !isNull(c.SlidingWindow) {
		return fmt.Errorf("%w: config.json: sliding_window %s is not a positive integer", ErrMismatch, c.SlidingWindow)
	}
	sliding, err := c.slidingLayers(h.layers)
	if err != nil {
		return err
	}
	for i, s := range sliding {
		if s != (i%4 != 3) {
			return fmt.Errorf("%w: %s with layer_types %s: llama.cpp's olmo2 graph uses a sliding window in layers 0-2 of every four and full attention in the fourth", ErrUnsupported, arch.hf, c.LayerTypes)
		}
	}
	return nil
}

// OlmoForCausalLM (OLMo 1: OLMo-1B-hf, OLMo-7B-hf, OLMo-7B-0424-hf and
// -0724-hf) → GGUF arch "olmo": Llama's blocks and names with LayerNorms
// that have no weights or biases (transformers' OlmoLayerNorm, its epsilon
// fixed at 1e-5; none in the checkpoint, none in llama.cpp's olmo), the
// queries, keys and values clamped to ±clip_qkv when set, the rope
// rotating halves (q and k permuted for llama.cpp's olmo, as for Llama).

// olmo1Config holds OlmoConfig's clip_qkv.
type olmo1Config struct {
	ClipQKV *float64 `json:"clip_qkv"`
}

// olmo1Defaults reads OlmoConfig's clip_qkv, which must be positive when
// set.
func (c *hfConfig) olmo1Defaults() error {
	if c.olmo1Err != nil {
		return fmt.Errorf("convert: config.json: %w", c.olmo1Err)
	}
	if v := c.Olmo1.ClipQKV; v != nil && (!(*v > 0) || math.IsInf(*v, 0)) {
		return fmt.Errorf("%w: config.json: clip_qkv %v is not a positive number", ErrMismatch, *v)
	}
	return nil
}

// EXAONE 4.0 (Exaone4ForCausalLM) → GGUF arch "exaone4": OLMo 2's blocks
// (norms after each sublayer only) with per-head q/k norms, NEOX rope
// (llama3 scaling as rope_freqs), and in the sliding-window models (32B)
// a window in layers 0-2 of every four, the fourth global and without
// rope. llama.cpp's exaone4 uses a sliding window only in 64-layer models
// and then in that pattern, so other layouts with a window are refused.

// exaone4Hparams reads EXAONE 4.0's layer types as transformers builds
// them: layer_types, else with a sliding_window (absent: 4096; null: none)
// sliding_window_pattern (absent: 4), a count whose last of each is global
// or a string of L (sliding) and G (global). transformers rotates a layer
// only without a window or when it slides.
func (c *hfConfig) exaone4Hparams(arch archSpec, h *hparams) error {
	sliding := make([]bool, h.layers)
	window := positiveInt(c.SlidingWindow)
	switch {
	case c.SlidingWindow == nil:
		window = 4096 // Exaone4Config's default
	case !isNull(c.SlidingWindow) && window == 0:
		return fmt.Errorf("%w: config.json: sliding_window %s is not a positive integer", ErrMismatch, c.SlidingWindow)
	}
	switch {
	case !isNull(c.LayerTypes):
		var err error
		if sliding, err = c.slidingLayers(h.layers); err != nil {
			return err
		}
	case window > 0:
		pattern := "LLLG" // sliding_window_pattern 4, the default
		if c.SlidingWindowPattern != nil {
			if n := positiveInt(c.SlidingWindowPattern); n > 0 {
				pattern = strings.Repeat("L", n-1) + "G"
			} else if json.Unmarshal(c.SlidingWindowPattern, &pattern) != nil || pattern == "" || strings.Trim(pattern, "LG") != "" {
				return fmt.Errorf("%w: config.json: sliding_window_pattern %s: want a count or a string of L and G", ErrMismatch, c.SlidingWindowPattern)
			}
		}
		for i := range sliding {
			sliding[i] = pattern[i%len(pattern)] == 'L'
		}
	}
	anySliding := slices.Contains(sliding, true)
	switch {
	case anySliding && window == 0:
		return fmt.Errorf("%w: config.json: %s with sliding layers has no positive sliding_window", ErrMismatch, arch.hf)
	case !anySliding && window > 0:
		return fmt.Errorf("%w: %s with a sliding_window and no sliding layer: transformers rotates no layer then, llama.cpp every one", ErrUnsupported, arch.hf)
	case !anySliding && h.layers == 64:
		return fmt.Errorf("%w: %s of 64 layers without a sliding window: llama.cpp's exaone4 uses one in every 64-layer model", ErrUnsupported, arch.hf)
	case !anySliding:
		return nil
	}
	for i, s := range sliding {
		if h.layers != 64 || s != (i%4 != 3) {
			return fmt.Errorf("%w: %s with sliding layers in %d layers: llama.cpp's exaone4 uses a window only in 64-layer models, in layers 0-2 of every four", ErrUnsupported, arch.hf, h.layers)
		}
	}
	h.slidingWindow = window
	return nil
}
