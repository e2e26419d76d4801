package convert

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// Ling, inclusionAI's mixtures of experts, in two generations that share
// their names: the embeddings model.word_embeddings, the attention's
// query_key_value holding the queries, keys and values as three blocks (the
// rows of num_attention_heads, then twice num_key_value_heads heads) and
// dense, an MLP of num_experts experts routed to num_experts_per_tok of
// them with num_shared_experts shared ones (a sharedMoE, sharedmoe.go), and
// norm_head: the head's columns divided by their L2 norms over the
// vocabulary (plus 1e-7), folded into output.weight.
//
// BailingMoeForCausalLM (Ling-lite, Ling-plus, Ling-Coder-lite, Ling-lite-1.5)
// → GGUF arch "bailingmoe": query_key_value split into q, k and v, q and k
// permuted for llama.cpp's adjacent-pair rope over whole heads; experts in
// every layer behind softmax scores, the top-k weights renormalised when
// norm_topk_prob (true by default) and not scaled.
//
// BailingMoeV2ForCausalLM (Ling 2.0 and Ring 2.0: mini, flash, 1T) → GGUF
// arch "bailingmoe2": query_key_value kept fused (llama.cpp views its
// blocks), per-head RMS norms of q and k (query_layernorm, key_layernorm)
// before a rope rotating halves of the first partial_rotary_factor (or
// rotary_dim) dimensions of each head, nothing permuted; the first
// first_k_dense_replace layers dense, the others routed as the model's gate
// routes whatever the config says: sigmoid scores, the selection bias
// (mlp.gate.expert_bias, used whenever the checkpoint has it) picking the
// experts within the topk_group best of n_group groups, the top-k weights
// always renormalised (when more than one is used) and scaled by
// routed_scaling_factor. BailingMoeV2Config's defaults apply (no biases,
// epsilon 1e-6, 32768 positions, 8 groups of which 4 are chosen), but the
// scale and the rotated fraction are required: the copies of the config
// class disagree on their defaults (1 or 2.5; the whole head in the
// model's code, half in convert_hf_to_gguf.py).
//
// BailingMoeConfig (Ling 1.0) defaults use_bias to true, which llama.cpp's
// bailingmoe cannot run: a Ling 1.0 config without it is refused. With
// norm_head and tied embeddings, whether the embeddings are normalised too
// is not settled: that is refused.

// bailingConfig holds BailingMoeConfig's and BailingMoeV2Config's names.
type bailingConfig struct {
	RotaryDim        *int     `json:"rotary_dim"`
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

// bailingDefaults sets BailingMoeConfig's and BailingMoeV2Config's
// defaults that the generic path reads, and the rotated fraction from
// rotary_dim.
func (c *hfConfig) bailingDefaults(arch archSpec) error {
	if c.bailingErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.bailingErr)
	}
	v2 := arch.gguf == "bailingmoe2"
	if c.RMSNormEps == nil && !v2 {
		eps := 1e-5 // BailingMoeConfig's; BailingMoeV2Config's is the generic 1e-6
		c.RMSNormEps = &eps
	}
	if c.MaxPositionEmbeddings <= 0 {
		c.MaxPositionEmbeddings = 16384
		if v2 {
			c.MaxPositionEmbeddings = 32768
		}
	}
	headDim := c.HeadDim
	if headDim <= 0 && c.NumAttentionHeads > 0 {
		headDim = c.HiddenSize / c.NumAttentionHeads
	}
	partial := c.PartialRotaryFactor
	if params, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); err == nil && params != nil && partial == nil {
		partial = params.PartialRotaryFactor
	}
	if r := c.Bailing.RotaryDim; r != nil {
		switch {
		case headDim <= 0 || *r <= 0 || *r > headDim:
			return fmt.Errorf("%w: config.json: rotary_dim %d for heads of %d", ErrMismatch, *r, headDim)
		case partial != nil && int(*partial*float64(headDim)+1e-9) != *r:
			return fmt.Errorf("%w: config.json: rotary_dim %d and partial_rotary_factor %v (%d of %d dimensions) disagree", ErrMismatch, *r, *partial, int(*partial*float64(headDim)+1e-9), headDim)
		case partial == nil:
			f := float64(*r) / float64(headDim)
			c.PartialRotaryFactor, partial = &f, &f
		}
	}
	if v2 && partial == nil {
		return fmt.Errorf("%w: %s without partial_rotary_factor or rotary_dim: the model's code then rotates whole heads, convert_hf_to_gguf.py half of each", ErrUnsupported, arch.hf)
	}
	return nil
}

