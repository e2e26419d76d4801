package synth

import (
	"fmt"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
)

// nemotronH reports whether the shape is Nemotron-H's (Nemotron Nano 2):
// blocks of one sublayer each, Mamba-2, attention or an MLP, as Pattern
// says (llama.cpp's LLM_ARCH_NEMOTRON_H).
func (s Shape) nemotronH() bool { return s.Arch == "nemotron_h" }

// validateNemotronH checks what nemotron_h adds: a pattern of one block
// kind per layer with Mamba-2 and attention blocks, Mamba-2 heads of
// SSMHeadDim, no experts (llama.cpp's nemotron_h_moe).
func (s Shape) validateNemotronH() error {
	if err := s.validateMamba2Heads(); err != nil {
		return err
	}
	switch {
	case s.Experts != 0:
		return fmt.Errorf("synth: nemotron_h: experts are nemotron_h_moe's, not synthesized")
	case len(s.Pattern) != s.Layers:
		return fmt.Errorf("synth: nemotron_h: pattern %q has %d blocks for %d layers", s.Pattern, len(s.Pattern), s.Layers)
	case strings.ContainsFunc(s.Pattern, func(r rune) bool { return r != blockMamba && r != blockAttn && r != blockMLP }):
		return fmt.Errorf("synth: nemotron_h: pattern %q: its blocks are M (Mamba-2), * (attention) and - (MLP)", s.Pattern)
	case !strings.ContainsRune(s.Pattern, blockMamba) || !strings.ContainsRune(s.Pattern, blockAttn):
		return fmt.Errorf("synth: nemotron_h: pattern %q: want a Mamba-2 block (M) and an attention block (*)", s.Pattern)
	}
	return nil
}

// nemotronHTensors are the blocks and output of nemotron_h, as llama.cpp
// creates them: per block a norm and one sublayer, Mamba-2's mixer, the
// attention (no biases) or the MLP (up and down, no gate).
func (s Shape) nemotronHTensors() []tensorSpec {
	e, f, v := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab)
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, tensorSpec{name: p + "attn_norm.weight", shape: []uint64{e}})
		switch s.block(i) {
		case blockMamba:
			out = append(out, s.mamba2Tensors(p)...)
		case blockAttn:
			out = append(out, s.attnTensors(p)...)
		default:
			out = append(out,
				tensorSpec{name: p + "ffn_up.weight", shape: []uint64{e, f}, fanIn: s.Embd},
				tensorSpec{name: p + "ffn_down.weight", shape: []uint64{f, e}, fanIn: s.FF})
		}
	}
	out = append(out, tensorSpec{name: "output_norm.weight", shape: []uint64{e}})
	if !s.TiedEmbeddings {
		out = append(out, tensorSpec{name: "output.weight", shape: []uint64{e, v}, fanIn: s.Embd})
	}
	return out
}

// nemotronHKeys sets the metadata nemotron_h adds (replacing the scalar
// head_count_kv and feed_forward_length Write sets): the hybrids' (KV heads
// per layer, the Mamba-2 sizes), the MLP width per layer (0 outside the
// MLP blocks: llama.cpp takes a block without either for Mamba-2), the
// head sizes, and expert_feed_forward_length, without which this
// llama.cpp divides the MLP width by expert_used_count, 0 without experts
// (a division by zero that kills the process).
func (s Shape) nemotronHKeys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	s.mamba2Keys(w)
	ff := make([]uint32, s.Layers)
	for i := range ff {
		if s.block(i) == blockMLP {
			ff[i] = uint32(s.FF)
		}
	}
	w.Set(a+".feed_forward_length", gguf.Uint32s(ff))
	u("expert_feed_forward_length", s.FF)
	u("attention.key_length", s.HeadDim())
	u("attention.value_length", s.HeadDim())
}
