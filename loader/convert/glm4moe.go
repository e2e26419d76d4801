package convert

import (
	"fmt"
	"slices"

	"github.com/llm-go/llm/loader/safetensors"
)

// GLM-4.5 (Glm4MoeForCausalLM: GLM-4.5, GLM-4.5-Air, GLM-4.6) → GGUF arch
// "glm4moe", as convert_hf_to_gguf.py writes it:
//
//   - Attention: q/k/v projections with biases (attention_bias, which
//     llama.cpp's graph requires), per-head q_norm/k_norm when
//     use_qk_norm, a NEOX rope on the first partial_rotary_factor of each
//     head (rope.dimension_count), no output bias; post_attention_layernorm
//     (the norm before the MLP) is written as post_attention_norm, the
//     name llama.cpp's glm4moe reads it by.
//   - The MLP is a sharedMoE (sharedmoe.go) with DeepSeek V3's router:
//     sigmoid scores, e_score_correction_bias, routed_scaling_factor.
//   - The tokenizer's Llama 3 regex is written as llama.cpp's "glm4"
//     pre-tokenizer (the same regex, with no BOS), [gMASK] as BOS, <|user|>
//     as end of turn and <|observation|> as end of message, as
//     convert_hf_to_gguf.py sets them, so that generation stops where the
//     model hands the turn back.
//
// The multi-token-prediction layer is skipped; llama.cpp reads
// nextn_predict_layers as 0 and runs every block written.

// GLM-4 (Glm4ForCausalLM: GLM-4-9B-0414, GLM-4-32B-0414, GLM-Z1) →
// GGUF arch "glm4": the attention as GLM-4.5's but rotating interleaved
// pairs (llama.cpp's "norm" rope, which the checkpoint's layout is
// already), q/k/v biases optional, and sandwich norms:
// post_self_attn_layernorm after the attention (post_attention_norm),
// post_attention_layernorm before the MLP (ffn_norm) and
// post_mlp_layernorm after it (post_ffw_norm); gate_up_proj stays fused
// as ffn_up, which llama.cpp splits in halves, gate first. llama.cpp's
// glm4 sizes the attention output by the hidden size, so head_dim ×
// heads must equal it. The tokenizer is GLM-4.5's.
//
// GLM (GlmForCausalLM: GLM-4-9B-Chat-HF, GLM-4-9B-HF, GLM-Edge) → GGUF
// arch "chatglm": GLM-4's blocks without the sandwich norms
// (input_layernorm before the attention, post_attention_layernorm before
// the MLP), which is llama.cpp's chatglm graph; the same rope, fused MLP,
// sizes and tokenizer (llama.cpp's "glm4" and "chatglm-bpe" pre-tokenizers
// are one). A checkpoint with GLM-4-0414's post norms is refused.

// glm4Names are GLM-4's per-layer names that differ from Llama's.
var glm4Names = map[string]string{
	"post_self_attn_layernorm.weight": "post_attention_norm.weight",
	"post_mlp_layernorm.weight":       "post_ffw_norm.weight",
	"mlp.gate_up_proj.weight":         "ffn_up.weight",
}

// glm4Hparams checks a GLM-4 config.
func glm4Hparams(arch archSpec, h *hparams) error {
	if h.headDim*h.heads != h.hidden {
		return fmt.Errorf("%w: %s with head_dim %d × %d heads ≠ hidden_size %d (llama.cpp's %s sizes the attention by the hidden size)", ErrUnsupported, arch.hf, h.headDim, h.heads, h.hidden, arch.gguf)
	}
	return nil
}

// glmConfig holds config.json's GLM-4.5 fields.
type glmConfig struct {
	UseQKNorm     bool  `json:"use_qk_norm"`
	AttentionBias *bool `json:"attention_bias"`
}

// glm4moeHparams reads and checks a GLM-4.5 config; h has the generic
// fields.
func (c *hfConfig) glm4moeHparams(arch archSpec, h *hparams) error {
	if b := c.GLM.AttentionBias; b != nil && !*b {
		return fmt.Errorf("%w: %s with attention_bias false (llama.cpp's glm4moe graph requires the q/k/v biases)", ErrUnsupported, arch.hf)
	}
	s, err := c.sharedMoEHparams(arch, h)
	if err != nil {
		return err
	}
	h.smoe = s
	return nil
}

// planGLM4MoE maps a GLM-4.5 checkpoint's tensors to glm4moe's.
func planGLM4MoE(st *safetensors.Model, arch archSpec, h hparams, qkNorm bool) ([]tensorPlan, error) {
	H, hd := int64(h.hidden), int64(h.headDim)
	Q, KV := int64(h.heads)*hd, int64(h.kvHeads)*hd
	shapes := map[string]struct {
		gguf  string
		shape []int64
	}{
		"input_layernorm.weight":          {"attn_norm.weight", []int64{H}},
		"post_attention_layernorm.weight": {"post_attention_norm.weight", []int64{H}},
		"self_attn.q_proj.weight":         {"attn_q.weight", []int64{Q, H}},
		"self_attn.k_proj.weight":         {"attn_k.weight", []int64{KV, H}},
		"self_attn.v_proj.weight":         {"attn_v.weight", []int64{KV, H}},
		"self_attn.q_proj.bias":           {"attn_q.bias", []int64{Q}},
		"self_attn.k_proj.bias":           {"attn_k.bias", []int64{KV}},
		"self_attn.v_proj.bias":           {"attn_v.bias", []int64{KV}},
		"self_attn.o_proj.weight":         {"attn_output.weight", []int64{H, Q}},
	}
	if qkNorm {
		shapes["self_attn.q_norm.weight"] = struct {
			gguf  string
			shape []int64
		}{"attn_q_norm.weight", []int64{hd}}
		shapes["self_attn.k_norm.weight"] = struct {
			gguf  string
			shape []int64
		}{"attn_k_norm.weight", []int64{hd}}
	}
	attn := func(n int, suffix string, t safetensors.TensorInfo, add addFunc) (bool, error) {
		s, ok := shapes[suffix]
		if !ok && (suffix == "self_attn.q_norm.weight" || suffix == "self_attn.k_norm.weight") {
			return true, fmt.Errorf("%w tensor %q in a %s checkpoint: per-head q/k norms with use_qk_norm false", ErrUnsupported, t.Name, arch.hf)
		}
		if !ok {
			return false, nil
		}
		return true, add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, s.gguf), layer: n}, t, s.shape)
	}
	required := []string{"attn_norm", "post_attention_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q.bias", "attn_k.bias", "attn_v.bias"}
	if qkNorm {
		required = append(required, "attn_q_norm", "attn_k_norm")
	}
	return planSharedMoEModel(st, arch, h, attn, required)
}

// glmVocab sets GLM-4.5's special tokens (see above).
func glmVocab(v *vocab) {
	id := func(tok string) int { return slices.Index(v.tokens, tok) }
	if v.pre == "llama-bpe" {
		v.pre = "glm4"
	}
	if i := id("[gMASK]"); i >= 0 {
		v.bos = i
	}
	v.eot, v.eom = id("<|user|>"), id("<|observation|>")
	// The chat template writes [gMASK]<sop> itself; nothing is added
	// (llama.cpp's glm4 pre-tokenizer adds no BOS either).
	f := false
	v.addBOS = &f
}
