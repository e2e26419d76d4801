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

// MambaForCausalLM (state-spaces/mamba-130m-hf to mamba-2.8b-hf) and
// FalconMambaForCausalLM (falcon-mamba-7b) → GGUF arch "mamba": a stack of
// Mamba-1 blocks, each an RMS norm and a selective state-space mixer
// added to the block's input, a final RMS norm and the head (tied to the
// embeddings by default; llama.cpp reads the embeddings when there is no
// output tensor).
//
// Each mixer's in_proj (x, then the gate z), the causal depthwise conv1d
// ([inner, 1, kernel] written [inner, kernel]) and its bias (zeros when
// use_conv_bias is false: llama.cpp always adds one), x_proj (dt, B, C),
// dt_proj with its bias, A written as -exp(A_log), D and out_proj are
// written under llama.cpp's ssm_* names. FalconMamba normalises dt, B and
// C (RMS, no weights) before using them: ssm.dt_b_c_rms. llama.cpp takes
// that norm's epsilon from the blocks' (layer_norm_epsilon, 1e-5) where
// transformers uses mixer_rms_eps (1e-6).
//
// Mamba2ForCausalLM (Mamba-Codestral 7B) → GGUF arch "mamba2": the same
// stack of Mamba-2 mixers (mamba2Tensor, as in Granite 4.0's Mamba-2
// layers: in_proj to z, x·B·C and dt; the convolution over x·B·C; per-head
// dt_bias, A and D; the gated RMS norm; out_proj). The gated norm is per
// group (n_groups, 8 in Mamba-Codestral), as mamba_ssm, which trained the
// models, and llama.cpp compute it; transformers' slow path normalises the
// whole inner size instead, which agrees for one group only. rms_norm
// false, a time_step_limit that would clamp dt (llama.cpp does not) and
// in/out projection biases are refused.
//
// llama.cpp runs an inner size of twice the hidden size only (expand 2,
// every released Mamba), no in_proj or out_proj biases and SiLU. As
// convert_hf_to_gguf.py writes it, context_length is 2^20: a recurrent
// model has no positions and no cache that grows with the context.

// mambaConfig holds MambaConfig's and FalconMambaConfig's names.
type mambaConfig struct {
	StateSize    *int            `json:"state_size"`
	Expand       *float64        `json:"expand"`
	ConvKernel   *int            `json:"conv_kernel"`
	UseBias      *bool           `json:"use_bias"`
	UseConvBias  *bool           `json:"use_conv_bias"`
	TimeStepRank json.RawMessage `json:"time_step_rank"`
	// Mamba2Config's.
	NumHeads      *int            `json:"num_heads"`
	NGroups       *int            `json:"n_groups"`
	RMSNorm       *bool           `json:"rms_norm"`
	TimeStepLimit json.RawMessage `json:"time_step_limit"`
}

// mambaDims are a Mamba-1 mixer's sizes: the convolution's kernel, the
// inner width, the state size and dt's rank; whether conv1d has a bias;
// and whether dt, B and C are RMS-normalised (FalconMamba).
type mambaDims struct {
	dConv, dInner, dState, dtRank int
	convBias, dtBCRMS             bool
	// normWeights: the dt, B and C norms have weights (Jamba's
	// dt_layernorm, b_layernorm, c_layernorm).
	normWeights bool
}

