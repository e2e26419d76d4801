package convert

import (
	"fmt"
	"math"

	"github.com/llm-go/llm/loader/gguf"
)

// Command R (CohereForCausalLM: Command R 35B, Command R+, Aya 23, Aya
// Expanse) → GGUF arch "command-r", as convert_hf_to_gguf.py writes it:
// every norm is a LayerNorm without bias (layer_norm_eps, written as
// attention.layer_norm_epsilon); each block runs the attention and the
// MLP in parallel on one norm (input_layernorm) and adds both to the
// residual; the rope rotates interleaved pairs, which is llama.cpp's
// "norm" rope on the checkpoint's layout as it is; the logits are
// multiplied by logit_scale (CohereConfig's default 0.0625); the
// embeddings are the output. With use_qk_norm (Command R+), q and k get
// per-head LayerNorms whose weights differ per head ([heads, head_dim]);
// llama.cpp reads them by the layer count alone (64 or more), so a
// config whose use_qk_norm disagrees with it is refused.
// llama.cpp sizes q and the attention output by the hidden size, so
// head_dim × heads must equal it.

// cohereHparams reads Command R's norm epsilon, logit scale and q/k norms.
func (c *hfConfig) cohereHparams(arch archSpec, h *hparams) error {
	if h.headDim*h.heads != h.hidden {
		return fmt.Errorf("%w: %s with head_dim %d × %d heads ≠ hidden_size %d (llama.cpp's command-r sizes the attention by the hidden size)", ErrUnsupported, arch.hf, h.headDim, h.heads, h.hidden)
	}
	h.rmsEps = 1e-5 // CohereConfig's layer_norm_eps
	if c.LayerNormEps != nil {
		h.rmsEps = *c.LayerNormEps
	}
	h.logitScale = 0.0625
	if c.LogitScale != nil {
		h.logitScale = *c.LogitScale
	}
	if !(h.logitScale > 0) || math.IsInf(h.logitScale, 0) || !(h.rmsEps > 0) {
		return fmt.Errorf("%w: config.json: logit_scale %v and layer_norm_eps %v must be positive", ErrMismatch, h.logitScale, h.rmsEps)
	}
	h.cohereQKNorm = c.GLM.UseQKNorm
	if arch.cohere2 {
		return c.cohere2Hparams(arch, h)
	}
	// Command R's max_position_embeddings (8192) is not what it was
	// trained for: model_max_length (131072) is, as
	// convert_hf_to_gguf.py reads it.
	if n := positiveInt(c.ModelMaxLength); n > 0 {
		h.ctxLen = n
	}
	if h.cohereQKNorm != (h.layers >= 64) {
		return fmt.Errorf("%w: %s with use_qk_norm %v and %d layers: llama.cpp's command-r reads q/k norms for 64 layers or more (Command R+) and only then", ErrUnsupported, arch.hf, h.cohereQKNorm, h.layers)
	}
	return nil
}

// cohere2Hparams checks Cohere2's layers against llama.cpp's fixed
// pattern: layers 4k+3 global (no rope, full attention), the others
// sliding-window with rope.
func (c *hfConfig) cohere2Hparams(arch archSpec, h *hparams) error {
	if h.cohereQKNorm {
		return fmt.Errorf("%w: %s with use_qk_norm (llama.cpp's cohere2 has no q/k norms)", ErrUnsupported, arch.hf)
	}
	h.slidingWindow = positiveInt(c.SlidingWindow)
	if len(c.SlidingWindow) == 0 {
		h.slidingWindow = 4096 // Cohere2Config's default
	}
	if h.slidingWindow == 0 {
		return fmt.Errorf("%w: config.json: %s with sliding_window %s: llama.cpp's cohere2 needs a positive window", ErrMismatch, arch.hf, c.SlidingWindow)
	}
	if p := positiveInt(c.SlidingWindowPattern); !isNull(c.SlidingWindowPattern) && p != 4 {
		return fmt.Errorf("%w: %s with sliding_window_pattern %s: llama.cpp's cohere2 makes every fourth layer global", ErrUnsupported, arch.hf, c.SlidingWindowPattern)
	}
	sliding, err := c.slidingLayers(h.layers)
	if err != nil {
		return err
	}
	for i, s := range sliding {
		if s != ((i+1)%4 != 0) {
			return fmt.Errorf("%w: %s with layer_types %s: llama.cpp's cohere2 makes every fourth layer global, the others sliding", ErrUnsupported, arch.hf, c.LayerTypes)
		}
	}
	return nil
}

// cohereKeys writes the LayerNorm epsilon (in place of the RMS one) and
// the logit scale.
func cohereKeys(w *gguf.Writer, a string, h hparams) {
	w.Delete(a + ".attention.layer_norm_rms_epsilon")
	w.Set(a+".attention.layer_norm_epsilon", gguf.Float32(float32(h.rmsEps)))
	w.Set(a+".logit_scale", gguf.Float32(float32(h.logitScale)))
	if h.slidingWindow > 0 {
		w.Set(a+".attention.sliding_window", gguf.Uint32(uint32(h.slidingWindow)))
	}
}
