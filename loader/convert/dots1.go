package convert

import (
	"encoding/json"
	"fmt"

	"github.com/llm-go/llm/loader/safetensors"
)

// Dots1ForCausalLM (rednote-hilab's dots.llm1 base and inst) → GGUF arch
// "dots1": Qwen3's attention (per-head q_norm and k_norm, the rope
// rotating halves, so q and k are not permuted; no biases) over as many
// key/value heads as heads, which llama.cpp's dots1 requires, and a
// sharedMoE MLP (sharedmoe.go) routed as DeepSeek V3's: sigmoid scores,
// e_score_correction_bias picking the experts, the top-k weights
// renormalised when norm_topk_prob (false by default) and scaled by
// routed_scaling_factor (1 by default), the experts chosen within the
// topk_group best of n_group groups (expert_group_count,
// expert_group_used_count). transformers' Dots1 routes so whatever
// scoring_func and topk_method say, and so does this converter. llama.cpp's
// dots1 attends to every position, so sliding-window layers are refused.

// dots1Config holds Dots1Config's sliding-window names.
type dots1Config struct {
	SlidingWindow   json.RawMessage `json:"sliding_window"` // absent: 4096; null: none
	MaxWindowLayers *int            `json:"max_window_layers"`
	LayerTypes      json.RawMessage `json:"layer_types"`
}

// dots1Hparams reads and checks a dots.llm1 config; h has the generic
// fields.
func (c *hfConfig) dots1Hparams(arch archSpec, h *hparams) error {
	if c.DeepSeek.AttentionBias {
		return fmt.Errorf("%w: %s with attention_bias true: llama.cpp's dots1 has no attention biases", ErrUnsupported, arch.hf)
	}
	if h.kvHeads != h.heads {
		return fmt.Errorf("%w: %s with %d key/value heads for %d heads: llama.cpp's dots1 runs as many key/value heads as heads", ErrUnsupported, arch.hf, h.kvHeads, h.heads)
	}
	if err := c.dots1Window(arch, h.layers); err != nil {
		return err
	}
	s, err := c.sharedMoEHparams(arch, h)
	if err != nil {
		return err
	}
	h.smoe = s
	return nil
}

// dots1Window refuses sliding-window layers: layer_types' sliding_attention,
// or, without layer_types, a sliding_window with layers from
// max_window_layers on (Dots1Config's defaults: 4096 and 62).
func (c *hfConfig) dots1Window(arch archSpec, layers int) error {
	if c.dots1Err != nil {
		return fmt.Errorf("convert: config.json: %w", c.dots1Err)
	}
	d := c.Dots1
	if !isNull(d.LayerTypes) {
		var types []string
		if err := json.Unmarshal(d.LayerTypes, &types); err != nil {
			return fmt.Errorf("%w: config.json: layer_types: %v", ErrMismatch, err)
		}
		for i, t := range types {
			if t != "full_attention" {
				return fmt.Errorf("%w: %s with layer_types[%d] %q: llama.cpp's dots1 attends to every position", ErrUnsupported, arch.hf, i, t)
			}
		}
		return nil
	}
	maxFull := 62
	if d.MaxWindowLayers != nil {
		maxFull = *d.MaxWindowLayers
	}
	window := "4096 (Dots1Config's default)"
	if d.SlidingWindow != nil {
		window = string(d.SlidingWindow)
	}
	if (d.SlidingWindow == nil || !isNull(d.SlidingWindow)) && maxFull < layers {
		return fmt.Errorf("%w: %s with sliding_window %s from layer max_window_layers %d: llama.cpp's dots1 attends to every position", ErrUnsupported, arch.hf, window, maxFull)
	}
	return nil
}

// planDots1 maps a dots.llm1 checkpoint's tensors.
func planDots1(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, D := int64(h.hidden), int64(h.headDim)
	Q := int64(h.heads) * D
	names := map[string]bertTensor{
		"input_layernorm.weight":          {"attn_norm.weight", []int64{H}},
		"post_attention_layernorm.weight": {"ffn_norm.weight", []int64{H}},
		"self_attn.q_proj.weight":         {"attn_q.weight", []int64{Q, H}},
		"self_attn.k_proj.weight":         {"attn_k.weight", []int64{Q, H}},
		"self_attn.v_proj.weight":         {"attn_v.weight", []int64{Q, H}},
		"self_attn.o_proj.weight":         {"attn_output.weight", []int64{H, Q}},
		"self_attn.q_norm.weight":         {"attn_q_norm.weight", []int64{D}},
		"self_attn.k_norm.weight":         {"attn_k_norm.weight", []int64{D}},
	}
	attn := func(n int, suffix string, t safetensors.TensorInfo, add addFunc) (bool, error) {
		b, ok := names[suffix]
		if !ok {
			return false, nil
		}
		return true, add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, b.name), layer: n}, t, b.shape)
	}
	return planSharedMoEModel(st, arch, h, attn, []string{"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm", "attn_k_norm"})
}