// mambaHparams reads a Mamba-1 config.json with MambaConfig's defaults:
// state size 16, expand 2, kernel 4, dt rank "auto" (hidden/16 rounded
// up), epsilon 1e-5, the conv1d bias, a tied head.
func (c *hfConfig) mambaHparams(arch archSpec) (hparams, error) {
	h, err := c.ssmHparams(true)
	if err != nil {
		return h, err
	}
	m := c.Mamba
	d := &mambaDims{dConv: 4, dState: 16, dInner: 2 * h.hidden, dtRank: (h.hidden + 15) / 16,
		convBias: m.UseConvBias == nil || *m.UseConvBias, dtBCRMS: arch.hf == "FalconMambaForCausalLM"}
	if m.ConvKernel != nil {
		d.dConv = *m.ConvKernel
	}
	if m.StateSize != nil {
		d.dState = *m.StateSize
	}
	switch {
	case c.IntermediateSize > 0:
		d.dInner = c.IntermediateSize
	case m.Expand != nil:
		d.dInner = int(*m.Expand * float64(h.hidden))
	}
	if !isNull(m.TimeStepRank) {
		var auto string
		if json.Unmarshal(m.TimeStepRank, &auto) == nil {
			if auto != "auto" {
				return h, fmt.Errorf("%w: config.json: time_step_rank %q is neither \"auto\" nor a number", ErrMismatch, auto)
			}
		} else if d.dtRank = positiveInt(m.TimeStepRank); d.dtRank == 0 {
			return h, fmt.Errorf("%w: config.json: time_step_rank %s is not a positive integer", ErrMismatch, m.TimeStepRank)
		}
	}
	switch {
	case c.HiddenAct != "" && c.HiddenAct != "silu" && c.HiddenAct != "swish":
		return h, fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's mamba runs SiLU", ErrUnsupported, arch.hf, c.HiddenAct)
	case d.dInner != 2*h.hidden:
		return h, fmt.Errorf("%w: %s with an inner size of %d for hidden_size %d: llama.cpp's mamba runs expand 2 only", ErrUnsupported, arch.hf, d.dInner, h.hidden)
	case m.UseBias != nil && *m.UseBias:
		return h, fmt.Errorf("%w: %s with use_bias true: llama.cpp's mamba has no in_proj or out_proj bias", ErrUnsupported, arch.hf)
	case d.dConv != 3 && d.dConv != 4:
		return h, fmt.Errorf("%w: %s with conv_kernel %d: ggml's CUDA convolution runs kernels of 3 or 4 only (others abort)", ErrUnsupported, arch.hf, d.dConv)
	case d.dState <= 0:
		return h, fmt.Errorf("%w: config.json: state_size %d is not positive", ErrMismatch, d.dState)
	}
	h.mamba = d
	return h, nil
}

// ssmHparams reads the sizes a Mamba-1 and a Mamba-2 config share:
// hidden_size, num_hidden_layers, vocab_size, layer_norm_epsilon (1e-5)
// and the tied head (tiedDefault when tie_word_embeddings is absent).
func (c *hfConfig) ssmHparams(tiedDefault bool) (hparams, error) {
	if c.mambaErr != nil {
		return hparams{}, fmt.Errorf("convert: config.json: %w", c.mambaErr)
	}
	h := hparams{hidden: c.HiddenSize, layers: c.NumHiddenLayers, vocab: c.VocabSize, ctxLen: 1 << 20, rmsEps: 1e-5, tied: tiedDefault}
	if c.TieWordEmbeddings != nil {
		h.tied = *c.TieWordEmbeddings
	}
	if c.LayerNormEpsilon != nil {
		h.rmsEps = *c.LayerNormEpsilon
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden_size", h.hidden}, {"num_hidden_layers", h.layers}, {"vocab_size", h.vocab}} {
		if f.v <= 0 {
			return h, fmt.Errorf("%w: config.json: %s is missing or not positive", ErrMismatch, f.name)
		}
	}
	return h, nil
}

// mamba2Hparams reads a Mamba2ForCausalLM config.json with Mamba2Config's
// defaults: 128 heads, 8 groups, state size 128, expand 2, kernel 4, the
// conv1d bias, the gated norm, an untied head.
func (c *hfConfig) mamba2Hparams(arch archSpec) (hparams, error) {
	h, err := c.ssmHparams(false)
	if err != nil {
		return h, err
	}
	m := c.Mamba
	intOr := func(p *int, def int) int {
		if p == nil {
			return def
		}
		return *p
	}
	g := &graniteHybrid{mamba: true, heads: intOr(m.NumHeads, 128), groups: intOr(m.NGroups, 8), dState: intOr(m.StateSize, 128),
		dConv: intOr(m.ConvKernel, 4), dInner: 2 * h.hidden, convBias: m.UseConvBias == nil || *m.UseConvBias}
	switch {
	case c.IntermediateSize > 0:
		g.dInner = c.IntermediateSize
	case m.Expand != nil:
		g.dInner = int(*m.Expand * float64(h.hidden))
	}
	switch {
	case c.HiddenAct != "" && c.HiddenAct != "silu" && c.HiddenAct != "swish":
		return h, fmt.Errorf("%w: %s with hidden_act %q: llama.cpp's mamba2 runs SiLU", ErrUnsupported, arch.hf, c.HiddenAct)
	case g.dInner != 2*h.hidden:
		return h, fmt.Errorf("%w: %s with an inner size of %d for hidden_size %d: llama.cpp's mamba2 runs expand 2 only", ErrUnsupported, arch.hf, g.dInner, h.hidden)
	case m.UseBias != nil && *m.UseBias:
		return h, fmt.Errorf("%w: %s with use_bias true: llama.cpp's mamba2 has no in_proj or out_proj bias", ErrUnsupported, arch.hf)
	case m.RMSNorm != nil && !*m.RMSNorm:
		return h, fmt.Errorf("%w: %s with rms_norm false: llama.cpp's mamba2 always applies the gated norm", ErrUnsupported, arch.hf)
	case g.heads <= 0 || g.dInner%g.heads != 0:
		return h, fmt.Errorf("%w: config.json: num_heads %d does not divide the inner size %d", ErrMismatch, g.heads, g.dInner)
	case c.HeadDim > 0 && c.HeadDim*g.heads != g.dInner:
		return h, fmt.Errorf("%w: config.json: head_dim %d × num_heads %d is not the inner size %d", ErrMismatch, c.HeadDim, g.heads, g.dInner)
	case g.groups <= 0 || g.heads%g.groups != 0:
		return h, fmt.Errorf("%w: config.json: n_groups %d does not divide num_heads %d", ErrMismatch, g.groups, g.heads)
	case g.dState <= 0:
		return h, fmt.Errorf("%w: config.json: state_size %d is not positive", ErrMismatch, g.dState)
	case g.dConv != 3 && g.dConv != 4:
		return h, fmt.Errorf("%w: %s with conv_kernel %d: ggml's CUDA convolution runs kernels of 3 or 4 only (others abort)", ErrUnsupported, arch.hf, g.dConv)
	}
	if err := checkTimeStepLimit(m.TimeStepLimit); err != nil {
		return h, fmt.Errorf("%w: %s with %v", ErrUnsupported, arch.hf, err)
	}
	h.mamba2 = g
	return h, nil
}

