package convert

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Gemma 3n (Gemma3nForConditionalGeneration: gemma-3n-E2B and E4B, base
// and -it, and their fine-tunes; Gemma3nForCausalLM) → GGUF arch
// "gemma3n": its text model, the vision and audio towers skipped.
//
//   - The embeddings (scaled by √hidden by llama.cpp) and the per-layer
//     input embeddings (embed_tokens_per_layer, vocab_size_per_layer_input
//     rows, padded to vocab_size with copies of row 0: transformers reads
//     row 0 for the ids past them, the vision and audio tokens;
//     convert_hf_to_gguf.py pads zeros) with their projection from the
//     embeddings (per_layer_model_projection) and its norm.
//   - AltUp's four streams: the three projections that make the extra
//     streams from the embeddings and the three that bring them back
//     (altup_projections, altup_unembed_projections), each set stacked
//     into one tensor; per layer the predict and correct coefficients, the
//     router and its norm, and the correction's output scale.
//   - Per layer LAuReL's low-rank residual (linear_left, linear_right, its
//     norm), the attention with per-head q/k norms (v normed without
//     weights by llama.cpp as by transformers) and no scaling of the
//     scores, the sandwich norms, a GELU MLP (tanh form) whose first ten
//     layers keep only the gate activations above mean + 1.645 σ (the
//     95th percentile of activation_sparsity_pattern), and the per-layer
//     input's gate, projection and norm.
//   - The final logits soft-capped at final_logit_softcapping.
//
// Gemma 3n's RMS norms multiply by their weights as they are (no +1,
// unlike Gemma 1–3's). AltUp's correction coefficients are written clamped
// to ±altup_coef_clip (120), as transformers clamps them when it uses
// them.
//
// llama.cpp's gemma3n fixes what the released models have, so anything
// else is refused: four AltUp streams, the first active, the correction
// scaled; LAuReL rank 64; per-layer inputs of 256; a sliding window in four
// layers of five (layer_types), rotating with base 10000; the keys and
// values of layers 20 and up taken from layers 18 (sliding) and 19 (full),
// as num_kv_shared_layers = num_hidden_layers − 20 says; activation
// sparsity 0.95 in the first ten layers and 0 after (a model of ten layers
// or fewer must say so: Gemma3nTextConfig's default is then none); logits
// capped at 30; one MLP width in every layer; no attention biases, no rope
// scaling. llama.cpp computes the sparsity's σ over n−1 where transformers
// divides by n: a difference of 1/(2n) in σ (6e-5 for the E2B's 8192-wide
// MLP).

// Values llama.cpp's gemma3n hard-codes (llama-hparams.h, llama-model.cpp,
// models.h).
const (
	gemma3nAltup         = 4
	gemma3nLaurelRank    = 64
	gemma3nPerLayer      = 256
	gemma3nSWAPattern    = 5
	gemma3nKVFromStart   = 20
	gemma3nSparseLayers  = 10
	gemma3nSparsity      = 0.95
	gemma3nSoftcap       = 30.0
	gemma3nLocalBase     = 10000.0
	gemma3nSparsityScale = 1.6448533535003662 // the standard normal's 95th percentile
)

// gemma3nConfig holds Gemma3nTextConfig's names (of text_config, or of the
// config itself for Gemma3nForCausalLM), with its defaults where absent.
type gemma3nConfig struct {
	VocabSize         int             `json:"vocab_size"`
	VocabPerLayer     *int            `json:"vocab_size_per_layer_input"`
	HiddenSize        int             `json:"hidden_size"`
	PerLayer          *int            `json:"hidden_size_per_layer_input"`
	IntermediateSize  json.RawMessage `json:"intermediate_size"`
	Layers            int             `json:"num_hidden_layers"`
	Heads             int             `json:"num_attention_heads"`
	KVHeads           int             `json:"num_key_value_heads"`
	HeadDim           int             `json:"head_dim"`
	Activation        string          `json:"hidden_activation"`
	MaxPos            int             `json:"max_position_embeddings"`
	RMSNormEps        *float64        `json:"rms_norm_eps"`
	RopeTheta         *float64        `json:"rope_theta"`
	RopeLocalBase     *float64        `json:"rope_local_base_freq"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	RopeParameters    json.RawMessage `json:"rope_parameters"`
	SlidingWindow     *int            `json:"sliding_window"`
	LayerTypes        []string        `json:"layer_types"`
	FinalSoftcap      json.RawMessage `json:"final_logit_softcapping"` // null: none
	AltupCoefClip     json.RawMessage `json:"altup_coef_clip"`         // null: none
	AltupActive       *int            `json:"altup_active_idx"`
	AltupCorrectScale *bool           `json:"altup_correct_scale"`
	AltupInputs       *int            `json:"altup_num_inputs"`
	KVShared          *int            `json:"num_kv_shared_layers"`
	LaurelRank        *int            `json:"laurel_rank"`
	Sparsity          []float64       `json:"activation_sparsity_pattern"`
	AttentionBias     *bool           `json:"attention_bias"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
}

// gemma3n holds a Gemma 3n model's validated sizes beyond hparams': the
// per-layer inputs' vocabulary, the MLP width of each layer (one width:
// llama.cpp's gemma3n takes layer 0's for all), which layers use the
// sliding window, and the bound of AltUp's correction coefficients.
type gemma3n struct {
	vocabPerLayer int
	ffn           []int
	sliding       []bool
	// coefClip bounds AltUp's correction coefficients, which transformers
	// clamps to ±altup_coef_clip before using them (0: no bound).
	coefClip float64
}

// gemma3nHparams reads a Gemma 3n config: text_config for
// Gemma3nForConditionalGeneration, the config itself for
// Gemma3nForCausalLM.
func (c *hfConfig) gemma3nHparams(arch archSpec) (hparams, error) {
	raw := c.raw
	if arch.vlm {
		if isNull(c.TextConfig) {
			return hparams{}, fmt.Errorf("%w: config.json: %s has no text_config", ErrMismatch, arch.hf)
		}
		raw = c.TextConfig
	}
	var g gemma3nConfig
	if err := json.Unmarshal(raw, &g); err != nil {
		return hparams{}, fmt.Errorf("convert: config.json: %w", err)
	}
	intOr := func(p *int, def int) int {
		if p == nil {
			return def
		}
		return *p
	}
	orInt := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	floatOr := func(p *float64, def float64) float64 {
		if p == nil {
			return def
		}
		return *p
	}
	// Gemma3nTextConfig's defaults.
	h := hparams{vocab: orInt(g.VocabSize, 262400), hidden: orInt(g.HiddenSize, 2048), layers: orInt(g.Layers, 35),
		heads: orInt(g.Heads, 8), kvHeads: orInt(g.KVHeads, 2), headDim: orInt(g.HeadDim, 256), ctxLen: orInt(g.MaxPos, 32768),
		rmsEps: floatOr(g.RMSNormEps, 1e-6), ropeTheta: floatOr(g.RopeTheta, 1e6),
		slidingWindow: intOr(g.SlidingWindow, 512), tied: g.TieWordEmbeddings == nil || *g.TieWordEmbeddings}
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab_size", h.vocab}, {"hidden_size", h.hidden}, {"num_hidden_layers", h.layers}, {"num_attention_heads", h.heads},
		{"num_key_value_heads", h.kvHeads}, {"head_dim", h.headDim}, {"max_position_embeddings", h.ctxLen}, {"sliding_window", h.slidingWindow}} {
		if f.v <= 0 {
			return h, fmt.Errorf("%w: config.json: %s is not positive", ErrMismatch, f.name)
		}
	}
	if h.heads%h.kvHeads != 0 || h.headDim%2 != 0 {
		return h, fmt.Errorf("%w: config.json: %d heads of %d over %d key/value heads", ErrMismatch, h.heads, h.headDim, h.kvHeads)
	}
	h.ropeDim = h.headDim
	n := &gemma3n{vocabPerLayer: intOr(g.VocabPerLayer, 262144), ffn: make([]int, h.layers), sliding: make([]bool, h.layers)}
	if n.vocabPerLayer <= 0 || n.vocabPerLayer > h.vocab {
		return h, fmt.Errorf("%w: config.json: vocab_size_per_layer_input %d must be in [1, vocab_size %d]", ErrMismatch, n.vocabPerLayer, h.vocab)
	}
	// intermediate_size: one width, or one per layer.
	var one int
	var each []int
	switch {
	case isNull(g.IntermediateSize):
		one = 16384
	case json.Unmarshal(g.IntermediateSize, &one) == nil:
	case json.Unmarshal(g.IntermediateSize, &each) == nil && len(each) == h.layers:
	default:
		return h, fmt.Errorf("%w: config.json: intermediate_size %s is neither a width nor one per layer (%d)", ErrMismatch, strings.Join(strings.Fields(string(g.IntermediateSize)), ""), h.layers)
	}
	for i := range n.ffn {
		n.ffn[i] = one
		if each != nil {
			n.ffn[i] = each[i]
		}
		if n.ffn[i] <= 0 {
			return h, fmt.Errorf("%w: config.json: intermediate_size of layer %d is not positive", ErrMismatch, i)
		}
	}
	h.ffn = n.ffn[0]
	if slices.Min(n.ffn) != slices.Max(n.ffn) {
		// llama.cpp's gemma3n sizes every layer's MLP by layer 0's.
		return h, fmt.Errorf("%w: %s with MLP widths from %d to %d: llama.cpp's gemma3n runs one width in every layer", ErrUnsupported, arch.hf, slices.Min(n.ffn), slices.Max(n.ffn))
	}
	// The layers llama.cpp's sliding-window pattern and KV sharing give.
	for i := range n.sliding {
		n.sliding[i] = i%gemma3nSWAPattern < gemma3nSWAPattern-1
	}
	shared := max(0, h.layers-gemma3nKVFromStart)
	wantSparsity := func(i int) float64 {
		if i < gemma3nSparseLayers {
			return gemma3nSparsity
		}
		return 0
	}
	softcap, ok, err := optFloat(g.FinalSoftcap, "final_logit_softcapping", gemma3nSoftcap)
	if err != nil {
		return h, err
	}
	if !ok {
		softcap = 0 // transformers caps nothing
	}
	h.finalSoftcap = softcap
	n.coefClip, ok, err = optFloat(g.AltupCoefClip, "altup_coef_clip", 120)
	if err != nil {
		return h, err
	}
	if !ok {
		n.coefClip = 0
	} else if !(n.coefClip > 0) {
		return h, fmt.Errorf("%w: config.json: altup_coef_clip %v is not positive", ErrMismatch, n.coefClip)
	}
	refuse := func(what string, args ...any) (hparams, error) {
		return h, fmt.Errorf("%w: %s with %s: llama.cpp's gemma3n fixes it as the released models have it", ErrUnsupported, arch.hf, fmt.Sprintf(what, args...))
	}
	switch {
	case intOr(g.AltupInputs, gemma3nAltup) != gemma3nAltup:
		return refuse("altup_num_inputs %d", *g.AltupInputs)
	case intOr(g.AltupActive, 0) != 0:
		return refuse("altup_active_idx %d", *g.AltupActive)
	case g.AltupCorrectScale != nil && !*g.AltupCorrectScale:
		return refuse("altup_correct_scale false")
	case intOr(g.LaurelRank, gemma3nLaurelRank) != gemma3nLaurelRank:
		return refuse("laurel_rank %d", *g.LaurelRank)
	case intOr(g.PerLayer, gemma3nPerLayer) != gemma3nPerLayer:
		return refuse("hidden_size_per_layer_input %d", *g.PerLayer)
	case intOr(g.KVShared, 15) != shared:
		return refuse("num_kv_shared_layers %d of %d layers (llama.cpp shares the keys and values of layers %d and up)", intOr(g.KVShared, 15), h.layers, gemma3nKVFromStart)
	case h.finalSoftcap == 0:
		return refuse("final_logit_softcapping null (transformers caps nothing; llama.cpp at %v)", gemma3nSoftcap)
	case h.finalSoftcap != gemma3nSoftcap:
		return refuse("final_logit_softcapping %v", h.finalSoftcap)
	case g.AttentionBias != nil && *g.AttentionBias:
		return refuse("attention_bias true")
	case g.Activation != "" && g.Activation != "gelu_pytorch_tanh" && g.Activation != "gelu_new" && g.Activation != "gelu_fast":
		return refuse("hidden_activation %q (llama.cpp runs GELU in its tanh form)", g.Activation)
	case !isNull(g.RopeScaling):
		return refuse("rope_scaling %s", g.RopeScaling)
	}
	if g.LayerTypes != nil {
		if len(g.LayerTypes) != h.layers {
			return h, fmt.Errorf("%w: config.json: layer_types has %d entries for %d layers", ErrMismatch, len(g.LayerTypes), h.layers)
		}
		for i, t := range g.LayerTypes {
			if (t == "sliding_attention") != n.sliding[i] || (t != "sliding_attention" && t != "full_attention") {
				return refuse("layer_types[%d] %q (llama.cpp's pattern: full attention in every fifth layer)", i, t)
			}
		}
	}
	if g.Sparsity == nil && h.layers <= gemma3nSparseLayers {
		// Gemma3nTextConfig's default is then no sparsity at all.
		return refuse("%d layers and no activation_sparsity_pattern (transformers sparsifies none, llama.cpp the first %d)", h.layers, gemma3nSparseLayers)
	}
	if g.Sparsity != nil {
		if len(g.Sparsity) != h.layers {
			return h, fmt.Errorf("%w: config.json: activation_sparsity_pattern has %d entries for %d layers", ErrMismatch, len(g.Sparsity), h.layers)
		}
		for i, s := range g.Sparsity {
			if s != wantSparsity(i) {
				return refuse("activation_sparsity_pattern[%d] %v (llama.cpp: %v in the first %d layers, 0 after)", i, s, gemma3nSparsity, gemma3nSparseLayers)
			}
		}
	}
	local := floatOr(g.RopeLocalBase, gemma3nLocalBase)
	if !isNull(g.RopeParameters) {
		// transformers 5: one rope per layer type.
		var types map[string]ropeJSON
		if err := json.Unmarshal(g.RopeParameters, &types); err != nil {
			return h, fmt.Errorf("convert: config.json: rope_parameters: %w", err)
		}
		for name, r := range types {
			kind := r.RopeType
			if kind == "" {
				kind = r.Type
			}
			if kind != "" && kind != "default" {
				return refuse("rope_parameters.%s type %q", name, kind)
			}
			switch {
			case r.RopeTheta == nil:
			case name == "full_attention":
				h.ropeTheta = *r.RopeTheta
			case name == "sliding_attention":
				local = *r.RopeTheta
			}
		}
	}
	if local != gemma3nLocalBase {
		return refuse("a sliding-window rope base of %v", local)
	}
	if !(h.ropeTheta > 0) || math.IsInf(h.ropeTheta, 0) {
		return h, fmt.Errorf("%w: config.json: rope_theta %v is not positive", ErrMismatch, h.ropeTheta)
	}
	h.g3n = n
	return h, nil
}

