package convert

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Nemotron-H (NemotronHForCausalLM: NVIDIA Nemotron-H, Nemotron Nano 2) →
// GGUF arch "nemotron_h": every block is one RMS-normed sublayer added to
// the residual, as hybrid_override_pattern says ("M" a Mamba-2 mixer, "*"
// attention without positions, "-" an MLP of up_proj, ReLU² and
// down_proj). The Mamba-2 mixers are Granite 4.0's (granite4.go: in_proj,
// conv1d, dt_bias, A as -exp(A_log), D, the gated norm, out_proj), of
// mamba_num_heads heads of mamba_head_dim, normalised per group as
// transformers' NemotronH does. llama.cpp tells the blocks apart by
// head_count_kv and feed_forward_length, one of each per block: an
// attention block has KV heads and no MLP width, an MLP block the
// reverse, and a Mamba-2 block neither. The tensors are named backbone.*
// (the released checkpoints) or model.*. With expert blocks ("E", Nemotron
// 3 Nano) the arch is "nemotron_h_moe": a sigmoid router with a selection
// bias, ReLU² experts (per expert, or fused [experts, out, in]) and shared
// ones; the multi-token-prediction tensors (mtp.*) are skipped.

// nemotronHConfig holds config.json's Nemotron-H fields.
type nemotronHConfig struct {
	Pattern       json.RawMessage `json:"hybrid_override_pattern"`
	BlockTypes    json.RawMessage `json:"layers_block_type"`
	AttnHeadDim   *int            `json:"attention_head_dim"`
	MambaHeads    *int            `json:"mamba_num_heads"`
	MambaHeadDim  *int            `json:"mamba_head_dim"`
	StateSize     *int            `json:"ssm_state_size"`
	Groups        *int            `json:"n_groups"`
	MambaGroups   *int            `json:"mamba_n_groups"`   // n_groups' other spelling
	MambaNumGroup *int            `json:"mamba_num_groups"` // and another
	ConvKernel    *int            `json:"conv_kernel"`
	MambaDConv    *int            `json:"mamba_d_conv"` // conv_kernel's older name
	UseConvBias   *bool           `json:"use_conv_bias"`
	MambaConvBias *bool           `json:"mamba_conv_bias"` // use_conv_bias's older name
	UseBias       *bool           `json:"use_bias"`
	MLPBias       *bool           `json:"mlp_bias"`
	MLPAct        string          `json:"mlp_hidden_act"`
	MambaAct      string          `json:"mamba_hidden_act"`
	TimeStepLimit json.RawMessage `json:"time_step_limit"`
	MambaDtLimit  json.RawMessage `json:"mamba_dt_limit"` // time_step_limit's older name

	// The experts of nemotron_h_moe (Nemotron 3 Nano).
	RoutedExperts *int            `json:"n_routed_experts"`
	ExpertsPerTok *int            `json:"num_experts_per_tok"`
	ExpertFFN     *int            `json:"moe_intermediate_size"`
	SharedFFN     *int            `json:"moe_shared_expert_intermediate_size"`
	SharedExperts *int            `json:"n_shared_experts"`
	NormTopK      *bool           `json:"norm_topk_prob"`
	RoutedScale   *float64        `json:"routed_scaling_factor"`
	NGroup        *int            `json:"n_group"`
	TopKGroup     *int            `json:"topk_group"`
	LatentSize    json.RawMessage `json:"moe_latent_size"`
}

// Nemotron-H's block kinds.
const (
	nhMamba = iota
	nhAttention
	nhMLP
	nhMoE
)

// nemotronH holds a Nemotron-H model's validated layout.
type nemotronH struct {
	blocks  []int // per layer: nhMamba, nhAttention, nhMLP or nhMoE
	mlpBias bool
	// The experts: how many are shared (their width is h.sharedFFN),
	// whether the top-k weights are renormalised, and their scale.
	shared     int
	normTopK   bool
	routeScale float64
	// groups and groupsUsed: the experts fall in groups, of which the
	// router keeps the best groupsUsed (by their two best scores) before
	// picking experts; 0 when it does not.
	groups, groupsUsed int
	mamba              graniteHybrid // the Mamba-2 sizes (dInner, dState, heads, groups, dConv, convBias)
}

