package convert

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
)

// Transformers' Gemma3TextConfig defaults, used for the fields a
// config.json leaves out (Gemma3ForConditionalGeneration's text_config
// usually gives only the ones that differ).
const (
	gemma3Vocab         = 262208
	gemma3Hidden        = 2304
	gemma3FFN           = 9216
	gemma3Layers        = 26
	gemma3Heads         = 8
	gemma3KVHeads       = 4
	gemma3HeadDim       = 256
	gemma3CtxLen        = 131072
	gemma3RopeTheta     = 1e6
	gemma3LocalBase     = 10000.0
	gemma3QueryScalar   = 256.0
	gemma3SlidingWindow = 4096
	gemma3Pattern       = 6
)

// llama.cpp's gemma3 arch (llama-model.cpp, LLM_ARCH_GEMMA3) hard-codes
// these when gemma3.attention.sliding_window is set and positive: the
// layers il with il % 6 < 5 use the sliding window
// (set_swa_pattern(6)), and they rotate with base 10000 and no rope
// scaling (rope_freq_base_train_swa, rope_freq_scale_train_swa); the
// other layers use rope.freq_base and the rope scaling keys.
const (
	llamaGemma3SWAPattern = 6
	llamaGemma3SWABase    = 10000.0
)

// gemma3TextName maps a Gemma3ForConditionalGeneration tensor name to the
// text model's name: "language_model.model.X" (transformers before 4.52)
// and "model.language_model.X" (4.52 and later) become "model.X",
// "language_model.lm_head.weight" becomes "lm_head.weight". The vision
// tower and the multi-modal projector (which llama.cpp loads from a
// separate mmproj file), and Gemma 3n's audio tower and its vision and
// audio embedders, are reported as skip.
func gemma3TextName(name string) (text string, skip bool) {
	for _, p := range []string{"vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector.", "visual.", "model.visual.", "vision_model.", "model.vision_model.",
		"audio_tower.", "model.audio_tower.", "model.embed_vision.", "model.embed_audio."} {
		if strings.HasPrefix(name, p) {
			return "", true
		}
	}
	switch {
	case strings.HasPrefix(name, "language_model.model."):
		return "model." + strings.TrimPrefix(name, "language_model.model."), false
	case strings.HasPrefix(name, "model.language_model."):
		return "model." + strings.TrimPrefix(name, "model.language_model."), false
	case name == "language_model.lm_head.weight":
		return "lm_head.weight", false
	}
	return name, false
}

// rootKeyed maps a tensor of a model saved without its "model." prefix
// (sentence-transformers' EmbeddingGemma: embed_tokens.weight, layers.N.*,
// norm.weight) to the prefixed name.
func rootKeyed(name string) string {
	if name == "embed_tokens.weight" || name == "norm.weight" || strings.HasPrefix(name, "layers.") {
		return "model." + name
	}
	return name
}

// gemma3Config prepares a Gemma 3 config.json for hparams: for
// Gemma3ForConditionalGeneration (vlm) the text_config fields replace the
// top-level ones (as convert_hf_to_gguf.py merges them), then the fields
// left out take Gemma3TextConfig's defaults.
func (c *hfConfig) gemma3Config(vlm bool) error {
	if vlm && !isNull(c.TextConfig) {
		if err := json.Unmarshal(c.TextConfig, c); err != nil {
			return fmt.Errorf("convert: config.json: text_config: %w", err)
		}
	}
	for _, f := range []struct {
		p *int
		v int
	}{
		{&c.VocabSize, gemma3Vocab}, {&c.HiddenSize, gemma3Hidden}, {&c.IntermediateSize, gemma3FFN},
		{&c.NumHiddenLayers, gemma3Layers}, {&c.NumAttentionHeads, gemma3Heads},
		{&c.NumKeyValueHeads, gemma3KVHeads}, {&c.HeadDim, gemma3HeadDim},
		{&c.MaxPositionEmbeddings, gemma3CtxLen},
	} {
		if *f.p == 0 {
			*f.p = f.v
		}
	}
	if c.TieWordEmbeddings == nil {
		t := true
		c.TieWordEmbeddings = &t
	}
	return nil
}

