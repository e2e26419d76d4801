package convert

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Falcon-H1 (FalconH1ForCausalLM: Falcon-H1 0.5B to 34B, Falcon-H1R) →
// GGUF arch "falcon-h1": every layer runs attention (NEOX rope, as
// transformers' rotate_half) and a Mamba-2 mixer side by side on the same
// normed input, adds both to the residual, then a SwiGLU MLP
// (pre_ff_layernorm, feed_forward). The final norm is final_layernorm.
//
// Falcon-H1's µP multipliers, which llama.cpp's graph does not apply, are
// folded into the weights as convert_hf_to_gguf.py folds them: the
// embeddings times embedding_multiplier, the head times
// lm_head_multiplier, q, k and v times attention_in_multiplier (k also
// times key_multiplier), o_proj times attention_out_multiplier, in_proj
// times ssm_in_multiplier and its z, x, B, C and dt rows each times their
// ssm_multipliers, out_proj times ssm_out_multiplier, and the MLP's gate
// and down projections times mlp_multipliers. With tied embeddings the
// head is written on its own, the embeddings times lm_head_multiplier.
//
// The Mamba-2 mixer is Granite 4.0's (granite4.go) with the inner size
// mamba_d_ssm; its gated norm (mamba_rms_norm) is applied after the gate,
// as llama.cpp does, so mamba_norm_before_gate with the norm is refused,
// as are attention and projection biases, which llama.cpp's falcon-h1
// graph does not add, and MLP biases, which are not converted.

// falconH1FFNNorm is the name llama.cpp's falcon-h1 loads each block's MLP
// norm by: its base name alone, as it does ssm_a and ssm_d.
const falconH1FFNNorm = "ffn_norm"

// falconH1Config holds config.json's Falcon-H1 fields.
type falconH1Config struct {
	DSSM          json.RawMessage `json:"mamba_d_ssm"`
	Expand        *int            `json:"mamba_expand"`
	Heads         *int            `json:"mamba_n_heads"`
	DHead         json.RawMessage `json:"mamba_d_head"`
	Groups        *int            `json:"mamba_n_groups"`
	DState        *int            `json:"mamba_d_state"`
	DConv         *int            `json:"mamba_d_conv"`
	ConvBias      *bool           `json:"mamba_conv_bias"`
	ProjBias      *bool           `json:"mamba_proj_bias"`
	NormBefore    *bool           `json:"mamba_norm_before_gate"`
	RMSNorm       *bool           `json:"mamba_rms_norm"`
	ProjectorBias *bool           `json:"projectors_bias"`
	AttnBias      *bool           `json:"attention_bias"`
	MLPBias       *bool           `json:"mlp_bias"`
	TimeStepLimit json.RawMessage `json:"time_step_limit"`

	LMHead    *float64  `json:"lm_head_multiplier"`
	Embedding *float64  `json:"embedding_multiplier"`
	MLP       []float64 `json:"mlp_multipliers"`
	Key       *float64  `json:"key_multiplier"`
	AttnOut   *float64  `json:"attention_out_multiplier"`
	AttnIn    *float64  `json:"attention_in_multiplier"`
	SSM       []float64 `json:"ssm_multipliers"`
	SSMIn     *float64  `json:"ssm_in_multiplier"`
	SSMOut    *float64  `json:"ssm_out_multiplier"`
}

// falconH1 holds a Falcon-H1 model's validated layout and multipliers.
type falconH1 struct {
	mamba graniteHybrid // the Mamba-2 mixer's sizes (attn unused)
	norm  bool          // the mixer's gated RMS norm (mamba_rms_norm)
	// The multipliers: embeddings, head, key, attention in and out, SSM
	// in and out, the MLP's gate and down, and in_proj's z, x, B, C, dt.
	emb, head, key, attnIn, attnOut, ssmIn, ssmOut float64
	mlp                                            [2]float64
	zxbcdt                                         [5]float64
}

// falconH1Defaults fills in what FalconH1Config assumes when config.json
// leaves it out: rope_theta 1e5, 8 KV heads, 8192 positions.
func (c *hfConfig) falconH1Defaults() {
	if c.RopeTheta == nil && !ropeHasTheta(c.RopeParameters) {
		theta := 1e5
		c.RopeTheta = &theta
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = 8
	}
	if c.MaxPositionEmbeddings == 0 {
		c.MaxPositionEmbeddings = 8192
	}
}

