package synth

import (
	"fmt"
	"slices"

	"github.com/llm-go/llm/loader/gguf"
)

// The pieces the Mamba-2 hybrids share: granitehybrid (granite.go) and
// nemotron_h (nemotron.go) run the same Mamba-2 mixer and the same
// attention without biases or positions, and llama.cpp keeps the same
// state for them.

// Block kinds of a hybrid shape, as Nemotron-H's hybrid_override_pattern
// writes them.
const (
	blockMamba = 'M' // a Mamba-2 mixer
	blockAttn  = '*' // attention
	blockMLP   = '-' // an MLP only (nemotron_h)
)

// mamba2 reports whether the shape has Mamba-2 layers.
func (s Shape) mamba2() bool { return s.graniteHybrid() || s.nemotronH() || s.falconH1() }

// hybrid reports whether some of the shape's layers keep a recurrent
// state in place of a KV cache: Mamba-2's or LFM2's convolution's.
func (s Shape) hybrid() bool { return s.mamba2() || s.lfm2() || s.qwen3next() }

// block returns the kind of block i: its character of Pattern with
// nemotron_h, Mamba-2 unless listed in AttnLayers with granitehybrid, a
// convolution unless listed there with lfm2 and lfm2moe, and attention in
// the other shapes.
func (s Shape) block(i int) byte {
	switch {
	case s.lfm2():
		return s.lfm2Block(i)
	case s.qwen3next():
		return qwen3NextBlock(i)
	case s.falconH1():
		return blockAttn // and a Mamba-2 mixer beside it (LayerRecurrent)
	case s.nemotronH():
		if i < 0 || i >= len(s.Pattern) {
			return blockMLP
		}
		return s.Pattern[i]
	case s.graniteHybrid() && !slices.Contains(s.AttnLayers, i):
		return blockMamba
	}
	return blockAttn
}

// isAttn reports whether block i is an attention layer.
func (s Shape) isAttn(i int) bool { return s.block(i) == blockAttn }

// ssmInner is the Mamba-2 layers' inner size: twice the hidden size with
// granitehybrid (the only expansion llama.cpp's runs), SSMHeads heads of
// SSMHeadDim with nemotron_h and falcon-h1.
func (s Shape) ssmInner() int {
	if s.qwen3next() {
		return s.SSMHeads * s.SSMState
	}
	if s.nemotronH() || s.falconH1() {
		return s.SSMHeads * s.SSMHeadDim
	}
	return 2 * s.Embd
}

// ssmConvDim is the width of the convolution's channels: x, B and C.
func (s Shape) ssmConvDim() int { return s.ssmInner() + 2*s.SSMGroups*s.SSMState }

// validateMamba2 checks the Mamba-2 sizes: ggml's scan needs the heads to
// be a multiple of the groups.
func (s Shape) validateMamba2() error {
	switch {
	case s.SSMHeads <= 0:
		return fmt.Errorf("synth: %s: %d Mamba-2 heads: want a positive number", s.Arch, s.SSMHeads)
	case s.SSMGroups <= 0 || s.SSMHeads%s.SSMGroups != 0:
		return fmt.Errorf("synth: %s: %d groups do not divide %d Mamba-2 heads", s.Arch, s.SSMGroups, s.SSMHeads)
	case s.SSMState <= 0:
		return fmt.Errorf("synth: %s: state size %d is not positive", s.Arch, s.SSMState)
	case s.SSMConv != 3 && s.SSMConv != 4:
		return fmt.Errorf("synth: %s: a convolution of %d taps: ggml's CUDA convolution runs 3 or 4 only (others abort)", s.Arch, s.SSMConv)
	}
	return nil
}

// validateMamba2Heads checks the Mamba-2 sizes of a shape whose inner size
// is SSMHeads heads of SSMHeadDim (nemotron_h, falcon-h1): a positive head
// size and an inner size the quantized types' blocks divide.
func (s Shape) validateMamba2Heads() error {
	if err := s.validateMamba2(); err != nil {
		return err
	}
	switch {
	case s.SSMHeadDim <= 0:
		return fmt.Errorf("synth: %s: Mamba-2 head size %d is not positive", s.Arch, s.SSMHeadDim)
	case s.ssmInner()%32 != 0:
		return fmt.Errorf("synth: %s: Mamba-2 inner size %d (%d heads of %d) is not a multiple of 32", s.Arch, s.ssmInner(), s.SSMHeads, s.SSMHeadDim)
	}
	return nil
}

