package convert

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/llm-go/llm/loader/gguf"
)

// gemma2Names are Gemma 2's per-layer norm names, which differ from
// Llama's: post_attention_layernorm normalises the attention output
// before the residual add, pre_feedforward_layernorm is the MLP's input
// norm and post_feedforward_layernorm normalises the MLP output
// (llama.cpp's attn_post_norm, ffn_norm and ffn_post_norm).
var gemma2Names = map[string]string{
	"post_attention_layernorm.weight":   "post_attention_norm.weight",
	"pre_feedforward_layernorm.weight":  "ffn_norm.weight",
	"post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}

// Transformers' Gemma2Config defaults.
const (
	gemma2AttnSoftcap   = 50.0
	gemma2FinalSoftcap  = 30.0
	gemma2SlidingWindow = 4096
	gemma2QueryScalar   = 256.0
)

// optFloat decodes an optional config number: def when absent, ok false
// when null (a feature turned off).
func optFloat(raw json.RawMessage, name string, def float64) (v float64, ok bool, err error) {
	if len(raw) == 0 {
		return def, true, nil
	}
	if isNull(raw) {
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, false, fmt.Errorf("convert: config.json: %s: %w", name, err)
	}
	return v, true, nil
}

// gemma2Hparams reads Gemma 2's soft-capping, sliding window and query
// scale, refusing what llama.cpp's gemma2 arch cannot reproduce: it
// always caps the attention scores and logits, always uses a sliding
// window on every other layer (the even ones, as transformers), and
// scales the queries by 1/sqrt(head_dim), or 1/sqrt(hidden/heads) for a
// 46-layer (27B) model, instead of reading query_pre_attn_scalar.
func gemma2Hparams(c *hfConfig, h *hparams) error {
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		def  float64
		dst  *float64
	}{
		{"attn_logit_softcapping", c.AttnLogitSoftcapping, gemma2AttnSoftcap, &h.attnSoftcap},
		{"final_logit_softcapping", c.FinalLogitSoftcapping, gemma2FinalSoftcap, &h.finalSoftcap},
	} {
		v, ok, err := optFloat(f.raw, f.name, f.def)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: Gemma2ForCausalLM without %s (llama.cpp's gemma2 arch always soft-caps)", ErrUnsupported, f.name)
		}
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: config.json: %s %v is not positive", ErrMismatch, f.name, v)
		}
		*f.dst = v
	}
	switch {
	case len(c.SlidingWindow) == 0:
		h.slidingWindow = gemma2SlidingWindow
	case positiveInt(c.SlidingWindow) > 0:
		h.slidingWindow = positiveInt(c.SlidingWindow)
	default:
		return fmt.Errorf("%w: Gemma2ForCausalLM with sliding_window %s (llama.cpp's gemma2 arch always uses one)", ErrUnsupported, c.SlidingWindow)
	}
	q, ok, err := optFloat(c.QueryPreAttnScalar, "query_pre_attn_scalar", gemma2QueryScalar)
	if err != nil {
		return err
	}
	want := float64(h.headDim)
	if h.layers == 46 {
		want = float64(h.hidden / h.heads)
	}
	if !ok || q != want {
		got := "null"
		if ok {
			got = fmt.Sprint(q)
		}
		return fmt.Errorf("%w: Gemma2ForCausalLM with query_pre_attn_scalar %s: llama.cpp's gemma2 arch scales the queries by 1/sqrt(%v) for this shape",
			ErrUnsupported, got, want)
	}
	return nil
}

// gemma2Keys sets the keys llama.cpp's gemma2 arch reads beyond the
// common ones.
func gemma2Keys(w *gguf.Writer, h hparams) {
	w.Set("gemma2.attn_logit_softcapping", gguf.Float32(float32(h.attnSoftcap)))
	w.Set("gemma2.final_logit_softcapping", gguf.Float32(float32(h.finalSoftcap)))
	w.Set("gemma2.attention.sliding_window", gguf.Uint32(uint32(h.slidingWindow)))
}
