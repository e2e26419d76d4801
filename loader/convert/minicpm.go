package convert

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"

	"github.com/llm-go/llm/loader/gguf"
)

// MiniCPMForCausalLM (OpenBMB's MiniCPM-1B and 2B, MiniCPM-2B-128k,
// MiniCPM4-0.5B and 8B, MiniCPM4.1) → GGUF arch "minicpm", which llama.cpp
// runs on Granite's graph: Llama's blocks (q and k permuted for the
// adjacent-pair rope) with MiniCPM's µP scales written as Granite's
// multipliers:
//   - embedding_scale: scale_emb, multiplying the embeddings;
//   - residual_scale: scale_depth / sqrt(num_hidden_layers), multiplying
//     each block's attention and MLP output before it is added;
//   - logit_scale: hidden_size / dim_model_base, dividing the final hidden
//     state before the head.
//
// A key config.json lacks is MiniCPMConfig's default of 1 (no released
// model lacks them; convert_hf_to_gguf.py requires them). use_mup false (a MiniCPM4 option that leaves some of the
// scales out) is refused, since which ones its code leaves out is not
// settled here. MiniCPM4's longrope is converted as Phi-3's; its code picks
// the long factors whenever max_position_embeddings exceeds
// original_max_position_embeddings, whatever the length, where llama.cpp
// picks them by the context size, so such a config is refused; so is one
// whose max_position_embeddings is below its original length, as MiniCPM's
// rope then scales cos and sin below 1, where the longrope written (as
// transformers computes it) scales by 1. MiniCPM4's
// sparse attention (sparse_config, InfLLM v2) attends densely up to its
// dense_len; llama.cpp attends densely at every length, which is logged.
// PretrainedConfig's default ties the head to the embeddings when
// tie_word_embeddings is absent, as MiniCPM-2B's config.json leaves it.

// miniCPMConfig holds MiniCPM's names.
type miniCPMConfig struct {
	ScaleEmb     *float64        `json:"scale_emb"`
	ScaleDepth   *float64        `json:"scale_depth"`
	DimModelBase *float64        `json:"dim_model_base"`
	UseMup       *bool           `json:"use_mup"`
	SparseConfig json.RawMessage `json:"sparse_config"`
}

// miniCPMDefaults sets the defaults the generic path reads.
func (c *hfConfig) miniCPMDefaults() {
	if c.TieWordEmbeddings == nil {
		tied := true
		c.TieWordEmbeddings = &tied
	}
}

// miniCPMHparams reads and checks MiniCPM's scales: the embedding, residual
// and logit scales llama.cpp's minicpm applies.
func (c *hfConfig) miniCPMHparams(arch archSpec, h *hparams) error {
	if c.miniCPMErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.miniCPMErr)
	}
	m := c.MiniCPM
	if m.UseMup != nil && !*m.UseMup {
		return fmt.Errorf("%w: %s with use_mup false: which of MiniCPM's scales its code then leaves out is not settled (convert_hf_to_gguf.py applies them all)", ErrUnsupported, arch.hf)
	}
	if c.MoE.NumExperts > 0 {
		return fmt.Errorf("%w: %s with num_experts %d (MiniCPM-MoE): its experts are not converted", ErrUnsupported, arch.hf, c.MoE.NumExperts)
	}
	scales := m.scales()
	for _, f := range []struct {
		name string
		v    float64
	}{{"scale_emb", scales[0]}, {"scale_depth", scales[1]}, {"dim_model_base", scales[2]}} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%w: config.json: %s is %v; it must be positive", ErrMismatch, f.name, f.v)
		}
	}
	if err := miniCPMLongrope(arch, *h); err != nil {
		return err
	}
	if !isNull(m.SparseConfig) {
		slog.Info("convert: MiniCPM's sparse attention (sparse_config) is not converted: llama.cpp attends to every position, as MiniCPM does up to its dense_len", "architecture", arch.hf)
	}
	h.mup = &miniCPMScales{emb: scales[0], residual: scales[1] / math.Sqrt(float64(h.layers)), logit: float64(h.hidden) / scales[2]}
	return nil
}

// scales returns scale_emb, scale_depth and dim_model_base, each 1 (the
// config classes' default) when absent.
func (m miniCPMConfig) scales() [3]float64 {
	out := [3]float64{1, 1, 1}
	for i, v := range []*float64{m.ScaleEmb, m.ScaleDepth, m.DimModelBase} {
		if v != nil {
			out[i] = *v
		}
	}
	return out
}

// miniCPMLongrope refuses a MiniCPM longrope llama.cpp would run otherwise:
// MiniCPM's rope picks its factors once, by max_position_embeddings, and
// scales cos and sin by sqrt(1 + ln(max/original)/ln(original)) even below
// 1.
func miniCPMLongrope(arch archSpec, h hparams) error {
	switch {
	case h.rope.kind != ropeLongrope:
	case h.ctxLen > h.rope.origCtx:
		return fmt.Errorf("%w: %s with longrope and max_position_embeddings %d above original_max_position_embeddings %d: MiniCPM's rope then uses the long factors at every length, llama.cpp below %d the short ones",
			ErrUnsupported, arch.hf, h.ctxLen, h.rope.origCtx, h.rope.origCtx)
	case h.ctxLen < h.rope.origCtx:
		return fmt.Errorf("%w: %s with longrope and max_position_embeddings %d below original_max_position_embeddings %d: MiniCPM's rope then scales cos and sin below 1, the longrope llama.cpp runs by 1",
			ErrUnsupported, arch.hf, h.ctxLen, h.rope.origCtx)
	case math.Abs(h.rope.attnFactor-1) > 1e-9:
		return fmt.Errorf("%w: %s with a longrope attention factor of %v: MiniCPM's rope reads none (at its original length it scales cos and sin by 1)", ErrUnsupported, arch.hf, h.rope.attnFactor)
	}
	return nil
}

// miniCPMScales are MiniCPM's µP scales as llama.cpp applies them: emb
// multiplies the embeddings, residual each block's outputs, and logit
// divides the final hidden state.
type miniCPMScales struct{ emb, residual, logit float64 }

// miniCPMKeys writes MiniCPM's scales.
func miniCPMKeys(w *gguf.Writer, a string, h hparams) {
	w.Set(a+".embedding_scale", gguf.Float32(float32(h.mup.emb)))
	w.Set(a+".residual_scale", gguf.Float32(float32(h.mup.residual)))
	w.Set(a+".logit_scale", gguf.Float32(float32(h.mup.logit)))
	if h.rope.kind == ropeLongrope {
		// Granite's loader reads the factor tensors for this type only
		// (phi3's, always).
		w.Set(a+".rope.scaling.type", gguf.String("longrope"))
	}
}
