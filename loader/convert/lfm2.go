package convert

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// LFM2 (Lfm2ForCausalLM: LiquidAI's LFM2 and LFM2.5, 350M to 2.6B) mixes
// gated short-convolution layers with attention layers, as layer_types
// (else full_attn_idxs; with neither every layer attends) says. Every
// layer is operator_norm, its operator, a residual, then ffn_norm and a
// SwiGLU MLP (w1 the gate, w3 the up, w2 the down projection). The
// attention has per-head RMS norms on q and k (q_layernorm, k_layernorm)
// and NEOX rope; the final norm is named embedding_norm. A convolution
// layer projects the input to B, C and x (in_proj, those three in that
// order), convolves B·x causally per channel over conv_L_cache positions
// (conv.conv [hidden, 1, L], written [hidden, L] and kept F32, as ggml's
// convolution reads it), multiplies by C and projects back (out_proj).
//
// The MLP width is worked out as transformers does: block_ff_dim (else
// intermediate_size), with block_auto_adjust_ff_dim taken to two thirds,
// then times block_ffn_dim_multiplier and rounded up to block_multiple_of.
//
// Lfm2VlForConditionalGeneration (LFM2-VL) converts as its language model,
// an LFM2 (text_config), the vision tower and projector skipped.
//
// Lfm2MoeForCausalLM (LFM2-8B-A1B, LFM2-24B-A2B) → "lfm2moe": the first
// num_dense_layers keep the dense MLP (intermediate_size wide); the rest
// route each token to num_experts_per_tok of num_experts SwiGLU experts by
// a sigmoid router whose expert_bias picks the experts but does not
// weight them, the weights renormalised (llama.cpp's fixed graph, so
// norm_topk_prob false and a routed_scaling_factor other than 1 are
// refused). Experts are read per expert or fused (gate_up_proj holding
// each expert's gate rows, then its up rows).
//
// llama.cpp's lfm2 has no convolution biases (conv_bias true is refused),
// projects the queries to the hidden size (head_dim × heads must be
// hidden_size) and, on CUDA, convolves over 3 or 4 positions only.

// lfm2Config holds config.json's LFM2 fields, with the original names
// transformers still reads (block_ff_dim, theta, tie_embedding).
type lfm2Config struct {
	FullAttnIdxs        json.RawMessage `json:"full_attn_idxs"`
	ConvBias            *bool           `json:"conv_bias"`
	ConvLCache          *int            `json:"conv_L_cache"`
	BlockFFDim          *int            `json:"block_ff_dim"`
	BlockMultipleOf     *int            `json:"block_multiple_of"`
	BlockFFNMultiplier  json.RawMessage `json:"block_ffn_dim_multiplier"`
	BlockAutoAdjustFF   *bool           `json:"block_auto_adjust_ff_dim"`
	NormEps             *float64        `json:"norm_eps"`
	Theta               *float64        `json:"theta"`
	TieEmbedding        *bool           `json:"tie_embedding"`
	NumDenseLayers      *int            `json:"num_dense_layers"`
	UseExpertBias       *bool           `json:"use_expert_bias"`
	RoutedScalingFactor *float64        `json:"routed_scaling_factor"`
}

// lfm2 holds an LFM2 model's validated layout.
type lfm2 struct {
	attn       []bool // per layer: attention (else a short convolution)
	lCache     int    // conv_L_cache, the convolution's width
	dense      int    // lfm2moe: the leading layers with a dense MLP
	expertBias bool   // lfm2moe: the router has expert_bias
}

// lfm2MoE names LFM2-MoE's experts: the router feed_forward.gate, per
// expert feed_forward.experts.N.w1 (gate), w3 (up) and w2 (down), or
// fused as transformers 5 stores them.
var lfm2MoE = &moeSpec{router: "feed_forward.gate.weight", experts: regexp.MustCompile(`^feed_forward\.experts\.(\d+)\.(w[123]\.weight)$`),
	gate: "w1.weight", up: "w3.weight", down: "w2.weight", expertFFNKey: true, norm: true,
	fusedGateUp: "feed_forward.experts.gate_up_proj", fusedDown: "feed_forward.experts.down_proj", fusedOutIn: true}

