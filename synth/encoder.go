package synth

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// The embedding models' shapes: "nomic-bert" (nomic-embed-text: a BERT-like
// post-norm encoder with a fused QKV, rope and a SwiGLU MLP, two token
// types) and "gemma-embedding" (EmbeddingGemma: Gemma 3's blocks attending
// both ways, a sliding window in five layers of six, DenseFF, when not 0,
// the width of its two projections of the pooled embedding). Both pool by
// the mean and generate nothing: benchmark their prompt processing.

// encoder reports whether the shape is an embedding model's.
func (s Shape) encoder() bool { return s.Arch == "nomic-bert" || s.Arch == "gemma-embedding" }

// validateEncoder checks what the embedding models add: no experts, the
// whole head rotated, nomic-bert's one head size, and EmbeddingGemma's
// sliding window.
func (s Shape) validateEncoder() error {
	switch {
	case s.Experts != 0 || s.DenseLayers != 0 || s.SharedExperts != 0 || s.RopeDim != 0 || s.MoEStep != 0:
		return fmt.Errorf("synth: %s has no experts, dense layers or partial rope", s.Arch)
	case s.Arch == "nomic-bert" && (s.KVHeads != s.Heads || s.HeadSize != 0 && s.HeadSize*s.Heads != s.Embd):
		return fmt.Errorf("synth: nomic-bert's heads are all KV heads of hidden/heads")
	case s.Arch == "nomic-bert" && s.DenseFF != 0:
		return fmt.Errorf("synth: nomic-bert has no projections of its embedding")
	case s.Arch == "gemma-embedding" && s.SlidingWindow <= 0:
		return fmt.Errorf("synth: gemma-embedding needs its sliding window")
	case s.DenseFF < 0 || s.DenseFF%32 != 0:
		return fmt.Errorf("synth: projection width %d: a multiple of 32", s.DenseFF)
	}
	return nil
}

// encoderTensors are the embedding models' tensors, as llama.cpp creates
// them.
func (s Shape) encoderTensors() []tensorSpec {
	e, f := uint64(s.Embd), uint64(s.FF)
	t := func(name string, fanIn int, shape ...uint64) tensorSpec {
		return tensorSpec{name: name, shape: shape, fanIn: fanIn}
	}
	zero := func(name string, n uint64) tensorSpec { return tensorSpec{name: name, shape: []uint64{n}, zero: true} }
	var out []tensorSpec
	if s.Arch == "nomic-bert" {
		// The token types stay F32, as converted and as llama.cpp's
		// quantizer leaves them.
		types := t("token_types.weight", s.Embd, e, 2)
		types.f32 = true
		out = append(out, types, t("token_embd_norm.weight", 0, e), zero("token_embd_norm.bias", e))
		for i := range s.Layers {
			p := fmt.Sprintf("blk.%d.", i)
			out = append(out, t(p+"attn_qkv.weight", s.Embd, e, 3*e), t(p+"attn_output.weight", s.Embd, e, e),
				t(p+"attn_output_norm.weight", 0, e), zero(p+"attn_output_norm.bias", e),
				t(p+"ffn_up.weight", s.Embd, e, f), t(p+"ffn_gate.weight", s.Embd, e, f), t(p+"ffn_down.weight", s.FF, f, e),
				t(p+"layer_output_norm.weight", 0, e), zero(p+"layer_output_norm.bias", e))
		}
		return out
	}
	hd := uint64(s.HeadDim())
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out, t(p+"attn_norm.weight", 0, e))
		out = append(out, s.attnTensors(p)...)
		out = append(out, t(p+"post_attention_norm.weight", 0, e), t(p+"attn_q_norm.weight", 0, hd), t(p+"attn_k_norm.weight", 0, hd),
			t(p+"ffn_norm.weight", 0, e), t(p+"ffn_gate.weight", s.Embd, e, f), t(p+"ffn_up.weight", s.Embd, e, f),
			t(p+"ffn_down.weight", s.FF, f, e), t(p+"post_ffw_norm.weight", 0, e))
	}
	out = append(out, t("output_norm.weight", 0, e))
	if d := uint64(s.DenseFF); d > 0 {
		out = append(out, t("dense_2.weight", s.Embd, e, d), t("dense_3.weight", s.DenseFF, d, e))
	}
	return out
}

// encoderKeys sets the metadata the embedding models add: mean pooling,
// no causal mask (nomic-bert's key; llama.cpp makes gemma-embedding
// non-causal itself), nomic-bert's LayerNorm epsilon and two token types,
// EmbeddingGemma's window and projections.
func (s Shape) encoderKeys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("pooling_type", 1)
	if a == "nomic-bert" {
		w.Set(a+".attention.causal", gguf.Bool(false))
		w.Set(a+".attention.layer_norm_epsilon", gguf.Float32(s.NormEps))
		w.Set("tokenizer.ggml.token_type_count", gguf.Uint32(2))
		return
	}
	u("attention.sliding_window", s.SlidingWindow)
	if s.DenseFF > 0 {
		u("dense_2_feat_in", s.Embd)
		u("dense_2_feat_out", s.DenseFF)
		u("dense_3_feat_in", s.DenseFF)
		u("dense_3_feat_out", s.Embd)
	}
}
