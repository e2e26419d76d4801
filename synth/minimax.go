package synth

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// minimax reports whether the shape is MiniMax-M2's (llama.cpp's
// LLM_ARCH_MINIMAX_M2): Mixtral's blocks with q/k norms over the whole
// projections, RopeDim of each head rotated, and a sigmoid router with a
// selection bias.
func (s Shape) minimax() bool { return s.Arch == "minimax-m2" }

// validateMiniMax checks what minimax-m2 adds: experts, its own output
// matrix, and an even rotated part of the head.
func (s Shape) validateMiniMax() error {
	switch {
	case s.Experts == 0:
		return fmt.Errorf("synth: minimax-m2 needs experts")
	case s.TiedEmbeddings:
		return fmt.Errorf("synth: minimax-m2 has no tied embeddings (llama.cpp requires its output matrix)")
	case s.RopeDim < 0 || s.RopeDim%2 != 0 || s.RopeDim > s.HeadDim():
		return fmt.Errorf("synth: rotated dimensions %d: even, at most the head size %d", s.RopeDim, s.HeadDim())
	}
	return nil
}

// miniMaxTensors are the blocks and output of minimax-m2, as llama.cpp
// creates them.
func (s Shape) miniMaxTensors() []tensorSpec {
	e, f, v, x := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab), uint64(s.Experts)
	q, kv := uint64(s.Heads*s.HeadDim()), uint64(s.KVHeads*s.HeadDim())
	t := func(name string, fanIn int, shape ...uint64) tensorSpec {
		return tensorSpec{name: name, shape: shape, fanIn: fanIn}
	}
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		exps := func(name string, fanIn int, shape ...uint64) tensorSpec {
			return tensorSpec{name: p + name, shape: shape, fanIn: fanIn, experts: true}
		}
		out = append(out, t(p+"attn_norm.weight", 0, e))
		out = append(out, s.attnTensors(p)...)
		out = append(out, t(p+"attn_q_norm.weight", 0, q), t(p+"attn_k_norm.weight", 0, kv), t(p+"ffn_norm.weight", 0, e),
			t(p+"ffn_gate_inp.weight", s.Embd, e, x), tensorSpec{name: p + "exp_probs_b.bias", shape: []uint64{x}, zero: true},
			exps("ffn_gate_exps.weight", s.Embd, e, f, x), exps("ffn_up_exps.weight", s.Embd, e, f, x), exps("ffn_down_exps.weight", s.FF, f, e, x))
	}
	return append(out, t("output_norm.weight", 0, e), t("output.weight", s.Embd, e, v))
}

// miniMaxKeys sets the metadata minimax-m2 adds: the experts' width, the
// sigmoid gating and the rotated dimensions.
func (s Shape) miniMaxKeys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("expert_feed_forward_length", s.FF)
	u("expert_gating_func", 2) // sigmoid
	if s.RopeDim > 0 {
		u("rope.dimension_count", s.RopeDim)
	}
}
