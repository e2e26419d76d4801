package convert

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// NomicBertModel (nomic-embed-text v1 and v1.5, its custom modeling code;
// GPT-2's config names) → GGUF arch "nomic-bert": an encoder whose
// embeddings are the word's and token type 0's (no learned positions),
// LayerNormed (emb_ln); each block attends through one fused Wqkv (the
// queries' rows, then the keys', then the values'), rotated NEOX-style
// (rotate_half) with rotary_emb_base, out_proj, adds the input and
// LayerNorms (norm1), then runs a SwiGLU MLP (fc11 the up projection, fc12
// the gate, fc2 the down; its width n_inner rounded up to 256) and adds
// and LayerNorms again (norm2). No projection has a bias. The embedding is
// pooled as the sentence-transformers Pooling module says (mean when
// there is none).
//
// llama.cpp's nomic-bert runs exactly that, so configs that differ are
// refused: another activation, causal attention, biases, pre-norm blocks,
// a partial or interleaved rope, xPos scaling (rotary_emb_scale_base),
// rotary_head_dim (the flag of an old xformers bug), fewer KV heads. The
// context is max_trained_positions, on which the models were trained (and
// past which, with rotary_scaling_factor, transformers scales the rope),
// as convert_hf_to_gguf.py writes it.

// nomicBertConfig holds NomicBertConfig's fields (beside GPT-2's n_embd,
// n_layer, n_head, n_inner, n_positions, layer_norm_epsilon).
type nomicBertConfig struct {
	Activation          *string         `json:"activation_function"`
	Causal              *bool           `json:"causal"`
	QKVBias             *bool           `json:"qkv_proj_bias"`
	FC1Bias             *bool           `json:"mlp_fc1_bias"`
	FC2Bias             *bool           `json:"mlp_fc2_bias"`
	Prenorm             *bool           `json:"prenorm"`
	RotaryFraction      *float64        `json:"rotary_emb_fraction"`
	RotaryBase          *float64        `json:"rotary_emb_base"`
	RotaryInterleaved   *bool           `json:"rotary_emb_interleaved"`
	RotaryScaleBase     json.RawMessage `json:"rotary_emb_scale_base"`
	RotaryScalingFactor json.RawMessage `json:"rotary_scaling_factor"`
	MaxTrainedPositions *int            `json:"max_trained_positions"`
	RotaryHeadDim       *bool           `json:"rotary_head_dim"`
	NumHeadsKV          *int            `json:"num_heads_kv"`
	UseRMSNorm          *bool           `json:"use_rms_norm"`
	PadVocabMultiple    *int            `json:"pad_vocab_size_multiple"`
}