// nemotronHBlocks reads the blocks from layers_block_type (as
// transformers prefers it: "mamba" or "linear_attention", "attention" or
// "full_attention", "mlp", "moe") or hybrid_override_pattern (M, *, -, E).
func (c *hfConfig) nemotronHBlocks() ([]int, error) {
	var types []string
	switch {
	case !isNull(c.NemotronH.BlockTypes):
		if err := json.Unmarshal(c.NemotronH.BlockTypes, &types); err != nil {
			return nil, fmt.Errorf("%w: config.json: layers_block_type: %v", ErrMismatch, err)
		}
	case !isNull(c.NemotronH.Pattern):
		var pattern string
		if err := json.Unmarshal(c.NemotronH.Pattern, &pattern); err != nil {
			return nil, fmt.Errorf("%w: config.json: hybrid_override_pattern: %v", ErrMismatch, err)
		}
		for _, r := range pattern {
			types = append(types, string(r))
		}
	default:
		return nil, fmt.Errorf("%w: config.json: NemotronHForCausalLM has no layers_block_type or hybrid_override_pattern", ErrMismatch)
	}
	if n := c.NumHiddenLayers; n > 0 && len(types) != n {
		return nil, fmt.Errorf("%w: config.json: the block pattern has %d entries for %d layers", ErrMismatch, len(types), n)
	}
	blocks := make([]int, len(types))
	for i, t := range types {
		switch t {
		case "M", "mamba", "linear_attention":
			blocks[i] = nhMamba
		case "*", "attention", "full_attention":
			blocks[i] = nhAttention
		case "-", "mlp":
			blocks[i] = nhMLP
		case "E", "moe":
			blocks[i] = nhMoE
		default:
			return nil, fmt.Errorf("%w: config.json: block %d is %q; Nemotron-H's blocks are Mamba-2 (M), attention (*) and MLP (-)", ErrMismatch, i, t)
		}
	}
	return blocks, nil
}

// nemotronHArch is the GGUF arch of a Nemotron-H checkpoint:
// nemotron_h_moe when it has experts.
func (c *hfConfig) nemotronHArch() string {
	if blocks, err := c.nemotronHBlocks(); err == nil && slices.Contains(blocks, nhMoE) {
		return "nemotron_h_moe"
	}
	return "nemotron_h"
}

