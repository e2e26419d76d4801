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

// Qwen3-Next (Qwen3NextForCausalLM: Qwen3-Next-80B-A3B) → GGUF arch
// "qwen3next": three Gated DeltaNet layers, then one attention layer, in
// every four (llama.cpp fixes that interval), each with Qwen2-MoE's MLP
// (softmax router, renormalised top-k, a shared expert behind a sigmoid
// gate).
//
//   - The attention's q_proj holds, per head, the query then an output
//     gate (sigmoid, applied before o_proj); per-head q/k norms, NEOX rope
//     over partial_rotary_factor of each head.
//   - A Gated DeltaNet layer projects the input to q, k, v and z grouped by
//     key head (in_proj_qkvz, written as ssm_in as released: llama.cpp
//     splits it per group) and to β and α (in_proj_ba, ssm_ba), convolves
//     q·k·v causally (conv1d [channels, 1, K] written [channels, K], F32),
//     runs the delta rule with the decay -exp(A_log)·softplus(α + dt_bias)
//     (A_log written as ssm_a = -exp(A_log)), RMS-norms each head's output
//     (norm, one weight for all heads) gated by SiLU(z), and projects back
//     (out_proj).
//   - Qwen3-Next's RMS norms scale by 1 + weight (zero-centred), so the
//     layer, q/k and final norm weights are written plus 1; the DeltaNet's
//     gated norm scales by its weight as it is.
//
// llama.cpp's graph takes one head size for keys and values of the
// DeltaNet (ssm.state_size), so linear_key_head_dim and
// linear_value_head_dim must agree; dense MLP layers, an MLP without the
// shared expert and attention biases are refused. The multi-token
// prediction weights (mtp.*) are skipped.

// qwen3NextConfig holds config.json's Qwen3-Next fields.
type qwen3NextConfig struct {
	FullAttentionInterval *int  `json:"full_attention_interval"`
	ConvKernel            *int  `json:"linear_conv_kernel_dim"`
	KeyHeadDim            *int  `json:"linear_key_head_dim"`
	ValueHeadDim          *int  `json:"linear_value_head_dim"`
	KeyHeads              *int  `json:"linear_num_key_heads"`
	ValueHeads            *int  `json:"linear_num_value_heads"`
	AttentionBias         *bool `json:"attention_bias"`
}

// qwen3Next holds a Qwen3-Next model's validated layout.
type qwen3Next struct {
	attn []bool // per layer: full attention (else Gated DeltaNet)
	// The DeltaNet: convolution width, key heads, value heads, and their
	// common head size.
	conv, kHeads, vHeads, headDim int
}

// keyDim and valueDim are the DeltaNet's q/k and v widths; convDim the
// convolution's channels (q, k, v).
func (q *qwen3Next) keyDim() int   { return q.kHeads * q.headDim }
func (q *qwen3Next) valueDim() int { return q.vHeads * q.headDim }
func (q *qwen3Next) convDim() int  { return 2*q.keyDim() + q.valueDim() }

// qwen3NextMoE names Qwen3-Next's experts: Qwen2-MoE's (per expert, or
// fused as transformers 5 stores them) with its shared expert, the top-k
// weights renormalised.
var qwen3NextMoE = &moeSpec{router: "mlp.gate.weight", experts: regexp.MustCompile(`^mlp\.experts\.(\d+)\.(\w+_proj\.weight)$`),
	gate: "gate_proj.weight", up: "up_proj.weight", down: "down_proj.weight", expertFFNKey: true, norm: true,
	shared: "mlp.shared_expert.", sharedGate: "mlp.shared_expert_gate.weight",
	fusedGateUp: "mlp.experts.gate_up_proj", fusedDown: "mlp.experts.down_proj", fusedOutIn: true}

// qwen3NextDefaults applies Qwen3NextConfig's defaults ahead of the
// common reading: head_dim 256, partial_rotary_factor 0.25, 2 KV heads,
// 512 experts of 512 (10 used) and a shared expert of 512.
func (c *hfConfig) qwen3NextDefaults() error {
	if c.q3nErr != nil {
		return fmt.Errorf("convert: config.json: %w", c.q3nErr)
	}
	for _, d := range []struct {
		p *int
		v int
	}{{&c.HeadDim, 256}, {&c.NumKeyValueHeads, 2}, {&c.MoE.NumExperts, 512}, {&c.MoE.NumExpertsPerTok, 10},
		{&c.MoE.MoeIntermediateSize, 512}, {&c.MoE.SharedExpertSize, 512}} {
		if *d.p <= 0 {
			*d.p = d.v
		}
	}
	if c.PartialRotaryFactor == nil {
		if p, err := parseRopeJSON(c.RopeParameters, "rope_parameters"); err != nil {
			return err
		} else if p == nil || p.PartialRotaryFactor == nil {
			quarter := 0.25
			c.PartialRotaryFactor = &quarter
		}
	}
	return nil
}