// mambaKeys writes the mixers' sizes and the norms' epsilon.
func mambaKeys(w *gguf.Writer, a string, h hparams) {
	w.Set(a+".attention.layer_norm_rms_epsilon", gguf.Float32(float32(h.rmsEps)))
	if g := h.mamba2; g != nil {
		w.Set(a+".ssm.conv_kernel", gguf.Uint32(uint32(g.dConv)))
		w.Set(a+".ssm.inner_size", gguf.Uint32(uint32(g.dInner)))
		w.Set(a+".ssm.state_size", gguf.Uint32(uint32(g.dState)))
		w.Set(a+".ssm.time_step_rank", gguf.Uint32(uint32(g.heads)))
		w.Set(a+".ssm.group_count", gguf.Uint32(uint32(g.groups)))
		return
	}
	d := h.mamba
	w.Set(a+".ssm.conv_kernel", gguf.Uint32(uint32(d.dConv)))
	w.Set(a+".ssm.inner_size", gguf.Uint32(uint32(d.dInner)))
	w.Set(a+".ssm.state_size", gguf.Uint32(uint32(d.dState)))
	w.Set(a+".ssm.time_step_rank", gguf.Uint32(uint32(d.dtRank)))
	if d.dtBCRMS {
		w.Set(a+".ssm.dt_b_c_rms", gguf.Bool(true))
	}
}

var mambaLayerRE = regexp.MustCompile(`^backbone\.layers\.(\d+)\.(.+)$`)

// planMamba maps a Mamba-1 or Mamba-2 checkpoint's tensors.
func planMamba(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	H, V := int64(h.hidden), int64(h.vocab)
	pl := newPlanner(st, h)
	for _, t := range st.Tensors() {
		if ok, err := pl.ssmOuter(t, arch, V, H); ok || err != nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		n, suffix, err := blockOf(mambaLayerRE, t.Name, h.layers, arch)
		if err != nil {
			return nil, err
		}
		blk := func(g string) tensorPlan { return tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s", n, g), layer: n} }
		ok := suffix == "norm.weight"
		if ok {
			err = pl.add(blk("attn_norm.weight"), t, []int64{H})
		} else if rest, mixer := strings.CutPrefix(suffix, "mixer."); mixer && h.mamba2 != nil {
			ok, err = mamba2Tensor(h.mamba2, blk, pl.add, rest, t, H)
		} else if mixer {
			ok, err = mamba1Tensor(h.mamba, blk, pl.add, rest, t, H)
		}
		if !ok && err == nil {
			err = fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
		}
		if err != nil {
			return nil, err
		}
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n := range h.layers {
		mixer := mamba2Required
		if h.mamba2 != nil {
			pl.put(h.mamba2.zeroConvBias(n)...)
		} else {
			pl.put(h.mamba.zeroConvBias(n)...)
			mixer = h.mamba.required()
		}
		required = append(required, fmt.Sprintf("blk.%d.attn_norm.weight", n))
		for _, r := range mixer {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, r))
		}
	}
	return pl.finish(required)
}

