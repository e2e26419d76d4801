package synth

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// falconH1 reports whether the shape is Falcon-H1's: attention and a
// Mamba-2 mixer side by side in every layer, then a gated MLP (llama.cpp's
// LLM_ARCH_FALCON_H1).
func (s Shape) falconH1() bool { return s.Arch == "falcon-h1" }

// validateFalconH1 checks what falcon-h1 adds: Mamba-2 heads of SSMHeadDim
// in every layer, no experts and no list of attention layers (every layer
// attends).
func (s Shape) validateFalconH1() error {
	if err := s.validateMamba2Heads(); err != nil {
		return err
	}
	if s.Experts != 0 {
		return fmt.Errorf("synth: falcon-h1 has no experts")
	}
	return nil
}

// falconH1Tensors are the blocks and output of falcon-h1, as llama.cpp
// creates them: per block the input norm, the attention (no biases) and
// the Mamba-2 mixer that both read it, the MLP's norm (named "ffn_norm",
// without ".weight", as this llama.cpp looks it up) and the gated MLP. The
// mixer's gated norm, which llama.cpp takes as optional, is left out, as
// the released models' mamba_rms_norm false has it (its cost is one RMS
// norm of the inner size per token and layer).
func (s Shape) falconH1Tensors() []tensorSpec {
	e, f, v := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab)
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, tensorSpec{name: p + "attn_norm.weight", shape: []uint64{e}})
		out = append(out, s.attnTensors(p)...)
		for _, t := range s.mamba2Tensors(p) {
			if t.name != p+"ssm_norm.weight" {
				out = append(out, t)
			}
		}
		out = append(out,
			tensorSpec{name: p + "ffn_norm", shape: []uint64{e}},
			tensorSpec{name: p + "ffn_gate.weight", shape: []uint64{e, f}, fanIn: s.Embd},
			tensorSpec{name: p + "ffn_up.weight", shape: []uint64{e, f}, fanIn: s.Embd},
			tensorSpec{name: p + "ffn_down.weight", shape: []uint64{f, e}, fanIn: s.FF})
	}
	out = append(out, tensorSpec{name: "output_norm.weight", shape: []uint64{e}})
	if !s.TiedEmbeddings {
		out = append(out, tensorSpec{name: "output.weight", shape: []uint64{e, v}, fanIn: s.Embd})
	}
	return out
}

// falconH1Keys sets the metadata falcon-h1 adds: the hybrids' (KV heads
// per layer, all attending; the Mamba-2 sizes). Falcon-H1's µP multipliers
// are folded into the weights of converted models, so none are written.
func (s Shape) falconH1Keys(w *gguf.Writer) { s.mamba2Keys(w) }