// qwen3NextHparams reads and checks a Qwen3-Next config.
func (c *hfConfig) qwen3NextHparams(arch archSpec, h *hparams) error {
	qc := c.Qwen3Next
	if err := c.moeHparams(arch, h); err != nil {
		return err
	}
	intOr := func(p *int, def int) int {
		if p == nil {
			return def
		}
		return *p
	}
	g := &qwen3Next{conv: intOr(qc.ConvKernel, 4), kHeads: intOr(qc.KeyHeads, 16), vHeads: intOr(qc.ValueHeads, 32),
		headDim: intOr(qc.KeyHeadDim, 128)}
	switch vd := intOr(qc.ValueHeadDim, 128); {
	case qc.AttentionBias != nil && *qc.AttentionBias:
		return fmt.Errorf("%w: %s with attention_bias true: llama.cpp's %s has no attention biases", ErrUnsupported, arch.hf, arch.gguf)
	case vd != g.headDim:
		return fmt.Errorf("%w: %s with linear_key_head_dim %d and linear_value_head_dim %d: llama.cpp's %s takes one head size for both", ErrUnsupported, arch.hf, g.headDim, vd, arch.gguf)
	case g.headDim <= 0 || g.kHeads <= 0 || g.vHeads <= 0 || g.vHeads%g.kHeads != 0:
		return fmt.Errorf("%w: config.json: %d value heads over %d key heads of %d: the key heads must divide the value heads", ErrMismatch, g.vHeads, g.kHeads, g.headDim)
	case g.conv != 3 && g.conv != 4:
		return fmt.Errorf("%w: %s with linear_conv_kernel_dim %d: ggml's CUDA convolution runs 3 or 4 only (others abort)", ErrUnsupported, arch.hf, g.conv)
	}
	// llama.cpp fixes the layout: full attention in every fourth layer.
	g.attn = make([]bool, h.layers)
	for i := range g.attn {
		g.attn[i] = (i+1)%4 == 0
	}
	if isNull(c.LayerTypes) { // transformers builds them from the interval
		switch interval := intOr(qc.FullAttentionInterval, 4); {
		case interval <= 0:
			return fmt.Errorf("%w: config.json: full_attention_interval %d is not positive", ErrMismatch, interval)
		case interval != 4:
			return fmt.Errorf("%w: %s with full_attention_interval %d: llama.cpp's %s has attention in every fourth layer", ErrUnsupported, arch.hf, interval, arch.gguf)
		}
		h.q3n = g
		return nil
	}
	var types []string
	if err := json.Unmarshal(c.LayerTypes, &types); err != nil {
		return fmt.Errorf("%w: config.json: layer_types: %v", ErrMismatch, err)
	}
	if len(types) != h.layers {
		return fmt.Errorf("%w: config.json: layer_types has %d entries for %d layers", ErrMismatch, len(types), h.layers)
	}
	for i, t := range types {
		want := "linear_attention"
		if g.attn[i] {
			want = "full_attention"
		}
		if t != want {
			return fmt.Errorf("%w: %s with layer_types[%d] %q: llama.cpp's %s has linear attention in three layers of every four, then full attention",
				ErrUnsupported, arch.hf, i, t, arch.gguf)
		}
	}
	h.q3n = g
	return nil
}

// qwen3NextKeys writes the DeltaNet's sizes, as llama.cpp's qwen3next
// reads them: the convolution's width, the value width (inner size), the
// head size (state size), the value heads (time-step rank) and the key
// heads (groups).
func qwen3NextKeys(w *gguf.Writer, a string, h hparams) {
	g := h.q3n
	w.Set(a+".ssm.conv_kernel", gguf.Uint32(uint32(g.conv)))
	w.Set(a+".ssm.inner_size", gguf.Uint32(uint32(g.valueDim())))
	w.Set(a+".ssm.state_size", gguf.Uint32(uint32(g.headDim)))
	w.Set(a+".ssm.time_step_rank", gguf.Uint32(uint32(g.vHeads)))
	w.Set(a+".ssm.group_count", gguf.Uint32(uint32(g.kHeads)))
}

