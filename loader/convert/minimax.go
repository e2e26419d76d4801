package convert

import (
	"fmt"
	"math"
	"regexp"
	"slices"
)

// MiniMax-M2 (MiniMaxM2ForCausalLM: MiniMax-M2, M2.1) → GGUF arch
// "minimax-m2": Mixtral's blocks (experts in every layer, w1 the gate, w3
// the up and w2 the down projection) with RMS norms on q and k over the
// whole projections (qk_norm_type "per_layer"), NEOX rope over the first
// rotary_dim dimensions of each head, and a sigmoid router whose
// e_score_correction_bias picks the experts but does not weight them, the
// weights renormalised (llama.cpp's fixed graph). intermediate_size is an
// expert's width. Its attention is full in every layer: MiniMax-Text-01's
// and M1's lightning attention (attn_type_list 0) and shared experts are
// refused, as are a softmax router and a missing routing bias.

// minimaxConfig holds config.json's MiniMax-M2 fields.
type minimaxConfig struct {
	RotaryDim      *int    `json:"rotary_dim"`
	ScoringFunc    *string `json:"scoring_func"`
	UseRoutingBias *bool   `json:"use_routing_bias"`
	UseQKNorm      *bool   `json:"use_qk_norm"`
	QKNormType     *string `json:"qk_norm_type"`
	AttnTypeList   []int   `json:"attn_type_list"`
	SharedFFN      *int    `json:"shared_intermediate_size"`
}

// minimaxMoE names MiniMax-M2's experts as released: the router
// block_sparse_moe.gate, its selection bias, and per expert w1, w3, w2.
var minimaxMoE = &moeSpec{router: "block_sparse_moe.gate.weight", experts: regexp.MustCompile(`^block_sparse_moe\.experts\.(\d+)\.(w[123]\.weight)$`),
	gate: "w1.weight", up: "w3.weight", down: "w2.weight", expertFFNKey: true, ffnIsExpert: true, norm: true,
	routerBias: "block_sparse_moe.e_score_correction_bias", sigmoid: true}

// minimaxDefaults applies MiniMaxM2Config's defaults ahead of the common
// reading: head_dim 128, 8 KV heads, 256 experts (8 used), rope_theta 5e6,
// and rotary_dim as the partial rotary factor. Its router always
// renormalises the top-k weights: norm_topk_prob is not read.
func (c *hfConfig) minimaxDefaults() error {
	if c.mmErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.mmErr)
	}
	for _, d := range []struct {
		p *int
		v int
	}{{&c.HeadDim, 128}, {&c.NumKeyValueHeads, 8}, {&c.MoE.NumExpertsPerTok, 8}} {
		if *d.p <= 0 {
			*d.p = d.v
		}
	}
	if c.MoE.NumLocalExperts <= 0 && c.MoE.NumExperts <= 0 { // num_experts is its alias
		c.MoE.NumLocalExperts = 256
	}
	c.MoE.NormTopkProb = nil
	if c.RopeTheta == nil {
		if p, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); err != nil {
			return err
		} else if p == nil || p.RopeTheta == nil {
			theta := 5e6
			c.RopeTheta = &theta
		}
	}
	if r := c.MiniMax.RotaryDim; r != nil {
		f := float64(*r) / float64(c.HeadDim)
		switch {
		case *r <= 0 || *r > c.HeadDim || *r%2 != 0:
			return fmt.Errorf("%w: config.json: rotary_dim %d: want an even count of at most head_dim %d", ErrMismatch, *r, c.HeadDim)
		case c.PartialRotaryFactor != nil && math.Abs(*c.PartialRotaryFactor-f) > 1e-9:
			return fmt.Errorf("%w: config.json: rotary_dim %d and partial_rotary_factor %v of head_dim %d disagree", ErrMismatch, *r, *c.PartialRotaryFactor, c.HeadDim)
		}
		c.PartialRotaryFactor = &f
	}
	return nil
}

// minimaxHparams reads and checks a MiniMax-M2 config's experts and what
// llama.cpp's minimax-m2 graph fixes.
func (c *hfConfig) minimaxHparams(arch archSpec, h *hparams) error {
	m := c.MiniMax
	if err := c.moeHparams(arch, h); err != nil {
		return err
	}
	switch {
	case m.ScoringFunc != nil && *m.ScoringFunc != "sigmoid":
		return fmt.Errorf("%w: %s with scoring_func %q: llama.cpp's %s routes by sigmoid scores", ErrUnsupported, arch.hf, *m.ScoringFunc, arch.gguf)
	case m.UseRoutingBias != nil && !*m.UseRoutingBias:
		return fmt.Errorf("%w: %s with use_routing_bias false: llama.cpp's %s needs the routing bias", ErrUnsupported, arch.hf, arch.gguf)
	case m.UseQKNorm != nil && !*m.UseQKNorm:
		return fmt.Errorf("%w: %s with use_qk_norm false: llama.cpp's %s norms q and k", ErrUnsupported, arch.hf, arch.gguf)
	case m.QKNormType != nil && *m.QKNormType != "per_layer":
		return fmt.Errorf("%w: %s with qk_norm_type %q: llama.cpp's %s norms q and k over the whole projections (per_layer)", ErrUnsupported, arch.hf, *m.QKNormType, arch.gguf)
	case m.SharedFFN != nil && *m.SharedFFN > 0:
		return fmt.Errorf("%w: %s with shared_intermediate_size %d: llama.cpp's %s has no shared experts", ErrUnsupported, arch.hf, *m.SharedFFN, arch.gguf)
	case slices.Contains(m.AttnTypeList, 0):
		return fmt.Errorf("%w: %s with lightning attention (attn_type_list has 0): llama.cpp's %s has full attention only", ErrUnsupported, arch.hf, arch.gguf)
	case m.AttnTypeList != nil && len(m.AttnTypeList) != h.layers:
		return fmt.Errorf("%w: config.json: attn_type_list has %d entries for %d layers", ErrMismatch, len(m.AttnTypeList), h.layers)
	}
	return nil
}
