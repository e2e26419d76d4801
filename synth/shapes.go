// Package synth writes random-weight GGUF models with the real shapes of
// well-known models (TinyLlama-1.1B, Llama-3-8B, Mixtral-8x7B, gpt-oss-20b,
// GLM-4.5-Air, DeepSeek-V2-Lite, ...) and a valid vocabulary, in F32 or
// F16 directly or in any llama.cpp type by quantizing through the engine.
// Shapes are llama-architecture models (dense, or Mixtral-style mixtures
// of experts) or, with Arch "gpt-oss", OpenAI's gpt-oss (biases, attention
// sinks, sliding-window layers, experts in MXFP4 with MXFP4_MOE as
// released), "glm4moe" (GLM-4.5) or "deepseek2" (DeepSeek V2/V3's latent
// attention): the last two with leading dense layers and shared experts;
// "granitehybrid" (IBM Granite 4.0-H): Mamba-2 layers with a few
// attention layers, a dense MLP or experts beside a shared MLP; or
// "nemotron_h" (NVIDIA Nemotron-H, Nemotron Nano 2): blocks of one
// sublayer each, Mamba-2, attention or a ReLU² MLP; or "falcon-h1"
// (TII Falcon-H1): attention beside a Mamba-2 mixer in every layer; or "lfm2" and
// "lfm2moe" (LiquidAI LFM2, LFM2-MoE): gated short convolutions with a few
// attention layers; or "qwen3next" (Qwen3-Next): Gated DeltaNet layers
// with gated attention in every fourth, experts beside a shared expert;
// or "minimax-m2" (MiniMax-M2): Mixtral's blocks with whole-projection q/k
// norms and sigmoid routing; or "llama4" (Llama 4 Scout, Maverick): chunked
// attention, experts every MoEStep layers beside a shared expert; or the
// embedding models "nomic-bert", "jina-bert-v2" and "gemma-embedding"
// (encoder.go).
//
// The models produce gibberish but cost exactly what the real ones cost to
// run: tests use small ones, and benchmarks use full-size ones to measure
// hardware for a model without downloading it.
package synth

import (
	"fmt"
	"sort"
	"strings"
)

// Shape holds the dimensions of a llama-architecture model, dense or a
// mixture of experts (as llama.cpp runs Mixtral: the llama architecture
// with expert_count).
type Shape struct {
	Name           string  // e.g. "tinyllama-1.1b"
	Vocab          int     // tokens in the vocabulary (at least 512)
	Embd           int     // hidden size
	FF             int     // feed-forward size (of one expert, with Experts)
	Layers         int     // blocks
	Heads          int     // attention heads
	KVHeads        int     // key/value heads (GQA when fewer than Heads)
	HeadSize       int     // size of one head (0: Embd/Heads)
	Context        int     // training context length
	RopeTheta      float32 // RoPE base frequency
	NormEps        float32 // RMSNorm epsilon
	TiedEmbeddings bool    // no separate output.weight
	// Experts, when not 0, replace each block's MLP by that many experts
	// and a router, of which ExpertsUsed run for each token.
	Experts, ExpertsUsed int
	// Arch is the GGUF architecture: "llama" (also when empty) or
	// "gpt-oss", which needs experts, and takes SlidingWindow (its even
	// layers' window, 128 when 0) and yarn rope scaling by YarnFactor over
	// YarnContext (none when 0).
	Arch          string
	SlidingWindow int
	YarnFactor    float32
	YarnContext   int
	// With Arch "glm4moe" (GLM-4.5) or "deepseek2" (DeepSeek V2/V3): the
	// first DenseLayers blocks have a dense MLP of DenseFF, the others
	// Experts experts of FF and SharedExperts shared ones of FF that every
	// token runs (sharedmoe.go).
	DenseLayers, DenseFF, SharedExperts int
	// RopeDim is the rotated part of each head (glm4moe: half; qwen3next,
	// minimax-m2: their own; 0: all).
	RopeDim int
	// DeepSeek's multi-head latent attention: the query's low rank
	// (QLoraRank; 0: one projection, which llama.cpp takes only for 26 or
	// 27 layers), the compressed KV (KVLoraRank), and each head's
	// unrotated and rotated query/key sizes and value size. YarnMscale is
	// its yarn mscale_all_dim (attention scaled by its get_mscale²).
	QLoraRank, KVLoraRank, QKNope, QKRope, VHead int
	YarnMscale                                   float32
	// With Arch "granitehybrid" (Granite 4.0-H, granite.go): the blocks
	// listed in AttnLayers (indices, increasing) are attention layers, the
	// others Mamba-2 layers of SSMHeads heads (llama.cpp's time_step_rank),
	// a state of SSMState per head dimension, SSMGroups groups of B and C
	// and a causal convolution of SSMConv taps, twice as wide as the
	// hidden size (the only expansion llama.cpp's granitehybrid runs).
	// Every block has the dense MLP of FF or, with Experts, experts of FF
	// beside a shared MLP of SharedFF (none when 0).
	AttnLayers                             []int
	SSMHeads, SSMState, SSMGroups, SSMConv int
	SharedFF                               int
	// With Arch "nemotron_h" (Nemotron-H, Nemotron Nano 2, nemotron.go):
	// Pattern gives each block's one sublayer, a character per block as
	// Nemotron-H's hybrid_override_pattern writes it: "M" a Mamba-2 layer
	// (of the SSM sizes above, SSMHeads heads of SSMHeadDim: an inner size
	// of their product), "*" attention (Heads, KVHeads, HeadSize; no
	// positions) and "-" an MLP of FF (up, ReLU², down).
	// With Arch "falcon-h1" (Falcon-H1, falconh1.go) every block has the
	// attention (Heads, KVHeads, HeadSize) and beside it a Mamba-2 mixer
	// of SSMHeads heads of SSMHeadDim, then a gated MLP of FF.
	Pattern    string
	SSMHeadDim int
	// With Arch "lfm2" (LiquidAI LFM2) or "lfm2moe" (LFM2-MoE, lfm2.go):
	// the blocks in AttnLayers are attention layers (with per-head q/k
	// norms), the others gated short convolutions over ConvWidth
	// positions; lfm2moe's first DenseLayers blocks have a dense MLP of
	// DenseFF, the others Experts experts of FF.
	ConvWidth int
	// With Arch "qwen3next" (Qwen3-Next, qwen3next.go): every fourth
	// block attends (Heads, KVHeads, HeadSize, RopeDim rotated, an output
	// gate), the others are Gated DeltaNets of SSMGroups key heads and
	// SSMHeads value heads of SSMState with a convolution of SSMConv;
	// every block has Experts experts of FF beside a shared expert of
	// SharedFF.
	// With Arch "llama4" (Llama 4, llama4.go): the layers n with n+1 a
	// multiple of MoEStep have Experts experts of FF beside a shared
	// expert of FF, the others a dense MLP of DenseFF; three layers in
	// four attend within chunks of 8192 positions.
	MoEStep int
}