// required are the tensors of a Mamba-1 mixer, after "blk.N.".
func (d *mambaDims) required() []string {
	r := []string{"ssm_in.weight", "ssm_conv1d.weight", "ssm_conv1d.bias", "ssm_x.weight", "ssm_dt.weight", "ssm_dt.bias", "ssm_a", "ssm_d", "ssm_out.weight"}
	if d.normWeights {
		r = append(r, "ssm_dt_norm.weight", "ssm_b_norm.weight", "ssm_c_norm.weight")
	}
	return r
}

// zeroConvBias plans layer n's conv1d bias as zeros when the mixers have
// none (llama.cpp adds one whatever).
func (d *mambaDims) zeroConvBias(n int) []tensorPlan {
	if d.convBias {
		return nil
	}
	return []tensorPlan{{ggufName: fmt.Sprintf("blk.%d.ssm_conv1d.bias", n), shape: []int64{int64(d.dInner)}, gen: make([]float32, d.dInner), layer: n}}
}

// mamba1Tensor plans the Mamba-1 mixer tensor suffix (in_proj.weight,
// conv1d.weight, ..., after the mixer's prefix) of the layer blk names,
// reporting whether suffix is one: conv1d [inner, 1, kernel] written
// [inner, kernel], A written -exp(A_log); with d.normWeights, Jamba's
// dt, B and C norms.
func mamba1Tensor(d *mambaDims, blk func(string) tensorPlan, add addFunc, suffix string, t safetensors.TensorInfo, H int64) (bool, error) {
	DI, S, R, K := int64(d.dInner), int64(d.dState), int64(d.dtRank), int64(d.dConv)
	var p tensorPlan
	var want []int64
	switch suffix {
	case "in_proj.weight":
		p, want = blk("ssm_in.weight"), []int64{2 * DI, H}
	case "conv1d.weight":
		p, want = blk("ssm_conv1d.weight"), []int64{DI, 1, K}
		p.shape = []int64{DI, K}
	case "conv1d.bias":
		if !d.convBias {
			return true, fmt.Errorf("%w: tensor %q: a conv1d bias where config.json says there is none", ErrMismatch, t.Name)
		}
		p, want = blk("ssm_conv1d.bias"), []int64{DI}
	case "x_proj.weight":
		p, want = blk("ssm_x.weight"), []int64{R + 2*S, DI}
	case "dt_proj.weight":
		p, want = blk("ssm_dt.weight"), []int64{DI, R}
	case "dt_proj.bias":
		p, want = blk("ssm_dt.bias"), []int64{DI}
	case "A_log":
		p, want = blk("ssm_a"), []int64{DI, S}
		name := t.Name
		p.shape, p.derive = want, func(tw *tensorWriter) ([]float32, error) {
			v, err := loadFloat32s(tw.st, name, tw.fp8Block)
			for i := range v {
				v[i] = float32(-math.Exp(float64(v[i])))
			}
			return v, err
		}
	case "D":
		p, want = blk("ssm_d"), []int64{DI}
	case "out_proj.weight":
		p, want = blk("ssm_out.weight"), []int64{H, DI}
	case "dt_layernorm.weight", "b_layernorm.weight", "c_layernorm.weight":
		if !d.normWeights {
			return false, nil
		}
		switch suffix[0] {
		case 'd':
			p, want = blk("ssm_dt_norm.weight"), []int64{R}
		case 'b':
			p, want = blk("ssm_b_norm.weight"), []int64{S}
		default:
			p, want = blk("ssm_c_norm.weight"), []int64{S}
		}
	default:
		return false, nil
	}
	return true, add(p, t, want)
}

// ssmOuter plans t when it is one of a Mamba checkpoint's tensors outside
// the blocks (the embeddings, the final norm, the head), reporting
// whether it is.
func (pl *planner) ssmOuter(t safetensors.TensorInfo, arch archSpec, V, H int64) (bool, error) {
	switch t.Name {
	case "backbone.embeddings.weight", "backbone.embedding.weight":
		return true, pl.add(tensorPlan{ggufName: "token_embd.weight", layer: -1}, t, []int64{V, H})
	case "backbone.norm_f.weight":
		return true, pl.add(tensorPlan{ggufName: "output_norm.weight", layer: -1}, t, []int64{H})
	case "lm_head.weight":
		if pl.h.tied {
			slog.Info("convert: lm_head.weight left out: the config ties the head to the embeddings", "architecture", arch.hf)
			return true, nil
		}
		return true, pl.add(tensorPlan{ggufName: "output.weight", layer: -1}, t, []int64{V, H})
	}
	return false, nil
}
