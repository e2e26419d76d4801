package convert

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
)

// ropeJSON is a rope_scaling object (transformers 4) or rope_parameters
// object (transformers 5, which also holds rope_theta there).
type ropeJSON struct {
	Type                string          `json:"type"`
	RopeType            string          `json:"rope_type"`
	RopeTheta           *float64        `json:"rope_theta"`
	Factor              *float64        `json:"factor"`
	OrigMaxPos          *float64        `json:"original_max_position_embeddings"`
	LowFreqFactor       *float64        `json:"low_freq_factor"`
	HighFreqFactor      *float64        `json:"high_freq_factor"`
	AttentionFactor     *float64        `json:"attention_factor"`
	AttnFactor          *float64        `json:"attn_factor"`
	BetaFast            *float64        `json:"beta_fast"`
	BetaSlow            *float64        `json:"beta_slow"`
	ExtrapolationFactor *float64        `json:"extrapolation_factor"`
	Mscale              *float64        `json:"mscale"`
	MscaleAllDim        *float64        `json:"mscale_all_dim"`
	Llama4ScalingBeta   *float64        `json:"llama_4_scaling_beta"`
	PartialRotaryFactor *float64        `json:"partial_rotary_factor"`
	FullAttention       json.RawMessage `json:"full_attention"`
	MropeSection        []int           `json:"mrope_section"`
	// longrope's per-frequency divisors.
	LongFactor  []float64 `json:"long_factor"`
	ShortFactor []float64 `json:"short_factor"`
}

// Rope scaling kinds converted.
const (
	ropeNone     = ""
	ropeLinear   = "linear"
	ropeYarn     = "yarn"
	ropeLlama3   = "llama3"
	ropeLongrope = "longrope"
)

// ropeScaling is a validated rope scaling.
type ropeScaling struct {
	kind   string  // ropeNone, ropeLinear, ropeYarn, ropeLlama3 or ropeLongrope
	factor float64 // linear, yarn, llama3
	// origCtx is original_max_position_embeddings (yarn, llama3,
	// longrope).
	origCtx int
	// lowFreq and highFreq are llama3's low_freq_factor and
	// high_freq_factor.
	lowFreq, highFreq float64
	// The optional yarn parameters, written only when config.json
	// gives them (as convert_hf_to_gguf.py does).
	yarnExt, betaFast, betaSlow *float64
	// yarnAttn is the factor transformers multiplies yarn's cos and sin
	// by (its attention_factor); logMul, when not nil, is written as
	// rope.scaling.yarn_log_multiplier (mscale_all_dim, which llama.cpp's
	// mistral3 and deepseek2 archs read). See yarnAttnCorrection.
	yarnAttn float64
	logMul   *float64
	// fixedAttn: the arch's graph fixes the yarn magnitude itself
	// (deepseek2, checked by deepseekHparams): no correction is written.
	fixedAttn bool
	// longFactor and shortFactor are longrope's per-frequency divisors,
	// one per rotated pair; attnFactor is its attention (magnitude)
	// factor, which multiplies the rotated cos and sin.
	longFactor, shortFactor []float64
	attnFactor              float64
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// parseRopeJSON decodes a rope_scaling or rope_parameters object named key.
func parseRopeJSON(raw json.RawMessage, key string) (*ropeJSON, error) {
	if isNull(raw) {
		return nil, nil
	}
	var r ropeJSON
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("convert: config.json: %s: %w", key, err)
	}
	if !isNull(r.FullAttention) {
		return nil, fmt.Errorf("%w %s: per-layer-type rope parameters (full_attention/sliding_attention) are not converted", ErrUnsupported, key)
	}
	return &r, nil
}

// ropeSource returns the rope scaling object rope reads: rope_scaling, or
// else rope_parameters (nil when neither is given).
func (c *hfConfig) ropeSource() (*ropeJSON, error) {
	src, err := parseRopeJSON(c.RopeScaling, "rope_scaling")
	if err == nil && src == nil {
		src, err = parseRopeJSON(c.RopeParameters, "rope_parameters")
	}
	return src, err
}