// arch is the GGUF architecture.
func (s Shape) arch() string {
	if s.Arch == "" {
		return "llama"
	}
	return s.Arch
}

// Shapes of real models, from their Hugging Face config.json files. Qwen2.5's
// q/k/v biases (under 0.01% of its weights) are left out, so that every shape
// is a plain llama architecture.
var Shapes = map[string]Shape{
	"smollm-135m":    {Name: "smollm-135m", Vocab: 49152, Embd: 576, FF: 1536, Layers: 30, Heads: 9, KVHeads: 3, Context: 2048, RopeTheta: 10000, NormEps: 1e-5, TiedEmbeddings: true},
	"tinyllama-1.1b": {Name: "tinyllama-1.1b", Vocab: 32000, Embd: 2048, FF: 5632, Layers: 22, Heads: 32, KVHeads: 4, Context: 2048, RopeTheta: 10000, NormEps: 1e-5},
	"llama-2-7b":     {Name: "llama-2-7b", Vocab: 32000, Embd: 4096, FF: 11008, Layers: 32, Heads: 32, KVHeads: 32, Context: 4096, RopeTheta: 10000, NormEps: 1e-5},
	"llama-3-8b":     {Name: "llama-3-8b", Vocab: 128256, Embd: 4096, FF: 14336, Layers: 32, Heads: 32, KVHeads: 8, Context: 8192, RopeTheta: 500000, NormEps: 1e-5},
	"llama-3-70b":    {Name: "llama-3-70b", Vocab: 128256, Embd: 8192, FF: 28672, Layers: 80, Heads: 64, KVHeads: 8, Context: 8192, RopeTheta: 500000, NormEps: 1e-5},
	"mistral-7b":     {Name: "mistral-7b", Vocab: 32768, Embd: 4096, FF: 14336, Layers: 32, Heads: 32, KVHeads: 8, Context: 32768, RopeTheta: 1e6, NormEps: 1e-5},
	"qwen2.5-7b":     {Name: "qwen2.5-7b", Vocab: 152064, Embd: 3584, FF: 18944, Layers: 28, Heads: 28, KVHeads: 4, Context: 32768, RopeTheta: 1e6, NormEps: 1e-6},
	// Mixtures of experts. Qwen3-30B-A3B's per-head q/k norms (under
	// 0.001% of its weights) are left out.
	"mixtral-8x7b":  {Name: "mixtral-8x7b", Vocab: 32000, Embd: 4096, FF: 14336, Layers: 32, Heads: 32, KVHeads: 8, Context: 32768, RopeTheta: 1e6, NormEps: 1e-5, Experts: 8, ExpertsUsed: 2},
	"qwen3-30b-a3b": {Name: "qwen3-30b-a3b", Vocab: 151936, Embd: 2048, FF: 768, Layers: 48, Heads: 32, KVHeads: 4, HeadSize: 128, Context: 40960, RopeTheta: 1e6, NormEps: 1e-6, Experts: 128, ExpertsUsed: 8},
	// OpenAI's gpt-oss (their config.json files), released with MXFP4
	// experts: benchmark them with the type MXFP4_MOE.
	"gpt-oss-20b": {Name: "gpt-oss-20b", Arch: "gpt-oss", Vocab: 201088, Embd: 2880, FF: 2880, Layers: 24, Heads: 64, KVHeads: 8, HeadSize: 64,
		Context: 131072, RopeTheta: 150000, NormEps: 1e-5, Experts: 32, ExpertsUsed: 4, SlidingWindow: 128, YarnFactor: 32, YarnContext: 4096},
	"gpt-oss-120b": {Name: "gpt-oss-120b", Arch: "gpt-oss", Vocab: 201088, Embd: 2880, FF: 2880, Layers: 36, Heads: 64, KVHeads: 8, HeadSize: 64,
		Context: 131072, RopeTheta: 150000, NormEps: 1e-5, Experts: 128, ExpertsUsed: 4, SlidingWindow: 128, YarnFactor: 32, YarnContext: 4096},
	// GLM-4.5-Air and DeepSeek-V2-Lite (their config.json files; the
	// multi-token-prediction layer, which llama.cpp does not run, left
	// out). Both route as GLM-4.5 does (sigmoid scores, a selection bias),
	// where V2-Lite uses a softmax: the same cost.
	"glm-4.5-air": {Name: "glm-4.5-air", Arch: "glm4moe", Vocab: 151552, Embd: 4096, FF: 1408, Layers: 46, Heads: 96, KVHeads: 8, HeadSize: 128,
		Context: 131072, RopeTheta: 1e6, NormEps: 1e-5, Experts: 128, ExpertsUsed: 8, DenseLayers: 1, DenseFF: 10944, SharedExperts: 1, RopeDim: 64},
	"deepseek-v2-lite": {Name: "deepseek-v2-lite", Arch: "deepseek2", Vocab: 102400, Embd: 2048, FF: 1408, Layers: 27, Heads: 16, KVHeads: 16,
		Context: 163840, RopeTheta: 10000, NormEps: 1e-6, Experts: 64, ExpertsUsed: 6, DenseLayers: 1, DenseFF: 10944, SharedExperts: 2,
		KVLoraRank: 512, QKNope: 128, QKRope: 64, VHead: 128, YarnFactor: 40, YarnContext: 4096, YarnMscale: 0.707},
	// IBM Granite 4.0-H (their config.json files): Mamba-2 layers with
	// attention (without positions) in 4 of 40, tied embeddings; Tiny has
	// 64 experts (6 used) beside a shared MLP, 1B a dense MLP.
	"granite-4.0-h-tiny": {Name: "granite-4.0-h-tiny", Arch: "granitehybrid", Vocab: 100352, Embd: 1536, FF: 512, Layers: 40, Heads: 12, KVHeads: 4,
		Context: 131072, RopeTheta: 10000, NormEps: 1e-5, TiedEmbeddings: true, Experts: 64, ExpertsUsed: 6, SharedFF: 1024,
		AttnLayers: []int{5, 15, 25, 35}, SSMHeads: 48, SSMState: 128, SSMGroups: 1, SSMConv: 4},
	"granite-4.0-h-1b": {Name: "granite-4.0-h-1b", Arch: "granitehybrid", Vocab: 100352, Embd: 1536, FF: 4096, Layers: 40, Heads: 12, KVHeads: 4,
		Context: 131072, RopeTheta: 10000, NormEps: 1e-5, TiedEmbeddings: true,
		AttnLayers: []int{5, 15, 25, 35}, SSMHeads: 48, SSMState: 128, SSMGroups: 1, SSMConv: 4},
	// NVIDIA Nemotron Nano 9B v2 (its config.json): 27 Mamba-2 blocks, 4
	// attention blocks (without positions) and 25 MLP blocks, its own
	// output matrix. RopeTheta is unused.
	"nemotron-nano-9b-v2": {Name: "nemotron-nano-9b-v2", Arch: "nemotron_h", Vocab: 131072, Embd: 4480, FF: 15680, Layers: 56, Heads: 40, KVHeads: 8,
		HeadSize: 128, Context: 131072, RopeTheta: 10000, NormEps: 1e-5,
		Pattern: "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-", SSMHeads: 128, SSMHeadDim: 80, SSMState: 128, SSMGroups: 8, SSMConv: 4},
	// TII Falcon-H1 7B (its config.json): attention (12 heads of 128, 2
	// KV heads) beside a Mamba-2 mixer (24 heads of 128, a state of 256)
	// in each of 44 layers, its own output matrix; the µP multipliers,
	// folded into the weights when converting, cost nothing.
	"falcon-h1-7b": {Name: "falcon-h1-7b", Arch: "falcon-h1", Vocab: 130048, Embd: 3072, FF: 12288, Layers: 44, Heads: 12, KVHeads: 2,
		HeadSize: 128, Context: 262144, RopeTheta: 1e11, NormEps: 1e-5, SSMHeads: 24, SSMHeadDim: 128, SSMState: 256, SSMGroups: 1, SSMConv: 4},
	// LiquidAI LFM2 (their config.json files): short convolutions over 3
	// positions, attention in 6 layers (of 16; of 24 in LFM2-8B-A1B, whose
	// first 2 layers are dense and the others have experts), tied
	// embeddings. The MLP widths are as transformers sizes
	// them from block_ff_dim (two thirds, rounded up to 256).
	"lfm2-350m": {Name: "lfm2-350m", Arch: "lfm2", Vocab: 65536, Embd: 1024, FF: 4608, Layers: 16, Heads: 16, KVHeads: 8,
		Context: 128000, RopeTheta: 1e6, NormEps: 1e-5, TiedEmbeddings: true, AttnLayers: []int{2, 5, 8, 10, 12, 14}, ConvWidth: 3},
	"lfm2-1.2b": {Name: "lfm2-1.2b", Arch: "lfm2", Vocab: 65536, Embd: 2048, FF: 8192, Layers: 16, Heads: 32, KVHeads: 8,
		Context: 128000, RopeTheta: 1e6, NormEps: 1e-5, TiedEmbeddings: true, AttnLayers: []int{2, 5, 8, 10, 12, 14}, ConvWidth: 3},
	"lfm2-8b-a1b": {Name: "lfm2-8b-a1b", Arch: "lfm2moe", Vocab: 65536, Embd: 2048, FF: 1792, Layers: 24, Heads: 32, KVHeads: 8,
		Context: 128000, RopeTheta: 1e6, NormEps: 1e-5, TiedEmbeddings: true, Experts: 32, ExpertsUsed: 4, DenseLayers: 2, DenseFF: 7168,
		AttnLayers: []int{2, 6, 10, 14, 18, 21}, ConvWidth: 3},
	// Qwen3-Next-80B-A3B (its config.json; the multi-token-prediction
	// layer left out): Gated DeltaNet layers of 16 key and 32 value heads
	// of 128, gated attention in every fourth layer (16 heads of 256, a
	// quarter rotated), 512 experts (10 used) beside a shared expert.
	"qwen3-next-80b-a3b": {Name: "qwen3-next-80b-a3b", Arch: "qwen3next", Vocab: 151936, Embd: 2048, FF: 512, Layers: 48, Heads: 16, KVHeads: 2,
		HeadSize: 256, Context: 262144, RopeTheta: 1e7, NormEps: 1e-6, Experts: 512, ExpertsUsed: 10, SharedFF: 512, RopeDim: 64,
		SSMHeads: 32, SSMGroups: 16, SSMState: 128, SSMConv: 4},
	// MiniMax-M2 (its config.json): 256 experts (8 used) routed by sigmoid
	// scores, q/k norms over the whole projections, 64 of each head's 128
	// dimensions rotated.
	"minimax-m2": {Name: "minimax-m2", Arch: "minimax-m2", Vocab: 200064, Embd: 3072, FF: 1536, Layers: 62, Heads: 48, KVHeads: 8, HeadSize: 128,
		Context: 196608, RopeTheta: 5e6, NormEps: 1e-6, Experts: 256, ExpertsUsed: 8, RopeDim: 64},
	// Llama 4 Scout and Maverick (their text_config; the vision model left
	// out): 40 heads of 128 (8 KV heads), experts of 8192 (one used)
	// beside a shared expert of 8192, in every layer of Scout (16 experts)
	// and every other layer of Maverick (128 experts; dense MLPs of 16384
	// between). Scout's llama3 rope scaling costs nothing and is left out.
	"llama-4-scout-17b-16e": {Name: "llama-4-scout-17b-16e", Arch: "llama4", Vocab: 202048, Embd: 5120, FF: 8192, Layers: 48, Heads: 40, KVHeads: 8,
		HeadSize: 128, Context: 10485760, RopeTheta: 5e5, NormEps: 1e-5, Experts: 16, ExpertsUsed: 1, MoEStep: 1},
	"llama-4-maverick-17b-128e": {Name: "llama-4-maverick-17b-128e", Arch: "llama4", Vocab: 202048, Embd: 5120, FF: 8192, DenseFF: 16384, Layers: 48,
		Heads: 40, KVHeads: 8, HeadSize: 128, Context: 1048576, RopeTheta: 5e5, NormEps: 1e-5, Experts: 128, ExpertsUsed: 1, MoEStep: 2},
	// Embedding models (their config.json files), for their prompt
	// processing (llm bench -n 0): nomic-embed-text v1.5 (nomic-bert, a
	// context of the 2048 positions it was trained on) and EmbeddingGemma
	// 300M with its two projections of the pooled embedding, and
	// jina-embeddings-v2-base-en (jina-bert-v2, ALiBi: 8192 positions), and
	// jina-embeddings-v3 (jina-bert-v3: XLM-RoBERTa's vocabulary, 8192
	// positions, without its task adapters: 558M, llama.cpp's size label).
	"nomic-embed-text-v1.5": {Name: "nomic-embed-text-v1.5", Arch: "nomic-bert", Vocab: 30528, Embd: 768, FF: 3072, Layers: 12, Heads: 12, KVHeads: 12,
		Context: 2048, RopeTheta: 1000, NormEps: 1e-12, TiedEmbeddings: true},
	"jina-embeddings-v2-base-en": {Name: "jina-embeddings-v2-base-en", Arch: "jina-bert-v2", Vocab: 30528, Embd: 768, FF: 3072, Layers: 12, Heads: 12,
		KVHeads: 12, Context: 8192, NormEps: 1e-12, TiedEmbeddings: true},
	"jina-embeddings-v3": {Name: "jina-embeddings-v3", Arch: "jina-bert-v3", Vocab: 250002, Embd: 1024, FF: 4096, Layers: 24, Heads: 16, KVHeads: 16,
		Context: 8192, RopeTheta: 20000, NormEps: 1e-5, TiedEmbeddings: true},
	"embeddinggemma-300m": {Name: "embeddinggemma-300m", Arch: "gemma-embedding", Vocab: 262144, Embd: 768, FF: 1152, Layers: 24, Heads: 3, KVHeads: 1,
		HeadSize: 256, Context: 2048, RopeTheta: 1e6, NormEps: 1e-6, TiedEmbeddings: true, SlidingWindow: 512, DenseFF: 3072},
}