// nomicBertHparams reads a NomicBertModel config.json, with
// NomicBertConfig's and GPT2Config's defaults for the fields it leaves
// out.
func (c *hfConfig) nomicBertHparams() (hparams, error) {
	const arch = "NomicBertModel"
	if c.nbErr != nil {
		return hparams{}, fmt.Errorf("convert: config.json: %w", c.nbErr)
	}
	n := c.NomicBert
	or := func(p *int, def int) int {
		if p != nil && *p > 0 {
			return *p
		}
		return def
	}
	h := hparams{hidden: or(&c.NEmbd, 768), layers: or(&c.NLayer, 12), heads: or(&c.NHead, 12), vocab: c.VocabSize, ctxLen: or(&c.NPositions, 1024),
		rmsEps: 1e-5, typeVocab: 2}
	if c.LayerNormEpsilon != nil {
		h.rmsEps = *c.LayerNormEpsilon
	}
	if c.TypeVocabSize != nil {
		h.typeVocab = *c.TypeVocabSize
	}
	// The vocabulary is padded to a multiple, as NomicBertModel does.
	if m := or(n.PadVocabMultiple, 1); h.vocab%m != 0 {
		h.vocab += m - h.vocab%m
	}
	// NomciBertGatedMLP's width: n_inner (else 8/3 of the hidden size),
	// rounded up to 256.
	ffn := int(8 * float64(h.hidden) / 3)
	if c.NInner != nil && *c.NInner > 0 {
		ffn = *c.NInner
	}
	h.ffn = (ffn + 255) / 256 * 256
	if h.vocab <= 0 {
		return h, fmt.Errorf("%w: config.json: vocab_size is missing or not positive", ErrMismatch)
	}
	if h.hidden%h.heads != 0 {
		return h, fmt.Errorf("%w: config.json: n_embd %d is not a multiple of n_head %d", ErrMismatch, h.hidden, h.heads)
	}
	h.kvHeads, h.headDim = h.heads, h.hidden/h.heads
	h.ropeDim = h.headDim
	h.ropeTheta = 10000
	if n.RotaryBase != nil {
		h.ropeTheta = *n.RotaryBase
	}
	flag := func(p *bool, def bool) bool {
		if p != nil {
			return *p
		}
		return def
	}
	frac := 0.0
	if n.RotaryFraction != nil {
		frac = *n.RotaryFraction
	}
	act := "gelu"
	if n.Activation != nil {
		act = *n.Activation
	}
	switch {
	case act != "swiglu":
		return h, fmt.Errorf("%w: %s with activation_function %q: llama.cpp's nomic-bert gates its MLP with SiLU (swiglu)", ErrUnsupported, arch, act)
	case flag(n.Causal, false):
		return h, fmt.Errorf("%w: %s with causal true: llama.cpp's nomic-bert attends both ways", ErrUnsupported, arch)
	case flag(n.QKVBias, true) || flag(n.FC1Bias, true) || flag(n.FC2Bias, true):
		return h, fmt.Errorf("%w: %s with biases (qkv_proj_bias, mlp_fc1_bias or mlp_fc2_bias true, their default): llama.cpp's nomic-bert has none", ErrUnsupported, arch)
	case flag(n.Prenorm, false):
		return h, fmt.Errorf("%w: %s with prenorm true: llama.cpp's nomic-bert norms after each sublayer", ErrUnsupported, arch)
	case flag(n.UseRMSNorm, false):
		return h, fmt.Errorf("%w: %s with use_rms_norm true: llama.cpp's nomic-bert uses LayerNorm", ErrUnsupported, arch)
	case frac != 1:
		return h, fmt.Errorf("%w: %s with rotary_emb_fraction %v: llama.cpp's nomic-bert rotates whole heads", ErrUnsupported, arch, frac)
	case flag(n.RotaryInterleaved, false):
		return h, fmt.Errorf("%w: %s with rotary_emb_interleaved true: llama.cpp's nomic-bert rotates halves (NEOX)", ErrUnsupported, arch)
	case !isNull(n.RotaryScaleBase):
		return h, fmt.Errorf("%w: %s with rotary_emb_scale_base %s (xPos): llama.cpp's nomic-bert has no rope scaling", ErrUnsupported, arch, n.RotaryScaleBase)
	case flag(n.RotaryHeadDim, false):
		return h, fmt.Errorf("%w: %s with rotary_head_dim true (rotating along the heads, an old xformers bug's layout)", ErrUnsupported, arch)
	case n.NumHeadsKV != nil && *n.NumHeadsKV != h.heads:
		return h, fmt.Errorf("%w: %s with num_heads_kv %d of %d heads", ErrUnsupported, arch, *n.NumHeadsKV, h.heads)
	case !(h.ropeTheta > 0) || math.IsInf(h.ropeTheta, 0):
		return h, fmt.Errorf("%w: config.json: rotary_emb_base %v is not positive", ErrMismatch, h.ropeTheta)
	case h.typeVocab < 0:
		return h, fmt.Errorf("%w: config.json: type_vocab_size %d is negative", ErrMismatch, h.typeVocab)
	}
	// Trained on max_trained_positions (2048) whatever n_positions says
	// (8192 in v1 and v1.5), as convert_hf_to_gguf.py writes it; past
	// them transformers scales the rope (dynamic NTK) when
	// rotary_scaling_factor is set.
	h.ctxLen = min(h.ctxLen, or(n.MaxTrainedPositions, 2048))
	return h, nil
}

