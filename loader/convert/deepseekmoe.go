package convert

import (
	"fmt"

	"github.com/llm-go/llm/loader/safetensors"
)

// DeepseekForCausalLM (DeepSeek-MoE 16B base and chat, DeepSeek's first
// mixture of experts) → GGUF arch "deepseek": Llama's attention without
// biases (q and k permuted for llama.cpp's adjacent-pair rope, as for
// Llama) and a sharedMoE MLP (sharedmoe.go): first_k_dense_replace dense
// layers, then n_routed_experts experts behind a softmax router and
// n_shared_experts shared ones. Neither DeepSeek-MoE's gate nor llama.cpp's
// deepseek renormalises or scales the top-k weights (expert_weights_scale,
// which llama.cpp requires, is written as 1 and applies nothing;
// routed_scaling_factor is not DeepSeek-MoE's), so norm_topk_prob true,
// sigmoid scores and grouped routing are refused.

// deepseekMoEHparams reads and checks a DeepSeek-MoE config; h has the
// generic fields.
func (c *hfConfig) deepseekMoEHparams(arch archSpec, h *hparams) error {
	switch {
	case c.DeepSeek.AttentionBias:
		return fmt.Errorf("%w: %s with attention_bias true: llama.cpp's deepseek has no attention biases", ErrUnsupported, arch.hf)
	case h.headDim*h.heads != h.hidden:
		return fmt.Errorf("%w: %s with %d heads of %d: llama.cpp's deepseek projects the queries to hidden_size %d", ErrUnsupported, arch.hf, h.heads, h.headDim, h.hidden)
	}
	s, err := c.sharedMoEHparams(arch, h)
	if err != nil {
		return err
	}
	switch {
	case s.norm:
		return fmt.Errorf("%w: %s with norm_topk_prob true: llama.cpp's deepseek does not renormalise the top-k weights", ErrUnsupported, arch.hf)
	case s.sigmoid:
		return fmt.Errorf("%w: %s with scoring_func sigmoid: llama.cpp's deepseek routes by softmax", ErrUnsupported, arch.hf)
	case s.groups > 0 || s.scoreBias:
		return fmt.Errorf("%w: %s with topk_method %q: llama.cpp's deepseek routes greedily", ErrUnsupported, arch.hf, c.DeepSeek.TopkMethod)
	}
	h.smoe = s
	return nil
}

// planDeepseekMoE maps a DeepSeek-MoE checkpoint's tensors.
func planDeepseekMoE(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, Q, KV := int64(h.hidden), int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	attn := func(n int, suffix string, t safetensors.TensorInfo, add addFunc) (bool, error) {
		p := tensorPlan{ggufName: fmt.Sprintf("blk.%d.", n), layer: n}
		var want []int64
		switch suffix {
		case "input_layernorm.weight":
			p.ggufName += "attn_norm.weight"
			want = []int64{H}
		case "post_attention_layernorm.weight":
			p.ggufName += "ffn_norm.weight"
			want = []int64{H}
		case "self_attn.q_proj.weight":
			p.ggufName += "attn_q.weight"
			p.permute, want = h.heads, []int64{Q, H}
		case "self_attn.k_proj.weight":
			p.ggufName += "attn_k.weight"
			p.permute, want = h.kvHeads, []int64{KV, H}
		case "self_attn.v_proj.weight":
			p.ggufName += "attn_v.weight"
			want = []int64{KV, H}
		case "self_attn.o_proj.weight":
			p.ggufName += "attn_output.weight"
			want = []int64{H, Q}
		default:
			return false, nil
		}
		return true, add(p, t, want)
	}
	return planSharedMoEModel(st, arch, h, attn, []string{"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output"})
}
