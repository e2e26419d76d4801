package synth

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// sharedMoE reports whether the shape is GLM-4.5's or DeepSeek's: leading
// dense layers, then routed and shared experts.
func (s Shape) sharedMoE() bool { return s.Arch == "glm4moe" || s.Arch == "deepseek2" }

// validateSharedMoE checks what glm4moe and deepseek2 add.
func (s Shape) validateSharedMoE() error {
	switch {
	case s.Experts == 0:
		return fmt.Errorf("synth: %s needs experts", s.Arch)
	case s.SharedExperts < 1:
		return fmt.Errorf("synth: %s needs shared experts (llama.cpp's graph runs them)", s.Arch)
	case s.DenseLayers < 0 || s.DenseLayers >= s.Layers:
		return fmt.Errorf("synth: %d dense layers of %d: llama.cpp's %s needs a layer with experts", s.DenseLayers, s.Layers, s.Arch)
	case s.DenseLayers > 0 && (s.DenseFF <= 0 || s.DenseFF%32 != 0):
		return fmt.Errorf("synth: dense feed-forward size %d: positive, a multiple of 32", s.DenseFF)
	case s.TiedEmbeddings:
		return fmt.Errorf("synth: %s has no tied embeddings", s.Arch)
	}
	if s.Arch == "glm4moe" {
		if s.RopeDim < 0 || s.RopeDim%2 != 0 || s.RopeDim > s.HeadDim() {
			return fmt.Errorf("synth: rotated dimensions %d: even, at most the head size %d", s.RopeDim, s.HeadDim())
		}
		return nil
	}
	lite := s.Layers == 26 || s.Layers == 27
	switch {
	case s.KVLoraRank <= 0 || s.QKNope <= 0 || s.VHead <= 0 || s.QKRope <= 0 || s.QKRope%2 != 0 || s.QLoraRank < 0 ||
		s.KVLoraRank%32 != 0 || s.QKNope%32 != 0 || s.QLoraRank%32 != 0:
		return fmt.Errorf("synth: deepseek2 sizes kv_lora %d, qk_nope %d, q_lora %d (multiples of 32, which quantized rows need; q_lora may be 0), qk_rope %d (even), v_head %d: want positive",
			s.KVLoraRank, s.QKNope, s.QLoraRank, s.QKRope, s.VHead)
	case lite != (s.QLoraRank == 0):
		return fmt.Errorf("synth: deepseek2 with %d layers and q_lora %d: llama.cpp takes a single query projection (q_lora 0) for 26 or 27 layers only, and only then", s.Layers, s.QLoraRank)
	case s.YarnFactor > 0 && s.YarnMscale <= 0:
		return fmt.Errorf("synth: deepseek2 yarn needs its mscale_all_dim (YarnMscale)")
	}
	return nil
}