// falconH1Hparams reads and checks a Falcon-H1 config.
func (c *hfConfig) falconH1Hparams(arch archSpec, h *hparams) error {
	if c.fh1Err != nil {
		return fmt.Errorf("convert: config.json: %w", c.fh1Err)
	}
	fc := c.FalconH1
	intOr := func(p *int, def int) int {
		if p == nil {
			return def
		}
		return *p
	}
	f := func(p *float64) float64 {
		if p == nil {
			return 1
		}
		return *p
	}
	yes := func(p *bool, def bool) bool {
		if p == nil {
			return def
		}
		return *p
	}
	g := &falconH1{emb: f(fc.Embedding), head: f(fc.LMHead), key: f(fc.Key), attnIn: f(fc.AttnIn), attnOut: f(fc.AttnOut),
		ssmIn: f(fc.SSMIn), ssmOut: f(fc.SSMOut), mlp: [2]float64{1, 1}, zxbcdt: [5]float64{1, 1, 1, 1, 1}, norm: yes(fc.RMSNorm, false)}
	switch {
	case fc.MLP == nil:
	case len(fc.MLP) != 2:
		return fmt.Errorf("%w: config.json: mlp_multipliers has %d values, want 2 (gate, down)", ErrMismatch, len(fc.MLP))
	default:
		copy(g.mlp[:], fc.MLP)
	}
	switch {
	case fc.SSM == nil:
	case len(fc.SSM) != 5:
		return fmt.Errorf("%w: config.json: ssm_multipliers has %d values, want 5 (z, x, B, C, dt)", ErrMismatch, len(fc.SSM))
	default:
		copy(g.zxbcdt[:], fc.SSM)
	}
	for _, x := range []struct {
		name string
		v    float64
	}{{"lm_head_multiplier", g.head}, {"embedding_multiplier", g.emb}, {"key_multiplier", g.key}, {"attention_in_multiplier", g.attnIn},
		{"attention_out_multiplier", g.attnOut}, {"ssm_in_multiplier", g.ssmIn}, {"ssm_out_multiplier", g.ssmOut},
		{"mlp_multipliers[0]", g.mlp[0]}, {"mlp_multipliers[1]", g.mlp[1]}, {"ssm_multipliers[0]", g.zxbcdt[0]}, {"ssm_multipliers[1]", g.zxbcdt[1]},
		{"ssm_multipliers[2]", g.zxbcdt[2]}, {"ssm_multipliers[3]", g.zxbcdt[3]}, {"ssm_multipliers[4]", g.zxbcdt[4]}} {
		// A multiplier is folded into float32 weights: 0 (or one that
		// rounds to 0) would erase them.
		if f := float32(x.v); f == 0 || math.IsInf(float64(f), 0) || math.IsNaN(x.v) {
			return fmt.Errorf("%w: config.json: %s %v: want a finite multiplier that is not 0", ErrMismatch, x.name, x.v)
		}
	}
	m := &g.mamba
	// FalconH1Config: mamba_d_ssm defaults to 1024; null means
	// mamba_expand × hidden_size.
	switch {
	case len(fc.DSSM) == 0:
		m.dInner = 1024
	case isNull(fc.DSSM):
		m.dInner = intOr(fc.Expand, 2) * h.hidden
	default:
		if m.dInner = positiveInt(fc.DSSM); m.dInner == 0 {
			return fmt.Errorf("%w: config.json: mamba_d_ssm %s is not a positive integer", ErrMismatch, fc.DSSM)
		}
	}
	m.heads, m.groups, m.dState, m.dConv = intOr(fc.Heads, 128), intOr(fc.Groups, 1), intOr(fc.DState, 256), intOr(fc.DConv, 4)
	m.convBias = yes(fc.ConvBias, true)
	switch {
	case yes(fc.ProjBias, false) || yes(fc.ProjectorBias, false):
		return fmt.Errorf("%w: %s with mamba_proj_bias or projectors_bias: llama.cpp's %s has no in_proj or out_proj bias", ErrUnsupported, arch.hf, arch.gguf)
	case yes(fc.AttnBias, false):
		return fmt.Errorf("%w: %s with attention_bias: llama.cpp's %s graph adds none to q, k and v", ErrUnsupported, arch.hf, arch.gguf)
	case yes(fc.MLPBias, false):
		return fmt.Errorf("%w: %s with mlp_bias: MLP biases (which mlp_multipliers would scale) are not converted", ErrUnsupported, arch.hf)
	case g.norm && yes(fc.NormBefore, true):
		return fmt.Errorf("%w: %s with mamba_rms_norm and mamba_norm_before_gate: llama.cpp's %s norms the gated output, after the gate", ErrUnsupported, arch.hf, arch.gguf)
	case m.heads <= 0 || m.dInner%m.heads != 0:
		return fmt.Errorf("%w: config.json: mamba_n_heads %d does not divide the Mamba-2 inner size %d", ErrMismatch, m.heads, m.dInner)
	case m.groups <= 0 || m.heads%m.groups != 0:
		return fmt.Errorf("%w: config.json: mamba_n_groups %d does not divide mamba_n_heads %d", ErrMismatch, m.groups, m.heads)
	case m.dState <= 0:
		return fmt.Errorf("%w: config.json: mamba_d_state %d is not positive", ErrMismatch, m.dState)
	case m.dConv != 3 && m.dConv != 4:
		return fmt.Errorf("%w: %s with mamba_d_conv %d: ggml's CUDA convolution runs kernels of 3 or 4 only (others abort)", ErrUnsupported, arch.hf, m.dConv)
	}
	if !isNull(fc.DHead) {
		var auto string
		if json.Unmarshal(fc.DHead, &auto) != nil || auto != "auto" {
			if d := positiveInt(fc.DHead); d*m.heads != m.dInner {
				return fmt.Errorf("%w: config.json: mamba_d_head %s × mamba_n_heads %d is not the Mamba-2 inner size %d", ErrMismatch, fc.DHead, m.heads, m.dInner)
			}
		}
	}
	if err := checkTimeStepLimit(fc.TimeStepLimit); err != nil {
		return fmt.Errorf("%w: %s with %v", ErrUnsupported, arch.hf, err)
	}
	h.fh1 = g
	return nil
}