// gemma3nKeys writes what llama.cpp's gemma3n reads beyond the common keys
// (the head size, the sliding window) and, as convert_hf_to_gguf.py does,
// what it fixes itself.
func gemma3nKeys(w *gguf.Writer, a string, h hparams) {
	n := h.g3n
	w.Set(a+".attention.head_count_kv", gguf.Uint32(uint32(h.kvHeads)))
	w.Set(a+".attention.key_length", gguf.Uint32(uint32(h.headDim)))
	w.Set(a+".attention.value_length", gguf.Uint32(uint32(h.headDim)))
	w.Set(a+".rope.dimension_count", gguf.Uint32(uint32(h.headDim)))
	w.Set(a+".rope.freq_base", gguf.Float32(float32(h.ropeTheta)))
	w.Set(a+".attention.layer_norm_rms_epsilon", gguf.Float32(float32(h.rmsEps)))
	w.Set(a+".attention.sliding_window", gguf.Uint32(uint32(h.slidingWindow)))
	w.Set(a+".final_logit_softcapping", gguf.Float32(float32(h.finalSoftcap)))
	w.Set(a+".altup.active_idx", gguf.Uint32(0))
	w.Set(a+".altup.num_inputs", gguf.Uint32(gemma3nAltup))
	w.Set(a+".embedding_length_per_layer_input", gguf.Uint32(gemma3nPerLayer))
	w.Set(a+".attention.shared_kv_layers", gguf.Uint32(uint32(max(0, h.layers-gemma3nKVFromStart))))
	scale := make([]float32, h.layers)
	for i := range scale {
		scale[i] = float32(math.Inf(-1)) // the normal's icdf(0), as convert_hf_to_gguf.py writes it
		if i < gemma3nSparseLayers {
			scale[i] = gemma3nSparsityScale
		}
	}
	w.Set(a+".activation_sparsity_scale", gguf.Float32s(scale))
	w.Set(a+".attention.sliding_window_pattern", gguf.Bools(n.sliding))
}

