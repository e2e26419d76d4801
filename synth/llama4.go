package synth

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// llama4 reports whether the shape is Llama 4's (llama.cpp's
// LLM_ARCH_LLAMA4): three layers in four attend within chunks of 8192
// positions with rope, the fourth attends to every position without; the
// layers n with n+1 a multiple of MoEStep have Experts experts of FF
// (ExpertsUsed run, their input scaled by the router's sigmoid) beside a
// shared expert of FF, the others a dense MLP of DenseFF.
func (s Shape) llama4() bool { return s.Arch == "llama4" }

// llama4MoE reports whether layer i of a llama4 shape has experts.
func (s Shape) llama4MoE(i int) bool { return (i+1)%s.MoEStep == 0 }

// validateLlama4 checks what llama4 adds: experts, a step, a dense width
// when some layers are dense, and no other architecture's fields.
func (s Shape) validateLlama4() error {
	switch {
	case s.Experts == 0:
		return fmt.Errorf("synth: llama4 needs experts")
	case s.MoEStep < 1 || s.MoEStep > s.Layers:
		return fmt.Errorf("synth: llama4 experts every %d layers of %d: want 1 to the layers", s.MoEStep, s.Layers)
	case s.MoEStep > 1 && (s.DenseFF <= 0 || s.DenseFF%32 != 0):
		return fmt.Errorf("synth: llama4 with dense layers needs their feed-forward size, a positive multiple of 32 (DenseFF %d)", s.DenseFF)
	case s.DenseLayers != 0 || s.SharedExperts != 0 || s.RopeDim != 0:
		return fmt.Errorf("synth: llama4 takes no leading dense layers, shared expert count or partial rope (its shared expert is one of FF)")
	}
	return nil
}

// llama4Tensors are llama4's blocks and output, as llama.cpp creates them.
func (s Shape) llama4Tensors() []tensorSpec {
	e, f, v, x := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab), uint64(s.Experts)
	d := uint64(s.DenseFF)
	t := func(name string, fanIn int, shape ...uint64) tensorSpec {
		return tensorSpec{name: name, shape: shape, fanIn: fanIn}
	}
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, t(p+"attn_norm.weight", 0, e))
		out = append(out, s.attnTensors(p)...)
		out = append(out, t(p+"ffn_norm.weight", 0, e))
		if !s.llama4MoE(i) {
			out = append(out, t(p+"ffn_gate.weight", s.Embd, e, d), t(p+"ffn_up.weight", s.Embd, e, d), t(p+"ffn_down.weight", s.DenseFF, d, e))
			continue
		}
		exps := func(name string, fanIn int, shape ...uint64) tensorSpec {
			return tensorSpec{name: p + name, shape: shape, fanIn: fanIn, experts: true}
		}
		out = append(out, t(p+"ffn_gate_inp.weight", s.Embd, e, x),
			exps("ffn_gate_exps.weight", s.Embd, e, f, x), exps("ffn_up_exps.weight", s.Embd, e, f, x), exps("ffn_down_exps.weight", s.FF, f, e, x),
			t(p+"ffn_gate_shexp.weight", s.Embd, e, f), t(p+"ffn_up_shexp.weight", s.Embd, e, f), t(p+"ffn_down_shexp.weight", s.FF, f, e))
	}
	out = append(out, t("output_norm.weight", 0, e))
	if !s.TiedEmbeddings {
		out = append(out, t("output.weight", s.Embd, e, v))
	}
	return out
}

// llama4Keys sets the metadata llama4 adds: the dense layers' width as
// feed_forward_length, the experts' width and the step between the
// layers with experts.
func (s Shape) llama4Keys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	if s.DenseFF > 0 {
		u("feed_forward_length", s.DenseFF)
	}
	u("expert_feed_forward_length", s.FF)
	u("interleave_moe_layer_step", s.MoEStep)
}
