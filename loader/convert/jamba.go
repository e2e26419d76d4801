package convert

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// JambaForCausalLM (AI21's Jamba-v0.1, Jamba 1.5 and 1.6 Mini and Large,
// Jamba Reasoning 3B) → GGUF arch "jamba": pre-norm blocks whose first
// sublayer is attention every attn_layer_period layers from
// attn_layer_offset and a Mamba-1 mixer elsewhere, and whose MLP is a
// mixture of num_experts every expert_layer_period layers from
// expert_layer_offset (a dense gated MLP elsewhere, and everywhere when
// num_experts is 1).
//
//   - The attention has no positions (no rope) and no biases;
//     head_count_kv is written per layer, 0 in a Mamba layer, which is how
//     llama.cpp tells the layers apart.
//   - The Mamba mixer is Mamba-1's (mamba1Tensor), its dt, B and C
//     RMS-normed with weights (dt_layernorm, b_layernorm, c_layernorm) by
//     the blocks' epsilon, as llama.cpp's jamba does too.
//   - The router's softmax weights of the top num_experts_per_tok experts
//     are used as they are (not renormalised), as in llama.cpp's jamba.
//
// llama.cpp runs mamba_expand 2 and no mixer projection biases only.

// jambaConfig holds JambaConfig's names.
type jambaConfig struct {
	AttnPeriod    *int            `json:"attn_layer_period"`
	AttnOffset    *int            `json:"attn_layer_offset"`
	ExpertPeriod  *int            `json:"expert_layer_period"`
	ExpertOffset  *int            `json:"expert_layer_offset"`
	NumExperts    *int            `json:"num_experts"`
	ExpertsPerTok *int            `json:"num_experts_per_tok"`
	MambaState    *int            `json:"mamba_d_state"`
	MambaConv     *int            `json:"mamba_d_conv"`
	MambaExpand   *int            `json:"mamba_expand"`
	MambaDtRank   json.RawMessage `json:"mamba_dt_rank"`
	MambaConvBias *bool           `json:"mamba_conv_bias"`
	MambaProjBias *bool           `json:"mamba_proj_bias"`
}

// jamba is a Jamba model's layout: per layer whether it attends and
// whether its MLP has experts, and the Mamba mixer's sizes.
type jamba struct {
	attn, moe []bool
	mixer     *mambaDims
}

