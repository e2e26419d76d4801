package convert

import (
	"fmt"

	"github.com/llm-go/llm/loader/safetensors"
)

// BailingMoeV2ForCausalLM (inclusionAI's Ling 2.0 and Ring 2.0: Ling-mini,
// Ling-flash, Ring-mini, Ring-flash) → GGUF arch "bailingmoe2". The
// attention's query_key_value holds the queries, keys and values as three
// blocks (the rows of num_attention_heads, then twice num_key_value_heads
// heads), which llama.cpp views as they are; per-head RMS norms of q and k
// (query_layernorm, key_layernorm) come before a rope rotating halves of
// the first partial_rotary_factor (0.5 by default) of each head, so nothing
// is permuted. The MLP is a sharedMoE (sharedmoe.go) routed as the model's
// gate routes whatever the config says: sigmoid scores, the selection bias
// (mlp.gate.expert_bias) picking the experts within the topk_group best of
// n_group groups, the top-k weights always renormalised (when more than one
// is used) and scaled by routed_scaling_factor. BailingMoeV2Config's
// defaults apply: 8 groups, 4 of them chosen, a scale of 2.5, epsilon 1e-5,
// and use_bias true, which llama.cpp's graph cannot run.

// bailingConfig holds BailingMoeV2Config's names.
type bailingConfig struct {
	NumSharedExperts *int     `json:"num_shared_experts"`
	ScoreFunction    string   `json:"score_function"`
	ExpertBias       *bool    `json:"moe_router_enable_expert_bias"`
	UseQKNorm        *bool    `json:"use_qk_norm"`
	UseQKVBias       *bool    `json:"use_qkv_bias"`
	UseBias          *bool    `json:"use_bias"`
	NormHead         *bool    `json:"norm_head"`
	UseSlidingWindow *bool    `json:"use_sliding_window"`
	SharedFFN        *int     `json:"moe_shared_expert_intermediate_size"`
	RoutedScaling    *float64 `json:"routed_scaling_factor"`
}

// bailing2Defaults sets BailingMoeV2Config's defaults that the generic
// path reads.
func (c *hfConfig) bailing2Defaults() {
	if c.RMSNormEps == nil {
		eps := 1e-5
		c.RMSNormEps = &eps
	}
	if c.PartialRotaryFactor == nil && isNull(c.RopeParameters) {
		half := 0.5
		c.PartialRotaryFactor = &half
	}
	if c.MaxPositionEmbeddings <= 0 {
		c.MaxPositionEmbeddings = 16384
	}
}

// bailing2Hparams reads and checks a Ling 2.0 config; h has the generic
// fields.
func (c *hfConfig) bailing2Hparams(arch archSpec, h *hparams) error {
	if c.bailingErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.bailingErr)
	}
	b := c.Bailing
	refuse := func(setting, why string) error {
		return fmt.Errorf("%w: %s with %s: llama.cpp's bailingmoe2 %s", ErrUnsupported, arch.hf, setting, why)
	}
	switch {
	case b.UseQKVBias != nil && *b.UseQKVBias:
		return refuse("use_qkv_bias true", "has no query, key or value biases")
	case b.UseBias == nil:
		return refuse("no use_bias (BailingMoeV2Config's default is true)", "has no bias on the attention's output")
	case *b.UseBias:
		return refuse("use_bias true", "has no bias on the attention's output")
	case b.UseQKNorm != nil && !*b.UseQKNorm:
		return refuse("use_qk_norm false", "normalises every query and key head")
	case b.NormHead != nil && *b.NormHead:
		return refuse("norm_head true", "does not normalise the head's rows")
	case b.UseSlidingWindow != nil && *b.UseSlidingWindow:
		return refuse("use_sliding_window true", "attends to every position")
	case b.ScoreFunction != "" && b.ScoreFunction != "sigmoid":
		return refuse(fmt.Sprintf("score_function %q", b.ScoreFunction), "routes by sigmoid scores, as the model's gate does")
	case h.heads*h.headDim != h.hidden:
		return refuse(fmt.Sprintf("%d heads of %d for hidden_size %d", h.heads, h.headDim, h.hidden), "splits query_key_value at hidden_size")
	case c.MoE.NumExperts < 2:
		return fmt.Errorf("%w: config.json: num_experts %d: a mixture needs 2 or more", ErrMismatch, c.MoE.NumExperts)
	case b.NumSharedExperts == nil || *b.NumSharedExperts < 1:
		return refuse("no num_shared_experts", "needs a shared expert")
	case b.SharedFFN != nil && *b.SharedFFN != c.MoE.MoeIntermediateSize:
		return refuse(fmt.Sprintf("moe_shared_expert_intermediate_size %d (not moe_intermediate_size %d)", *b.SharedFFN, c.MoE.MoeIntermediateSize),
			"reads the shared experts' width as num_shared_experts × moe_intermediate_size")
	}
	d := &c.DeepSeek
	d.NRoutedExperts, d.NSharedExperts = c.MoE.NumExperts, b.NumSharedExperts
	d.ScoringFunc, d.TopkMethod = "sigmoid", "noaux_tc"
	if d.NGroup == nil {
		groups := 8
		d.NGroup = &groups
	}
	if d.TopkGroup == nil {
		used := 4
		d.TopkGroup = &used
	}
	if d.RoutedScalingFactor == nil {
		scale := 2.5
		d.RoutedScalingFactor = &scale
	}
	s, err := c.sharedMoEHparams(arch, h)
	if err != nil {
		return err
	}
	// The gate renormalises whatever norm_topk_prob says, and has the
	// selection bias unless moe_router_enable_expert_bias is false.
	s.norm = h.expertsUsed > 1
	s.scoreBias = b.ExpertBias == nil || *b.ExpertBias
	h.smoe = s
	return nil
}

// planBailing2 maps a Ling 2.0 checkpoint's tensors.
func planBailing2(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, D := int64(h.hidden), int64(h.headDim)
	Q, KV := int64(h.heads)*D, int64(h.kvHeads)*D
	names := map[string]bertTensor{
		"input_layernorm.weight":           {"attn_norm.weight", []int64{H}},
		"post_attention_layernorm.weight":  {"ffn_norm.weight", []int64{H}},
		"attention.query_key_value.weight": {"attn_qkv.weight", []int64{Q + 2*KV, H}},
		"attention.dense.weight":           {"attn_output.weight", []int64{H, Q}},
		"attention.query_layernorm.weight": {"attn_q_norm.weight", []int64{D}},
		"attention.key_layernorm.weight":   {"attn_k_norm.weight", []int64{D}},
	}
	attn := func(n int, suffix string, t safetensors.TensorInfo, add addFunc) (bool, error) {
		b, ok := names[suffix]
		if !ok {
			return false, nil
		}
		return true, add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, b.name), layer: n}, t, b.shape)
	}
	return planSharedMoEModel(st, arch, h, attn, []string{"attn_norm", "ffn_norm", "attn_qkv", "attn_output", "attn_q_norm", "attn_k_norm"})
}

// bailingEmb is Ling 2.0's name of the embeddings.
var bailingEmb = []string{"model.word_embeddings.weight"}