// Lookup returns the named shape (case-insensitive).
func Lookup(name string) (Shape, error) {
	if s, ok := Shapes[strings.ToLower(name)]; ok {
		return s, nil
	}
	names := make([]string, 0, len(Shapes))
	for n := range Shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	return Shape{}, fmt.Errorf("synth: unknown shape %q (known: %s)", name, strings.Join(names, ", "))
}

// HeadDim returns the size of one attention head.
func (s Shape) HeadDim() int {
	if s.HeadSize > 0 {
		return s.HeadSize
	}
	return s.Embd / s.Heads
}

// Validate checks that the dimensions make a model llama.cpp can run.
func (s Shape) Validate() error {
	switch {
	case s.Vocab < minVocab || s.Vocab > 1<<21:
		return fmt.Errorf("synth: vocabulary %d outside [%d, %d]", s.Vocab, minVocab, 1<<21)
	case s.Embd <= 0 || s.FF <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.Context <= 0:
		return fmt.Errorf("synth: dimensions must be positive: %+v", s)
	case s.HeadSize < 0 || s.HeadSize == 0 && s.Embd%s.Heads != 0:
		return fmt.Errorf("synth: hidden size %d is not a multiple of %d heads (give a head size)", s.Embd, s.Heads)
	case s.Experts < 0 || s.Experts == 1 || s.Experts > 512 || s.Experts > 0 && (s.ExpertsUsed < 1 || s.ExpertsUsed > s.Experts) || s.Experts == 0 && s.ExpertsUsed != 0:
		return fmt.Errorf("synth: %d experts, %d used: want none, or 2 to 512 with 1 to all of them used", s.Experts, s.ExpertsUsed)
	case s.Heads%s.KVHeads != 0:
		return fmt.Errorf("synth: %d heads is not a multiple of %d KV heads", s.Heads, s.KVHeads)
	case s.HeadDim()%2 != 0:
		return fmt.Errorf("synth: head size %d is odd (RoPE rotates pairs)", s.HeadDim())
	case s.Embd%32 != 0 || s.FF%32 != 0:
		return fmt.Errorf("synth: hidden %d and feed-forward %d sizes must be multiples of 32", s.Embd, s.FF)
	case s.RopeTheta <= 0 && !s.alibi() || s.NormEps <= 0:
		return fmt.Errorf("synth: rope theta and norm epsilon must be positive")
	case s.RopeTheta != 0 && s.alibi():
		return fmt.Errorf("synth: %s has ALiBi, no rope theta", s.Arch)
	case s.arch() != "llama" && s.arch() != "gpt-oss" && !s.sharedMoE() && !s.mamba2() && !s.lfm2() && !s.qwen3next() && !s.minimax() && !s.llama4() && !s.encoder():
		return fmt.Errorf("synth: architecture %q: llama, gpt-oss, glm4moe, deepseek2, granitehybrid, nemotron_h, falcon-h1, lfm2, lfm2moe, qwen3next, minimax-m2, llama4, nomic-bert, jina-bert-v2, jina-bert-v3 or gemma-embedding", s.Arch)
	case !s.llama4() && s.MoEStep != 0:
		return fmt.Errorf("synth: a step between the layers with experts applies to llama4 only")
	case !s.mamba2() && !s.qwen3next() && (s.SSMHeads != 0 || s.SSMState != 0 || s.SSMGroups != 0 || s.SSMConv != 0):
		return fmt.Errorf("synth: Mamba-2 sizes apply to granitehybrid, nemotron_h, falcon-h1 and qwen3next only")
	case !s.graniteHybrid() && !s.lfm2() && len(s.AttnLayers) > 0:
		return fmt.Errorf("synth: attention layers apply to granitehybrid, lfm2 and lfm2moe only (nemotron_h: Pattern)")
	case !s.graniteHybrid() && !s.qwen3next() && s.SharedFF != 0:
		return fmt.Errorf("synth: a shared MLP width applies to granitehybrid and qwen3next only")
	case !s.lfm2() && s.ConvWidth != 0:
		return fmt.Errorf("synth: a short convolution's width applies to lfm2 and lfm2moe only")
	case !s.nemotronH() && s.Pattern != "":
		return fmt.Errorf("synth: a block pattern applies to nemotron_h only")
	case !s.nemotronH() && !s.falconH1() && s.SSMHeadDim != 0:
		return fmt.Errorf("synth: a Mamba-2 head size applies to nemotron_h and falcon-h1 only")
	case s.arch() == "gpt-oss" && s.Experts == 0:
		return fmt.Errorf("synth: gpt-oss needs experts")
	case s.SlidingWindow != 0 && s.arch() != "gpt-oss" && s.arch() != "gemma-embedding":
		return fmt.Errorf("synth: a sliding window applies to gpt-oss and gemma-embedding only")
	case s.arch() == "gpt-oss" && s.TiedEmbeddings:
		return fmt.Errorf("synth: gpt-oss has no tied embeddings")
	case s.SlidingWindow < 0 || s.YarnFactor < 0 || s.YarnContext < 0 || (s.YarnFactor > 0) != (s.YarnContext > 0):
		return fmt.Errorf("synth: sliding window %d, yarn factor %v over %d: want none or positive values (a yarn factor with its context)", s.SlidingWindow, s.YarnFactor, s.YarnContext)
	}
	switch {
	case s.sharedMoE():
		return s.validateSharedMoE()
	case s.graniteHybrid():
		return s.validateGraniteHybrid()
	case s.nemotronH():
		return s.validateNemotronH()
	case s.falconH1():
		return s.validateFalconH1()
	case s.lfm2():
		return s.validateLFM2()
	case s.qwen3next():
		return s.validateQwen3Next()
	case s.minimax():
		return s.validateMiniMax()
	case s.llama4():
		return s.validateLlama4()
	case s.encoder():
		return s.validateEncoder()
	}
	return nil
}