// lfm2Defaults applies Lfm2Config's and Lfm2MoeConfig's defaults and
// original key names ahead of the common reading: norm_eps, theta (which
// Lfm2Config prefers to rope_theta), tie_embedding, 8 KV heads, a context
// of 128000, and the dense MLP's width.
func (c *hfConfig) lfm2Defaults(arch archSpec) error {
	if c.lfm2Err != nil {
		return fmt.Errorf("convert: config.json: %w", c.lfm2Err)
	}
	l := c.LFM2
	moe := arch.gguf == "lfm2moe"
	if arch.vlm && strings.Contains(c.ModelType, "moe") {
		// text_config's model_type: an LFM2-VL on an LFM2-MoE.
		return fmt.Errorf("%w: %s whose language model is %q: converted as LFM2 only", ErrUnsupported, arch.hf, c.ModelType)
	}
	eps := 1e-5
	if l.NormEps != nil {
		eps = *l.NormEps
	}
	c.RMSNormEps = &eps
	switch p, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); {
	case err != nil:
		return err
	case l.Theta != nil && !moe:
		c.RopeTheta = l.Theta
	case c.RopeTheta == nil && (p == nil || p.RopeTheta == nil):
		theta := 1e6
		c.RopeTheta = &theta
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = 8
	}
	if c.MaxPositionEmbeddings == 0 {
		c.MaxPositionEmbeddings = 128000
	}
	tied := true
	switch {
	case l.TieEmbedding != nil:
		tied = *l.TieEmbedding
	case c.TieWordEmbeddings != nil:
		tied = *c.TieWordEmbeddings
	}
	c.TieWordEmbeddings = &tied
	if arch.gguf == "lfm2moe" {
		if c.IntermediateSize == 0 {
			c.IntermediateSize = 7168 // Lfm2MoeConfig's default
		}
		return nil
	}
	ff := c.IntermediateSize
	if l.BlockFFDim != nil {
		ff = *l.BlockFFDim
	}
	if ff == 0 {
		ff = 12288 // Lfm2Config's default
	}
	if l.BlockAutoAdjustFF == nil || *l.BlockAutoAdjustFF {
		ff = 2 * ff / 3
		mult := 1.0 // absent: 1.0; null: no multiplier and no rounding
		hasMult := true
		if l.BlockFFNMultiplier != nil {
			if isNull(l.BlockFFNMultiplier) {
				hasMult = false
			} else if err := json.Unmarshal(l.BlockFFNMultiplier, &mult); err != nil {
				return fmt.Errorf("%w: config.json: block_ffn_dim_multiplier: %v", ErrMismatch, err)
			}
		}
		if hasMult {
			multiple := 256
			if l.BlockMultipleOf != nil {
				multiple = *l.BlockMultipleOf
			}
			if multiple <= 0 {
				return fmt.Errorf("%w: config.json: block_multiple_of %d is not positive", ErrMismatch, multiple)
			}
			ff = int(mult * float64(ff))
			ff = multiple * ((ff + multiple - 1) / multiple)
		}
	}
	c.IntermediateSize = ff
	return nil
}

// lfm2LayerTypes reads layer_types ("full_attention" or "conv"), else
// full_attn_idxs: per layer whether it attends.
func (c *hfConfig) lfm2LayerTypes(arch archSpec, n int) ([]bool, error) {
	attn := make([]bool, n)
	if !isNull(c.LayerTypes) {
		var types []string
		if err := json.Unmarshal(c.LayerTypes, &types); err != nil {
			return nil, fmt.Errorf("%w: config.json: layer_types: %v", ErrMismatch, err)
		}
		if len(types) != n {
			return nil, fmt.Errorf("%w: config.json: layer_types has %d entries for %d layers", ErrMismatch, len(types), n)
		}
		for i, t := range types {
			switch t {
			case "full_attention":
				attn[i] = true
			case "conv":
			default:
				return nil, fmt.Errorf("%w: config.json: layer_types[%d] is %q; LFM2's layers are \"conv\" or \"full_attention\"", ErrMismatch, i, t)
			}
		}
		return attn, nil
	}
	if arch.gguf == "lfm2moe" {
		// Lfm2MoeConfig keeps layer_types as given, and its cache needs them.
		return nil, fmt.Errorf("%w: config.json: %s has no layer_types", ErrMismatch, arch.hf)
	}
	if isNull(c.LFM2.FullAttnIdxs) {
		for i := range attn {
			attn[i] = true // Lfm2Config's default: every layer attends
		}
		return attn, nil
	}
	var idxs []int
	if err := json.Unmarshal(c.LFM2.FullAttnIdxs, &idxs); err != nil {
		return nil, fmt.Errorf("%w: config.json: full_attn_idxs: %v", ErrMismatch, err)
	}
	for _, i := range idxs {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("%w: config.json: full_attn_idxs names layer %d of %d", ErrMismatch, i, n)
		}
		attn[i] = true
	}
	return attn, nil
}

