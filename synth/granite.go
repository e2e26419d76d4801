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

// ssmInner is the Mamba-2 layers' inner size: twice the hidden size.
func (s Shape) ssmInner() int { return 2 * s.Embd }

// ssmConvDim is the width of the convolution's channels: x, B and C.
func (s Shape) ssmConvDim() int { return s.ssmInner() + 2*s.SSMGroups*s.SSMState }

// isAttn reports whether block i of a granitehybrid shape is an attention
// layer.
func (s Shape) isAttn(i int) bool {
	for _, a := range s.AttnLayers {
		if a == i {
			return true
		}
	}
	return false
}

// validateGraniteHybrid checks what granitehybrid adds: llama.cpp asserts
// an inner size of twice the hidden size, and ggml's scan needs the heads
// to be a multiple of the groups.
func (s Shape) validateGraniteHybrid() error {
	di := s.ssmInner()
	switch {
	case s.SSMHeads <= 0 || di%s.SSMHeads != 0:
		return fmt.Errorf("synth: granitehybrid: %d Mamba-2 heads do not divide the inner size %d (twice the hidden size)", s.SSMHeads, di)
	case s.SSMGroups <= 0 || s.SSMHeads%s.SSMGroups != 0:
		return fmt.Errorf("synth: granitehybrid: %d groups do not divide %d Mamba-2 heads", s.SSMGroups, s.SSMHeads)
	case s.SSMState <= 0:
		return fmt.Errorf("synth: granitehybrid: state size %d is not positive", s.SSMState)
	case s.SSMConv < 2:
		return fmt.Errorf("synth: granitehybrid: a convolution of %d taps: want 2 or more", s.SSMConv)
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
	q, kv := uint64(s.Heads*s.HeadDim()), uint64(s.KVHeads*s.HeadDim())
	di, cd, nh := uint64(s.ssmInner()), uint64(s.ssmConvDim()), uint64(s.SSMHeads)
	ng, sf := uint64(s.SSMGroups), uint64(s.SharedFF)
	inProj := di + cd + nh // z, then x·B·C, then dt
	t := func(name string, fanIn int, shape ...uint64) tensorSpec {
		return tensorSpec{name: name, shape: shape, fanIn: fanIn}
	}
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, t(p+"attn_norm.weight", 0, e))
		if s.isAttn(i) {
			out = append(out,
				t(p+"attn_q.weight", s.Embd, e, q),
				t(p+"attn_k.weight", s.Embd, e, kv),
				t(p+"attn_v.weight", s.Embd, e, kv),
				t(p+"attn_output.weight", int(q), q, e))
		} else {
			out = append(out,
				t(p+"ssm_in.weight", s.Embd, e, inProj),
				tensorSpec{name: p + "ssm_conv1d.weight", shape: []uint64{uint64(s.SSMConv), cd}, fanIn: s.SSMConv, f32: true},
				tensorSpec{name: p + "ssm_conv1d.bias", shape: []uint64{cd}, zero: true},
				tensorSpec{name: p + "ssm_dt.bias", shape: []uint64{nh}, fill: fillDtBias},
				tensorSpec{name: p + "ssm_a", shape: []uint64{1, nh}, fill: fillSSMA},
				t(p+"ssm_d", 0, 1, nh), // D: ones
				t(p+"ssm_norm.weight", 0, di/ng, ng),
				t(p+"ssm_out.weight", s.ssmInner(), di, e))
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

// graniteHybridKeys sets the metadata granitehybrid adds (replacing the
// scalar head_count_kv Write sets): one KV head count per layer (0: a
// Mamba-2 layer), the Mamba-2 sizes, no rotary positions (Granite 4.0-H's
// attention has none: rope.scaling.finetuned false), Granite's
// multipliers and the shared MLP's width.
func (s Shape) graniteHybridKeys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	kv := make([]uint32, s.Layers)
	for _, i := range s.AttnLayers {
		kv[i] = uint32(s.KVHeads)
	}
	w.Set(a+".attention.head_count_kv", gguf.Uint32s(kv))
	u("ssm.conv_kernel", s.SSMConv)
	u("ssm.inner_size", s.ssmInner())
	u("ssm.state_size", s.SSMState)
	u("ssm.time_step_rank", s.SSMHeads)
	u("ssm.group_count", s.SSMGroups)
	w.Set(a+".rope.scaling.finetuned", gguf.Bool(false))
	w.Set(a+".embedding_scale", gguf.Float32(graniteEmbeddingScale))
	w.Set(a+".residual_scale", gguf.Float32(graniteResidualScale))
	w.Set(a+".attention.scale", gguf.Float32(1/float32(s.HeadDim())))
	w.Set(a+".logit_scale", gguf.Float32(graniteLogitScale))
	if s.Experts > 0 && s.SharedFF > 0 {
		u("expert_shared_feed_forward_length", s.SharedFF)
	}
}

// RecurrentBytes returns the size of the state one Mamba-2 layer keeps
// for one sequence, in F32 as llama.cpp keeps it (the memory that replaces
// the KV cache there, of a fixed size whatever the context): the
// convolution's last SSMConv-1 inputs and the SSM state. It is 0 for
// shapes without Mamba-2 layers (see LayerKVHeads).
func (s Shape) RecurrentBytes() uint64 {
	if !s.graniteHybrid() {
		return 0
	}
	return 4 * (uint64(s.SSMConv-1)*uint64(s.ssmConvDim()) + uint64(s.SSMState)*uint64(s.ssmInner()))
}

// LayerKVHeads returns each layer's KV heads (see KVDims): 0 in a
// granitehybrid shape's Mamba-2 layers, which keep RecurrentBytes of
// state per sequence instead.
func (s Shape) LayerKVHeads() []int {
	heads, _, _ := s.KVDims()
	out := make([]int, s.Layers)
	for i := range out {
		if !s.graniteHybrid() || s.isAttn(i) {
			out[i] = heads
		}
	}
	return out
}
