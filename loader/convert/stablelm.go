package convert

import (
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// StableLmForCausalLM (StableLM-3B-4E1T, StableLM Zephyr 3B, stable-code-3b,
// StableLM 2 1.6B and 12B) → GGUF arch "stablelm": pre-norm blocks on
// LayerNorms with biases, Llama's attention and gated SiLU MLP, the rope
// rotating halves (llama.cpp's NEOX, so q and k are not permuted) over the
// first partial_rotary_factor (0.25) of each head, and an untied head:
//
//   - use_qkv_bias (StableLM 2 1.6B): biases on q, k and v, not on o.
//   - qk_layernorm (StableLM 2 12B): a LayerNorm without bias per head on
//     the queries and keys before the rope, stored one module per head
//     (self_attn.q_layernorm.norms.N.weight) and written stacked as
//     attn_q_norm.weight [head_dim, heads] (attn_k_norm per key/value
//     head).
//   - use_parallel_residual (StableLM 2 12B): the attention and the MLP
//     side by side on the block's one LayerNorm (no
//     post_attention_layernorm), which llama.cpp's stablelm runs when a
//     block has no ffn_norm.
//
// StableLmConfig's defaults apply where config.json is silent: 4096
// positions, epsilon 1e-5, SiLU, an untied head (written from the
// embeddings when tied: llama.cpp's stablelm requires one).

// planStableLM maps a StableLmForCausalLM checkpoint's tensors.
func planStableLM(st *safetensors.Model, arch archSpec, h hparams, c *hfConfig) ([]tensorPlan, error) {
	H, F := int64(h.hidden), int64(h.ffn)
	q, kv := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	layer := map[string]bertTensor{
		"input_layernorm.weight":  {"attn_norm.weight", []int64{H}},
		"input_layernorm.bias":    {"attn_norm.bias", []int64{H}},
		"self_attn.q_proj.weight": {"attn_q.weight", []int64{q, H}},
		"self_attn.k_proj.weight": {"attn_k.weight", []int64{kv, H}},
		"self_attn.v_proj.weight": {"attn_v.weight", []int64{kv, H}},
		"self_attn.o_proj.weight": {"attn_output.weight", []int64{H, q}},
		"mlp.gate_proj.weight":    {"ffn_gate.weight", []int64{F, H}},
		"mlp.up_proj.weight":      {"ffn_up.weight", []int64{F, H}},
		"mlp.down_proj.weight":    {"ffn_down.weight", []int64{H, F}},
	}
	if !h.parallel {
		layer["post_attention_layernorm.weight"] = bertTensor{"ffn_norm.weight", []int64{H}}
		layer["post_attention_layernorm.bias"] = bertTensor{"ffn_norm.bias", []int64{H}}
	}
	if h.attnBias {
		layer["self_attn.q_proj.bias"] = bertTensor{"attn_q.bias", []int64{q}}
		layer["self_attn.k_proj.bias"] = bertTensor{"attn_k.bias", []int64{kv}}
		layer["self_attn.v_proj.bias"] = bertTensor{"attn_v.bias", []int64{kv}}
	}
	nc := namedCheckpoint{embed: "model.embed_tokens.weight", finalNorm: "model.norm", head: "lm_head.weight",
		blockRE: layerRE, layer: layer, ignore: ignoredRE, needOutput: true}
	if c.LNLlama.QKLayernorm != nil && *c.LNLlama.QKLayernorm {
		nc.perHead = map[string]perHeadStack{
			"self_attn.q_layernorm.norms.": {"attn_q_norm.weight", h.heads, int64(h.headDim)},
			"self_attn.k_layernorm.norms.": {"attn_k_norm.weight", h.kvHeads, int64(h.headDim)},
		}
	}
	return planNamed(st, arch, h, nc)
}

// perHeadStack is a per-head module list a checkpoint stores as one
// tensor per head (PREFIX.N.weight, N < heads, each of size) and llama.cpp
// reads stacked, head by head, as name.
type perHeadStack struct {
	name  string
	heads int
	size  int64
}

// perHeadPart reports whether suffix is a tensor of one of nc.perHead's
// stacks, which, and its head (-1 when not a head of the stack).
func (nc *namedCheckpoint) perHeadPart(suffix string) (prefix string, head int, ok bool) {
	for p, s := range nc.perHead {
		rest, found := strings.CutPrefix(suffix, p)
		if !found {
			continue
		}
		num, found := strings.CutSuffix(rest, ".weight")
		n, err := strconv.Atoi(num)
		if !found || err != nil || n < 0 || n >= s.heads || strconv.Itoa(n) != num {
			return p, -1, true
		}
		return p, n, true
	}
	return "", 0, false
}
