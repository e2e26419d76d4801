package synth

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// qwen3next reports whether the shape is Qwen3-Next's: Gated DeltaNet
// layers with attention in every fourth (llama.cpp fixes the interval),
// each with experts beside a shared expert (llama.cpp's
// LLM_ARCH_QWEN3NEXT). The DeltaNet has SSMGroups key heads and SSMHeads
// value heads, all of SSMState, and a convolution of SSMConv; the attention
// has an output gate (q_proj twice as wide) and rotates RopeDim of each
// head; SharedFF is the shared expert's width.
func (s Shape) qwen3next() bool { return s.Arch == "qwen3next" }

// blockDelta is a Gated DeltaNet layer's kind.
const blockDelta = 'D'

// validateQwen3Next checks what qwen3next adds.
func (s Shape) validateQwen3Next() error {
	switch {
	case s.Layers < 4:
		return fmt.Errorf("synth: qwen3next: %d layers: its attention is in every fourth", s.Layers)
	case s.Experts == 0 || s.SharedFF <= 0 || s.SharedFF%32 != 0:
		return fmt.Errorf("synth: qwen3next needs experts and a shared expert (width %d: positive, a multiple of 32)", s.SharedFF)
	case s.SSMGroups <= 0 || s.SSMHeads <= 0 || s.SSMHeads%s.SSMGroups != 0:
		return fmt.Errorf("synth: qwen3next: %d key heads do not divide %d value heads", s.SSMGroups, s.SSMHeads)
	case s.SSMState <= 0 || s.SSMState%32 != 0:
		return fmt.Errorf("synth: qwen3next: head size %d: positive, a multiple of 32", s.SSMState)
	case s.SSMConv != 3 && s.SSMConv != 4:
		return fmt.Errorf("synth: qwen3next: a convolution of %d taps: ggml's CUDA convolution runs 3 or 4 only (others abort)", s.SSMConv)
	case s.RopeDim < 0 || s.RopeDim%2 != 0 || s.RopeDim > s.HeadDim():
		return fmt.Errorf("synth: rotated dimensions %d: even, at most the head size %d", s.RopeDim, s.HeadDim())
	}
	return nil
}

// qwen3NextBlock is block i's kind: attention in every fourth, else a
// Gated DeltaNet.
func qwen3NextBlock(i int) byte {
	if (i+1)%4 == 0 {
		return blockAttn
	}
	return blockDelta
}

// qwen3NextTensors are the blocks and output of qwen3next, as llama.cpp
// creates them: per block the input norm, the gated attention (q and its
// gate, per-head q/k norms) or the DeltaNet (ssm_in to q, k, v and z,
// ssm_ba to β and α, the convolution in F32, dt's bias, A, the gated norm,
// ssm_out), the post-attention norm, the router, the experts and the
// shared expert with its gate.
func (s Shape) qwen3NextTensors() []tensorSpec {
	e, f, v, x, sf := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab), uint64(s.Experts), uint64(s.SharedFF)
	d, q, kv := uint64(s.HeadDim()), uint64(s.Heads*s.HeadDim()), uint64(s.KVHeads*s.HeadDim())
	nv, hd := uint64(s.SSMHeads), uint64(s.SSMState)
	kd, vd := uint64(s.SSMGroups)*hd, nv*hd
	t := func(name string, fanIn int, shape ...uint64) tensorSpec {
		return tensorSpec{name: name, shape: shape, fanIn: fanIn}
	}
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, t(p+"attn_norm.weight", 0, e), t(p+"post_attention_norm.weight", 0, e))
		if s.isAttn(i) {
			out = append(out, t(p+"attn_q.weight", s.Embd, e, 2*q), t(p+"attn_k.weight", s.Embd, e, kv), t(p+"attn_v.weight", s.Embd, e, kv),
				t(p+"attn_output.weight", int(q), q, e), t(p+"attn_q_norm.weight", 0, d), t(p+"attn_k_norm.weight", 0, d))
		} else {
			out = append(out, t(p+"ssm_in.weight", s.Embd, e, 2*kd+2*vd), t(p+"ssm_ba.weight", s.Embd, e, 2*nv),
				tensorSpec{name: p + "ssm_conv1d.weight", shape: []uint64{uint64(s.SSMConv), 2*kd + vd}, fanIn: s.SSMConv, f32: true},
				tensorSpec{name: p + "ssm_dt.bias", shape: []uint64{nv}, fill: fillDtBias},
				tensorSpec{name: p + "ssm_a", shape: []uint64{nv}, fill: fillSSMA},
				t(p+"ssm_norm.weight", 0, hd), t(p+"ssm_out.weight", int(vd), vd, e))
		}
		exps := func(name string, fanIn int, shape ...uint64) tensorSpec {
			return tensorSpec{name: p + name, shape: shape, fanIn: fanIn, experts: true}
		}
		out = append(out, t(p+"ffn_gate_inp.weight", s.Embd, e, x),
			exps("ffn_gate_exps.weight", s.Embd, e, f, x), exps("ffn_up_exps.weight", s.Embd, e, f, x), exps("ffn_down_exps.weight", s.FF, f, e, x),
			tensorSpec{name: p + "ffn_gate_inp_shexp.weight", shape: []uint64{e}, fanIn: s.Embd, f32: true}, t(p+"ffn_gate_shexp.weight", s.Embd, e, sf), t(p+"ffn_up_shexp.weight", s.Embd, e, sf),
			t(p+"ffn_down_shexp.weight", s.SharedFF, sf, e))
	}
	out = append(out, t("output_norm.weight", 0, e))
	if !s.TiedEmbeddings {
		out = append(out, t("output.weight", s.Embd, e, v))
	}
	return out
}

// qwen3NextKeys sets the metadata qwen3next adds: the DeltaNet's sizes as
// llama.cpp reads them (value width, head size, value heads, key heads),
// the experts' and shared expert's widths and the rotated dimensions.
func (s Shape) qwen3NextKeys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("ssm.conv_kernel", s.SSMConv)
	u("ssm.inner_size", s.ssmInner())
	u("ssm.state_size", s.SSMState)
	u("ssm.time_step_rank", s.SSMHeads)
	u("ssm.group_count", s.SSMGroups)
	u("expert_feed_forward_length", s.FF)
	u("expert_shared_feed_forward_length", s.SharedFF)
	if s.RopeDim > 0 {
		u("rope.dimension_count", s.RopeDim)
	}
}