// tensorSpec is one weight of the model: its name, ggml shape (ne0 first)
// and the scale of its random values (0 for norm weights, which are 1,
// and, with zero, for biases and attention sinks, which are 0).
type tensorSpec struct {
	name    string
	shape   []uint64
	fanIn   int
	zero    bool
	experts bool // stacked experts' matrix
	f32     bool // stored in F32 in every file type (Mamba's conv1d, which ggml runs in F32 only)
	fill    fill // values of their own (fanIn 0, F32), when not fillDefault
}

// fill says how a tensor's values are drawn, beside the default (random
// of variance 1/fanIn, ones, or zeros).
type fill int

const (
	fillDefault fill = iota
	// fillSSMA: Mamba-2's A, -exp(U(log 1, log 16)), as Mamba-2 initialises
	// A_log, so that each head's state decays.
	fillSSMA
	// fillDtBias: Mamba-2's dt bias, the inverse softplus of a time step
	// drawn log-uniformly in [0.01, 0.1] (Mamba-2's dt_min and dt_max
	// range, narrowed).
	fillDtBias
)

// expert reports whether t is a stacked experts' matrix.
func (t tensorSpec) expert() bool { return t.experts }

func (s Shape) tensors() []tensorSpec {
	e, f, v := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab)
	q, kv := uint64(s.Heads*s.HeadDim()), uint64(s.KVHeads*s.HeadDim())
	x := uint64(s.Experts)
	out := []tensorSpec{{name: "token_embd.weight", shape: []uint64{e, v}, fanIn: s.Embd}}
	switch {
	case s.arch() == "gpt-oss":
		return append(out, s.gptOSSTensors()...)
	case s.sharedMoE():
		return append(out, s.sharedMoETensors()...)
	case s.graniteHybrid():
		return append(out, s.graniteHybridTensors()...)
	case s.nemotronH():
		return append(out, s.nemotronHTensors()...)
	case s.falconH1():
		return append(out, s.falconH1Tensors()...)
	case s.lfm2():
		return append(out, s.lfm2Tensors()...)
	case s.qwen3next():
		return append(out, s.qwen3NextTensors()...)
	case s.minimax():
		return append(out, s.miniMaxTensors()...)
	case s.llama4():
		return append(out, s.llama4Tensors()...)
	case s.encoder():
		return append(out, s.encoderTensors()...)
	}
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out,
			tensorSpec{name: p + "attn_norm.weight", shape: []uint64{e}, fanIn: 0},
			tensorSpec{name: p + "attn_q.weight", shape: []uint64{e, q}, fanIn: s.Embd},
			tensorSpec{name: p + "attn_k.weight", shape: []uint64{e, kv}, fanIn: s.Embd},
			tensorSpec{name: p + "attn_v.weight", shape: []uint64{e, kv}, fanIn: s.Embd},
			tensorSpec{name: p + "attn_output.weight", shape: []uint64{q, e}, fanIn: int(q)},
			tensorSpec{name: p + "ffn_norm.weight", shape: []uint64{e}, fanIn: 0},
		)
		if x == 0 {
			out = append(out,
				tensorSpec{name: p + "ffn_gate.weight", shape: []uint64{e, f}, fanIn: s.Embd},
				tensorSpec{name: p + "ffn_up.weight", shape: []uint64{e, f}, fanIn: s.Embd},
				tensorSpec{name: p + "ffn_down.weight", shape: []uint64{f, e}, fanIn: s.FF},
			)
			continue
		}
		out = append(out,
			tensorSpec{name: p + "ffn_gate_inp.weight", shape: []uint64{e, x}, fanIn: s.Embd},
			tensorSpec{name: p + "ffn_gate_exps.weight", shape: []uint64{e, f, x}, fanIn: s.Embd, experts: true},
			tensorSpec{name: p + "ffn_up_exps.weight", shape: []uint64{e, f, x}, fanIn: s.Embd, experts: true},
			tensorSpec{name: p + "ffn_down_exps.weight", shape: []uint64{f, e, x}, fanIn: s.FF, experts: true},
		)
	}
	out = append(out, tensorSpec{name: "output_norm.weight", shape: []uint64{e}, fanIn: 0})
	if !s.TiedEmbeddings {
		out = append(out, tensorSpec{name: "output.weight", shape: []uint64{e, v}, fanIn: s.Embd})
	}
	return out
}