// bailingHparams reads and checks a Ling config; h has the generic fields.
func (c *hfConfig) bailingHparams(arch archSpec, h *hparams) error {
	b, d, v2 := c.Bailing, &c.DeepSeek, arch.gguf == "bailingmoe2"
	refuse := func(setting, why string) error {
		return fmt.Errorf("%w: %s with %s: llama.cpp's %s %s", ErrUnsupported, arch.hf, setting, arch.gguf, why)
	}
	switch {
	case b.UseQKVBias != nil && *b.UseQKVBias:
		return refuse("use_qkv_bias true", "has no query, key or value biases")
	case b.UseBias == nil && !v2:
		return refuse("no use_bias (BailingMoeConfig's default is true)", "has no attention or MLP biases")
	case b.UseBias != nil && *b.UseBias:
		return refuse("use_bias true", "has no attention or MLP biases")
	case v2 && b.UseQKNorm != nil && !*b.UseQKNorm:
		return refuse("use_qk_norm false", "normalises every query and key head")
	case !v2 && b.UseQKNorm != nil && *b.UseQKNorm:
		return refuse("use_qk_norm true", "has no query and key norms (Ling 2.0 is BailingMoeV2ForCausalLM)")
	case b.NormHead != nil && *b.NormHead && h.tied:
		return fmt.Errorf("%w: %s with norm_head and tie_word_embeddings true: whether the model's code normalises the embeddings with the head is not settled", ErrUnsupported, arch.hf)
	case b.UseSlidingWindow != nil && *b.UseSlidingWindow:
		return refuse("use_sliding_window true", "attends to every position")
	case v2 && b.ScoreFunction != "" && b.ScoreFunction != "sigmoid":
		return refuse(fmt.Sprintf("score_function %q", b.ScoreFunction), "routes by sigmoid scores, as the model's gate does")
	case !v2 && b.ScoreFunction != "" && b.ScoreFunction != "softmax":
		return refuse(fmt.Sprintf("score_function %q", b.ScoreFunction), "routes by softmax scores")
	case !v2 && b.ExpertBias != nil && *b.ExpertBias:
		return refuse("moe_router_enable_expert_bias true", "has no selection bias")
	case !v2 && d.NGroup != nil && *d.NGroup > 1:
		return refuse(fmt.Sprintf("n_group %d", *d.NGroup), "routes without groups of experts")
	case !v2 && d.RoutedScalingFactor != nil && *d.RoutedScalingFactor != 1:
		return refuse(fmt.Sprintf("routed_scaling_factor %v", *d.RoutedScalingFactor), "does not scale the experts' weights")
	case !v2 && d.FirstKDenseReplace != 0:
		return refuse(fmt.Sprintf("first_k_dense_replace %d", d.FirstKDenseReplace), "has experts in every layer")
	case v2 && h.heads*h.headDim != h.hidden:
		return refuse(fmt.Sprintf("%d heads of %d for hidden_size %d", h.heads, h.headDim, h.hidden), "splits query_key_value at hidden_size")
	case c.MoE.NumExperts < 2:
		return fmt.Errorf("%w: config.json: num_experts %d: a mixture needs 2 or more", ErrMismatch, c.MoE.NumExperts)
	case b.NumSharedExperts == nil:
		return refuse("no num_shared_experts", "needs a shared expert")
	case *b.NumSharedExperts < 1:
		return refuse(fmt.Sprintf("num_shared_experts %d", *b.NumSharedExperts), "needs a shared expert")
	case b.SharedFFN != nil && *b.SharedFFN <= 0:
		return fmt.Errorf("%w: config.json: moe_shared_expert_intermediate_size %d is not positive", ErrMismatch, *b.SharedFFN)
	case !v2 && b.SharedFFN != nil && *b.SharedFFN != c.MoE.MoeIntermediateSize:
		return refuse(fmt.Sprintf("moe_shared_expert_intermediate_size %d (not moe_intermediate_size %d)", *b.SharedFFN, c.MoE.MoeIntermediateSize),
			"sizes the shared experts by moe_intermediate_size")
	}
	d.NRoutedExperts, d.NSharedExperts = c.MoE.NumExperts, b.NumSharedExperts
	d.ScoringFunc, d.TopkMethod = "softmax", ""
	if v2 {
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
			return fmt.Errorf("%w: %s without routed_scaling_factor: copies of BailingMoeV2Config default it to 1 or 2.5 (convert_hf_to_gguf.py requires it)", ErrUnsupported, arch.hf)
		}
	}
	s, err := c.sharedMoEHparams(arch, h)
	if err != nil {
		return err
	}
	if v2 {
		// The gate renormalises whatever norm_topk_prob says; whether it
		// has the selection bias is the checkpoint's (planBailing).
		s.norm = h.expertsUsed > 1
	} else {
		s.norm = (c.MoE.NormTopkProb == nil || *c.MoE.NormTopkProb) && h.expertsUsed > 1
		s.scale = 1
	}
	if b.SharedFFN != nil {
		s.sharedFFN = *b.SharedFFN
	}
	s.emb, s.bias = bailingEmb, "expert_bias"
	h.smoe = s
	h.normHead = b.NormHead != nil && *b.NormHead
	return nil
}