// nemotronHHparams reads and checks a Nemotron-H config.
func (c *hfConfig) nemotronHHparams(arch archSpec, h *hparams) error {
	nc := c.NemotronH
	blocks, err := c.nemotronHBlocks()
	if err != nil {
		return err
	}
	g := &nemotronH{blocks: blocks, mlpBias: nc.MLPBias != nil && *nc.MLPBias}
	if c.HeadDim <= 0 && nc.AttnHeadDim != nil {
		h.headDim = *nc.AttnHeadDim
	}
	if h.headDim <= 0 || h.headDim%2 != 0 {
		return fmt.Errorf("%w: config.json: attention head size %d: want a positive even size", ErrMismatch, h.headDim)
	}
	h.ropeDim = h.headDim
	// The norms' epsilon: layer_norm_epsilon (NemotronHConfig's, default
	// 1e-5), else rms_norm_eps, as convert_hf_to_gguf.py looks them up.
	switch {
	case c.LayerNormEpsilon != nil:
		h.rmsEps = *c.LayerNormEpsilon
	case c.RMSNormEps == nil:
		h.rmsEps = 1e-5
	}
	if nc.MambaAct == "swish" { // the same function
		nc.MambaAct = "silu"
	}
	for _, a := range []struct{ name, v, want string }{{"mlp_hidden_act", nc.MLPAct, "relu2"}, {"mamba_hidden_act", nc.MambaAct, "silu"}} {
		if a.v != "" && a.v != a.want {
			return fmt.Errorf("%w: %s with %s %q: llama.cpp's %s graph runs %s", ErrUnsupported, arch.hf, a.name, a.v, arch.gguf, a.want)
		}
	}
	if nc.UseBias != nil && *nc.UseBias {
		return fmt.Errorf("%w: %s with use_bias true: llama.cpp's %s has no in_proj or out_proj bias", ErrUnsupported, arch.hf, arch.gguf)
	}
	if isNull(nc.TimeStepLimit) {
		nc.TimeStepLimit = nc.MambaDtLimit
	}
	if err := checkTimeStepLimit(nc.TimeStepLimit); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnsupported, arch.hf, err)
	}
	m := &g.mamba
	if nc.Groups == nil {
		nc.Groups = cmp.Or(nc.MambaGroups, nc.MambaNumGroup)
	}
	for _, f := range []struct {
		name string
		v    *int
		dst  *int
	}{{"mamba_num_heads", nc.MambaHeads, &m.heads}, {"ssm_state_size", nc.StateSize, &m.dState}, {"n_groups", nc.Groups, &m.groups}} {
		if f.v == nil || *f.v <= 0 {
			return fmt.Errorf("%w: config.json: %s has no positive %s", ErrMismatch, arch.hf, f.name)
		}
		*f.dst = *f.v
	}
	if nc.MambaHeadDim == nil || *nc.MambaHeadDim <= 0 {
		return fmt.Errorf("%w: config.json: %s has no positive mamba_head_dim", ErrMismatch, arch.hf)
	}
	m.dInner = m.heads * *nc.MambaHeadDim
	m.dConv = 4
	if k := cmp.Or(nc.ConvKernel, nc.MambaDConv); k != nil {
		m.dConv = *k
	}
	bias := cmp.Or(nc.UseConvBias, nc.MambaConvBias)
	m.convBias = bias == nil || *bias
	switch {
	case m.heads%m.groups != 0 || m.dInner%m.groups != 0:
		return fmt.Errorf("%w: config.json: n_groups %d does not divide mamba_num_heads %d", ErrMismatch, m.groups, m.heads)
	case m.dConv != 3 && m.dConv != 4:
		return fmt.Errorf("%w: %s with conv_kernel %d: ggml's CUDA convolution runs kernels of 3 or 4 only (others abort)", ErrUnsupported, arch.hf, m.dConv)
	}
	if slices.Contains(blocks, nhMoE) {
		if err := c.nemotronHExperts(arch, h, g); err != nil {
			return err
		}
	}
	h.nh = g
	return nil
}

// nemotronHExperts reads and checks the experts of a Nemotron-H MoE
// (transformers' NemotronHMoE: a sigmoid router whose
// e_score_correction_bias picks the experts but does not weight them, the
// top-k weights renormalised with norm_topk_prob and scaled by
// routed_scaling_factor, optionally within the topk_group best of n_group
// expert groups, ReLU² experts of up and down projections, and a shared
// MLP of the same kind added).
func (c *hfConfig) nemotronHExperts(arch archSpec, h *hparams, g *nemotronH) error {
	nc := c.NemotronH
	if slices.Contains(g.blocks, nhMLP) {
		return fmt.Errorf("%w: %s with both MLP and expert blocks: llama.cpp's nemotron_h_moe runs every MLP block through the experts", ErrUnsupported, arch.hf)
	}
	if !isNull(nc.LatentSize) {
		return fmt.Errorf("%w: %s with moe_latent_size: this llama.cpp has no latent expert projections", ErrUnsupported, arch.hf)
	}
	for _, f := range []struct {
		name string
		v    *int
		dst  *int
	}{{"n_routed_experts", nc.RoutedExperts, &h.experts}, {"num_experts_per_tok", nc.ExpertsPerTok, &h.expertsUsed},
		{"moe_intermediate_size", nc.ExpertFFN, &h.expertFFN}, {"moe_shared_expert_intermediate_size", nc.SharedFFN, &h.sharedFFN}} {
		if f.v == nil || *f.v <= 0 {
			return fmt.Errorf("%w: config.json: %s with experts has no positive %s", ErrMismatch, arch.hf, f.name)
		}
		*f.dst = *f.v
	}
	h.ffn = h.expertFFN
	// transformers builds one shared MLP of moe_shared_expert_intermediate_size
	// whatever n_shared_experts says.
	g.shared = 1
	if nc.SharedExperts != nil && *nc.SharedExperts > 0 {
		g.shared = *nc.SharedExperts
	}
	g.normTopK = nc.NormTopK == nil || *nc.NormTopK
	g.routeScale = 1
	if nc.RoutedScale != nil {
		g.routeScale = *nc.RoutedScale
	}
	groups, used := 1, 1
	if nc.NGroup != nil {
		groups = *nc.NGroup
	}
	if nc.TopKGroup != nil {
		used = *nc.TopKGroup
	}
	switch {
	case h.experts < 2:
		return fmt.Errorf("%w: config.json: n_routed_experts %d: a mixture needs 2 or more", ErrMismatch, h.experts)
	case h.experts > maxExperts:
		return fmt.Errorf("%w: config.json: n_routed_experts %d: llama.cpp runs at most %d experts", ErrUnsupported, h.experts, maxExperts)
	case h.expertsUsed > h.experts:
		return fmt.Errorf("%w: config.json: num_experts_per_tok %d of %d experts", ErrMismatch, h.expertsUsed, h.experts)
	case !(g.routeScale > 0) || math.IsInf(g.routeScale, 0):
		return fmt.Errorf("%w: config.json: routed_scaling_factor %v must be positive", ErrMismatch, g.routeScale)
	case groups > 1 && used < groups && (used < 1 || h.experts%groups != 0 || h.experts/groups < 2):
		return fmt.Errorf("%w: config.json: topk_group %d of n_group %d over %d experts: want groups of 2 or more experts dividing them, and at least one kept", ErrMismatch, used, groups, h.experts)
	case groups > 1 && used < groups:
		g.groups, g.groupsUsed = groups, used
	}
	return nil
}

