package synth

import (
	"fmt"

	"github.com/llm-go/llm/loader/gguf"
)

// The embedding models' shapes: "nomic-bert" (nomic-embed-text: a BERT-like
// post-norm encoder with a fused QKV, rope and a SwiGLU MLP, two token
// types), "jina-bert-v2" (jina-embeddings-v2: BERT's post-norm blocks with
// biases, ALiBi in place of positions, a GEGLU MLP whose up projection is
// twice FF wide), "jina-bert-v3" (jina-embeddings-v3: XLM-RoBERTa's
// post-norm blocks with biases, a fused QKV and rope, a GELU MLP, one token
// type; its task LoRAs are adapters, not benchmarked) and
// "gemma-embedding" (EmbeddingGemma: Gemma 3's blocks
// attending both ways, a sliding window in five layers of six, DenseFF,
// when not 0, the width of its two projections of the pooled embedding).
// All pool by the mean and generate nothing: benchmark their prompt
// processing.

// encoder reports whether the shape is an embedding model's.
func (s Shape) encoder() bool { return s.bertLike() || s.Arch == "gemma-embedding" }

// bertLike reports whether the shape is one of llama.cpp's BERT graphs
// (nomic-bert, jina-bert-v2, jina-bert-v3): LayerNorm after each sublayer,
// token types, every head a KV head.
func (s Shape) bertLike() bool {
	return s.Arch == "nomic-bert" || s.Arch == "jina-bert-v2" || s.Arch == "jina-bert-v3"
}

// tokenTypes is how many token types a BERT graph's shape has: XLM-RoBERTa's
// one (jina-bert-v3), BERT's two otherwise.
func (s Shape) tokenTypes() uint64 {
	if s.Arch == "jina-bert-v3" {
		return 1
	}
	return 2
}

// alibi reports whether the shape has ALiBi in place of rope
// (jina-bert-v2).
func (s Shape) alibi() bool { return s.Arch == "jina-bert-v2" }

// validateEncoder checks what the embedding models add: no experts, the
// whole head rotated, nomic-bert's one head size, and EmbeddingGemma's
// sliding window.
func (s Shape) validateEncoder() error {
	switch {
	case s.Experts != 0 || s.DenseLayers != 0 || s.SharedExperts != 0 || s.RopeDim != 0 || s.MoEStep != 0:
		return fmt.Errorf("synth: %s has no experts, dense layers or partial rope", s.Arch)
	case s.bertLike() && (s.KVHeads != s.Heads || s.HeadSize != 0 && s.HeadSize*s.Heads != s.Embd):
		return fmt.Errorf("synth: %s's heads are all KV heads of hidden/heads", s.Arch)
	case s.bertLike() && s.DenseFF != 0:
		return fmt.Errorf("synth: %s has no projections of its embedding", s.Arch)
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
	if s.bertLike() {
		// The token types stay F32, as converted and as llama.cpp's
		// quantizer leaves them.
		types := t("token_types.weight", s.Embd, e, s.tokenTypes())
		types.f32 = true
		out = append(out, types, t("token_embd_norm.weight", 0, e), zero("token_embd_norm.bias", e))
	}
	if s.Arch == "jina-bert-v2" {
		for i := range s.Layers {
			p := fmt.Sprintf("blk.%d.", i)
			for _, n := range []string{"attn_q", "attn_k", "attn_v", "attn_output"} {
				out = append(out, t(p+n+".weight", s.Embd, e, e), zero(p+n+".bias", e))
			}
			out = append(out, t(p+"attn_output_norm.weight", 0, e), zero(p+"attn_output_norm.bias", e),
				t(p+"ffn_up.weight", s.Embd, e, 2*f), t(p+"ffn_down.weight", s.FF, f, e), zero(p+"ffn_down.bias", e),
				t(p+"layer_output_norm.weight", 0, e), zero(p+"layer_output_norm.bias", e))
		}
		return out
	}
	if s.Arch == "jina-bert-v3" {
		for i := range s.Layers {
			p := fmt.Sprintf("blk.%d.", i)
			out = append(out, t(p+"attn_qkv.weight", s.Embd, e, 3*e), zero(p+"attn_qkv.bias", 3*e),
				t(p+"attn_output.weight", s.Embd, e, e), zero(p+"attn_output.bias", e),
				t(p+"attn_output_norm.weight", 0, e), zero(p+"attn_output_norm.bias", e),
				t(p+"ffn_up.weight", s.Embd, e, f), zero(p+"ffn_up.bias", f), t(p+"ffn_down.weight", s.FF, f, e), zero(p+"ffn_down.bias", e),
				t(p+"layer_output_norm.weight", 0, e), zero(p+"layer_output_norm.bias", e))
		}
		return out
	}
	if s.Arch == "nomic-bert" {
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
// no causal mask (the BERT graphs' key; llama.cpp makes gemma-embedding
// non-causal itself), their LayerNorm epsilon and two token types,
// EmbeddingGemma's window and projections.
func (s Shape) encoderKeys(w *gguf.Writer) {
	a := s.Arch
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("pooling_type", 1)
	if s.bertLike() {
		w.Set(a+".attention.causal", gguf.Bool(false))
		w.Set(a+".attention.layer_norm_epsilon", gguf.Float32(s.NormEps))
		w.Set("tokenizer.ggml.token_type_count", gguf.Uint32(uint32(s.tokenTypes())))
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