// nomicBertKeys writes nomic-bert's keys: the LayerNorm epsilon, no
// causal mask, the pooling, the rope.
func nomicBertKeys(w *gguf.Writer, a, dir string, h hparams) error {
	pooling, err := readPooling(dir)
	if err != nil {
		return err
	}
	w.Set(a+".attention.head_count_kv", gguf.Uint32(uint32(h.kvHeads)))
	w.Set(a+".attention.layer_norm_epsilon", gguf.Float32(float32(h.rmsEps)))
	w.Set(a+".attention.causal", gguf.Bool(false))
	w.Set(a+".pooling_type", gguf.Uint32(pooling))
	w.Set(a+".rope.freq_base", gguf.Float32(float32(h.ropeTheta)))
	w.Set(a+".rope.dimension_count", gguf.Uint32(uint32(h.ropeDim)))
	return nil
}

// nomicLayerRE splits a NomicBertModel block tensor's name.
var nomicLayerRE = regexp.MustCompile(`^encoder\.layers\.(\d+)\.(.+)$`)

// encoder reports whether the arch is one of llama.cpp's BERT-like
// encoders, with a WordPiece vocabulary.
func (a archSpec) encoder() bool {
	return a.gguf == "bert" || a.gguf == "nomic-bert" || a.gguf == "jina-bert-v2" || a.gguf == "jina-bert-v3"
}

// planNomicBert maps a NomicBertModel checkpoint's tensors (also under a
// "bert." prefix, as NomicBertForPreTraining saves them); the pooler and
// pre-training heads are skipped.
func planNomicBert(st *safetensors.Model, h hparams) ([]tensorPlan, error) {
	H, F, V, T := int64(h.hidden), int64(h.ffn), int64(h.vocab), int64(h.typeVocab)
	top := map[string]bertTensor{
		"embeddings.word_embeddings.weight":       {"token_embd.weight", []int64{V, H}},
		"embeddings.token_type_embeddings.weight": {"token_types.weight", []int64{T, H}},
		"emb_ln.weight": {"token_embd_norm.weight", []int64{H}},
		"emb_ln.bias":   {"token_embd_norm.bias", []int64{H}},
	}
	layer := map[string]bertTensor{
		"attn.Wqkv.weight":     {"attn_qkv.weight", []int64{3 * H, H}},
		"attn.out_proj.weight": {"attn_output.weight", []int64{H, H}},
		"norm1.weight":         {"attn_output_norm.weight", []int64{H}},
		"norm1.bias":           {"attn_output_norm.bias", []int64{H}},
		"mlp.fc11.weight":      {"ffn_up.weight", []int64{F, H}},
		"mlp.fc12.weight":      {"ffn_gate.weight", []int64{F, H}},
		"mlp.fc2.weight":       {"ffn_down.weight", []int64{H, F}},
		"norm2.weight":         {"layer_output_norm.weight", []int64{H}},
		"norm2.bias":           {"layer_output_norm.bias", []int64{H}},
	}
	pl := newPlanner(st, h)
	skipped := 0
	for _, t := range st.Tensors() {
		name := strings.TrimPrefix(t.Name, "bert.")
		if strings.HasPrefix(name, "pooler.") || strings.HasPrefix(name, "cls.") {
			skipped++
			continue
		}
		if b, ok := top[name]; ok {
			if err := pl.add(tensorPlan{ggufName: b.name, layer: -1}, t, b.shape); err != nil {
				return nil, err
			}
			continue
		}
		n, suffix, err := blockOf(nomicLayerRE, name, h.layers, archSpec{hf: "NomicBertModel"})
		if err != nil {
			return nil, err
		}
		b, ok := layer[suffix]
		if !ok {
			return nil, fmt.Errorf("%w tensor %q in a NomicBertModel checkpoint (llama.cpp's nomic-bert has no biases but the norms')", ErrUnsupported, t.Name)
		}
		if err := pl.add(tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, b.name), layer: n}, t, b.shape); err != nil {
			return nil, err
		}
	}
	if skipped > 0 {
		slog.Info("convert: the pooler and pre-training heads are skipped (the embeddings are pooled by llama.cpp)", "architecture", "NomicBertModel", "skipped_tensors", skipped)
	}
	required := []string{"token_embd.weight", "token_embd_norm.weight", "token_embd_norm.bias"}
	if h.typeVocab > 0 {
		required = append(required, "token_types.weight")
	}
	for n := range h.layers {
		for _, b := range layer {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, b.name))
		}
	}
	return pl.finish(required)
}