// falconH1Keys writes the Mamba-2 sizes llama.cpp's falcon-h1 reads.
func falconH1Keys(w *gguf.Writer, a string, h hparams) {
	m := &h.fh1.mamba
	w.Set(a+".ssm.conv_kernel", gguf.Uint32(uint32(m.dConv)))
	w.Set(a+".ssm.inner_size", gguf.Uint32(uint32(m.dInner)))
	w.Set(a+".ssm.state_size", gguf.Uint32(uint32(m.dState)))
	w.Set(a+".ssm.time_step_rank", gguf.Uint32(uint32(m.heads)))
	w.Set(a+".ssm.group_count", gguf.Uint32(uint32(m.groups)))
	w.Set(a+".attention.key_length", gguf.Uint32(uint32(h.headDim)))
	w.Set(a+".attention.value_length", gguf.Uint32(uint32(h.headDim)))
}

// planFalconH1 maps a Falcon-H1 checkpoint's tensors, folding its
// multipliers in.
func planFalconH1(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	g := h.fh1
	m := &g.mamba
	H, F := int64(h.hidden), int64(h.ffn)
	Q, KV := int64(h.heads*h.headDim), int64(h.kvHeads*h.headDim)
	V := int64(h.vocab)
	pl := newPlanner(st, h)
	add := pl.add
	scaled := func(p tensorPlan, s float64) tensorPlan {
		if s != 1 {
			p.scale = float32(s)
		}
		return p
	}
	var emb string // the embeddings' checkpoint name, for a tied head
	layer := func(n int, suffix string, t safetensors.TensorInfo) error {
		blk := func(name string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, name), layer: n} }
		switch suffix {
		case "input_layernorm.weight":
			return add(blk("attn_norm.weight"), t, []int64{H})
		case "pre_ff_layernorm.weight":
			return add(blk(falconH1FFNNorm), t, []int64{H})
		case "self_attn.q_proj.weight":
			return add(scaled(blk("attn_q.weight"), g.attnIn), t, []int64{Q, H})
		case "self_attn.k_proj.weight":
			return add(scaled(blk("attn_k.weight"), g.attnIn*g.key), t, []int64{KV, H})
		case "self_attn.v_proj.weight":
			return add(scaled(blk("attn_v.weight"), g.attnIn), t, []int64{KV, H})
		case "self_attn.o_proj.weight":
			return add(scaled(blk("attn_output.weight"), g.attnOut), t, []int64{H, Q})
		case "feed_forward.gate_proj.weight":
			return add(scaled(blk("ffn_gate.weight"), g.mlp[0]), t, []int64{F, H})
		case "feed_forward.up_proj.weight":
			return add(blk("ffn_up.weight"), t, []int64{F, H})
		case "feed_forward.down_proj.weight":
			return add(scaled(blk("ffn_down.weight"), g.mlp[1]), t, []int64{H, F})
		case "mamba.in_proj.weight":
			p := blk("ssm_in.weight")
			name, rows := t.Name, int64(m.inProj())
			// Rows: z (inner), x (inner), B and C (groups × state each), dt (heads).
			DI, GN := m.dInner, m.groups*m.dState
			bounds := [...]int{DI, 2 * DI, 2*DI + GN, 2*DI + 2*GN, m.inProj()}
			p.derive = func(tw *tensorWriter) ([]float32, error) {
				v, err := loadFloat32s(tw.st, name, tw.fp8Block)
				if err != nil {
					return nil, err
				}
				cols, row := int(H), 0
				for seg, end := range bounds {
					s := float32(g.ssmIn * g.zxbcdt[seg])
					for ; row < end; row++ {
						for i := range cols {
							v[row*cols+i] *= s
						}
					}
				}
				return v, nil
			}
			return add(p, t, []int64{rows, H})
		case "mamba.out_proj.weight":
			return add(scaled(blk("ssm_out.weight"), g.ssmOut), t, []int64{H, int64(m.dInner)})
		case "mamba.norm.weight":
			if !g.norm {
				return fmt.Errorf("%w: tensor %q: a gated norm where config.json's mamba_rms_norm is false", ErrMismatch, t.Name)
			}
		}
		if rest, ok := strings.CutPrefix(suffix, "mamba."); ok {
			if ok, err := mamba2Tensor(m, blk, add, rest, t, H); ok || err != nil {
				return err
			}
		}
		return fmt.Errorf("%w tensor %q in a %s checkpoint: not a tensor of the model", ErrUnsupported, t.Name, arch.hf)
	}
	for _, t := range st.Tensors() {
		if fp8Aux(st, t.Name) || ignoredRE.MatchString(t.Name) {
			continue
		}
		var err error
		switch t.Name {
		case "model.embed_tokens.weight":
			emb = t.Name
			err = add(scaled(tensorPlan{ggufName: "token_embd.weight", layer: -1}, g.emb), t, []int64{V, H})
		case "model.final_layernorm.weight":
			err = add(tensorPlan{ggufName: "output_norm.weight", layer: -1}, t, []int64{H})
		case "lm_head.weight":
			if h.tied {
				continue // tied: the head is written from the embeddings below
			}
			err = add(scaled(tensorPlan{ggufName: "output.weight", layer: -1}, g.head), t, []int64{V, H})
		default:
			n, suffix, berr := blockOf(layerRE, t.Name, h.layers, arch)
			if berr != nil {
				return nil, berr
			}
			err = layer(n, suffix, t)
		}
		if err != nil {
			return nil, err
		}
	}
	if h.tied && emb != "" {
		// The embeddings carry embedding_multiplier: the head is written
		// on its own, with lm_head_multiplier.
		pl.put(scaled(tensorPlan{hfName: emb, ggufName: "output.weight", shape: []int64{V, H}, layer: -1}, g.head))
	}
	required := []string{"token_embd.weight", "output_norm.weight", "output.weight"}
	for n := range h.layers {
		pl.put(m.zeroConvBias(n)...)
		names := append([]string{"attn_norm.weight", falconH1FFNNorm, "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
			"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"}, mamba2Required...)
		for _, s := range names {
			if s == "ssm_norm.weight" && !g.norm {
				continue
			}
			required = append(required, fmt.Sprintf("blk.%d.%s", n, s))
		}
	}
	return pl.finish(required)
}