// jambaHparams reads a Jamba config with JambaConfig's defaults (attention
// every 8th layer from the 4th, experts every 2nd from the 1st, 16
// experts, 2 used, state 16, kernel 4, dt rank hidden/16, the conv1d
// bias) into h.
func (c *hfConfig) jambaHparams(arch archSpec, h *hparams) error {
	if c.jambaErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.jambaErr)
	}
	j := c.Jamba
	intOr := func(p *int, def int) int {
		if p == nil {
			return def
		}
		return *p
	}
	attnPeriod, attnOffset := intOr(j.AttnPeriod, 8), intOr(j.AttnOffset, 4)
	expPeriod, expOffset := intOr(j.ExpertPeriod, 2), intOr(j.ExpertOffset, 1)
	experts, used := intOr(j.NumExperts, 16), intOr(j.ExpertsPerTok, 2)
	d := &mambaDims{dConv: intOr(j.MambaConv, 4), dState: intOr(j.MambaState, 16), dInner: intOr(j.MambaExpand, 2) * h.hidden,
		dtRank: (h.hidden + 15) / 16, convBias: j.MambaConvBias == nil || *j.MambaConvBias, dtBCRMS: true, normWeights: true}
	if !isNull(j.MambaDtRank) {
		var auto string
		if json.Unmarshal(j.MambaDtRank, &auto) == nil {
			if auto != "auto" {
				return fmt.Errorf("%w: config.json: mamba_dt_rank %q is neither \"auto\" nor a number", ErrMismatch, auto)
			}
		} else if d.dtRank = positiveInt(j.MambaDtRank); d.dtRank == 0 {
			return fmt.Errorf("%w: config.json: mamba_dt_rank %s is not a positive integer", ErrMismatch, j.MambaDtRank)
		}
	}
	switch {
	case attnPeriod <= 0 || attnOffset < 0 || expPeriod <= 0 || expOffset < 0:
		return fmt.Errorf("%w: config.json: attn_layer_period %d, attn_layer_offset %d, expert_layer_period %d and expert_layer_offset %d: periods must be positive, offsets not negative",
			ErrMismatch, attnPeriod, attnOffset, expPeriod, expOffset)
	case experts < 1 || experts > maxExperts:
		return fmt.Errorf("%w: config.json: num_experts %d must be in [1, %d]", ErrMismatch, experts, maxExperts)
	case experts > 1 && (used < 1 || used > experts):
		return fmt.Errorf("%w: config.json: num_experts_per_tok %d must be in [1, %d]", ErrMismatch, used, experts)
	case d.dInner != 2*h.hidden:
		return fmt.Errorf("%w: %s with mamba_expand %d: llama.cpp's jamba runs Mamba layers twice as wide as the hidden size only", ErrUnsupported, arch.hf, d.dInner/h.hidden)
	case j.MambaProjBias != nil && *j.MambaProjBias:
		return fmt.Errorf("%w: %s with mamba_proj_bias true: llama.cpp's jamba has no in_proj or out_proj bias", ErrUnsupported, arch.hf)
	case d.dConv != 3 && d.dConv != 4:
		return fmt.Errorf("%w: %s with mamba_d_conv %d: ggml's CUDA convolution runs kernels of 3 or 4 only (others abort)", ErrUnsupported, arch.hf, d.dConv)
	case d.dState <= 0:
		return fmt.Errorf("%w: config.json: mamba_d_state %d is not positive", ErrMismatch, d.dState)
	case h.headDim*h.heads != h.hidden:
		return fmt.Errorf("%w: %s with %d heads of %d: llama.cpp's jamba projects the queries to hidden_size %d", ErrUnsupported, arch.hf, h.heads, h.headDim, h.hidden)
	}
	g := &jamba{attn: make([]bool, h.layers), moe: make([]bool, h.layers), mixer: d}
	for i := range h.layers {
		g.attn[i] = i%attnPeriod == attnOffset
		g.moe[i] = experts > 1 && i%expPeriod == expOffset
	}
	if experts > 1 {
		h.experts, h.expertsUsed, h.expertFFN = experts, used, h.ffn
	}
	h.jamba = g
	return nil
}

// jambaKeys writes the per-layer key/value heads (0: a Mamba layer), the
// experts and the Mamba mixer's sizes.
func jambaKeys(w *gguf.Writer, a string, h hparams) {
	g := h.jamba
	layerKVHeads(w, a, g.attn, h.kvHeads)
	if h.experts > 0 {
		w.Set(a+".expert_count", gguf.Uint32(uint32(h.experts)))
		w.Set(a+".expert_used_count", gguf.Uint32(uint32(h.expertsUsed)))
	}
	d := g.mixer
	w.Set(a+".ssm.conv_kernel", gguf.Uint32(uint32(d.dConv)))
	w.Set(a+".ssm.inner_size", gguf.Uint32(uint32(d.dInner)))
	w.Set(a+".ssm.state_size", gguf.Uint32(uint32(d.dState)))
	w.Set(a+".ssm.time_step_rank", gguf.Uint32(uint32(d.dtRank)))
}

// jambaExpertRE splits an expert's projection suffix: (expert, name).
var jambaExpertRE = regexp.MustCompile(`^feed_forward\.experts\.(\d+)\.(\w+_proj\.weight)$`)