// gemma3Rope reads the rope of Gemma 3's global layers (rope_theta,
// default 1e6, and rope_scaling) and the base of its local layers
// (rope_local_base_freq, default 10000), or transformers 5's
// rope_parameters with one object per layer type (full_attention,
// sliding_attention), whose rope_theta values take precedence.
func (c *hfConfig) gemma3Rope(ctxLen int) (theta, partial, local float64, rs ropeScaling, err error) {
	var perType struct {
		Full    json.RawMessage `json:"full_attention"`
		Sliding json.RawMessage `json:"sliding_attention"`
	}
	if !isNull(c.RopeParameters) {
		if err := json.Unmarshal(c.RopeParameters, &perType); err != nil {
			return 0, 0, 0, rs, fmt.Errorf("convert: config.json: rope_parameters: %w", err)
		}
	}
	g := *c // the global layers' rope
	local, ok, err := optFloat(c.RopeLocalBaseFreq, "rope_local_base_freq", gemma3LocalBase)
	if err != nil {
		return 0, 0, 0, rs, err
	}
	if !ok {
		return 0, 0, 0, rs, fmt.Errorf("%w: config.json: rope_local_base_freq is null", ErrMismatch)
	}
	if !isNull(perType.Full) || !isNull(perType.Sliding) {
		if !isNull(c.RopeScaling) {
			return 0, 0, 0, rs, fmt.Errorf("%w: config.json has both rope_scaling and per-layer-type rope_parameters", ErrMismatch)
		}
		g.RopeParameters = perType.Full
		if ropeHasTheta(perType.Full) {
			g.RopeTheta = nil // full_attention's rope_theta wins
		}
		if !isNull(perType.Sliding) {
			var s ropeJSON
			if err := json.Unmarshal(perType.Sliding, &s); err != nil {
				return 0, 0, 0, rs, fmt.Errorf("convert: config.json: rope_parameters.sliding_attention: %w", err)
			}
			kind := s.RopeType
			if kind == "" {
				kind = s.Type
			}
			kind = strings.ToLower(kind)
			if kind != "" && kind != "default" {
				return 0, 0, 0, rs, fmt.Errorf("%w rope_parameters.sliding_attention type %q: llama.cpp's gemma3 arch applies no rope scaling to the sliding-window layers",
					ErrUnsupported, kind)
			}
			if s.PartialRotaryFactor != nil && *s.PartialRotaryFactor != 1 {
				return 0, 0, 0, rs, fmt.Errorf("%w: partial_rotary_factor %v for the sliding-window layers of Gemma 3", ErrUnsupported, *s.PartialRotaryFactor)
			}
			if s.RopeTheta != nil {
				local = *s.RopeTheta
			}
		}
	}
	if !(local > 0) || math.IsInf(local, 0) {
		return 0, 0, 0, rs, fmt.Errorf("%w: config.json: the local rope base %v is not positive", ErrMismatch, local)
	}
	if g.RopeTheta == nil && !ropeHasTheta(g.RopeParameters) {
		t := gemma3RopeTheta
		g.RopeTheta = &t
	}
	theta, partial, rs, err = g.rope(ctxLen)
	return theta, partial, local, rs, err
}

// ropeHasTheta reports whether a rope_parameters object gives rope_theta.
func ropeHasTheta(raw json.RawMessage) bool {
	var r ropeJSON
	return !isNull(raw) && json.Unmarshal(raw, &r) == nil && r.RopeTheta != nil
}

// gemma3LayerTypes returns, per layer, whether it uses the sliding window:
// layer_types when given, else transformers' rule from
// sliding_window_pattern p (default 6): layer i slides unless (i+1) % p
// is 0.
func gemma3LayerTypes(c *hfConfig, layers int) ([]bool, error) {
	sliding, err := c.slidingLayers(layers)
	if sliding != nil || err != nil {
		return sliding, err
	}
	sliding = make([]bool, layers)
	p := gemma3Pattern
	if len(c.SlidingWindowPattern) > 0 {
		if p = positiveInt(c.SlidingWindowPattern); p == 0 {
			return nil, fmt.Errorf("%w: config.json: sliding_window_pattern %s is not a positive integer", ErrMismatch, c.SlidingWindowPattern)
		}
	}
	for i := range sliding {
		sliding[i] = (i+1)%p != 0
	}
	return sliding, nil
}

