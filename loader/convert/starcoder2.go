package convert

import (
	"fmt"
	"log/slog"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Starcoder2ForCausalLM (StarCoder2 3B, 7B, 15B) → GGUF arch "starcoder2":
// pre-norm blocks with LayerNorms (weights and biases, norm_epsilon),
// grouped-query attention with the rope rotating halves (llama.cpp's
// NEOX, so q and k are not permuted) and, with use_bias (the default),
// biases on every projection, an ungated MLP (mlp.c_fc, GELU in its tanh
// form, mlp.c_proj) with biases, a final LayerNorm and the head tied to the
// embeddings or not.
//
// transformers attends within sliding_window (4096) positions; llama.cpp's
// starcoder2 attends to all of them. Up to the window the two are the
// same, so the context written is the window when it is shorter than
// max_position_embeddings (16384), as far as the model is what it was
// trained as.

// starcoder2Config holds Starcoder2Config's names.
type starcoder2Config struct {
	NormEpsilon *float64 `json:"norm_epsilon"`
	UseBias     *bool    `json:"use_bias"`
}

// starcoder2Hparams reads Starcoder2Config's keys into h (read as Llama's
// by hparams): the LayerNorm epsilon (1e-5 by default), biases, the
// activation, and the context cut to the sliding window.
func (c *hfConfig) starcoder2Hparams(arch archSpec, h *hparams) error {
	if c.sc2Err != nil {
		return fmt.Errorf("convert: config.json: %w", c.sc2Err)
	}
	h.rmsEps = 1e-5
	if c.Starcoder2.NormEpsilon != nil {
		h.rmsEps = *c.Starcoder2.NormEpsilon
	}
	h.biases = c.Starcoder2.UseBias == nil || *c.Starcoder2.UseBias
	// PretrainedConfig's default: the head is the embeddings.
	h.tied = c.TieWordEmbeddings == nil || *c.TieWordEmbeddings
	switch c.HiddenAct {
	case "", "gelu_pytorch_tanh", "gelu_new", "gelu_fast":
		// llama.cpp's GELU is the tanh form.
	default:
		return fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's starcoder2 runs GELU in its tanh form", ErrUnsupported, arch.hf, c.HiddenAct)
	}
	if w := positiveInt(c.SlidingWindow); w > 0 && w < h.ctxLen {
		slog.Info("convert: context cut to the sliding window (llama.cpp's starcoder2 attends to every position; transformers within the window)",
			"architecture", arch.hf, "max_position_embeddings", h.ctxLen, "sliding_window", w)
		h.ctxLen = w
	} else if len(c.SlidingWindow) > 0 && !isNull(c.SlidingWindow) && w == 0 {
		return fmt.Errorf("%w: config.json: sliding_window %s is not a positive integer", ErrMismatch, c.SlidingWindow)
	}
	return nil
}

// starcoder2Keys writes the LayerNorm epsilon under LayerNorm's key.
func starcoder2Keys(w *gguf.Writer, a string, h hparams) {
	w.Delete(a + ".attention.layer_norm_rms_epsilon")
	w.Set(a+".attention.layer_norm_epsilon", gguf.Float32(float32(h.rmsEps)))
}

// planStarcoder2 maps a Starcoder2ForCausalLM checkpoint's tensors.
func planStarcoder2(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, F := int64(h.hidden), int64(h.ffn)
	q, kv := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	layer := map[string]bertTensor{
		"input_layernorm.weight":          {"attn_norm.weight", []int64{H}},
		"input_layernorm.bias":            {"attn_norm.bias", []int64{H}},
		"self_attn.q_proj.weight":         {"attn_q.weight", []int64{q, H}},
		"self_attn.k_proj.weight":         {"attn_k.weight", []int64{kv, H}},
		"self_attn.v_proj.weight":         {"attn_v.weight", []int64{kv, H}},
		"self_attn.o_proj.weight":         {"attn_output.weight", []int64{H, q}},
		"post_attention_layernorm.weight": {"ffn_norm.weight", []int64{H}},
		"post_attention_layernorm.bias":   {"ffn_norm.bias", []int64{H}},
		"mlp.c_fc.weight":                 {"ffn_up.weight", []int64{F, H}},
		"mlp.c_proj.weight":               {"ffn_down.weight", []int64{H, F}},
	}
	biases := map[string]bertTensor{
		"self_attn.q_proj.bias": {"attn_q.bias", []int64{q}},
		"self_attn.k_proj.bias": {"attn_k.bias", []int64{kv}},
		"self_attn.v_proj.bias": {"attn_v.bias", []int64{kv}},
		"self_attn.o_proj.bias": {"attn_output.bias", []int64{H}},
		"mlp.c_fc.bias":         {"ffn_up.bias", []int64{F}},
		"mlp.c_proj.bias":       {"ffn_down.bias", []int64{H}},
	}
	if h.biases {
		for k, v := range biases {
			layer[k] = v
		}
	}
	pl := newPlanner(st, h)
	for _, t := range st.Tensors() {
		if ignoredRE.MatchString(t.Name) || t.Name == "lm_head.weight" && h.tied {
			continue
		}
		if t.Name == "model.norm.bias" {
			if err := pl.add(tensorPlan{ggufName: "output_norm.bias", layer: -1}, t, []int64{H}); err != nil {
				return nil, err
			}
			continue
		}
		if ok, err := pl.outer(t, llamaEmb, llamaNorm); ok || err != nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		n, suffix, err := blockOf(layerRE, t.Name, h.layers, arch)
		if err != nil {
			return nil, err
		}
		b, ok := layer[suffix]
		if !ok {
			why := ""
			if _, bias := biases[suffix]; bias {
				why = " (config.json says use_bias false)"
			}
			return nil, fmt.Errorf("%w tensor %q in a %s checkpoint%s", ErrUnsupported, t.Name, arch.hf, why)
		}
		if err := pl.add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, b.name), layer: n}, t, b.shape); err != nil {
			return nil, err
		}
	}
	required := []string{"token_embd.weight", "output_norm.weight", "output_norm.bias"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n := range h.layers {
		for _, b := range layer {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, b.name))
		}
	}
	return pl.finish(required)
}
