package convert

import (
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// DeepSeek V2 and V3 (DeepseekV2ForCausalLM: DeepSeek-V2, V2-Lite, V2.5;
// DeepseekV3ForCausalLM: DeepSeek-V3, R1, Kimi K2, Moonlight) → GGUF arch
// "deepseek2", as convert_hf_to_gguf.py writes it:
//
//   - Multi-head latent attention. The query is q_proj, or (with
//     q_lora_rank) q_a_proj, its RMS norm and q_b_proj; kv_a_proj_with_mqa
//     gives the compressed KV (kv_lora_rank, RMS-normed by
//     kv_a_layernorm) and one rotary key shared by the heads
//     (qk_rope_head_dim), rotated in adjacent pairs as llama.cpp's "norm"
//     rope does (rope_interleave, which every release sets); kv_b_proj is
//     split per head into attn_k_b (its key rows, transposed: [heads,
//     kv_lora_rank, qk_nope_head_dim]) and attn_v_b ([heads, v_head_dim,
//     kv_lora_rank]), the layout llama.cpp's absorbed MLA multiplies with.
//     The KV cache holds one head of kv_lora_rank + qk_rope_head_dim
//     (attention.key_length, value_length kv_lora_rank), the per-head
//     sizes going to key_length_mla and value_length_mla.
//   - The first first_k_dense_replace layers have a dense MLP, the others
//     n_routed_experts experts (stacked as ffn_{gate,up,down}_exps) and
//     n_shared_experts shared ones (ffn_{gate,up,down}_shexp) that every
//     token runs. The router is softmax (V2) or sigmoid (V3, with
//     e_score_correction_bias as exp_probs_b, which picks the experts
//     but does not weight them); the top-k weights are renormalised when
//     norm_topk_prob says so and then scaled by routed_scaling_factor (V2
//     scales only when it does not renormalise: expert_weights_scale is
//     then 1). V3's noaux_tc picks the topk_group groups of experts with
//     the highest sums of their best two scores, as llama.cpp does; V2's
//     group_limited_greedy ranks a group by its best score, which
//     llama.cpp does not: that is logged.
//   - Yarn: llama.cpp scales cos and sin by 1 and the attention scores by
//     get_mscale(factor, mscale_all_dim)², as DeepSeek does when mscale
//     equals mscale_all_dim (every release); other yarn magnitudes, and
//     yarn without mscale_all_dim, are refused. mscale_all_dim is written
//     ×0.1 as yarn_log_multiplier, the scale llama.cpp divides out.
//
// llama.cpp decides between q_proj and the q_a/q_b pair by the layer
// count alone (26 or 27 layers: q_proj, as DeepSeek-V2-Lite), so a
// checkpoint whose query does not match its layer count is refused. The
// multi-token-prediction layers past num_hidden_layers
// (num_nextn_predict_layers) are skipped, as llama.cpp does not run them.

// deepseekConfig holds config.json's DeepSeek fields.
type deepseekConfig struct {
	QLoraRank           *int     `json:"q_lora_rank"`
	KVLoraRank          int      `json:"kv_lora_rank"`
	QKNopeHeadDim       int      `json:"qk_nope_head_dim"`
	QKRopeHeadDim       int      `json:"qk_rope_head_dim"`
	VHeadDim            int      `json:"v_head_dim"`
	NRoutedExperts      int      `json:"n_routed_experts"`
	NSharedExperts      *int     `json:"n_shared_experts"`
	FirstKDenseReplace  int      `json:"first_k_dense_replace"`
	MoeLayerFreq        *int     `json:"moe_layer_freq"`
	RoutedScalingFactor *float64 `json:"routed_scaling_factor"`
	ScoringFunc         string   `json:"scoring_func"`
	TopkMethod          string   `json:"topk_method"`
	NGroup              *int     `json:"n_group"`
	TopkGroup           *int     `json:"topk_group"`
	RopeInterleave      *bool    `json:"rope_interleave"`
	NextN               int      `json:"num_nextn_predict_layers"`
	AttentionBias       bool     `json:"attention_bias"`
}

// deepseekHparams are the validated DeepSeek hyperparameters.
type deepseekHparams struct {
	qLora, kvLora, nope, rope, vHead int
	dense, shared                    int // leading dense layers, shared experts
	scale                            float64
	norm, sigmoid, scoreBias         bool
	groups, groupsUsed               int
	nextN                            int // multi-token-prediction layers, skipped
}

// deepseekLite reports whether llama.cpp's deepseek2 graph takes a model
// of this many layers for one with q_proj (no q_lora_rank).
func deepseekLite(layers int) bool { return layers == 26 || layers == 27 }

// deepseekHparams reads and checks a DeepSeek config; h has the generic
// fields.
func (c *hfConfig) deepseekHparams(arch archSpec, h *hparams) error {
	d := c.DeepSeek
	m := c.MoE
	ds := &deepseekHparams{kvLora: d.KVLoraRank, nope: d.QKNopeHeadDim, rope: d.QKRopeHeadDim, vHead: d.VHeadDim, dense: d.FirstKDenseReplace, nextN: d.NextN}
	for _, f := range []struct {
		name string
		v    int
	}{{"kv_lora_rank", ds.kvLora}, {"qk_nope_head_dim", ds.nope}, {"qk_rope_head_dim", ds.rope}, {"v_head_dim", ds.vHead}, {"n_routed_experts", d.NRoutedExperts}, {"moe_intermediate_size", m.MoeIntermediateSize}} {
		if f.v <= 0 {
			return fmt.Errorf("%w: config.json: %s is missing or not positive", ErrMismatch, f.name)
		}
	}
	if ds.rope%2 != 0 {
		return fmt.Errorf("%w: config.json: qk_rope_head_dim %d is odd", ErrMismatch, ds.rope)
	}
	if d.QLoraRank != nil {
		ds.qLora = *d.QLoraRank
	}
	switch lite := deepseekLite(h.layers); {
	case ds.qLora < 0:
		return fmt.Errorf("%w: config.json: q_lora_rank %d is negative", ErrMismatch, ds.qLora)
	case ds.qLora == 0 && !lite:
		return fmt.Errorf("%w: %s without q_lora_rank and with %d layers: llama.cpp's deepseek2 graph reads q_proj only for 26 or 27 layers (DeepSeek-V2-Lite)", ErrUnsupported, arch.hf, h.layers)
	case ds.qLora > 0 && lite:
		return fmt.Errorf("%w: %s with q_lora_rank and %d layers: llama.cpp's deepseek2 graph reads q_proj, not q_a_proj and q_b_proj, for 26 or 27 layers", ErrUnsupported, arch.hf, h.layers)
	}
	if d.RopeInterleave != nil && !*d.RopeInterleave {
		return fmt.Errorf("%w: %s with rope_interleave false (llama.cpp's deepseek2 graph rotates adjacent pairs)", ErrUnsupported, arch.hf)
	}
	if d.AttentionBias {
		return fmt.Errorf("%w: %s with attention_bias true (llama.cpp's deepseek2 graph has no attention biases)", ErrUnsupported, arch.hf)
	}
	if d.NextN < 0 {
		return fmt.Errorf("%w: config.json: num_nextn_predict_layers %d is negative", ErrMismatch, d.NextN)
	}

	// Experts.
	h.experts, h.expertsUsed, h.expertFFN = d.NRoutedExperts, m.NumExpertsPerTok, m.MoeIntermediateSize
	switch {
	case h.experts < 2:
		return fmt.Errorf("%w: config.json: n_routed_experts %d: a mixture needs 2 or more", ErrMismatch, h.experts)
	case h.expertsUsed <= 0 || h.expertsUsed > h.experts:
		return fmt.Errorf("%w: config.json: num_experts_per_tok %d must be in [1, %d]", ErrMismatch, h.expertsUsed, h.experts)
	case ds.dense < 0 || ds.dense >= h.layers:
		return fmt.Errorf("%w: config.json: first_k_dense_replace %d must be in [0, %d): llama.cpp's deepseek2 graph needs a layer with experts", ErrMismatch, ds.dense, h.layers)
	case d.MoeLayerFreq != nil && *d.MoeLayerFreq != 1:
		return fmt.Errorf("%w: %s with moe_layer_freq %d: llama.cpp's deepseek2 graph has experts in every layer after the first first_k_dense_replace", ErrUnsupported, arch.hf, *d.MoeLayerFreq)
	case ds.dense > 0 && h.ffn <= 0:
		return fmt.Errorf("%w: config.json: intermediate_size is missing or not positive", ErrMismatch)
	}
	ds.shared = 1
	if d.NSharedExperts != nil {
		ds.shared = *d.NSharedExperts
	}
	if ds.shared < 1 {
		return fmt.Errorf("%w: %s with n_shared_experts %d: llama.cpp's deepseek2 graph needs shared experts", ErrUnsupported, arch.hf, ds.shared)
	}
	switch d.ScoringFunc {
	case "", "softmax":
	case "sigmoid":
		ds.sigmoid = true
	default:
		return fmt.Errorf("%w: %s with scoring_func %q: softmax and sigmoid are converted", ErrUnsupported, arch.hf, d.ScoringFunc)
	}
	ds.norm = m.NormTopkProb != nil && *m.NormTopkProb && h.expertsUsed > 1
	ds.scale = 1
	if f := d.RoutedScalingFactor; f != nil {
		if !(*f > 0) || math.IsInf(*f, 0) {
			return fmt.Errorf("%w: config.json: routed_scaling_factor %v is not positive", ErrMismatch, *f)
		}
		if !(arch.deepseek == 2 && ds.norm) {
			ds.scale = *f
		}
	}
	groups, used := 1, 1
	if d.NGroup != nil {
		groups = *d.NGroup
	}
	if d.TopkGroup != nil {
		used = *d.TopkGroup
	}
	switch d.TopkMethod {
	case "", "greedy":
	case "noaux_tc", "group_limited_greedy":
		ds.scoreBias = d.TopkMethod == "noaux_tc"
		if groups <= 1 {
			break
		}
		if h.experts%groups != 0 || h.experts/groups < 2 || used < 1 || used > groups || used*(h.experts/groups) < h.expertsUsed {
			return fmt.Errorf("%w: config.json: n_group %d and topk_group %d do not fit %d experts, %d used per token (groups of 2 or more experts, enough of them chosen)",
				ErrMismatch, groups, used, h.experts, h.expertsUsed)
		}
		ds.groups, ds.groupsUsed = groups, used
		if d.TopkMethod == "group_limited_greedy" {
			slog.Info("convert: topk_method group_limited_greedy ranks a group of experts by its best score; llama.cpp ranks it by the sum of its best two, which may choose other groups",
				"architecture", arch.hf, "n_group", groups, "topk_group", used)
		}
	default:
		return fmt.Errorf("%w: %s with topk_method %q: greedy, group_limited_greedy and noaux_tc are converted", ErrUnsupported, arch.hf, d.TopkMethod)
	}

	// Rope: llama.cpp's deepseek2 yarn (see above).
	switch h.rope.kind {
	case ropeNone:
	case ropeYarn:
		params, err := parseRopeJSON(c.RopeScaling, "rope_scaling")
		if err == nil && params == nil {
			params, err = parseRopeJSON(c.RopeParameters, "rope_parameters")
		}
		if err != nil {
			return err
		}
		if params.MscaleAllDim == nil || !(*params.MscaleAllDim > 0) {
			return fmt.Errorf("%w: %s with yarn rope scaling but no mscale_all_dim: llama.cpp's deepseek2 graph scales the attention by get_mscale(factor, mscale_all_dim)², which DeepSeek does only with mscale_all_dim", ErrUnsupported, arch.hf)
		}
		if math.Abs(h.rope.yarnAttn-1) > 1e-6 {
			return fmt.Errorf("%w: %s with yarn whose cos and sin magnitude is %v (mscale %v, mscale_all_dim %v): llama.cpp's deepseek2 graph uses 1, as when mscale equals mscale_all_dim",
				ErrUnsupported, arch.hf, h.rope.yarnAttn, deref(params.Mscale), *params.MscaleAllDim)
		}
		logMul := 0.1 * *params.MscaleAllDim
		h.rope.logMul, h.rope.fixedAttn = &logMul, true
	default:
		return fmt.Errorf("%w rope scaling %q for %s: llama.cpp's deepseek2 graph scales the attention for yarn only", ErrUnsupported, h.rope.kind, arch.hf)
	}
	h.headDim, h.ropeDim, h.kvHeads = ds.nope+ds.rope, ds.rope, 1
	h.ds = ds
	return nil
}

// deref returns *p, or 0 for nil.
func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// deepseekKeys writes the deepseek2 metadata.
func deepseekKeys(w *gguf.Writer, a string, h hparams) {
	ds := h.ds
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("attention.head_count_kv", 1)
	u("attention.key_length", ds.kvLora+ds.rope)
	u("attention.value_length", ds.kvLora)
	u("attention.key_length_mla", ds.nope+ds.rope)
	u("attention.value_length_mla", ds.vHead)
	if ds.qLora > 0 {
		u("attention.q_lora_rank", ds.qLora)
	}
	u("attention.kv_lora_rank", ds.kvLora)
	u("leading_dense_block_count", ds.dense)
	u("expert_count", h.experts)
	u("expert_used_count", h.expertsUsed)
	u("expert_feed_forward_length", h.expertFFN)
	u("expert_shared_count", ds.shared)
	w.Set(a+".expert_weights_scale", gguf.Float32(float32(ds.scale)))
	w.Set(a+".expert_weights_norm", gguf.Bool(ds.norm))
	gating := 1 // llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX
	if ds.sigmoid {
		gating = 2
	}
	u("expert_gating_func", gating)
	if ds.groups > 1 {
		u("expert_group_count", ds.groups)
		u("expert_group_used_count", ds.groupsUsed)
	}
}

// deepseekMoE names DeepSeek's experts.
var deepseekMoE = &moeSpec{router: "mlp.gate.weight", experts: regexp.MustCompile(`^mlp\.experts\.(\d+)\.(\w+_proj\.weight)$`),
	gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight", expertFFNKey: true}

// planDeepSeek2 maps a DeepSeek checkpoint's tensors to deepseek2's.
func planDeepSeek2(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	ds := h.ds
	H, V, E := int64(h.hidden), int64(h.vocab), int64(h.experts)
	heads := int64(h.heads)
	qk, nope, vh, kvl, rope := int64(ds.nope+ds.rope), int64(ds.nope), int64(ds.vHead), int64(ds.kvLora), int64(ds.rope)
	F, I, S := int64(h.ffn), int64(h.expertFFN), int64(ds.shared*h.expertFFN)
	var plan []tensorPlan
	seen := map[string]bool{}
	experts := expertParts{}
	moeArch := arch
	moeArch.moe = deepseekMoE
	skippedMTP := 0
	add := func(p tensorPlan, t safetensors.TensorInfo, want []int64) error {
		if !slices.Equal(t.Shape, want) {
			return fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
		}
		if err := checkWeightDType(st, t, h); err != nil {
			return err
		}
		if seen[p.ggufName] {
			return fmt.Errorf("%w: two tensors for %s (the second is %q)", ErrMismatch, p.ggufName, t.Name)
		}
		if p.hfName == "" && p.derive == nil {
			p.hfName = t.Name
		}
		if p.shape == nil {
			p.shape = t.Shape
		}
		seen[p.ggufName] = true
		plan = append(plan, p)
		return nil
	}
	for _, t := range st.Tensors() {
		name := t.Name
		if fp8Aux(st, name) || ignoredRE.MatchString(name) {
			continue
		}
		var err error
		switch name {
		case "model.embed_tokens.weight":
			err = add(tensorPlan{ggufName: "token_embd.weight", layer: -1}, t, []int64{V, H})
		case "model.norm.weight":
			err = add(tensorPlan{ggufName: "output_norm.weight", layer: -1}, t, []int64{H})
		case "lm_head.weight":
			err = add(tensorPlan{ggufName: "output.weight", layer: -1}, t, []int64{V, H})
		default:
			m := layerRE.FindStringSubmatch(name)
			if m == nil {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, name, arch.hf)
			}
			n, aerr := strconv.Atoi(m[1])
			switch {
			case aerr != nil || n >= h.layers+ds.nextN:
				return nil, fmt.Errorf("%w: tensor %q: layer %s is outside num_hidden_layers %d", ErrMismatch, name, m[1], h.layers)
			case n >= h.layers:
				skippedMTP++
				continue
			}
			err = planDeepSeekLayer(st, moeArch, h, n, m[2], t, experts, add, dims{H: H, E: E, heads: heads, qk: qk, nope: nope, vh: vh, kvl: kvl, rope: rope, F: F, I: I, S: S})
		}
		if err != nil {
			return nil, err
		}
	}
	if skippedMTP > 0 {
		slog.Info("convert: the multi-token-prediction layers are skipped (llama.cpp does not run them)", "architecture", arch.hf, "tensors", skippedMTP)
	}
	if h.tied && !seen["output.weight"] {
		for _, p := range plan {
			if p.ggufName == "token_embd.weight" {
				plan = append(plan, tensorPlan{hfName: p.hfName, ggufName: "output.weight", shape: p.shape, layer: -1})
				seen["output.weight"] = true
				break
			}
		}
	}
	stacked, err := experts.plans(h, ds.dense)
	if err != nil {
		return nil, err
	}
	for _, p := range stacked {
		seen[p.ggufName] = true
	}
	plan = append(plan, stacked...)
	required := []string{"token_embd.weight", "output_norm.weight", "output.weight"}
	for i := range h.layers {
		per := []string{"attn_norm", "attn_kv_a_mqa", "attn_kv_a_norm", "attn_k_b", "attn_v_b", "attn_output", "ffn_norm"}
		if ds.qLora > 0 {
			per = append(per, "attn_q_a", "attn_q_a_norm", "attn_q_b")
		} else {
			per = append(per, "attn_q")
		}
		if i < ds.dense {
			per = append(per, "ffn_gate", "ffn_up", "ffn_down")
		} else {
			per = append(per, "ffn_gate_inp", "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp")
		}
		for _, s := range per {
			required = append(required, fmt.Sprintf("blk.%d.%s.weight", i, s))
		}
		if i >= ds.dense && ds.scoreBias {
			required = append(required, fmt.Sprintf("blk.%d.exp_probs_b.bias", i))
		}
	}
	for _, r := range required {
		if !seen[r] {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for %s", ErrMismatch, r)
		}
	}
	sortPlan(plan, rank)
	return plan, nil
}

// dims are a DeepSeek layer's tensor sizes.
type dims struct {
	H, E, heads, qk, nope, vh, kvl, rope, F, I, S int64
}

// planDeepSeekLayer plans the tensor suffix of layer n.
func planDeepSeekLayer(st *safetensors.Model, arch archSpec, h hparams, n int, suffix string, t safetensors.TensorInfo, experts expertParts,
	add func(tensorPlan, safetensors.TensorInfo, []int64) error, d dims) error {
	ds := h.ds
	moe := n >= ds.dense
	blk := func(g string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, g), layer: n} }
	refuse := func(why string) error {
		return fmt.Errorf("%w tensor %q in a %s checkpoint: %s", ErrUnsupported, t.Name, arch.hf, why)
	}
	switch suffix {
	case "input_layernorm.weight":
		return add(blk("attn_norm.weight"), t, []int64{d.H})
	case "post_attention_layernorm.weight":
		return add(blk("ffn_norm.weight"), t, []int64{d.H})
	case "self_attn.q_proj.weight":
		if ds.qLora > 0 {
			return refuse("q_proj with q_lora_rank set")
		}
		return add(blk("attn_q.weight"), t, []int64{d.heads * d.qk, d.H})
	case "self_attn.q_a_proj.weight", "self_attn.q_a_layernorm.weight", "self_attn.q_b_proj.weight":
		if ds.qLora == 0 {
			return refuse("a q_lora_rank projection without q_lora_rank")
		}
		q := int64(ds.qLora)
		switch suffix {
		case "self_attn.q_a_proj.weight":
			return add(blk("attn_q_a.weight"), t, []int64{q, d.H})
		case "self_attn.q_a_layernorm.weight":
			return add(blk("attn_q_a_norm.weight"), t, []int64{q})
		}
		return add(blk("attn_q_b.weight"), t, []int64{d.heads * d.qk, q})
	case "self_attn.kv_a_proj_with_mqa.weight":
		return add(blk("attn_kv_a_mqa.weight"), t, []int64{d.kvl + d.rope, d.H})
	case "self_attn.kv_a_layernorm.weight":
		return add(blk("attn_kv_a_norm.weight"), t, []int64{d.kvl})
	case "self_attn.kv_b_proj.weight":
		want := []int64{d.heads * (d.nope + d.vh), d.kvl}
		name := t.Name
		k := blk("attn_k_b.weight")
		k.shape, k.derive = []int64{d.heads, d.kvl, d.nope}, func(tw *tensorWriter) ([]float32, error) {
			return splitKVB(tw, name, int(d.heads), int(d.nope), int(d.vh), int(d.kvl), true)
		}
		v := blk("attn_v_b.weight")
		v.shape, v.derive = []int64{d.heads, d.vh, d.kvl}, func(tw *tensorWriter) ([]float32, error) {
			return splitKVB(tw, name, int(d.heads), int(d.nope), int(d.vh), int(d.kvl), false)
		}
		if err := add(k, t, want); err != nil {
			return err
		}
		return add(v, t, want)
	case "self_attn.o_proj.weight":
		return add(blk("attn_output.weight"), t, []int64{d.H, d.heads * d.vh})
	case "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight":
		if moe {
			return refuse(fmt.Sprintf("a dense MLP in layer %d, past first_k_dense_replace %d", n, ds.dense))
		}
		switch suffix {
		case "mlp.gate_proj.weight":
			return add(blk("ffn_gate.weight"), t, []int64{d.F, d.H})
		case "mlp.up_proj.weight":
			return add(blk("ffn_up.weight"), t, []int64{d.F, d.H})
		}
		return add(blk("ffn_down.weight"), t, []int64{d.H, d.F})
	}
	if !moe {
		return refuse(fmt.Sprintf("experts in layer %d, within first_k_dense_replace %d", n, ds.dense))
	}
	switch suffix {
	case "mlp.gate.weight":
		return add(blk("ffn_gate_inp.weight"), t, []int64{d.E, d.H})
	case "mlp.gate.e_score_correction_bias":
		if !ds.scoreBias {
			return refuse("e_score_correction_bias without topk_method noaux_tc")
		}
		return add(blk("exp_probs_b.bias"), t, []int64{d.E})
	case "mlp.shared_experts.gate_proj.weight":
		return add(blk("ffn_gate_shexp.weight"), t, []int64{d.S, d.H})
	case "mlp.shared_experts.up_proj.weight":
		return add(blk("ffn_up_shexp.weight"), t, []int64{d.S, d.H})
	case "mlp.shared_experts.down_proj.weight":
		return add(blk("ffn_down_shexp.weight"), t, []int64{d.H, d.S})
	}
	if e := arch.moe.experts.FindStringSubmatch(suffix); e != nil {
		if err := checkWeightDType(st, t, h); err != nil {
			return err
		}
		return experts.add(arch, h, n, e[1], e[2], t.Name, t.Shape)
	}
	return refuse("not a DeepSeek tensor")
}

// splitKVB reads kv_b_proj ([heads·(nope+v), kvLora]: per head its key
// rows, then its value rows) and returns the keys transposed per head,
// [heads, kvLora, nope] (k), or the values, [heads, v, kvLora].
func splitKVB(tw *tensorWriter, name string, heads, nope, v, kvLora int, k bool) ([]float32, error) {
	src, err := loadFloat32s(tw.st, name, tw.fp8Block)
	if err != nil {
		return nil, err
	}
	if len(src) != heads*(nope+v)*kvLora {
		return nil, fmt.Errorf("%w: tensor %q has %d values, not %d", ErrMismatch, name, len(src), heads*(nope+v)*kvLora)
	}
	if !k {
		out := make([]float32, 0, heads*v*kvLora)
		for hd := range heads {
			base := (hd*(nope+v) + nope) * kvLora
			out = append(out, src[base:base+v*kvLora]...)
		}
		return out, nil
	}
	out := make([]float32, heads*kvLora*nope)
	for hd := range heads {
		for c := range nope {
			row := src[(hd*(nope+v)+c)*kvLora:][:kvLora]
			for r, x := range row {
				out[(hd*kvLora+r)*nope+c] = x
			}
		}
	}
	return out, nil
}