// planJamba maps a Jamba checkpoint's tensors.
func planJamba(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	g := h.jamba
	H, F := int64(h.hidden), int64(h.ffn)
	Q, KV := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	pl := newPlanner(st, h)
	experts := expertParts{}
	moeArch := arch
	moeArch.moe = &moeSpec{gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight"}
	attnNames := map[string]bertTensor{
		"self_attn.q_proj.weight": {"attn_q.weight", []int64{Q, H}},
		"self_attn.k_proj.weight": {"attn_k.weight", []int64{KV, H}},
		"self_attn.v_proj.weight": {"attn_v.weight", []int64{KV, H}},
		"self_attn.o_proj.weight": {"attn_output.weight", []int64{H, Q}},
	}
	denseNames := map[string]bertTensor{
		"feed_forward.gate_proj.weight": {"ffn_gate.weight", []int64{F, H}},
		"feed_forward.up_proj.weight":   {"ffn_up.weight", []int64{F, H}},
		"feed_forward.down_proj.weight": {"ffn_down.weight", []int64{H, F}},
	}
	err := pl.walk(arch, layerRE, llamaEmb, []string{"model.final_layernorm.weight"}, nil, func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		refuse := func(why string) error {
			return fmt.Errorf("%w tensor %q in a %s checkpoint: %s", ErrUnsupported, t.Name, arch.hf, why)
		}
		switch suffix {
		case "input_layernorm.weight":
			return pl.add(blk("attn_norm.weight"), t, []int64{H})
		case "pre_ff_layernorm.weight":
			return pl.add(blk("ffn_norm.weight"), t, []int64{H})
		}
		if b, ok := attnNames[suffix]; ok {
			if !g.attn[n] {
				return refuse(fmt.Sprintf("attention in layer %d, a Mamba layer by attn_layer_period and attn_layer_offset", n))
			}
			return pl.add(blk(b.name), t, b.shape)
		}
		if rest, ok := strings.CutPrefix(suffix, "mamba."); ok {
			if g.attn[n] {
				return refuse(fmt.Sprintf("a Mamba mixer in layer %d, an attention layer by attn_layer_period and attn_layer_offset", n))
			}
			if ok, err := mamba1Tensor(g.mixer, blk, pl.add, rest, t, H); ok || err != nil {
				return err
			}
			return refuse("not a tensor of the Mamba mixer")
		}
		if b, ok := denseNames[suffix]; ok {
			if g.moe[n] {
				return refuse(fmt.Sprintf("a dense MLP in layer %d, an expert layer by expert_layer_period and expert_layer_offset", n))
			}
			return pl.add(blk(b.name), t, b.shape)
		}
		if suffix == "feed_forward.router.weight" || jambaExpertRE.MatchString(suffix) {
			if !g.moe[n] {
				return refuse(fmt.Sprintf("experts in layer %d, a dense layer by num_experts, expert_layer_period and expert_layer_offset", n))
			}
			if suffix == "feed_forward.router.weight" {
				return pl.add(blk("ffn_gate_inp.weight"), t, []int64{int64(h.experts), H})
			}
			e := jambaExpertRE.FindStringSubmatch(suffix)
			if err := experts.add(moeArch, h, n, e[1], e[2], t.Name, t.Shape); err != nil {
				return err
			}
			return checkWeightDType(st, t, h)
		}
		return refuse("not a tensor of the model")
	})
	if err != nil {
		return nil, err
	}
	if h.tied {
		pl.tiedOutput()
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	for n := range h.layers {
		per := []string{"attn_norm.weight", "ffn_norm.weight"}
		if g.attn[n] {
			for _, b := range attnNames {
				per = append(per, b.name)
			}
		} else {
			pl.put(g.mixer.zeroConvBias(n)...)
			per = append(per, g.mixer.required()...)
		}
		if g.moe[n] {
			stacked, err := experts.plansLayer(h, n)
			if err != nil {
				return nil, err
			}
			pl.put(stacked...)
			per = append(per, "ffn_gate_inp.weight")
		} else {
			for _, b := range denseNames {
				per = append(per, b.name)
			}
		}
		for _, r := range per {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, r))
		}
	}
	return pl.finish(required)
}