// gemma3nLayerNames are Gemma 3n's per-layer tensors by suffix, with
// their GGUF names (after "blk.N.").
var gemma3nLayerNames = map[string]string{
	"input_layernorm.weight":            "attn_norm.weight",
	"self_attn.q_proj.weight":           "attn_q.weight",
	"self_attn.k_proj.weight":           "attn_k.weight",
	"self_attn.v_proj.weight":           "attn_v.weight",
	"self_attn.o_proj.weight":           "attn_output.weight",
	"self_attn.q_norm.weight":           "attn_q_norm.weight",
	"self_attn.k_norm.weight":           "attn_k_norm.weight",
	"post_attention_layernorm.weight":   "post_attention_norm.weight",
	"pre_feedforward_layernorm.weight":  "ffn_norm.weight",
	"mlp.gate_proj.weight":              "ffn_gate.weight",
	"mlp.up_proj.weight":                "ffn_up.weight",
	"mlp.down_proj.weight":              "ffn_down.weight",
	"post_feedforward_layernorm.weight": "post_ffw_norm.weight",
	"per_layer_input_gate.weight":       "inp_gate.weight",
	"per_layer_projection.weight":       "proj.weight",
	"post_per_layer_input_norm.weight":  "post_norm.weight",
	"altup.correction_coefs.weight":     "altup_correct_coef.weight",
	"altup.correct_output_scale":        "altup_correct_scale.weight",
	"altup.prediction_coefs.weight":     "altup_predict_coef.weight",
	"altup.modality_router.weight":      "altup_router.weight",
	"altup.router_norm.weight":          "altup_router_norm.weight",
	"laurel.linear_left.weight":         "laurel_l.weight",
	"laurel.linear_right.weight":        "laurel_r.weight",
	"laurel.post_laurel_norm.weight":    "laurel_post_norm.weight",
}

