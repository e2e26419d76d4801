package convert

import (
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

// sharedMoE is the MLP of DeepSeek V2/V3, GLM-4.5, DeepSeek-MoE,
// dots.llm1 and Ling: the first
// first_k_dense_replace layers have a dense MLP, the others
// n_routed_experts experts (stacked as ffn_{gate,up,down}_exps) and
// n_shared_experts shared ones (ffn_{gate,up,down}_shexp) that every token
// runs. The router is softmax (DeepSeek V2) or sigmoid (DeepSeek V3,
// GLM-4.5, with e_score_correction_bias as exp_probs_b, which picks the
// experts but does not weight them); the top-k weights are renormalised
// when norm_topk_prob says so and then scaled by routed_scaling_factor
// (DeepSeek V2 scales only when it does not renormalise:
// expert_weights_scale is then 1). noaux_tc picks the topk_group groups of
// experts with the highest sums of their best two scores, as llama.cpp
// does; V2's group_limited_greedy ranks a group by its best score, which
// llama.cpp does not: that is logged. The multi-token-prediction layers
// past num_hidden_layers (num_nextn_predict_layers) are skipped, as
// llama.cpp does not run them.
type sharedMoE struct {
	dense, shared            int // leading dense layers, shared experts
	scale                    float64
	norm, sigmoid, scoreBias bool
	groups, groupsUsed       int
	nextN                    int // multi-token-prediction layers, skipped
	sharedFFN                int // one shared expert's width (0: the experts')
	// The checkpoint's names: of the embeddings (nil: Llama's) and of the
	// selection bias under mlp.gate ("": DeepSeek's
	// e_score_correction_bias).
	emb  []string
	bias string
}

// biasName is the selection bias's name under mlp.gate.
func (s *sharedMoE) biasName() string { return cmpOr(s.bias, "e_score_correction_bias") }

// sharedWidth is the width of the shared experts together.
func (s *sharedMoE) sharedWidth(h hparams) int {
	if s.sharedFFN > 0 {
		return s.shared * s.sharedFFN
	}
	return s.shared * h.expertFFN
}

// sharedMoEHparams reads and checks the experts of a DeepSeek or GLM-4.5
// config (they share the names), setting h's expert counts.
func (c *hfConfig) sharedMoEHparams(arch archSpec, h *hparams) (*sharedMoE, error) {
	d, m := c.DeepSeek, c.MoE
	s := &sharedMoE{dense: d.FirstKDenseReplace, nextN: d.NextN}
	h.experts, h.expertsUsed, h.expertFFN = d.NRoutedExperts, m.NumExpertsPerTok, m.MoeIntermediateSize
	switch {
	case h.experts < 2:
		return nil, fmt.Errorf("%w: config.json: n_routed_experts %d: a mixture needs 2 or more", ErrMismatch, h.experts)
	case h.experts > maxExperts:
		return nil, fmt.Errorf("%w: config.json: n_routed_experts %d: llama.cpp runs at most %d experts", ErrUnsupported, h.experts, maxExperts)
	case h.expertsUsed <= 0 || h.expertsUsed > h.experts:
		return nil, fmt.Errorf("%w: config.json: num_experts_per_tok %d must be in [1, %d]", ErrMismatch, h.expertsUsed, h.experts)
	case h.expertFFN <= 0:
		return nil, fmt.Errorf("%w: config.json: moe_intermediate_size is missing or not positive", ErrMismatch)
	case s.dense < 0 || s.dense >= h.layers:
		return nil, fmt.Errorf("%w: config.json: first_k_dense_replace %d must be in [0, %d): llama.cpp's %s graph needs a layer with experts", ErrMismatch, s.dense, h.layers, arch.gguf)
	case d.MoeLayerFreq != nil && *d.MoeLayerFreq != 1:
		return nil, fmt.Errorf("%w: %s with moe_layer_freq %d: llama.cpp's %s graph has experts in every layer after the first first_k_dense_replace", ErrUnsupported, arch.hf, *d.MoeLayerFreq, arch.gguf)
	case s.dense > 0 && h.ffn <= 0:
		return nil, fmt.Errorf("%w: config.json: intermediate_size is missing or not positive", ErrMismatch)
	case d.NextN < 0:
		return nil, fmt.Errorf("%w: config.json: num_nextn_predict_layers %d is negative", ErrMismatch, d.NextN)
	}
	if d.NSharedExperts != nil {
		s.shared = *d.NSharedExperts
	}
	if s.shared < 1 {
		return nil, fmt.Errorf("%w: %s with n_shared_experts %d: llama.cpp's %s graph needs shared experts", ErrUnsupported, arch.hf, s.shared, arch.gguf)
	}
	scoring, method := d.ScoringFunc, d.TopkMethod
	if arch.glm4moe {
		// transformers' Glm4Moe always routes as DeepSeek V3's noaux_tc,
		// whatever the config says, and llama.cpp's glm4moe requires the
		// selection bias: other settings are refused, not followed.
		if cmpOr(scoring, "sigmoid") != "sigmoid" || cmpOr(method, "noaux_tc") != "noaux_tc" {
			return nil, fmt.Errorf("%w: %s with scoring_func %q and topk_method %q: GLM-4.5 routes by sigmoid scores with the selection bias (noaux_tc) only", ErrUnsupported, arch.hf, scoring, method)
		}
		scoring, method = "sigmoid", "noaux_tc"
	}
	if arch.dots1 {
		// transformers' Dots1 routes as DeepSeek V3's noaux_tc, reading
		// neither name.
		scoring, method = "sigmoid", "noaux_tc"
	}
	switch scoring {
	case "", "softmax":
	case "sigmoid":
		s.sigmoid = true
	default:
		return nil, fmt.Errorf("%w: %s with scoring_func %q: softmax and sigmoid are converted", ErrUnsupported, arch.hf, scoring)
	}
	// norm_topk_prob defaults to false for DeepSeek-MoE and V2 (which
	// also skip it for a single expert) and dots.llm1, and true for V3 and
	// GLM-4.5, as in transformers.
	switch {
	case arch.deepseek == 2 || arch.deepseekMoE:
		s.norm = m.NormTopkProb != nil && *m.NormTopkProb && h.expertsUsed > 1
	case arch.dots1: // Dots1Config's default is false
		s.norm = m.NormTopkProb != nil && *m.NormTopkProb
	default:
		s.norm = m.NormTopkProb == nil || *m.NormTopkProb
	}
	s.scale = 1
	if f := d.RoutedScalingFactor; f != nil {
		if !(*f > 0) || math.IsInf(*f, 0) {
			return nil, fmt.Errorf("%w: config.json: routed_scaling_factor %v is not positive", ErrMismatch, *f)
		}
		// DeepSeek V2 scales only without renormalising; DeepSeek-MoE's
		// gate never does (nor llama.cpp's deepseek, which takes the
		// key and applies nothing).
		if !(arch.deepseek == 2 && s.norm) && !arch.deepseekMoE {
			s.scale = *f
		}
	}
	groups, used := 1, 1
	if d.NGroup != nil {
		groups = *d.NGroup
	}
	if d.TopkGroup != nil {
		used = *d.TopkGroup
	}
	switch method {
	case "", "greedy":
	case "noaux_tc", "group_limited_greedy":
		s.scoreBias = method == "noaux_tc"
		if groups <= 1 || used == groups {
			break // every group is chosen: no grouping (llama.cpp needs fewer chosen than there are)
		}
		if h.experts%groups != 0 || h.experts/groups < 2 || used < 1 || used > groups || used*(h.experts/groups) < h.expertsUsed {
			return nil, fmt.Errorf("%w: config.json: n_group %d and topk_group %d do not fit %d experts, %d used per token (groups of 2 or more experts, enough of them chosen)",
				ErrMismatch, groups, used, h.experts, h.expertsUsed)
		}
		s.groups, s.groupsUsed = groups, used
		if method == "group_limited_greedy" {
			slog.Info("convert: topk_method group_limited_greedy ranks a group of experts by its best score; llama.cpp ranks it by the sum of its best two, which may choose other groups",
				"architecture", arch.hf, "n_group", groups, "topk_group", used)
		}
	default:
		return nil, fmt.Errorf("%w: %s with topk_method %q: greedy, group_limited_greedy and noaux_tc are converted", ErrUnsupported, arch.hf, method)
	}
	return s, nil
}

// cmpOr returns s, or def when s is empty.
func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sharedMoEKeys writes the experts' metadata.
func sharedMoEKeys(w *gguf.Writer, a string, h hparams) {
	s := h.smoe
	u := func(k string, v int) { w.Set(a+"."+k, gguf.Uint32(uint32(v))) }
	u("leading_dense_block_count", s.dense)
	u("expert_count", h.experts)
	u("expert_used_count", h.expertsUsed)
	u("expert_feed_forward_length", h.expertFFN)
	u("expert_shared_count", s.shared)
	if a == "bailingmoe2" {
		// Required by llama.cpp's bailingmoe2: one shared expert's width.
		u("expert_shared_feed_forward_length", s.sharedWidth(h)/s.shared)
	}
	w.Set(a+".expert_weights_scale", gguf.Float32(float32(s.scale)))
	w.Set(a+".expert_weights_norm", gguf.Bool(s.norm))
	gating := gatingSoftmax
	if s.sigmoid {
		gating = gatingSigmoid
	}
	u("expert_gating_func", gating)
	if s.groups > 1 {
		u("expert_group_count", s.groups)
		u("expert_group_used_count", s.groupsUsed)
	}
}

// sharedMoESpec names the experts' tensors.
var sharedMoESpec = &moeSpec{router: "mlp.gate.weight", experts: regexp.MustCompile(`^mlp\.experts\.(\d+)\.(\w+_proj\.weight)$`),
	gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight", expertFFNKey: true}

// addFunc adds a planned tensor from checkpoint tensor t after checking
// its shape is want.
type addFunc func(p tensorPlan, t safetensors.TensorInfo, want []int64) error

// attnFunc plans the attention (and norm) tensor suffix of layer n,
// reporting whether suffix is one.
type attnFunc func(n int, suffix string, t safetensors.TensorInfo, add addFunc) (bool, error)

// planSharedMoEModel maps the tensors of a checkpoint whose MLP is a
// sharedMoE: the embeddings, final norm and head, attn for the attention,
// and the MLP here. attnRequired are the per-layer GGUF tensors attn must
// have given (without "blk.N." and, for weights, ".weight").
func planSharedMoEModel(st *safetensors.Model, arch archSpec, h hparams, attn attnFunc, attnRequired []string) ([]tensorPlan, error) {
	s := h.smoe
	H, E := int64(h.hidden), int64(h.experts)
	F, S := int64(h.ffn), int64(s.sharedWidth(h))
	pl := newPlanner(st, h)
	add := pl.add
	experts := expertParts{}
	moeArch := arch
	moeArch.moe = sharedMoESpec
	skippedMTP := 0
	mlp := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(g string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, g), layer: n} }
		refuse := func(why string) error {
			return fmt.Errorf("%w tensor %q in a %s checkpoint: %s", ErrUnsupported, t.Name, arch.hf, why)
		}
		moe := n >= s.dense
		switch suffix {
		case "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight":
			if moe {
				return refuse(fmt.Sprintf("a dense MLP in layer %d, past first_k_dense_replace %d", n, s.dense))
			}
			switch suffix {
			case "mlp.gate_proj.weight":
				return add(blk("ffn_gate.weight"), t, []int64{F, H})
			case "mlp.up_proj.weight":
				return add(blk("ffn_up.weight"), t, []int64{F, H})
			}
			return add(blk("ffn_down.weight"), t, []int64{H, F})
		}
		if !moe {
			return refuse(fmt.Sprintf("experts in layer %d, within first_k_dense_replace %d", n, s.dense))
		}
		switch suffix {
		case "mlp.gate.weight":
			return add(blk("ffn_gate_inp.weight"), t, []int64{E, H})
		case "mlp.gate." + s.biasName():
			if !s.scoreBias {
				return refuse("a selection bias the model's gate does not use (DeepSeek's without topk_method noaux_tc, or Ling 1.0's)")
			}
			return add(blk("exp_probs_b.bias"), t, []int64{E})
		case "mlp.shared_experts.gate_proj.weight":
			return add(blk("ffn_gate_shexp.weight"), t, []int64{S, H})
		case "mlp.shared_experts.up_proj.weight":
			return add(blk("ffn_up_shexp.weight"), t, []int64{S, H})
		case "mlp.shared_experts.down_proj.weight":
			return add(blk("ffn_down_shexp.weight"), t, []int64{H, S})
		}
		if e := sharedMoESpec.experts.FindStringSubmatch(suffix); e != nil {
			if err := experts.add(moeArch, h, n, e[1], e[2], t.Name, t.Shape); err != nil {
				return err
			}
			return checkWeightDType(st, t, h)
		}
		return refuse("not a tensor of the model")
	}
	skippedVision := 0
	for _, t := range st.Tensors() {
		name := t.Name
		if fp8Aux(st, name) || ignoredRE.MatchString(name) {
			continue
		}
		if arch.vlm {
			var skip bool
			if name, skip = gemma3TextName(name); skip {
				skippedVision++ // GLM-4.5V's vision tower
				continue
			}
		}
		emb := s.emb
		if emb == nil {
			emb = llamaEmb
		}
		ok, err := pl.outerAs(t, name, emb, llamaNorm)
		switch {
		case ok || err != nil:
		default:
			m := layerRE.FindStringSubmatch(name)
			if m == nil && arch.ernieMoE && strings.HasPrefix(name, "model.mtp_") {
				skippedMTP++ // ERNIE 4.5's multi-token-prediction block
				continue
			}
			if m == nil {
				return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, name, arch.hf)
			}
			n, aerr := strconv.Atoi(m[1])
			switch {
			case aerr != nil || n >= h.layers+s.nextN:
				return nil, fmt.Errorf("%w: tensor %q: layer %s is outside num_hidden_layers %d plus num_nextn_predict_layers %d", ErrMismatch, name, m[1], h.layers, s.nextN)
			case n >= h.layers:
				skippedMTP++
				continue
			}
			var ok bool
			if ok, err = attn(n, m[2], t, add); !ok && err == nil {
				err = mlp(n, m[2], t)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if skippedVision > 0 {
		slog.Info("convert: converting the language model only; the vision tower is skipped (llama.cpp reads it from a separate mmproj file)",
			"architecture", arch.hf, "skipped_tensors", skippedVision)
	}
	if skippedMTP > 0 {
		slog.Info("convert: the multi-token-prediction layers are skipped (llama.cpp does not run them)", "architecture", arch.hf, "tensors", skippedMTP)
	}
	if h.tied && !pl.seen["output.weight"] {
		for _, p := range pl.plan {
			if p.ggufName == "token_embd.weight" {
				pl.put(tensorPlan{hfName: p.hfName, ggufName: "output.weight", shape: p.shape, layer: -1})
				break
			}
		}
	}
	stacked, err := experts.plans(h, s.dense)
	if err != nil {
		return nil, err
	}
	pl.put(stacked...)
	required := []string{"token_embd.weight", "output_norm.weight", "output.weight"}
	for i := range h.layers {
		per := slices.Clone(attnRequired)
		if i < s.dense {
			per = append(per, "ffn_gate", "ffn_up", "ffn_down")
		} else {
			per = append(per, "ffn_gate_inp")
			if s.shared > 0 {
				per = append(per, "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp")
			}
		}
		for _, r := range per {
			if !strings.HasSuffix(r, ".bias") {
				r += ".weight"
			}
			required = append(required, fmt.Sprintf("blk.%d.%s", i, r))
		}
		if i >= s.dense && s.scoreBias {
			required = append(required, fmt.Sprintf("blk.%d.exp_probs_b.bias", i))
		}
	}
	return pl.finish(required)
}