// checkTimeStepLimit accepts a time_step_limit llama.cpp computes as
// transformers does: none, or [0, ∞) (Python writes ∞ as Infinity, which
// readConfig reads as null, or as "Infinity"), as llama.cpp clamps no time
// step (pyjson reads Python's -Infinity, Infinity and NaN as null).
func checkTimeStepLimit(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var lim []any
	if err := json.Unmarshal(raw, &lim); err != nil || len(lim) != 2 {
		return fmt.Errorf("time_step_limit %s: want [min, max]", strings.Join(strings.Fields(string(raw)), ""))
	}
	// null is what pyjson makes of Python's -Infinity, Infinity and NaN:
	// no bound either way.
	value := func(v any, none float64) (float64, bool) {
		switch x := v.(type) {
		case nil:
			return none, true
		case float64:
			return x, true
		case string:
			f, err := strconv.ParseFloat(x, 64)
			return f, err == nil
		}
		return 0, false
	}
	lo, ok1 := value(lim[0], math.Inf(-1))
	hi, ok2 := value(lim[1], math.Inf(1))
	if !ok1 || !ok2 || lo > 0 || hi < 1e10 {
		return fmt.Errorf("time_step_limit [%v, %v] clamps the time step, which llama.cpp does not", lim[0], lim[1])
	}
	return nil
}