// sharedMoETensors are the blocks and output of glm4moe and deepseek2.
func (s Shape) sharedMoETensors() []tensorSpec {
	e, f, v, x := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab), uint64(s.Experts)
	df, sf := uint64(s.DenseFF), uint64(s.SharedExperts*s.FF)
	var out []tensorSpec
	t := func(name string, fanIn int, shape ...uint64) tensorSpec {
		return tensorSpec{name: name, shape: shape, fanIn: fanIn}
	}
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, t(p+"attn_norm.weight", 0, e))
		if s.Arch == "glm4moe" {
			q, kv := uint64(s.Heads*s.HeadDim()), uint64(s.KVHeads*s.HeadDim())
			out = append(out,
				t(p+"attn_q.weight", s.Embd, e, q), tensorSpec{name: p + "attn_q.bias", shape: []uint64{q}, zero: true},
				t(p+"attn_k.weight", s.Embd, e, kv), tensorSpec{name: p + "attn_k.bias", shape: []uint64{kv}, zero: true},
				t(p+"attn_v.weight", s.Embd, e, kv), tensorSpec{name: p + "attn_v.bias", shape: []uint64{kv}, zero: true},
				t(p+"attn_output.weight", int(q), q, e),
				t(p+"post_attention_norm.weight", 0, e))
		} else {
			h, qk := uint64(s.Heads), uint64(s.QKNope+s.QKRope)
			kvl, nope, vh := uint64(s.KVLoraRank), uint64(s.QKNope), uint64(s.VHead)
			if s.QLoraRank > 0 {
				ql := uint64(s.QLoraRank)
				out = append(out, t(p+"attn_q_a.weight", s.Embd, e, ql), t(p+"attn_q_a_norm.weight", 0, ql), t(p+"attn_q_b.weight", s.QLoraRank, ql, h*qk))
			} else {
				out = append(out, t(p+"attn_q.weight", s.Embd, e, h*qk))
			}
			out = append(out,
				t(p+"attn_kv_a_mqa.weight", s.Embd, e, kvl+uint64(s.QKRope)),
				t(p+"attn_kv_a_norm.weight", 0, kvl),
				t(p+"attn_k_b.weight", s.QKNope, nope, kvl, h),
				t(p+"attn_v_b.weight", s.KVLoraRank, kvl, vh, h),
				t(p+"attn_output.weight", s.Heads*s.VHead, h*vh, e),
				t(p+"ffn_norm.weight", 0, e))
		}
		if i < s.DenseLayers {
			out = append(out, t(p+"ffn_gate.weight", s.Embd, e, df), t(p+"ffn_up.weight", s.Embd, e, df), t(p+"ffn_down.weight", s.DenseFF, df, e))
			continue
		}
		exps := func(name string, fanIn int, shape ...uint64) tensorSpec {
			return tensorSpec{name: p + name, shape: shape, fanIn: fanIn, experts: true}
		}
		out = append(out,
			t(p+"ffn_gate_inp.weight", s.Embd, e, x),
			tensorSpec{name: p + "exp_probs_b.bias", shape: []uint64{x}, zero: true},
			exps("ffn_gate_exps.weight", s.Embd, e, f, x), exps("ffn_up_exps.weight", s.Embd, e, f, x), exps("ffn_down_exps.weight", s.FF, f, e, x),
			t(p+"ffn_gate_shexp.weight", s.Embd, e, sf), t(p+"ffn_up_shexp.weight", s.Embd, e, sf), t(p+"ffn_down_shexp.weight", s.SharedExperts*s.FF, sf, e))
	}
	return append(out, t("output_norm.weight", 0, e), t("output.weight", s.Embd, e, v))
}

// sharedMoEKeys sets the metadata glm4moe and deepseek2 add (replacing
// the dense ones Write sets): the experts as GLM-4.5 and DeepSeek-V3 route
// them (sigmoid scores, the selection bias, renormalised weights), the
// dense layers' width, and the attention's sizes.
func (s Shape) sharedMoEKeys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("feed_forward_length", s.DenseFF)
	u("expert_feed_forward_length", s.FF)
	u("leading_dense_block_count", s.DenseLayers)
	u("expert_shared_count", s.SharedExperts)
	u("expert_gating_func", 2) // sigmoid
	w.Set(a+".expert_weights_scale", gguf.Float32(1))
	w.Set(a+".expert_weights_norm", gguf.Bool(true))
	if a == "glm4moe" {
		if s.RopeDim > 0 {
			u("rope.dimension_count", s.RopeDim)
		}
		return
	}
	u("attention.head_count_kv", 1)
	u("attention.key_length", s.KVLoraRank+s.QKRope)
	u("attention.value_length", s.KVLoraRank)
	u("attention.key_length_mla", s.QKNope+s.QKRope)
	u("attention.value_length_mla", s.VHead)
	u("attention.kv_lora_rank", s.KVLoraRank)
	if s.QLoraRank > 0 {
		u("attention.q_lora_rank", s.QLoraRank)
	}
	u("rope.dimension_count", s.QKRope)
	if s.YarnFactor > 0 {
		// Written ×0.1, as convert_hf_to_gguf.py does and llama.cpp undoes.
		w.Set(a+".rope.scaling.yarn_log_multiplier", gguf.Float32(0.1*s.YarnMscale))
	}
}