// rope reads rope_theta, partial_rotary_factor and the rope scaling from
// rope_theta/rope_scaling (transformers 4) or rope_parameters
// (transformers 5). ctxLen is the model's context length, the default of
// yarn's original_max_position_embeddings as in transformers.
func (c *hfConfig) rope(ctxLen int) (theta, partial float64, rs ropeScaling, err error) {
	params, err := parseRopeJSON(c.RopeParameters, "rope_parameters")
	if err != nil {
		return 0, 0, rs, err
	}
	scaling, err := parseRopeJSON(c.RopeScaling, "rope_scaling")
	if err != nil {
		return 0, 0, rs, err
	}
	theta = 10000
	switch {
	case c.RopeTheta != nil:
		theta = *c.RopeTheta
	case params != nil && params.RopeTheta != nil:
		theta = *params.RopeTheta
	}
	if !(theta > 0) || math.IsInf(theta, 0) {
		return 0, 0, rs, fmt.Errorf("%w: config.json: rope_theta %v is not positive", ErrMismatch, theta)
	}
	partial = 1
	switch {
	case c.PartialRotaryFactor != nil:
		partial = *c.PartialRotaryFactor
	case params != nil && params.PartialRotaryFactor != nil:
		partial = *params.PartialRotaryFactor
	}

	src, key := scaling, "rope_scaling"
	if src == nil {
		src, key = params, "rope_parameters"
	}
	if src == nil {
		return theta, partial, rs, nil
	}
	kind := src.RopeType
	if kind == "" {
		kind = src.Type
	}
	kind = strings.ToLower(kind)
	num := func(name string, v *float64) (float64, error) {
		if v == nil {
			return 0, fmt.Errorf("%w: config.json: %s of type %q has no %s", ErrMismatch, key, kind, name)
		}
		if !(*v > 0) || math.IsInf(*v, 0) {
			return 0, fmt.Errorf("%w: config.json: %s %s %v is not positive", ErrMismatch, key, name, *v)
		}
		return *v, nil
	}
	origCtx := func(def int) (int, error) {
		switch {
		case src.OrigMaxPos != nil:
			v, err := num("original_max_position_embeddings", src.OrigMaxPos)
			if err != nil {
				return 0, err
			}
			if v != math.Trunc(v) || v > math.MaxUint32 {
				return 0, fmt.Errorf("%w: config.json: %s original_max_position_embeddings %v is not an integer", ErrMismatch, key, v)
			}
			return int(v), nil
		case positiveInt(c.OrigMaxPos) > 0:
			return positiveInt(c.OrigMaxPos), nil
		case def > 0:
			return def, nil
		}
		return 0, fmt.Errorf("%w: config.json: %s of type %q has no original_max_position_embeddings", ErrMismatch, key, kind)
	}
	if kind == "mrope" || (kind == "" || kind == "default") && src.MropeSection != nil {
		if !c.allowMrope {
			return 0, 0, rs, fmt.Errorf("%w %s: multimodal rope (mrope_section) is converted only for the text model of Qwen2-VL and Qwen3-VL", ErrUnsupported, key)
		}
		return theta, partial, rs, nil
	}
	switch kind {
	case "", "default", "none":
		return theta, partial, rs, nil
	case ropeLinear:
		rs.kind = ropeLinear
		rs.factor, err = num("factor", src.Factor)
	case ropeYarn:
		rs.kind = ropeYarn
		if rs.factor, err = num("factor", src.Factor); err != nil {
			break
		}
		if rs.origCtx, err = origCtx(ctxLen); err != nil {
			break
		}
		rs.yarnExt, rs.betaFast, rs.betaSlow = src.ExtrapolationFactor, src.BetaFast, src.BetaSlow
		rs.yarnAttn, err = hfYarnAttn(src, key, rs.factor)
	case ropeLlama3:
		rs.kind = ropeLlama3
		if rs.factor, err = num("factor", src.Factor); err != nil {
			break
		}
		if rs.lowFreq, err = num("low_freq_factor", src.LowFreqFactor); err != nil {
			break
		}
		if rs.highFreq, err = num("high_freq_factor", src.HighFreqFactor); err != nil {
			break
		}
		if rs.highFreq < rs.lowFreq {
			// Equal (Llama 4 Scout's 1 and 1) leaves no band between.
			err = fmt.Errorf("%w: config.json: %s high_freq_factor %v is below low_freq_factor %v", ErrMismatch, key, rs.highFreq, rs.lowFreq)
			break
		}
		rs.origCtx, err = origCtx(0)
	case ropeLongrope, "su": // "su" is longrope's first name
		rs.kind = ropeLongrope
		err = c.longrope(src, key, ctxLen, &rs)
	default:
		err = fmt.Errorf("%w %s type %q: only linear, yarn, llama3 and longrope rope scaling are converted", ErrUnsupported, key, kind)
	}
	return theta, partial, rs, err
}