// planBailing maps a Ling checkpoint's tensors.
func planBailing(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, D := int64(h.hidden), int64(h.headDim)
	Q, KV := int64(h.heads)*D, int64(h.kvHeads)*D
	names := map[string]bertTensor{
		"input_layernorm.weight":           {"attn_norm.weight", []int64{H}},
		"post_attention_layernorm.weight":  {"ffn_norm.weight", []int64{H}},
		"attention.query_key_value.weight": {"attn_qkv.weight", []int64{Q + 2*KV, H}},
		"attention.dense.weight":           {"attn_output.weight", []int64{H, Q}},
	}
	required := []string{"attn_norm", "ffn_norm", "attn_output"}
	v2 := arch.gguf == "bailingmoe2"
	if v2 {
		// The gate adds its selection bias whenever the checkpoint has
		// one, whatever moe_router_enable_expert_bias says.
		h.smoe.scoreBias = slices.ContainsFunc(st.Tensors(), func(t safetensors.TensorInfo) bool {
			return strings.HasSuffix(t.Name, ".mlp.gate."+h.smoe.biasName())
		})
		names["attention.query_layernorm.weight"] = bertTensor{"attn_q_norm.weight", []int64{D}}
		names["attention.key_layernorm.weight"] = bertTensor{"attn_k_norm.weight", []int64{D}}
		required = append(required, "attn_qkv", "attn_q_norm", "attn_k_norm")
	} else {
		required = append(required, "attn_q", "attn_k", "attn_v")
	}
	attn := func(n int, suffix string, t safetensors.TensorInfo, add addFunc) (bool, error) {
		b, ok := names[suffix]
		if !ok {
			return false, nil
		}
		if v2 || suffix != "attention.query_key_value.weight" {
			return true, add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, b.name), layer: n}, t, b.shape)
		}
		// Ling 1.0: q, k and v apart, q and k in llama.cpp's
		// adjacent-pair order.
		if t.DType == safetensors.F8E4M3 {
			return true, fmt.Errorf("%w: tensor %q is FP8: Ling 1.0's query_key_value is split from F32, F16 or BF16 weights", ErrUnsupported, t.Name)
		}
		heads, d := h.heads, h.headDim
		for _, p := range rowPlans(st, t.Name, n, h.hidden,
			rowPart{"attn_q", pairRows(0, heads, d)},
			rowPart{"attn_k", pairRows(heads*d, h.kvHeads, d)},
			rowPart{"attn_v", rowRange(heads*d+h.kvHeads*d, h.kvHeads*d)}) {
			if err := add(p, t, b.shape); err != nil {
				return true, err
			}
		}
		return true, nil
	}
	plan, err := planSharedMoEModel(st, arch, h, attn, required)
	if err != nil || !h.normHead {
		return plan, err
	}
	for i := range plan {
		if plan[i].ggufName == "output.weight" {
			if plan[i].colScale, err = headColumnScales(st, plan[i].hfName, h.vocab, h.hidden); err != nil {
				return nil, err
			}
		}
	}
	return plan, nil
}

// headColumnScales are norm_head's factors for the [vocab, hidden] head
// name: 1 / (the L2 norm of each column + 1e-7), read a block of rows at a
// time.
func headColumnScales(st *safetensors.Model, name string, vocab, hidden int) ([]float32, error) {
	sums := make([]float64, hidden)
	const block = 4096
	for r := 0; r < vocab; r += block {
		n := min(block, vocab-r)
		vals, err := readSpan(st, name, int64(r)*int64(hidden), int64(n)*int64(hidden))
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			sums[i%hidden] += float64(v) * float64(v)
		}
	}
	out := make([]float32, hidden)
	for j, s := range sums {
		out[j] = float32(1 / (math.Sqrt(s) + 1e-7))
	}
	return out, nil
}

// bailingEmb is Ling's name of the embeddings.
var bailingEmb = []string{"model.word_embeddings.weight"}
