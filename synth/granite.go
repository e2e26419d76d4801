package synth

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// Granite 4.0-H's multipliers (its config.json's embedding_multiplier,
// residual_multiplier and logits_scaling; attention_multiplier is
// 1/head_dim), which llama.cpp's granitehybrid reads as embedding_scale,
// residual_scale, logit_scale and attention.scale.
const (
	graniteEmbeddingScale = 12
	graniteResidualScale  = 0.22
	graniteLogitScale     = 8
)

// graniteHybrid reports whether the shape is Granite 4.0-H's: Mamba-2
// layers and attention layers (llama.cpp's LLM_ARCH_GRANITE_HYBRID).
func (s Shape) graniteHybrid() bool { return s.Arch == "granitehybrid" }

// validateGraniteHybrid checks what granitehybrid adds: llama.cpp asserts
// an inner size of twice the hidden size, which the heads must divide.
func (s Shape) validateGraniteHybrid() error {
	di := s.ssmInner()
	if s.SSMHeads <= 0 || di%s.SSMHeads != 0 {
		return fmt.Errorf("synth: granitehybrid: %d Mamba-2 heads do not divide the inner size %d (twice the hidden size)", s.SSMHeads, di)
	}
	if err := s.validateMamba2(); err != nil {
		return err
	}
	switch {
	case len(s.AttnLayers) >= s.Layers:
		return fmt.Errorf("synth: granitehybrid: %d attention layers of %d: want a Mamba-2 layer", len(s.AttnLayers), s.Layers)
	case s.Experts == 0 && s.SharedFF != 0:
		return fmt.Errorf("synth: granitehybrid: a shared MLP (%d) needs experts (without them the MLP is FF)", s.SharedFF)
	case s.SharedFF < 0 || s.SharedFF%32 != 0:
		return fmt.Errorf("synth: granitehybrid: shared MLP width %d: 0 or a positive multiple of 32", s.SharedFF)
	}
	for i, a := range s.AttnLayers {
		if a < 0 || a >= s.Layers || i > 0 && a <= s.AttnLayers[i-1] {
			return fmt.Errorf("synth: granitehybrid: attention layers %v: increasing indices below %d", s.AttnLayers, s.Layers)
		}
	}
	return nil
}

// graniteHybridTensors are the blocks and output of granitehybrid, as
// llama.cpp creates them: per block the attention's norm, then either
// Mamba-2's mixer or the attention (no biases), then the MLP's norm and
// the dense MLP or the router, the experts and the shared MLP.
func (s Shape) graniteHybridTensors() []tensorSpec {
	e, f, v, x := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab), uint64(s.Experts)
	sf := uint64(s.SharedFF)
	t := func(name string, fanIn int, shape ...uint64) tensorSpec {
		return tensorSpec{name: name, shape: shape, fanIn: fanIn}
	}
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, t(p+"attn_norm.weight", 0, e))
		if s.isAttn(i) {
			out = append(out, s.attnTensors(p)...)
		} else {
			out = append(out, s.mamba2Tensors(p)...)
		}
		out = append(out, t(p+"ffn_norm.weight", 0, e))
		if x == 0 {
			out = append(out, t(p+"ffn_gate.weight", s.Embd, e, f), t(p+"ffn_up.weight", s.Embd, e, f), t(p+"ffn_down.weight", s.FF, f, e))
			continue
		}
		exps := func(name string, fanIn int, shape ...uint64) tensorSpec {
			return tensorSpec{name: p + name, shape: shape, fanIn: fanIn, experts: true}
		}
		out = append(out,
			t(p+"ffn_gate_inp.weight", s.Embd, e, x),
			exps("ffn_gate_exps.weight", s.Embd, e, f, x), exps("ffn_up_exps.weight", s.Embd, e, f, x), exps("ffn_down_exps.weight", s.FF, f, e, x))
		if sf > 0 {
			out = append(out, t(p+"ffn_gate_shexp.weight", s.Embd, e, sf), t(p+"ffn_up_shexp.weight", s.Embd, e, sf), t(p+"ffn_down_shexp.weight", s.SharedFF, sf, e))
		}
	}
	out = append(out, t("output_norm.weight", 0, e))
	if !s.TiedEmbeddings {
		out = append(out, t("output.weight", s.Embd, e, v))
	}
	return out
}

// graniteHybridKeys sets the metadata granitehybrid adds: the hybrids'
// (per-layer KV heads, the Mamba-2 sizes), no rotary positions (Granite
// 4.0-H's attention has none: rope.scaling.finetuned false), Granite's
// multipliers and the shared MLP's width.
func (s Shape) graniteHybridKeys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	s.mamba2Keys(w)
	w.Set(a+".rope.scaling.finetuned", gguf.Bool(false))
	w.Set(a+".embedding_scale", gguf.Float32(graniteEmbeddingScale))
	w.Set(a+".residual_scale", gguf.Float32(graniteResidualScale))
	w.Set(a+".attention.scale", gguf.Float32(1/float32(s.HeadDim())))
	w.Set(a+".logit_scale", gguf.Float32(graniteLogitScale))
	if s.Experts > 0 && s.SharedFF > 0 {
		u("expert_shared_feed_forward_length", s.SharedFF)
	}
}