// longrope reads a longrope (Phi-3 128k, Phi-3.5, Phi-4-mini) rope
// scaling: the long and short factors, the original context and the
// attention factor, as transformers' _compute_longrope_parameters does.
// With original_max_position_embeddings in config.json (top level or in
// the scaling object), the scale is max_position_embeddings over it;
// without, the original context is max_position_embeddings and the scale
// the scaling's factor (1 if none). The attention factor is the scaling's
// attention_factor if given, else sqrt(1 + ln(scale)/ln(original)) for a
// scale above 1 and 1 otherwise (convert_hf_to_gguf.py's formula; it never
// reads attention_factor, which no released Phi checkpoint sets). The
// factor counts are checked against the rotated dimensions by hparams.
func (c *hfConfig) longrope(src *ropeJSON, key string, ctxLen int, rs *ropeScaling) error {
	for _, f := range []struct {
		name string
		v    []float64
	}{{"long_factor", src.LongFactor}, {"short_factor", src.ShortFactor}} {
		if len(f.v) == 0 {
			return fmt.Errorf("%w: config.json: %s of type \"longrope\" has no %s", ErrMismatch, key, f.name)
		}
		for i, x := range f.v {
			if !(x > 0) || math.IsInf(x, 0) {
				return fmt.Errorf("%w: config.json: %s %s[%d] %v is not positive", ErrMismatch, key, f.name, i, x)
			}
		}
	}
	rs.longFactor, rs.shortFactor = src.LongFactor, src.ShortFactor
	orig, scale := positiveInt(c.OrigMaxPos), 0.0
	if orig == 0 && src.OrigMaxPos != nil {
		v := *src.OrigMaxPos
		if !(v > 0) || v != math.Trunc(v) || v > math.MaxUint32 {
			return fmt.Errorf("%w: config.json: %s original_max_position_embeddings %v is not a positive integer", ErrMismatch, key, v)
		}
		orig = int(v)
	}
	if orig > 0 {
		scale = float64(ctxLen) / float64(orig)
	} else {
		orig, scale = ctxLen, 1
		if src.Factor != nil {
			if !(*src.Factor > 0) || math.IsInf(*src.Factor, 0) {
				return fmt.Errorf("%w: config.json: %s factor %v is not positive", ErrMismatch, key, *src.Factor)
			}
			scale = *src.Factor
		}
	}
	rs.origCtx = orig
	switch {
	case src.AttentionFactor != nil:
		rs.attnFactor = *src.AttentionFactor
		if !(rs.attnFactor > 0) || math.IsInf(rs.attnFactor, 0) {
			return fmt.Errorf("%w: config.json: %s attention_factor %v is not positive", ErrMismatch, key, rs.attnFactor)
		}
	case scale > 1 && orig > 1:
		rs.attnFactor = math.Sqrt(1 + math.Log(scale)/math.Log(float64(orig)))
	default:
		rs.attnFactor = 1
	}
	return nil
}

// yarnMscale is transformers' (and llama.cpp's) get_mscale: the yarn
// magnitude 0.1·m·ln(scale) + 1 for a scale above 1, else 1.
func yarnMscale(scale, m float64) float64 {
	if scale <= 1 {
		return 1
	}
	return 0.1*m*math.Log(scale) + 1
}

// hfYarnAttn returns the factor transformers' _compute_yarn_parameters
// multiplies cos and sin by: attention_factor (attn_factor in older
// configs) when given; else, with both mscale and mscale_all_dim set and
// not 0 (DeepSeek, Ministral 3), get_mscale(factor, mscale) /
// get_mscale(factor, mscale_all_dim); else get_mscale(factor).
func hfYarnAttn(src *ropeJSON, key string, factor float64) (float64, error) {
	attn := src.AttentionFactor
	if attn == nil {
		attn = src.AttnFactor
	}
	if attn != nil {
		if !(*attn > 0) || math.IsInf(*attn, 0) {
			return 0, fmt.Errorf("%w: config.json: %s attention_factor %v is not positive", ErrMismatch, key, *attn)
		}
		return *attn, nil
	}
	for _, m := range []struct {
		name string
		v    *float64
	}{{"mscale", src.Mscale}, {"mscale_all_dim", src.MscaleAllDim}} {
		if m.v != nil && (math.IsNaN(*m.v) || math.IsInf(*m.v, 0) || *m.v < 0) {
			return 0, fmt.Errorf("%w: config.json: %s %s %v is not a non-negative number", ErrMismatch, key, m.name, *m.v)
		}
	}
	if src.Mscale != nil && *src.Mscale != 0 && src.MscaleAllDim != nil && *src.MscaleAllDim != 0 {
		return yarnMscale(factor, *src.Mscale) / yarnMscale(factor, *src.MscaleAllDim), nil
	}
	return yarnMscale(factor, 1), nil
}

// yarnAttnCorrection returns what rope.scaling.attn_factor must be for
// llama.cpp's yarn to scale cos and sin by transformers' yarnAttn.
// llama.cpp's rope multiplies them by get_mscale(factor, 1), or, when the
// GGUF has a yarn_log_multiplier L (mistral3; llama.cpp assumes mscale
// 1), by get_mscale(factor, 1) / get_mscale(factor, L), and then by
// rope.scaling.attn_factor (llama_context's yarn_attn_factor, which every
// arch reads). 1 needs no key.
func (rs ropeScaling) yarnAttnCorrection() float64 {
	native := yarnMscale(rs.factor, 1)
	if rs.logMul != nil && *rs.logMul != 0 {
		native /= yarnMscale(rs.factor, *rs.logMul)
	}
	return rs.yarnAttn / native
}

