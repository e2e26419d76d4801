package synth

import (
	"fmt"
	"slices"

	"github.com/llm-go/llm/loader/gguf"
)

// lfm2 reports whether the shape is LiquidAI's LFM2 (Arch "lfm2") or
// LFM2-MoE ("lfm2moe"): gated short-convolution layers with attention in
// the layers AttnLayers lists, per-head q/k norms, tied embeddings; with
// lfm2moe the first DenseLayers layers have a dense MLP of DenseFF and the
// others Experts experts of FF, chosen by a sigmoid router.
func (s Shape) lfm2() bool { return s.Arch == "lfm2" || s.Arch == "lfm2moe" }

// blockConv is an LFM2 short-convolution layer's kind.
const blockConv = 'C'

// validateLFM2 checks what lfm2 and lfm2moe add: llama.cpp's lfm2 projects
// the queries to the hidden size, convolves over 3 or 4 positions (CUDA),
// and lfm2moe needs experts after its dense layers.
func (s Shape) validateLFM2() error {
	switch {
	case s.HeadDim()*s.Heads != s.Embd:
		return fmt.Errorf("synth: %s: %d heads of %d: llama.cpp's lfm2 needs heads × head size = the hidden size %d", s.Arch, s.Heads, s.HeadDim(), s.Embd)
	case s.ConvWidth != 3 && s.ConvWidth != 4:
		return fmt.Errorf("synth: %s: a convolution of %d positions: ggml's CUDA convolution runs 3 or 4 only (others abort)", s.Arch, s.ConvWidth)
	case len(s.AttnLayers) == 0 || len(s.AttnLayers) >= s.Layers:
		return fmt.Errorf("synth: %s: %d attention layers of %d: want some, and a convolution layer", s.Arch, len(s.AttnLayers), s.Layers)
	case s.Arch == "lfm2" && (s.Experts != 0 || s.DenseLayers != 0 || s.DenseFF != 0):
		return fmt.Errorf("synth: lfm2: experts and dense layers are lfm2moe's")
	case s.Arch == "lfm2moe" && s.Experts == 0:
		return fmt.Errorf("synth: lfm2moe needs experts")
	case s.Arch == "lfm2moe" && (s.DenseLayers < 0 || s.DenseLayers >= s.Layers):
		return fmt.Errorf("synth: lfm2moe: %d dense layers of %d: want a layer with experts", s.DenseLayers, s.Layers)
	case s.Arch == "lfm2moe" && s.DenseLayers > 0 && (s.DenseFF <= 0 || s.DenseFF%32 != 0):
		return fmt.Errorf("synth: lfm2moe: dense feed-forward size %d: positive, a multiple of 32", s.DenseFF)
	case !s.TiedEmbeddings:
		return fmt.Errorf("synth: %s: LFM2 ties its embeddings", s.Arch)
	}
	for i, a := range s.AttnLayers {
		if a < 0 || a >= s.Layers || i > 0 && a <= s.AttnLayers[i-1] {
			return fmt.Errorf("synth: %s: attention layers %v: increasing indices below %d", s.Arch, s.AttnLayers, s.Layers)
		}
	}
	return nil
}

// lfm2OutputNorm is the final norm's name: lfm2's as this llama.cpp loads
// it (by its bare base name, see loader/convert's lfm2OutputNorm), and
// lfm2moe's.
func (s Shape) lfm2OutputNorm() string {
	if s.Arch == "lfm2" {
		return "output_norm"
	}
	return "output_norm.weight"
}

// lfm2Tensors are the blocks and output of lfm2 and lfm2moe, as llama.cpp
// creates them: per block the operator's norm, the attention (with q/k
// norms) or the convolution (in_proj to B, C and x; the kernel in F32;
// out_proj), the MLP's norm and the dense MLP or the router, its
// selection bias (zeros) and the experts.
func (s Shape) lfm2Tensors() []tensorSpec {
	e, f, x := uint64(s.Embd), uint64(s.FF), uint64(s.Experts)
	d := uint64(s.HeadDim())
	t := func(name string, fanIn int, shape ...uint64) tensorSpec {
		return tensorSpec{name: name, shape: shape, fanIn: fanIn}
	}
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, t(p+"attn_norm.weight", 0, e))
		if s.isAttn(i) {
			out = append(out, s.attnTensors(p)...)
			out = append(out, t(p+"attn_q_norm.weight", 0, d), t(p+"attn_k_norm.weight", 0, d))
		} else {
			out = append(out, t(p+"shortconv.in_proj.weight", s.Embd, e, 3*e),
				tensorSpec{name: p + "shortconv.conv.weight", shape: []uint64{uint64(s.ConvWidth), e}, fanIn: s.ConvWidth, f32: true},
				t(p+"shortconv.out_proj.weight", s.Embd, e, e))
		}
		out = append(out, t(p+"ffn_norm.weight", 0, e))
		if s.Arch == "lfm2" || i < s.DenseLayers {
			df := f
			if s.Arch == "lfm2moe" {
				df = uint64(s.DenseFF)
			}
			out = append(out, t(p+"ffn_gate.weight", s.Embd, e, df), t(p+"ffn_up.weight", s.Embd, e, df), t(p+"ffn_down.weight", int(df), df, e))
			continue
		}
		exps := func(name string, fanIn int, shape ...uint64) tensorSpec {
			return tensorSpec{name: p + name, shape: shape, fanIn: fanIn, experts: true}
		}
		out = append(out, t(p+"ffn_gate_inp.weight", s.Embd, e, x), tensorSpec{name: p + "exp_probs_b.bias", shape: []uint64{x}, zero: true},
			exps("ffn_gate_exps.weight", s.Embd, e, f, x), exps("ffn_up_exps.weight", s.Embd, e, f, x), exps("ffn_down_exps.weight", s.FF, f, e, x))
	}
	return append(out, t(s.lfm2OutputNorm(), 0, e))
}

// lfm2Keys sets the metadata lfm2 and lfm2moe add (replacing the scalar
// head_count_kv Write sets, and with lfm2moe its feed_forward_length):
// KV heads per layer (0 in the convolution layers), the convolution's
// width and, with lfm2moe, the dense layers, the experts' width and the
// sigmoid gating.
func (s Shape) lfm2Keys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	kv := make([]uint32, s.Layers)
	for i, n := range s.LayerKVHeads() {
		kv[i] = uint32(n)
	}
	w.Set(a+".attention.head_count_kv", gguf.Uint32s(kv))
	u("shortconv.l_cache", s.ConvWidth)
	if a == "lfm2moe" {
		u("feed_forward_length", s.DenseFF)
		u("expert_feed_forward_length", s.FF)
		u("leading_dense_block_count", s.DenseLayers)
		u("expert_gating_func", 2) // sigmoid
	}
}

// lfm2Block is block i's kind: attention if AttnLayers lists it, else a
// short convolution.
func (s Shape) lfm2Block(i int) byte {
	if slices.Contains(s.AttnLayers, i) {
		return blockAttn
	}
	return blockConv
}