// gemma3Hparams reads Gemma 3's attention settings, refusing what
// llama.cpp's gemma3 arch cannot reproduce: it never soft-caps the
// attention scores; it scales the queries by 1/sqrt(head_dim), or
// 1/sqrt(hidden/heads) for a 62-layer (27B) model, instead of reading
// query_pre_attn_scalar; with a sliding window, the pattern of sliding
// and global layers, the local rope base (10000) and the absence of
// rope scaling on the local layers are fixed. Only linear rope scaling
// (applied, as transformers does, to the global layers only) is
// converted.
func gemma3Hparams(c *hfConfig, h *hparams, local float64, embed bool) error {
	arch, cpp := "Gemma 3", "gemma3"
	if embed {
		arch, cpp = "EmbeddingGemma (Gemma3TextModel)", "gemma-embedding"
	}
	switch c.HiddenActivation {
	case "", "gelu_pytorch_tanh":
	default:
		return fmt.Errorf("%w: %s with hidden_activation %q (llama.cpp's %s arch uses the tanh GELU, gelu_pytorch_tanh)", ErrUnsupported, arch, c.HiddenActivation, cpp)
	}
	if !isNull(c.AttnLogitSoftcapping) {
		return fmt.Errorf("%w: %s with attn_logit_softcapping %s (llama.cpp's %s arch does not soft-cap the attention scores)",
			ErrUnsupported, arch, c.AttnLogitSoftcapping, cpp)
	}
	fc, ok, err := optFloat(c.FinalLogitSoftcapping, "final_logit_softcapping", 0)
	if err != nil {
		return err
	}
	if ok && len(c.FinalLogitSoftcapping) > 0 {
		if !(fc > 0) || math.IsInf(fc, 0) {
			return fmt.Errorf("%w: config.json: final_logit_softcapping %v is not positive", ErrMismatch, fc)
		}
		h.finalSoftcap = fc
	}
	switch h.rope.kind {
	case ropeNone, ropeLinear:
	default:
		return fmt.Errorf("%w: %s rope scaling for %s (llama.cpp's %s arch applies only linear scaling as transformers does, to the global layers)",
			ErrUnsupported, h.rope.kind, arch, cpp)
	}
	q, ok, err := optFloat(c.QueryPreAttnScalar, "query_pre_attn_scalar", gemma3QueryScalar)
	if err != nil {
		return err
	}
	want := float64(h.headDim)
	if h.layers == 62 && !embed { // gemma-embedding always scales by 1/sqrt(head_dim)
		want = float64(h.hidden / h.heads)
	}
	if !ok || q != want {
		got := "null"
		if ok {
			got = fmt.Sprint(q)
		}
		return fmt.Errorf("%w: %s with query_pre_attn_scalar %s: llama.cpp's %s arch scales the queries by 1/sqrt(%v) for this shape",
			ErrUnsupported, arch, got, cpp, want)
	}

	sliding, err := gemma3LayerTypes(c, h.layers)
	if err != nil {
		return err
	}
	var global []int
	match := true
	for i, s := range sliding {
		if !s {
			global = append(global, i)
		}
		if s != (i%llamaGemma3SWAPattern < llamaGemma3SWAPattern-1) {
			match = false
		}
	}
	if len(global) == len(sliding) && !embed {
		// No sliding-window layer: llama.cpp without a sliding_window key
		// treats every layer as global, with rope_theta and the scaling.
		h.slidingWindow = 0
		return nil
	}
	if !match || embed && len(global) == len(sliding) {
		return fmt.Errorf("%w: %s with global (full_attention) layers %v (layer_types or sliding_window_pattern): llama.cpp's %s arch makes layers 5, 11, 17, ... (every sixth) global and the others sliding-window",
			ErrUnsupported, arch, global, cpp)
	}
	switch {
	case len(c.SlidingWindow) == 0:
		h.slidingWindow = gemma3SlidingWindow
	case positiveInt(c.SlidingWindow) > 0:
		h.slidingWindow = positiveInt(c.SlidingWindow)
	default:
		return fmt.Errorf("%w: %s with sliding-window layers and sliding_window %s", ErrUnsupported, arch, c.SlidingWindow)
	}
	if local != llamaGemma3SWABase {
		return fmt.Errorf("%w: %s with rope_local_base_freq %v: llama.cpp's %s arch rotates the sliding-window layers with base %v",
			ErrUnsupported, arch, local, cpp, llamaGemma3SWABase)
	}
	return nil
}

// gemma3Keys sets the keys llama.cpp's gemma3 (and gemma-embedding) arch
// reads beyond the common ones: the sliding window (absent when every
// layer is global, which turns llama.cpp's sliding window off) and the
// final soft-cap when config.json sets one (not for embeddings, which
// have no logits).
func gemma3Keys(w *gguf.Writer, a string, arch archSpec, h hparams) {
	if h.slidingWindow > 0 {
		w.Set(a+".attention.sliding_window", gguf.Uint32(uint32(h.slidingWindow)))
	}
	if h.finalSoftcap > 0 && !arch.gemmaEmbed {
		w.Set(a+".final_logit_softcapping", gguf.Float32(float32(h.finalSoftcap)))
	}
}

// dropAddedAbove drops the tokens with ids n and above when all are added
// tokens that are none of the special tokens: Gemma 3's tokenizer.json
// has the image token <image_soft_token> at id 262144, one past
// gemma-3-1b's vocab_size (the embeddings have no row for it), and
// convert_hf_to_gguf.py likewise ignores added tokens whose id is out of
// range. It returns the dropped tokens.
func (v *vocab) dropAddedAbove(n int) ([]string, error) {
	for id := n; id < len(v.tokens); id++ {
		added := v.types[id] == tokControl || v.types[id] == tokUserDefined || v.types[id] == tokUnused
		special := slices.Contains([]int{v.bos, v.eos, v.unk, v.pad, v.sep, v.cls, v.mask}, id)
		if !added || special {
			return nil, fmt.Errorf("%w: tokenizer has %d tokens, config vocab_size is %d, and token %d %q is not an added token the model can do without",
				ErrMismatch, len(v.tokens), n, id, v.tokens[id])
		}
	}
	dropped := slices.Clone(v.tokens[n:])
	v.tokens, v.types = v.tokens[:n], v.types[:n]
	if v.scores != nil {
		v.scores = v.scores[:n]
	}
	return dropped, nil
}