// write sets the GGUF rope scaling keys of arch a, as llama.cpp reads them
// (llama-arch.cpp LLM_KV_ROPE_SCALING_*). llama3 scaling has no keys: it
// is the rope_freqs tensor. longrope writes, as convert_hf_to_gguf.py's
// Phi3MiniModel, no scaling type or factor (llama.cpp then rotates
// unscaled, with ext_factor 0, but divides each frequency by the
// rope_factors_long or rope_factors_short tensor and multiplies cos and sin
// by rope.scaling.attn_factor) and the original context, by which
// llama.cpp picks the factors: long when the context of a sequence
// (n_ctx_seq) exceeds it, short otherwise (llama_model::get_rope_factors).
func (rs ropeScaling) write(w *gguf.Writer, a string) {
	switch rs.kind {
	case ropeLinear:
		w.Set(a+".rope.scaling.type", gguf.String("linear"))
		w.Set(a+".rope.scaling.factor", gguf.Float32(float32(rs.factor)))
	case ropeYarn:
		w.Set(a+".rope.scaling.type", gguf.String("yarn"))
		w.Set(a+".rope.scaling.factor", gguf.Float32(float32(rs.factor)))
		w.Set(a+".rope.scaling.original_context_length", gguf.Uint32(uint32(rs.origCtx)))
		for _, k := range []struct {
			name string
			v    *float64
		}{
			{"yarn_ext_factor", rs.yarnExt}, {"yarn_beta_fast", rs.betaFast},
			{"yarn_beta_slow", rs.betaSlow}, {"yarn_log_multiplier", rs.logMul},
		} {
			if k.v != nil {
				w.Set(a+".rope.scaling."+k.name, gguf.Float32(float32(*k.v)))
			}
		}
		if c := rs.yarnAttnCorrection(); !rs.fixedAttn && math.Abs(c-1) > 1e-7 {
			w.Set(a+".rope.scaling.attn_factor", gguf.Float32(float32(c)))
		}
	case ropeLongrope:
		w.Set(a+".rope.scaling.attn_factor", gguf.Float32(float32(rs.attnFactor)))
		w.Set(a+".rope.scaling.original_context_length", gguf.Uint32(uint32(rs.origCtx)))
	}
}

// factorTensors returns the rope_factors_long.weight and
// rope_factors_short.weight tensors of a longrope scaling, F32, one value
// per rotated pair, as convert_hf_to_gguf.py writes them ahead of the
// checkpoint's tensors. llama.cpp's phi3 arch loads them once and shares
// them across the blocks.
func (rs ropeScaling) factorTensors() []tensorPlan {
	if rs.kind != ropeLongrope {
		return nil
	}
	gen := func(name string, v []float64) tensorPlan {
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return tensorPlan{ggufName: name, shape: []int64{int64(len(f))}, gen: f, layer: -1}
	}
	return []tensorPlan{gen("rope_factors_long.weight", rs.longFactor), gen("rope_factors_short.weight", rs.shortFactor)}
}

// llama3RopeFreqs returns the rope_freqs.weight values of llama3 rope
// scaling for dim rotated dimensions: per frequency pair, the number
// llama.cpp divides the rotation frequency by. As transformers'
// _compute_llama3_parameters: with wavelen = 2π/freq, wavelengths below
// original_max_position_embeddings/high_freq_factor keep their frequency
// (1), those above original_max_position_embeddings/low_freq_factor are
// divided by factor, and those between are interpolated, the new
// frequency being (1-s)·freq/factor + s·freq with
// s = (original_max_position_embeddings/wavelen - low_freq_factor) /
// (high_freq_factor - low_freq_factor). When the two factors are equal
// there is no band between (Llama 4 Scout): a wavelength of exactly
// original_max_position_embeddings/low_freq_factor, where transformers
// divides 0 by 0, keeps its frequency.
func llama3RopeFreqs(theta float64, dim int, rs ropeScaling) []float32 {
	out := make([]float32, dim/2)
	orig := float64(rs.origCtx)
	lowWave, highWave := orig/rs.lowFreq, orig/rs.highFreq
	for i := range out {
		freq := 1 / math.Pow(theta, float64(2*i)/float64(dim))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < highWave:
			out[i] = 1
		case wavelen > lowWave:
			out[i] = float32(rs.factor)
		case rs.highFreq == rs.lowFreq:
			out[i] = 1
		default:
			s := (orig/wavelen - rs.lowFreq) / (rs.highFreq - rs.lowFreq)
			out[i] = float32(1 / ((1-s)/rs.factor + s))
		}
	}
	return out
}
