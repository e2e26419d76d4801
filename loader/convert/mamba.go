package convert

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"regexp"

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
}

// mambaDims are a Mamba-1 mixer's sizes: the convolution's kernel, the
// inner width, the state size and dt's rank; whether conv1d has a bias;
// and whether dt, B and C are RMS-normalised (FalconMamba).
type mambaDims struct {
	dConv, dInner, dState, dtRank int
	convBias, dtBCRMS             bool
}

// mambaHparams reads a Mamba-1 config.json with MambaConfig's defaults:
// state size 16, expand 2, kernel 4, dt rank "auto" (hidden/16 rounded
// up), epsilon 1e-5, the conv1d bias, a tied head.
func (c *hfConfig) mambaHparams(arch archSpec) (hparams, error) {
	if c.mambaErr != nil {
		return hparams{}, fmt.Errorf("convert: config.json: %w", c.mambaErr)
	}
	m := c.Mamba
	h := hparams{hidden: c.HiddenSize, layers: c.NumHiddenLayers, vocab: c.VocabSize, ctxLen: 1 << 20, rmsEps: 1e-5,
		tied: c.TieWordEmbeddings == nil || *c.TieWordEmbeddings}
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

// mambaKeys writes the mixers' sizes and the norms' epsilon.
func mambaKeys(w *gguf.Writer, a string, h hparams) {
	d := h.mamba
	w.Set(a+".attention.layer_norm_rms_epsilon", gguf.Float32(float32(h.rmsEps)))
	w.Set(a+".ssm.conv_kernel", gguf.Uint32(uint32(d.dConv)))
	w.Set(a+".ssm.inner_size", gguf.Uint32(uint32(d.dInner)))
	w.Set(a+".ssm.state_size", gguf.Uint32(uint32(d.dState)))
	w.Set(a+".ssm.time_step_rank", gguf.Uint32(uint32(d.dtRank)))
	if d.dtBCRMS {
		w.Set(a+".ssm.dt_b_c_rms", gguf.Bool(true))
	}
}

var mambaLayerRE = regexp.MustCompile(`^backbone\.layers\.(\d+)\.(.+)$`)

// planMamba maps a Mamba-1 checkpoint's tensors.
func planMamba(st *safetensors.Model, arch archSpec, h hparams) ([]tensorPlan, error) {
	d := h.mamba
	H, V, DI, S, R, K := int64(h.hidden), int64(h.vocab), int64(d.dInner), int64(d.dState), int64(d.dtRank), int64(d.dConv)
	pl := newPlanner(st, h)
	for _, t := range st.Tensors() {
		switch t.Name {
		case "backbone.embeddings.weight", "backbone.embedding.weight":
			if err := pl.add(tensorPlan{ggufName: "token_embd.weight", layer: -1}, t, []int64{V, H}); err != nil {
				return nil, err
			}
			continue
		case "backbone.norm_f.weight":
			if err := pl.add(tensorPlan{ggufName: "output_norm.weight", layer: -1}, t, []int64{H}); err != nil {
				return nil, err
			}
			continue
		case "lm_head.weight":
			if h.tied {
				slog.Info("convert: lm_head.weight left out: the config ties the head to the embeddings (tie_word_embeddings, true by default)", "architecture", arch.hf)
				continue
			}
			if err := pl.add(tensorPlan{ggufName: "output.weight", layer: -1}, t, []int64{V, H}); err != nil {
				return nil, err
			}
			continue
		}
		n, suffix, err := blockOf(mambaLayerRE, t.Name, h.layers, arch)
		if err != nil {
			return nil, err
		}
		blk := tensorPlan{ggufName: fmt.Sprintf("blk.%d.", n), layer: n}
		var want []int64
		switch suffix {
		case "norm.weight":
			blk.ggufName += "attn_norm.weight"
			want = []int64{H}
		case "mixer.in_proj.weight":
			blk.ggufName += "ssm_in.weight"
			want = []int64{2 * DI, H}
		case "mixer.conv1d.weight":
			blk.ggufName += "ssm_conv1d.weight"
			blk.shape, want = []int64{DI, K}, []int64{DI, 1, K}
		case "mixer.conv1d.bias":
			if !d.convBias {
				return nil, fmt.Errorf("%w: tensor %q: a conv1d bias where config.json says use_conv_bias false", ErrMismatch, t.Name)
			}
			blk.ggufName += "ssm_conv1d.bias"
			want = []int64{DI}
		case "mixer.x_proj.weight":
			blk.ggufName += "ssm_x.weight"
			want = []int64{R + 2*S, DI}
		case "mixer.dt_proj.weight":
			blk.ggufName += "ssm_dt.weight"
			want = []int64{DI, R}
		case "mixer.dt_proj.bias":
			blk.ggufName += "ssm_dt.bias"
			want = []int64{DI}
		case "mixer.A_log":
			blk.ggufName += "ssm_a"
			name := t.Name
			blk.derive = func(tw *tensorWriter) ([]float32, error) {
				v, err := loadFloat32s(tw.st, name, tw.fp8Block)
				for i := range v {
					v[i] = float32(-math.Exp(float64(v[i])))
				}
				return v, err
			}
			blk.shape, want = []int64{DI, S}, []int64{DI, S}
		case "mixer.D":
			blk.ggufName += "ssm_d"
			want = []int64{DI}
		case "mixer.out_proj.weight":
			blk.ggufName += "ssm_out.weight"
			want = []int64{H, DI}
		default:
			return nil, fmt.Errorf("%w tensor %q in a %s checkpoint", ErrUnsupported, t.Name, arch.hf)
		}
		if err := pl.add(blk, t, want); err != nil {
			return nil, err
		}
	}
	required := []string{"token_embd.weight", "output_norm.weight"}
	if !h.tied {
		required = append(required, "output.weight")
	}
	for n := range h.layers {
		if !d.convBias {
			pl.put(tensorPlan{ggufName: fmt.Sprintf("blk.%d.ssm_conv1d.bias", n), shape: []int64{DI}, gen: make([]float32, DI), layer: n})
		}
		for _, s := range []string{"attn_norm.weight", "ssm_in.weight", "ssm_conv1d.weight", "ssm_conv1d.bias", "ssm_x.weight", "ssm_dt.weight",
			"ssm_dt.bias", "ssm_a", "ssm_d", "ssm_out.weight"} {
			required = append(required, fmt.Sprintf("blk.%d.%s", n, s))
		}
	}
	return pl.finish(required)
}
