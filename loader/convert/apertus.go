package convert

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Apertus (ApertusForCausalLM: Swiss AI's Apertus 8B and 70B) → GGUF arch
// "apertus": Llama's attention (NEOX rope, as transformers' rotate_half;
// llama3 rope scaling as rope_freqs) with per-head RMS norms on q and k,
// its norms named attention_layernorm and feedforward_layernorm, and an
// MLP of up_proj, xIELU and down_proj without a gate. Each layer's xIELU
// has its own parameters (mlp.act_fn.alpha_p, alpha_n, beta, eps, one
// value each), written as they are stored, one per layer, in the
// xielu.alpha_p, alpha_n, beta and eps keys: llama.cpp, as transformers,
// takes softplus(alpha_p) and beta + softplus(alpha_n). Attention and MLP
// biases, which llama.cpp's apertus graph does not add to q, k and v, are
// refused.

// apertusConfig holds config.json's Apertus fields.
type apertusConfig struct {
	QKNorm        *bool `json:"qk_norm"`
	PostNorm      *bool `json:"post_norm"`
	AttentionBias *bool `json:"attention_bias"`
}

// apertusDefaults fills in what ApertusConfig assumes when config.json
// leaves it out: rope_theta 12e6, llama3 rope scaling (factor 8 over 8192
// positions, low and high frequency factors 1 and 4) when neither
// rope_scaling nor rope_parameters is there (an explicit null means none),
// and 65536 positions.
func (c *hfConfig) apertusDefaults() {
	if c.RopeTheta == nil && !ropeHasTheta(c.RopeParameters) {
		theta := 12e6
		c.RopeTheta = &theta
	}
	if len(c.RopeScaling) == 0 && len(c.RopeParameters) == 0 {
		c.RopeScaling = json.RawMessage(`{"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192, "low_freq_factor": 1.0, "high_freq_factor": 4.0}`)
	}
	if c.MaxPositionEmbeddings == 0 {
		c.MaxPositionEmbeddings = 65536
	}
}

// apertusHparams checks what llama.cpp's apertus graph fixes.
func (c *hfConfig) apertusHparams(arch archSpec, h *hparams) error {
	if c.apertusErr != nil {
		return fmt.Errorf("%w: config.json: %v", ErrMismatch, c.apertusErr)
	}
	a := c.Apertus
	switch {
	case c.HiddenAct != "" && c.HiddenAct != "xielu":
		return fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's %s runs xIELU", ErrUnsupported, arch.hf, c.HiddenAct, arch.gguf)
	case a.QKNorm != nil && !*a.QKNorm:
		return fmt.Errorf("%w: %s with qk_norm false: llama.cpp's %s norms q and k", ErrUnsupported, arch.hf, arch.gguf)
	case a.PostNorm != nil && *a.PostNorm:
		return fmt.Errorf("%w: %s with post_norm: llama.cpp's %s norms before each sublayer only", ErrUnsupported, arch.hf, arch.gguf)
	case a.AttentionBias != nil && *a.AttentionBias:
		// ApertusMLP has no biases whatever mlp_bias says; a bias tensor
		// is refused as not a tensor of the model.
		return fmt.Errorf("%w: %s with attention_bias: llama.cpp's %s graph adds none to q, k and v", ErrUnsupported, arch.hf, arch.gguf)
	}
	return nil
}

// apertusXIELU are the xIELU parameters of every layer, by their name in
// mlp.act_fn and their GGUF key.
var apertusXIELU = [...]struct{ param, key string }{
	{"alpha_p", "xielu.alpha_p"}, {"alpha_n", "xielu.alpha_n"}, {"beta", "xielu.beta"}, {"eps", "xielu.eps"},
}

// apertusKeys reads each layer's xIELU parameters and writes them, one per
// layer, as llama.cpp's apertus reads them.
func apertusKeys(w *gguf.Writer, a string, st *safetensors.Model, h hparams) error {
	for _, x := range apertusXIELU {
		vals := make([]float32, h.layers)
		for n := range h.layers {
			name := fmt.Sprintf("model.layers.%d.mlp.act_fn.%s", n, x.param)
			v, err := loadFloat32s(st, name, h.fp8Block)
			switch {
			case err != nil:
				return fmt.Errorf("%w: %v", ErrMismatch, err)
			case len(v) != 1 || math.IsNaN(float64(v[0])) || math.IsInf(float64(v[0]), 0):
				return fmt.Errorf("%w: tensor %q: want one finite value, got %d values", ErrMismatch, name, len(v))
			}
			vals[n] = v[0]
		}
		w.Set(x.key, gguf.Float32s(vals)) // llama.cpp reads these keys without the arch prefix
	}
	return nil
}

// planApertus maps an Apertus checkpoint's tensors.
func planApertus(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, F, D := int64(h.hidden), int64(h.ffn), int64(h.headDim)
	pl := newPlanner(st, h)
	add := pl.add
	layer := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		if ok, err := pl.attnProj(n, suffix, t); ok {
			return err
		}
		switch suffix {
		case "attention_layernorm.weight":
			return add(blk("attn_norm.weight"), t, []int64{H})
		case "feedforward_layernorm.weight":
			return add(blk("ffn_norm.weight"), t, []int64{H})
		case "self_attn.q_norm.weight":
			return add(blk("attn_q_norm.weight"), t, []int64{D})
		case "self_attn.k_norm.weight":
			return add(blk("attn_k_norm.weight"), t, []int64{D})
		case "mlp.up_proj.weight":
			return add(blk("ffn_up.weight"), t, []int64{F, H})
		case "mlp.down_proj.weight":
			return add(blk("ffn_down.weight"), t, []int64{H, F})
		}
		for _, x := range apertusXIELU {
			if suffix == "mlp.act_fn."+x.param {
				return nil // written as keys (apertusKeys)
			}
		}
		return fmt.Errorf("%w tensor %q in a %s checkpoint: not a tensor of the model", ErrUnsupported, t.Name, arch.hf)
	}
	if err := pl.walk(arch, layerRE, llamaEmb, llamaNorm, nil, layer); err != nil {
		return nil, err
	}
	if h.tied {
		pl.tiedOutput() // llama.cpp's apertus requires its own output matrix
	}
	required := []string{"token_embd.weight", "output_norm.weight", "output.weight"}
	for n := range h.layers {
		for _, s := range []string{"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm", "attn_k_norm", "ffn_up", "ffn_down"} {
			required = append(required, fmt.Sprintf("blk.%d.%s.weight", n, s))
		}
	}
	return pl.finish(required)
}