// nemotronHKeys writes the per-block head_count_kv and
// feed_forward_length llama.cpp tells the blocks apart by, the head sizes
// and the Mamba-2 sizes.
func nemotronHKeys(w *gguf.Writer, a string, h hparams) {
	g := h.nh
	kv, ff := make([]uint32, h.layers), make([]uint32, h.layers)
	for i, b := range g.blocks {
		switch b {
		case nhAttention:
			kv[i] = uint32(h.kvHeads)
		case nhMLP, nhMoE:
			ff[i] = uint32(h.ffn)
		}
	}
	w.Set(a+".attention.head_count_kv", gguf.Uint32s(kv))
	w.Set(a+".feed_forward_length", gguf.Uint32s(ff))
	// This llama.cpp divides the MLP width by expert_used_count (0 without
	// experts: a division by zero that kills the process) unless
	// expert_feed_forward_length is set; without experts it is unused.
	w.Set(a+".expert_feed_forward_length", gguf.Uint32(uint32(h.ffn)))
	if h.experts > 0 {
		w.Set(a+".expert_count", gguf.Uint32(uint32(h.experts)))
		w.Set(a+".expert_used_count", gguf.Uint32(uint32(h.expertsUsed)))
		w.Set(a+".expert_shared_feed_forward_length", gguf.Uint32(uint32(h.sharedFFN)))
		w.Set(a+".expert_shared_count", gguf.Uint32(uint32(g.shared)))
		w.Set(a+".expert_weights_norm", gguf.Bool(g.normTopK))
		w.Set(a+".expert_weights_scale", gguf.Float32(float32(g.routeScale)))
		if g.groups > 1 {
			w.Set(a+".expert_group_count", gguf.Uint32(uint32(g.groups)))
			w.Set(a+".expert_group_used_count", gguf.Uint32(uint32(g.groupsUsed)))
		}
	}
	w.Set(a+".attention.key_length", gguf.Uint32(uint32(h.headDim)))
	w.Set(a+".attention.value_length", gguf.Uint32(uint32(h.headDim)))
	m := g.mamba
	w.Set(a+".ssm.conv_kernel", gguf.Uint32(uint32(m.dConv)))
	w.Set(a+".ssm.inner_size", gguf.Uint32(uint32(m.dInner)))
	w.Set(a+".ssm.state_size", gguf.Uint32(uint32(m.dState)))
	w.Set(a+".ssm.time_step_rank", gguf.Uint32(uint32(m.heads)))
	w.Set(a+".ssm.group_count", gguf.Uint32(uint32(m.groups)))
}

var (
	nemotronLayerRE  = regexp.MustCompile(`^(?:backbone|model)\.layers\.(\d+)\.(.+)$`)
	nemotronExpertRE = regexp.MustCompile(`^mixer\.experts\.(\d+)\.(up_proj|down_proj)\.weight$`)
)