// planQwen3Next maps a Qwen3-Next checkpoint's tensors.
func planQwen3Next(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	g := h.q3n
	H, D := int64(h.hidden), int64(h.headDim)
	Q, KV := int64(h.heads)*D, int64(h.kvHeads)*D
	NV, CD := int64(g.vHeads), int64(g.convDim())
	pl := newPlanner(st, h)
	pl.outputShift = 1
	add := pl.add
	experts, fused := expertParts{}, fusedExperts{}
	mtp := 0
	layer := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		norm := func(name string) tensorPlan { p := blk(name); p.shift = 1; return p } // 1 + weight
		switch attn := g.attn[n]; {
		case attn && strings.HasPrefix(suffix, "linear_attn."):
			return fmt.Errorf("%w: tensor %q: linear attention in layer %d, a full attention layer", ErrMismatch, t.Name, n)
		case !attn && strings.HasPrefix(suffix, "self_attn."):
			return fmt.Errorf("%w: tensor %q: full attention in layer %d, a linear attention layer", ErrMismatch, t.Name, n)
		}
		switch suffix {
		case "input_layernorm.weight":
			return add(norm("attn_norm.weight"), t, []int64{H})
		case "post_attention_layernorm.weight":
			return add(norm("post_attention_norm.weight"), t, []int64{H})
		case "self_attn.q_proj.weight": // per head: the query, then its gate
			return add(blk("attn_q.weight"), t, []int64{2 * Q, H})
		case "self_attn.k_proj.weight":
			return add(blk("attn_k.weight"), t, []int64{KV, H})
		case "self_attn.v_proj.weight":
			return add(blk("attn_v.weight"), t, []int64{KV, H})
		case "self_attn.o_proj.weight":
			return add(blk("attn_output.weight"), t, []int64{H, Q})
		case "self_attn.q_norm.weight":
			return add(norm("attn_q_norm.weight"), t, []int64{D})
		case "self_attn.k_norm.weight":
			return add(norm("attn_k_norm.weight"), t, []int64{D})
		case "linear_attn.in_proj_qkvz.weight":
			return add(blk("ssm_in.weight"), t, []int64{2*int64(g.keyDim()) + 2*int64(g.valueDim()), H})
		case "linear_attn.in_proj_ba.weight":
			return add(blk("ssm_ba.weight"), t, []int64{2 * NV, H})
		case "linear_attn.conv1d.weight":
			p := blk("ssm_conv1d.weight")
			p.shape = []int64{CD, int64(g.conv)}
			return add(p, t, []int64{CD, 1, int64(g.conv)})
		case "linear_attn.dt_bias":
			return add(blk("ssm_dt.bias"), t, []int64{NV})
		case "linear_attn.A_log":
			p := blk("ssm_a")
			name := t.Name
			p.derive = func(tw *tensorWriter) ([]float32, error) {
				v, err := loadFloat32s(tw.st, name, tw.fp8Block)
				if err != nil {
					return nil, err
				}
				for i := range v {
					v[i] = float32(-math.Exp(float64(v[i])))
				}
				return v, nil
			}
			return add(p, t, []int64{NV})
		case "linear_attn.norm.weight":
			return add(blk("ssm_norm.weight"), t, []int64{int64(g.headDim)})
		case "linear_attn.out_proj.weight":
			return add(blk("ssm_out.weight"), t, []int64{H, int64(g.valueDim())})
		case "mlp.gate.weight":
			return add(blk("ffn_gate_inp.weight"), t, []int64{int64(h.experts), H})
		}
		if name, shape, ok := qwen3NextMoE.sharedTensor(suffix, h); ok {
			return add(blk(name), t, shape)
		}
		if e := qwen3NextMoE.perExpert(suffix); e != nil {
			if err := checkWeightDType(st, t, h); err != nil {
				return err
			}
			return experts.add(arch, h, n, e[1], e[2], t.Name, t.Shape)
		}
		if fused.add(qwen3NextMoE, n, suffix, t) {
			return nil
		}
		return fmt.Errorf("%w tensor %q in a %s checkpoint: not a tensor of the model", ErrUnsupported, t.Name, arch.hf)
	}
	if err := pl.walk(arch, layerRE, llamaEmb, llamaNorm, skipMTP(&mtp), layer); err != nil {
		return nil, err
	}
	if mtp > 0 {
		slog.Info("convert: multi-token-prediction tensors skipped", "architecture", arch.hf, "tensors", mtp)
	}
	for n := range h.layers {
		var stacked []tensorPlan
		var err error
		if fused[n] != nil {
			for _, g := range []string{"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"} {
				if experts[fmt.Sprintf("blk.%d.%s.weight", n, g)] != nil {
					return nil, fmt.Errorf("%w: layer %d's experts both fused and per expert", ErrMismatch, n)
				}
			}
			stacked, err = fused.layerPlans(qwen3NextMoE, h, n)
		} else {
			stacked, err = experts.plansLayer(h, n)
		}
		if err != nil {
			return nil, err
		}
		pl.put(stacked...)
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n, attn := range g.attn {
		names := []string{"attn_norm.weight", "post_attention_norm.weight", "ffn_gate_inp.weight",
			"ffn_gate_inp_shexp.weight", "ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight"}
		if attn {
			names = append(names, "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "attn_q_norm.weight", "attn_k_norm.weight")
		} else {
			names = append(names, "ssm_in.weight", "ssm_ba.weight", "ssm_conv1d.weight", "ssm_dt.bias", "ssm_a", "ssm_norm.weight", "ssm_out.weight")
		}
		for _, s := range names {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, s))
		}
	}
	return pl.finish(required)
}