// mamba2Tensors are the tensors of the Mamba-2 mixer of the block whose
// names start with p, as llama.cpp creates them: the input projection (z,
// then x·B·C, then dt), the convolution (F32, which ggml runs only in),
// dt's bias, A, D, the gated norm (per group) and the output projection.
func (s Shape) mamba2Tensors(p string) []tensorSpec {
	e, di, cd := uint64(s.Embd), uint64(s.ssmInner()), uint64(s.ssmConvDim())
	nh, ng := uint64(s.SSMHeads), uint64(s.SSMGroups)
	return []tensorSpec{
		{name: p + "ssm_in.weight", shape: []uint64{e, di + cd + nh}, fanIn: s.Embd},
		{name: p + "ssm_conv1d.weight", shape: []uint64{uint64(s.SSMConv), cd}, fanIn: s.SSMConv, f32: true},
		{name: p + "ssm_conv1d.bias", shape: []uint64{cd}, zero: true},
		{name: p + "ssm_dt.bias", shape: []uint64{nh}, fill: fillDtBias},
		{name: p + "ssm_a", shape: []uint64{1, nh}, fill: fillSSMA},
		{name: p + "ssm_d", shape: []uint64{1, nh}}, // D: ones
		{name: p + "ssm_norm.weight", shape: []uint64{di / ng, ng}},
		{name: p + "ssm_out.weight", shape: []uint64{di, e}, fanIn: s.ssmInner()},
	}
}

// attnTensors are the tensors of the attention (without biases) of the
// block whose names start with p.
func (s Shape) attnTensors(p string) []tensorSpec {
	e := uint64(s.Embd)
	q, kv := uint64(s.Heads*s.HeadDim()), uint64(s.KVHeads*s.HeadDim())
	return []tensorSpec{
		{name: p + "attn_q.weight", shape: []uint64{e, q}, fanIn: s.Embd},
		{name: p + "attn_k.weight", shape: []uint64{e, kv}, fanIn: s.Embd},
		{name: p + "attn_v.weight", shape: []uint64{e, kv}, fanIn: s.Embd},
		{name: p + "attn_output.weight", shape: []uint64{q, e}, fanIn: int(q)},
	}
}

// mamba2Keys sets the metadata the hybrids share (replacing the scalar
// head_count_kv Write sets): one KV head count per layer (0 in the layers
// without attention) and the Mamba-2 sizes.
func (s Shape) mamba2Keys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	kv := make([]uint32, s.Layers)
	for i, n := range s.LayerKVHeads() {
		kv[i] = uint32(n)
	}
	w.Set(a+".attention.head_count_kv", gguf.Uint32s(kv))
	u("ssm.conv_kernel", s.SSMConv)
	u("ssm.inner_size", s.ssmInner())
	u("ssm.state_size", s.SSMState)
	u("ssm.time_step_rank", s.SSMHeads)
	u("ssm.group_count", s.SSMGroups)
}

// RecurrentBytes returns the size of the state one Mamba-2 or convolution
// layer keeps for one sequence, in F32 as llama.cpp keeps it (the memory
// that replaces the KV cache there, of a fixed size whatever the context):
// Mamba-2's convolution's last SSMConv-1 inputs and the SSM state; LFM2's
// convolution's last ConvWidth-1 inputs. It is 0 for shapes without such
// layers (see LayerKVHeads and LayerRecurrent).
func (s Shape) RecurrentBytes() uint64 {
	if s.lfm2() {
		return 4 * uint64(s.ConvWidth-1) * uint64(s.Embd)
	}
	if !s.mamba2() && !s.qwen3next() {
		return 0
	}
	return 4 * (uint64(s.SSMConv-1)*uint64(s.ssmConvDim()) + uint64(s.SSMState)*uint64(s.ssmInner()))
}

// LayerKVHeads returns each layer's KV heads (see KVDims): 0 in a hybrid
// shape's layers without attention, its Mamba-2 or convolution layers
// (which keep RecurrentBytes of state per sequence instead, see
// LayerRecurrent) and nemotron_h's MLP layers (which keep nothing).
func (s Shape) LayerKVHeads() []int {
	heads, _, _ := s.KVDims()
	out := make([]int, s.Layers)
	for i := range out {
		if s.isAttn(i) {
			out[i] = heads
		}
	}
	return out
}

// LayerRecurrent returns which layers are Mamba-2 or convolution layers,
// each keeping RecurrentBytes of state per sequence: none outside the
// hybrids.
func (s Shape) LayerRecurrent() []bool {
	out := make([]bool, s.Layers)
	for i := range out {
		b := s.block(i)
		out[i] = s.falconH1() || s.hybrid() && (b == blockMamba || b == blockConv || b == blockDelta)
	}
	return out
}