// gemma3nStackRE matches AltUp's projections: (kind, stream - 1).
var gemma3nStackRE = regexp.MustCompile(`^model\.(altup_projections|altup_unembed_projections)\.(\d+)\.weight$`)

// planGemma3n maps a Gemma 3n checkpoint's text model.
func planGemma3n(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	n := h.g3n
	H, V, L, P := int64(h.hidden), int64(h.vocab), int64(h.layers), int64(gemma3nPerLayer)
	Q, KV, D, A := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim), int64(h.headDim), int64(gemma3nAltup)
	pl := newPlanner(st, h)
	stacks := map[string][]string{"altup_projections": make([]string, A-1), "altup_unembed_projections": make([]string, A-1)}
	skipped := 0
	for _, t := range st.Tensors() {
		name, skip := gemma3TextName(t.Name)
		if skip {
			skipped++
			continue
		}
		if m := gemma3nStackRE.FindStringSubmatch(name); m != nil {
			i, err := strconv.Atoi(m[2])
			if err != nil || i >= int(A-1) {
				return nil, fmt.Errorf("%w: tensor %q: AltUp has %d extra streams", ErrMismatch, t.Name, A-1)
			}
			if !slices.Equal(t.Shape, []int64{H, H}) {
				return nil, fmt.Errorf("%w: tensor %q has shape %v, config.json implies [%d %d]", ErrMismatch, t.Name, t.Shape, H, H)
			}
			if err := checkWeightDType(st, t, h); err != nil {
				return nil, err
			}
			stacks[m[1]][i] = t.Name
			continue
		}
		var p tensorPlan
		var want []int64
		switch name {
		case "model.embed_tokens.weight":
			p, want = tensorPlan{ggufName: "token_embd.weight", layer: -1}, []int64{V, H}
		case "model.embed_tokens_per_layer.weight":
			// The tokens past vocab_size_per_layer_input read row 0, as
			// transformers' get_per_layer_inputs maps them to id 0.
			rows := int64(n.vocabPerLayer)
			p, want = tensorPlan{ggufName: "per_layer_token_embd.weight", layer: -1, shape: []int64{V, L * P}, padRows: V - rows}, []int64{rows, L * P}
		case "model.per_layer_model_projection.weight":
			p, want = tensorPlan{ggufName: "per_layer_model_proj.weight", layer: -1}, []int64{L * P, H}
		case "model.per_layer_projection_norm.weight":
			p, want = tensorPlan{ggufName: "per_layer_proj_norm.weight", layer: -1}, []int64{P}
		case "model.norm.weight":
			p, want = tensorPlan{ggufName: "output_norm.weight", layer: -1}, []int64{H}
		case "lm_head.weight":
			if h.tied {
				continue // transformers runs the embeddings as the head
			}
			p, want = tensorPlan{ggufName: "output.weight", layer: -1}, []int64{V, H}
		default:
			b, suffix, err := blockOf(layerRE, name, h.layers, arch)
			if err != nil {
				return nil, err
			}
			g, ok := gemma3nLayerNames[suffix]
			if !ok {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
			}
			F := int64(n.ffn[b])
			want = map[string][]int64{
				"attn_norm.weight": {H}, "attn_q.weight": {Q, H}, "attn_k.weight": {KV, H}, "attn_v.weight": {KV, H}, "attn_output.weight": {H, Q},
				"attn_q_norm.weight": {D}, "attn_k_norm.weight": {D}, "post_attention_norm.weight": {H}, "ffn_norm.weight": {H},
				"ffn_gate.weight": {F, H}, "ffn_up.weight": {F, H}, "ffn_down.weight": {H, F}, "post_ffw_norm.weight": {H},
				"inp_gate.weight": {P, H}, "proj.weight": {H, P}, "post_norm.weight": {H}, "altup_correct_coef.weight": {A, A},
				"altup_correct_scale.weight": {H}, "altup_predict_coef.weight": {A * A, A}, "altup_router.weight": {A, H},
				"altup_router_norm.weight": {H}, "laurel_l.weight": {gemma3nLaurelRank, H}, "laurel_r.weight": {H, gemma3nLaurelRank},
				"laurel_post_norm.weight": {H},
			}[g]
			p = tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", b, g), layer: b}
			if g == "altup_correct_coef.weight" && n.coefClip > 0 {
				// transformers clamps them whenever it corrects; llama.cpp
				// reads them as they are.
				hf, clip := t.Name, float32(n.coefClip)
				p.shape, p.derive = want, func(tw *tensorWriter) ([]float32, error) {
					v, err := loadFloat32s(tw.st, hf, tw.fp8Block)
					for i := range v {
						v[i] = max(-clip, min(clip, v[i]))
					}
					return v, err
				}
			}
		}
		if err := pl.add(p, t, want); err != nil {
			return nil, err
		}
	}
	if skipped > 0 {
		slog.Info("convert: converting the text model only; the vision and audio towers are skipped (llama.cpp reads them from a separate mmproj file)",
			"architecture", arch.hf, "skipped_tensors", skipped)
	}
	for kind, gg := range map[string]string{"altup_projections": "altup_proj.weight", "altup_unembed_projections": "altup_unembd_proj.weight"} {
		parts := stacks[kind]
		if i := slices.Index(parts, ""); i >= 0 {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor %s.%d.weight (AltUp's stream %d)", ErrMismatch, kind, i, i+1)
		}
		pl.put(tensorPlan{ggufName: gg, parts: parts, shape: []int64{A - 1, H, H}, layer: -1})
	}
	required := []string{"token_embd.weight", "per_layer_token_embd.weight", "per_layer_model_proj.weight", "per_layer_proj_norm.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for b := range h.layers {
		for _, g := range gemma3nLayerNames {
			required = append(required, fmt.Sprintf("blk.%d.%s", b, g))
		}
	}
	return pl.finish(required)
}