// lfm2Hparams reads and checks an LFM2 or LFM2-MoE config.
func (c *hfConfig) lfm2Hparams(arch archSpec, h *hparams) error {
	l := c.LFM2
	g := &lfm2{lCache: 3, expertBias: true}
	var err error
	if g.attn, err = c.lfm2LayerTypes(arch, h.layers); err != nil {
		return err
	}
	if l.ConvLCache != nil {
		g.lCache = *l.ConvLCache
	}
	switch {
	case l.ConvBias != nil && *l.ConvBias:
		return fmt.Errorf("%w: %s with conv_bias true: llama.cpp's %s has no convolution or projection biases", ErrUnsupported, arch.hf, arch.gguf)
	case g.lCache != 3 && g.lCache != 4:
		return fmt.Errorf("%w: %s with conv_L_cache %d: ggml's CUDA convolution runs widths of 3 or 4 only (others abort)", ErrUnsupported, arch.hf, g.lCache)
	case h.headDim*h.heads != h.hidden:
		return fmt.Errorf("%w: %s with head_dim %d × %d heads ≠ hidden_size %d: llama.cpp's %s projects the queries to the hidden size", ErrUnsupported, arch.hf, h.headDim, h.heads, h.hidden, arch.gguf)
	}
	h.lfm = g
	if arch.gguf != "lfm2moe" {
		return nil
	}
	if err := c.moeHparams(arch, h); err != nil {
		return err
	}
	g.dense = 2 // Lfm2MoeConfig's default
	if l.NumDenseLayers != nil {
		g.dense = *l.NumDenseLayers
	}
	if l.UseExpertBias != nil {
		g.expertBias = *l.UseExpertBias
	}
	switch {
	case g.dense < 0 || g.dense > h.layers:
		return fmt.Errorf("%w: config.json: num_dense_layers %d of %d layers", ErrMismatch, g.dense, h.layers)
	case l.RoutedScalingFactor != nil && *l.RoutedScalingFactor != 1:
		return fmt.Errorf("%w: %s with routed_scaling_factor %v: llama.cpp's %s does not scale the expert weights", ErrUnsupported, arch.hf, *l.RoutedScalingFactor, arch.gguf)
	}
	return nil
}

// lfm2Keys writes what llama.cpp's lfm2 and lfm2moe read beyond the
// common keys: one KV head count per layer (0: a convolution layer), the
// convolution's width and, with experts, the leading dense layers and the
// sigmoid gating.
func lfm2Keys(w *gguf.Writer, a string, h hparams) {
	g := h.lfm
	layerKVHeads(w, a, g.attn, h.kvHeads)
	w.Set(a+".shortconv.l_cache", gguf.Uint32(uint32(g.lCache)))
	if a == "lfm2moe" {
		w.Set(a+".leading_dense_block_count", gguf.Uint32(uint32(g.dense)))
		w.Set(a+".expert_gating_func", gguf.Uint32(gatingSigmoid))
	}
}

// lfm2OutputNorm is the name this llama.cpp loads lfm2's final norm by.
// convert_hf_to_gguf.py writes it token_embd_norm.weight, which newer
// llama.cpp reads (LLM_TENSOR_OUTPUT_NORM_LFM2), and Ollama's own engine
// output_norm.weight; the llama.cpp vendored by Ollama v0.17.4 lists
// neither for lfm2 and so looks the tensor up by its bare base name.
// lfm2moe's final norm is output_norm.weight here.
const lfm2OutputNorm = "output_norm"