// gptOSSTensors are gpt-oss's blocks and output (llama.cpp's
// LLM_ARCH_OPENAI_MOE): every projection with a bias, per-head attention
// sinks, the MLP's norm as post_attention_norm, a router with a bias and
// experts with biases.
func (s Shape) gptOSSTensors() []tensorSpec {
	e, f, v := uint64(s.Embd), uint64(s.FF), uint64(s.Vocab)
	q, kv := uint64(s.Heads*s.HeadDim()), uint64(s.KVHeads*s.HeadDim())
	x := uint64(s.Experts)
	var out []tensorSpec
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out,
			tensorSpec{name: p + "attn_norm.weight", shape: []uint64{e}},
			tensorSpec{name: p + "attn_q.weight", shape: []uint64{e, q}, fanIn: s.Embd},
			tensorSpec{name: p + "attn_q.bias", shape: []uint64{q}, zero: true},
			tensorSpec{name: p + "attn_k.weight", shape: []uint64{e, kv}, fanIn: s.Embd},
			tensorSpec{name: p + "attn_k.bias", shape: []uint64{kv}, zero: true},
			tensorSpec{name: p + "attn_v.weight", shape: []uint64{e, kv}, fanIn: s.Embd},
			tensorSpec{name: p + "attn_v.bias", shape: []uint64{kv}, zero: true},
			tensorSpec{name: p + "attn_output.weight", shape: []uint64{q, e}, fanIn: int(q)},
			tensorSpec{name: p + "attn_output.bias", shape: []uint64{e}, zero: true},
			tensorSpec{name: p + "attn_sinks.weight", shape: []uint64{uint64(s.Heads)}, zero: true},
			tensorSpec{name: p + "post_attention_norm.weight", shape: []uint64{e}},
			tensorSpec{name: p + "ffn_gate_inp.weight", shape: []uint64{e, x}, fanIn: s.Embd},
			tensorSpec{name: p + "ffn_gate_inp.bias", shape: []uint64{x}, zero: true},
			tensorSpec{name: p + "ffn_gate_exps.weight", shape: []uint64{e, f, x}, fanIn: s.Embd, experts: true},
			tensorSpec{name: p + "ffn_gate_exps.bias", shape: []uint64{f, x}, zero: true},
			tensorSpec{name: p + "ffn_up_exps.weight", shape: []uint64{e, f, x}, fanIn: s.Embd, experts: true},
			tensorSpec{name: p + "ffn_up_exps.bias", shape: []uint64{f, x}, zero: true},
			tensorSpec{name: p + "ffn_down_exps.weight", shape: []uint64{f, e, x}, fanIn: s.FF, experts: true},
			tensorSpec{name: p + "ffn_down_exps.bias", shape: []uint64{e, x}, zero: true},
		)
	}
	return append(out, tensorSpec{name: "output_norm.weight", shape: []uint64{e}},
		tensorSpec{name: "output.weight", shape: []uint64{e, v}, fanIn: s.Embd})
}