// planNemotronH maps a Nemotron-H checkpoint's tensors.
func planNemotronH(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	g := h.nh
	m := &g.mamba
	H, F := int64(h.hidden), int64(h.ffn)
	Q, KV := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	pl := newPlanner(st, h)
	add := pl.add
	kinds := [...]string{nhMamba: "a Mamba-2", nhAttention: "an attention", nhMLP: "an MLP", nhMoE: "an expert"}
	E, I, S := int64(h.experts), int64(h.expertFFN), int64(h.sharedFFN)
	perExpert := map[string][]string{} // per layer's stacked name: each expert's tensor
	mtp := 0
	layer := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		kind := g.blocks[n]
		refuse := func() error {
			return fmt.Errorf("%w tensor %q in a %s checkpoint: not a tensor of block %d, %s block", ErrUnsupported, t.Name, arch.hf, n, kinds[kind])
		}
		if suffix == "norm.weight" {
			return add(blk("attn_norm.weight"), t, []int64{H})
		}
		switch kind {
		case nhMamba:
			if rest, ok := strings.CutPrefix(suffix, "mixer."); ok {
				if ok, err := mamba2Tensor(m, blk, add, rest, t, H); ok || err != nil {
					return err
				}
			}
		case nhAttention:
			switch suffix {
			case "mixer.q_proj.weight":
				return add(blk("attn_q.weight"), t, []int64{Q, H})
			case "mixer.k_proj.weight":
				return add(blk("attn_k.weight"), t, []int64{KV, H})
			case "mixer.v_proj.weight":
				return add(blk("attn_v.weight"), t, []int64{KV, H})
			case "mixer.o_proj.weight":
				return add(blk("attn_output.weight"), t, []int64{H, Q})
			}
		case nhMLP:
			switch suffix {
			case "mixer.up_proj.weight":
				return add(blk("ffn_up.weight"), t, []int64{F, H})
			case "mixer.down_proj.weight":
				return add(blk("ffn_down.weight"), t, []int64{H, F})
			case "mixer.up_proj.bias", "mixer.down_proj.bias":
				if !g.mlpBias {
					return fmt.Errorf("%w tensor %q in a %s checkpoint with mlp_bias false", ErrUnsupported, t.Name, arch.hf)
				}
				if suffix == "mixer.up_proj.bias" {
					return add(blk("ffn_up.bias"), t, []int64{F})
				}
				return add(blk("ffn_down.bias"), t, []int64{H})
			}
		case nhMoE:
			switch suffix {
			case "mixer.gate.weight":
				return add(blk("ffn_gate_inp.weight"), t, []int64{E, H})
			case "mixer.gate.e_score_correction_bias":
				return add(blk("exp_probs_b.bias"), t, []int64{E})
			case "mixer.shared_experts.up_proj.weight":
				return add(blk("ffn_up_shexp.weight"), t, []int64{S, H})
			case "mixer.shared_experts.down_proj.weight":
				return add(blk("ffn_down_shexp.weight"), t, []int64{H, S})
			case "mixer.experts.up_proj", "mixer.experts.up_proj.weight": // fused, [experts, out, in]
				return add(blk("ffn_up_exps.weight"), t, []int64{E, I, H})
			case "mixer.experts.down_proj", "mixer.experts.down_proj.weight":
				return add(blk("ffn_down_exps.weight"), t, []int64{E, H, I})
			}
			if e := nemotronExpertRE.FindStringSubmatch(suffix); e != nil {
				i, _ := strconv.Atoi(e[1])
				name, want := "ffn_up_exps.weight", []int64{I, H}
				if e[2] == "down_proj" {
					name, want = "ffn_down_exps.weight", []int64{H, I}
				}
				key := fmt.Sprintf("blk.%d.%s", n, name)
				switch {
				case i >= h.experts:
					return fmt.Errorf("%w: tensor %q: expert %d of n_routed_experts %d", ErrMismatch, t.Name, i, h.experts)
				case !slices.Equal(t.Shape, want):
					return fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, want)
				}
				if err := checkWeightDType(st, t, h); err != nil {
					return err
				}
				if perExpert[key] == nil {
					perExpert[key] = make([]string, h.experts)
				}
				if perExpert[key][i] != "" {
					return fmt.Errorf("%w: two tensors for expert %d of %s (the second is %q)", ErrMismatch, i, key, t.Name)
				}
				perExpert[key][i] = t.Name
				return nil
			}
		}
		return refuse()
	}
	if err := pl.walk(arch, nemotronLayerRE, []string{"backbone.embeddings.weight", "model.embeddings.weight"},
		[]string{"backbone.norm_f.weight", "model.norm_f.weight"}, skipMTP(&mtp), layer); err != nil {
		return nil, err
	}
	if mtp > 0 {
		slog.Info("convert: multi-token-prediction tensors skipped", "architecture", arch.hf, "tensors", mtp)
	}
	for _, key := range slices.Sorted(maps.Keys(perExpert)) {
		parts := perExpert[key]
		if pl.seen[key] {
			return nil, fmt.Errorf("%w: %s both fused and per expert", ErrMismatch, key)
		}
		if i := slices.Index(parts, ""); i >= 0 {
			return nil, fmt.Errorf("%w: the checkpoint has no tensor for expert %d of %s", ErrMismatch, i, key)
		}
		n, _ := strconv.Atoi(strings.Split(key, ".")[1])
		shape := []int64{E, I, H}
		if strings.Contains(key, "down") {
			shape = []int64{E, H, I}
		}
		pl.put(tensorPlan{ggufName: key, parts: parts, shape: shape, layer: n})
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n, kind := range g.blocks {
		names := []string{"attn_norm.weight"}
		switch kind {
		case nhMamba:
			pl.put(m.zeroConvBias(n)...)
			names = append(names, mamba2Required...)
		case nhAttention:
			names = append(names, "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")
		case nhMLP:
			names = append(names, "ffn_up.weight", "ffn_down.weight")
			if g.mlpBias {
				names = append(names, "ffn_up.bias", "ffn_down.bias")
			}
		case nhMoE:
			names = append(names, "ffn_gate_inp.weight", "exp_probs_b.bias", "ffn_up_exps.weight", "ffn_down_exps.weight",
				"ffn_up_shexp.weight", "ffn_down_shexp.weight")
		}
		for _, s := range names {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, s))
		}
	}
	return pl.finish(required)
}