// planLFM2 maps an LFM2 or LFM2-MoE checkpoint's tensors.
func planLFM2(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	g := h.lfm
	H, F, E := int64(h.hidden), int64(h.ffn), int64(h.experts)
	Q, KV, D := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim), int64(h.headDim)
	moe := arch.gguf == "lfm2moe"
	pl := newPlanner(st, h)
	if !moe {
		pl.outputNorm = lfm2OutputNorm
	}
	add := pl.add
	experts, fused := expertParts{}, fusedExperts{}
	layer := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		refuse := func(why string) error {
			return fmt.Errorf("%w tensor %q in a %s checkpoint: %s", ErrUnsupported, t.Name, arch.hf, why)
		}
		contradict := func(why string) error {
			return fmt.Errorf("%w: tensor %q: %s", ErrMismatch, t.Name, why)
		}
		attn, sparse := g.attn[n], moe && n >= g.dense
		switch {
		case attn && strings.HasPrefix(suffix, "conv."):
			return contradict(fmt.Sprintf("convolution weights in layer %d, an attention layer in layer_types", n))
		case !attn && strings.HasPrefix(suffix, "self_attn."):
			return contradict(fmt.Sprintf("attention weights in layer %d, a convolution layer in layer_types", n))
		}
		switch suffix {
		case "operator_norm.weight":
			return add(blk("attn_norm.weight"), t, []int64{H})
		case "ffn_norm.weight":
			return add(blk("ffn_norm.weight"), t, []int64{H})
		case "self_attn.q_proj.weight":
			return add(blk("attn_q.weight"), t, []int64{Q, H})
		case "self_attn.k_proj.weight":
			return add(blk("attn_k.weight"), t, []int64{KV, H})
		case "self_attn.v_proj.weight":
			return add(blk("attn_v.weight"), t, []int64{KV, H})
		case "self_attn.out_proj.weight":
			return add(blk("attn_output.weight"), t, []int64{H, Q})
		case "self_attn.q_layernorm.weight":
			return add(blk("attn_q_norm.weight"), t, []int64{D})
		case "self_attn.k_layernorm.weight":
			return add(blk("attn_k_norm.weight"), t, []int64{D})
		case "conv.in_proj.weight":
			return add(blk("shortconv.in_proj.weight"), t, []int64{3 * H, H})
		case "conv.conv.weight":
			p := blk("shortconv.conv.weight")
			p.shape = []int64{H, int64(g.lCache)}
			return add(p, t, []int64{H, 1, int64(g.lCache)})
		case "conv.out_proj.weight":
			return add(blk("shortconv.out_proj.weight"), t, []int64{H, H})
		}
		if !sparse {
			switch suffix {
			case "feed_forward.w1.weight":
				return add(blk("ffn_gate.weight"), t, []int64{F, H})
			case "feed_forward.w3.weight":
				return add(blk("ffn_up.weight"), t, []int64{F, H})
			case "feed_forward.w2.weight":
				return add(blk("ffn_down.weight"), t, []int64{H, F})
			}
			if moe && strings.HasPrefix(suffix, "feed_forward.") {
				return contradict(fmt.Sprintf("experts in layer %d, one of num_dense_layers %d", n, g.dense))
			}
			return refuse("not a tensor of the model")
		}
		switch suffix {
		case "feed_forward.gate.weight":
			return add(blk("ffn_gate_inp.weight"), t, []int64{E, H})
		case "feed_forward.expert_bias":
			if !g.expertBias {
				return contradict("an expert_bias where config.json's use_expert_bias is false")
			}
			return add(blk("exp_probs_b.bias"), t, []int64{E})
		}
		if e := lfm2MoE.perExpert(suffix); e != nil {
			if err := checkWeightDType(st, t, h); err != nil {
				return err
			}
			return experts.add(arch, h, n, e[1], e[2], t.Name, t.Shape)
		}
		if fused.add(lfm2MoE, n, suffix, t) {
			return nil
		}
		if strings.HasPrefix(suffix, "feed_forward.w") {
			return contradict(fmt.Sprintf("a dense MLP in layer %d, past num_dense_layers %d", n, g.dense))
		}
		return refuse("not a tensor of the model")
	}
	if err := pl.walkText(arch, llamaEmb, []string{"model.embedding_norm.weight"}, layer); err != nil {
		return nil, err
	}
	if moe {
		sparse := make([]bool, h.layers)
		for n := g.dense; n < h.layers; n++ {
			sparse[n] = true
		}
		if err := stackExperts(pl, lfm2MoE, experts, fused, h, sparse); err != nil {
			return nil, err
		}
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !moe {
		required[1] = lfm2OutputNorm
	}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n, attn := range g.attn {
		names := []string{"attn_norm.weight", "ffn_norm.weight"}
		if attn {
			names = append(names, "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "attn_q_norm.weight", "attn_k_norm.weight")
		} else {
			names = append(names, "shortconv.in_proj.weight", "shortconv.conv.weight", "shortconv.out_proj.weight")
		}
		if moe && n >= g.dense {
			if !g.expertBias {
				// llama.cpp requires the selection bias: zeros select as
				// the router alone does.
				pl.put(tensorPlan{ggufName: fmt.Sprintf("blk.%d.exp_probs_b.bias", n), shape: []int64{E}, gen: make([]float32, E), layer: n})
			}
			names = append(names, "ffn_gate_inp.weight", "exp_probs_b.bias", "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight")
		} else {
			names = append(names, "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")
		}
		for _, s := range names {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, s))
		}
	}
	return pl.finish(required)
}

// stackExperts plans the stacked experts of the layers sparse marks, each
// layer's read either per expert or fused (named by spec), not both.
func stackExperts(pl *planner, spec *moeSpec, experts expertParts, fused fusedExperts, h hparams, sparse []bool) error {
	for n, ok := range sparse {
		if !ok {
			continue
		}
		var stacked []tensorPlan
		var err error
		if fused[n] != nil {
			for _, name := range []string{"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"} {
				if experts[fmt.Sprintf("blk.%d.%s.weight", n, name)] != nil {
					return fmt.Errorf("%w: layer %d's experts both fused and per expert", ErrMismatch, n)
				}
			}
			stacked, err = fused.layerPlans(spec, h, n)
		} else {
			stacked, err = experts.plansLayer(h, n)
		}
		if err != nil {
			return err
		}
		pl.put(stacked...)
	}
	return nil
}