// Breakdown counts a shape's weights by where they are: per block, the
// stacked experts of all blocks (included in Layers), the token
// embeddings, and the output norm and matrix.
type Breakdown struct {
	Layers                []uint64
	Experts, Embd, Output uint64
}

// Breakdown returns the shape's weights by where they are.
func (s Shape) Breakdown() Breakdown {
	b := Breakdown{Layers: make([]uint64, s.Layers)}
	for _, t := range s.tensors() {
		m := uint64(1)
		for _, d := range t.shape {
			m *= d
		}
		var layer int
		switch {
		case t.name == "token_embd.weight":
			b.Embd += m
		case strings.HasPrefix(t.name, "output"):
			b.Output += m
		default:
			if _, err := fmt.Sscanf(t.name, "blk.%d.", &layer); err == nil && layer < s.Layers {
				b.Layers[layer] += m
				if t.experts {
					b.Experts += m
				}
			}
		}
	}
	return b
}

// KVDims returns what one position of the KV cache holds per layer: KV
// heads, and each head's key and value sizes (DeepSeek's latent attention
// caches one head of the compressed KV and the rotated key). Of a hybrid
// shape (granitehybrid, nemotron_h, lfm2, lfm2moe) only the attention
// layers have a KV cache (see KVLayers and LayerKVHeads); its Mamba-2 or
// convolution layers hold a state of a fixed size instead
// (RecurrentBytes, LayerRecurrent), and nemotron_h's MLP layers nothing.
func (s Shape) KVDims() (heads, k, v int) {
	if s.Arch == "deepseek2" {
		return 1, s.KVLoraRank + s.QKRope, s.KVLoraRank
	}
	return s.KVHeads, s.HeadDim(), s.HeadDim()
}

// KVLayers returns how many layers have a KV cache: all but a hybrid
// shape's Mamba-2 or convolution layers (and nemotron_h's MLP layers).
func (s Shape) KVLayers() int {
	if !s.hybrid() {
		return s.Layers
	}
	n := 0
	for i := range s.Layers {
		if s.isAttn(i) {
			n++
		}
	}
	return n
}

// Params returns the number of weights.
func (s Shape) Params() uint64 {
	var n uint64
	for _, t := range s.tensors() {
		m := uint64(1)
		for _, d := range t.shape {
			m *= d
		}
		n += m
	}
	return n
}
