package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// gpt-oss (GptOssForCausalLM, OpenAI's open-weight models) → GGUF arch
// "gpt-oss". Its checkpoint differs from the other mixtures of experts:
//
//   - each layer's experts are fused: mlp.experts.gate_up_proj holds the
//     gate and up projections of every expert with their rows
//     interleaved (gate in the even rows, up in the odd ones), and
//     mlp.experts.down_proj the down projections, each with a bias
//     (gate_up_proj_bias, down_proj_bias);
//   - the released checkpoints store those weights in MXFP4 (OCP
//     microscaling: 32 E2M1 values sharing an E8M0 exponent) as two U8
//     tensors, *_blocks [experts, rows, blocks, 16] and *_scales
//     [experts, rows, blocks], which are repacked losslessly into ggml's
//     MXFP4 type whatever the output type; dequantized (BF16) checkpoints
//     store them as [experts, in, out] and are transposed;
//   - the router (mlp.router) has a bias and picks the top-k experts by
//     logit, then softmaxes the k logits, which is llama.cpp's
//     softmax-weight gating; experts use a clamped SwiGLU (alpha 1.702,
//     limit swiglu_limit = 7, both hard-coded by llama.cpp);
//   - each attention head has a learned sink logit (self_attn.sinks →
//     attn_sinks.weight), every projection a bias, and every other layer
//     (0, 2, ...) attends within a sliding window;
//   - post_attention_layernorm is the MLP's input norm, which llama.cpp
//     names attn_post_norm (post_attention_norm).

// gptOSSMoE is gpt-oss's routing: softmax over the top-k logits, the same
// as renormalising the top-k softmax weights.
var gptOSSMoE = &moeSpec{router: "mlp.router.weight", expertFFNKey: true, ffnIsExpert: true, norm: true}

// gptOSSLimit and gptOSSAlpha are the clamped SwiGLU's constants llama.cpp
// hard-codes for the gpt-oss graph (LLM_FFN_SWIGLU_OAI_MOE).
const (
	gptOSSLimit = 7.0
	gptOSSAlpha = 1.702
)

// gptOSSDefaultRope is transformers' GptOssConfig default rope_scaling,
// which applies when config.json has no rope_scaling key.
const gptOSSDefaultRope = `{"rope_type":"yarn","factor":32.0,"beta_fast":32.0,"beta_slow":1.0,"truncate":false,"original_max_position_embeddings":4096}`

// gptOSSConfig holds config.json's gpt-oss fields.
type gptOSSConfig struct {
	SwigluLimit   *float64        `json:"swiglu_limit"`
	AttentionBias *bool           `json:"attention_bias"`
	LayerTypes    []string        `json:"layer_types"`
	SlidingWindow *int            `json:"sliding_window"`
	RopeScaling   json.RawMessage `json:"rope_scaling"`
}

// gptOSSDefaults fills the fields config.json leaves out with
// transformers' GptOssConfig defaults (gpt-oss-120b's shape), before the
// common checks.
func (c *hfConfig) gptOSSDefaults() {
	def := func(p **float64, v float64) {
		if *p == nil {
			*p = &v
		}
	}
	def(&c.RopeTheta, 150000)
	def(&c.RMSNormEps, 1e-5)
	for _, f := range []struct {
		p *int
		v int
	}{
		{&c.HeadDim, 64}, {&c.HiddenSize, 2880}, {&c.IntermediateSize, 2880}, {&c.NumHiddenLayers, 36},
		{&c.NumAttentionHeads, 64}, {&c.NumKeyValueHeads, 8}, {&c.VocabSize, 201088}, {&c.MaxPositionEmbeddings, 131072},
	} {
		if *f.p == 0 {
			*f.p = f.v
		}
	}
	if c.RopeScaling == nil && isNull(c.RopeParameters) {
		c.RopeScaling = json.RawMessage(gptOSSDefaultRope)
	}
	if c.MoE.NumLocalExperts == 0 {
		c.MoE.NumLocalExperts = 128
	}
	if c.MoE.NumExpertsPerTok == 0 {
		c.MoE.NumExpertsPerTok = 4
	}
}

// gptOSSHparams checks what llama.cpp's gpt-oss graph fixes: biases on
// every attention projection, the SwiGLU limit, and sliding-window
// attention in the even layers only.
func (c *hfConfig) gptOSSHparams(h *hparams) error {
	o := c.GptOSS
	if o.AttentionBias != nil && !*o.AttentionBias {
		return fmt.Errorf("%w: GptOssForCausalLM with attention_bias false: llama.cpp's gpt-oss graph requires the attention biases", ErrUnsupported)
	}
	if o.SwigluLimit != nil && *o.SwigluLimit != gptOSSLimit {
		return fmt.Errorf("%w: GptOssForCausalLM with swiglu_limit %v: llama.cpp's gpt-oss graph clamps at %v", ErrUnsupported, *o.SwigluLimit, gptOSSLimit)
	}
	h.slidingWindow = 128
	if o.SlidingWindow != nil {
		h.slidingWindow = *o.SlidingWindow
	}
	if h.slidingWindow <= 0 {
		return fmt.Errorf("%w: config.json: sliding_window %d is not positive", ErrMismatch, h.slidingWindow)
	}
	if o.LayerTypes != nil {
		if len(o.LayerTypes) != h.layers {
			return fmt.Errorf("%w: config.json: layer_types has %d entries for %d layers", ErrMismatch, len(o.LayerTypes), h.layers)
		}
		for i, t := range o.LayerTypes {
			want := "full_attention"
			if i%2 == 0 {
				want = "sliding_attention"
			}
			if t != want {
				return fmt.Errorf("%w: GptOssForCausalLM with layer_types %v: llama.cpp's gpt-oss graph uses a sliding window in the even layers and full attention in the odd ones", ErrUnsupported, o.LayerTypes)
			}
		}
	}
	var r struct {
		Truncate *bool `json:"truncate"`
	}
	if !isNull(c.RopeScaling) && json.Unmarshal(c.RopeScaling, &r) == nil && r.Truncate != nil && !*r.Truncate {
		slog.Info("convert: rope_scaling says truncate false; llama.cpp rounds yarn's correction range outward to whole dimensions (truncate true), which shifts the blend of a few mid frequencies slightly",
			"architecture", "GptOssForCausalLM")
	}
	return nil
}

// gptOSSNames maps gpt-oss's own per-layer tensors to GGUF names.
var gptOSSNames = map[string]string{
	"post_attention_layernorm.weight": "post_attention_norm.weight",
	"self_attn.sinks":                 "attn_sinks.weight",
	"mlp.router.weight":               "ffn_gate_inp.weight",
	"mlp.router.bias":                 "ffn_gate_inp.bias",
}

// gptOSSShape is the row-major shape config.json implies for one of
// gptOSSNames' tensors.
func gptOSSShape(suffix string, h hparams) []int64 {
	switch suffix {
	case "post_attention_layernorm.weight":
		return []int64{int64(h.hidden)}
	case "self_attn.sinks":
		return []int64{int64(h.heads)}
	case "mlp.router.weight":
		return []int64{int64(h.experts), int64(h.hidden)}
	case "mlp.router.bias":
		return []int64{int64(h.experts)}
	}
	return nil
}

// Row selections of a fused gate_up tensor.
const (
	rowsAll    = iota // every row (down_proj)
	rowsEven          // the gate projection's rows
	rowsOdd           // the up projection's rows
	rowsFirst         // the first half of the rows (a fused gate)
	rowsSecond        // the second half (the fused up projection)
)

// ossSource is a GGUF expert tensor assembled from a gpt-oss layer's
// fused experts.
type ossSource struct {
	// blocks and scales name an MXFP4 weight: U8 [experts, rows, nb, 16]
	// and [experts, rows, nb], nb = cols/32.
	blocks, scales string
	// weight names a float weight stored [experts, cols, rows] (in, out),
	// or with outIn [experts, rows, cols].
	weight string
	outIn  bool
	// bias names a float bias [experts, rows].
	bias string
	// sel picks the rows (rowsAll, rowsEven, rowsOdd, rowsFirst or
	// rowsSecond).
	sel int
	// experts, rows and cols are the source's experts, rows per expert
	// (before selection) and values per row.
	experts, rows, cols int
}

// outRows is the number of rows per expert written.
func (s *ossSource) outRows() int {
	if s.sel == rowsAll {
		return s.rows
	}
	return s.rows / 2
}

// srcRow is the source row of output row r.
func (s *ossSource) srcRow(r int) int {
	switch s.sel {
	case rowsEven:
		return 2 * r
	case rowsOdd:
		return 2*r + 1
	case rowsSecond:
		return s.rows/2 + r
	}
	return r
}

// ossExperts collects a layer's fused expert tensors by suffix
// (gate_up_proj_blocks, down_proj_bias, ...).
type ossExperts map[int]map[string]safetensors.TensorInfo

// gptOSSExpertSuffixes are the fused expert tensors a layer may have.
var gptOSSExpertSuffixes = []string{
	"mlp.experts.gate_up_proj_blocks", "mlp.experts.gate_up_proj_scales", "mlp.experts.gate_up_proj",
	"mlp.experts.gate_up_proj_bias",
	"mlp.experts.down_proj_blocks", "mlp.experts.down_proj_scales", "mlp.experts.down_proj",
	"mlp.experts.down_proj_bias",
}

// add records layer n's tensor t when suffix is a fused expert tensor.
func (oe ossExperts) add(n int, suffix string, t safetensors.TensorInfo) bool {
	if !slices.Contains(gptOSSExpertSuffixes, suffix) {
		return false
	}
	if oe[n] == nil {
		oe[n] = map[string]safetensors.TensorInfo{}
	}
	oe[n][suffix] = t
	return true
}

// plans checks each layer's fused experts against config.json and returns
// the GGUF expert tensors: ffn_{gate,up,down}_exps weights and biases.
func (oe ossExperts) plans(h hparams) ([]tensorPlan, error) {
	E, H, I := int64(h.experts), int64(h.hidden), int64(h.expertFFN)
	var out []tensorPlan
	for n := range h.layers {
		ts := oe[n]
		get := func(suffix string, dtype safetensors.DType, shape ...int64) (string, error) {
			t, ok := ts[suffix]
			if !ok {
				return "", nil
			}
			if !slices.Equal(t.Shape, shape) {
				return "", fmt.Errorf("%w: tensor %q has shape %v, config.json implies %v", ErrMismatch, t.Name, t.Shape, shape)
			}
			if dtype != "" && t.DType != dtype {
				return "", fmt.Errorf("%w: tensor %q has dtype %s; MXFP4 blocks and scales are U8", ErrMismatch, t.Name, t.DType)
			}
			if dtype == "" && !t.DType.Supported() {
				return "", fmt.Errorf("tensor %q: dtype %s: %w", t.Name, t.DType, ErrUnsupported)
			}
			return t.Name, nil
		}
		for _, proj := range []struct {
			name       string
			rows, cols int64
		}{{"gate_up_proj", 2 * I, H}, {"down_proj", H, I}} {
			p := "mlp.experts." + proj.name
			missing := func(what string) error {
				return fmt.Errorf("%w: the checkpoint has no %s for layer %d's %s", ErrMismatch, what, n, p)
			}
			src := ossSource{experts: int(E), rows: int(proj.rows), cols: int(proj.cols)}
			var err error
			_, mx := ts[p+"_blocks"]
			_, fl := ts[p]
			switch {
			case mx && fl:
				return nil, fmt.Errorf("%w: layer %d has both an MXFP4 and a float %s", ErrMismatch, n, p)
			case mx:
				if proj.cols%32 != 0 {
					return nil, fmt.Errorf("%w: %s rows of %d values are not whole MXFP4 blocks of 32", ErrMismatch, p, proj.cols)
				}
				nb := proj.cols / 32
				if src.blocks, err = get(p+"_blocks", safetensors.U8, E, proj.rows, nb, 16); err != nil {
					return nil, err
				}
				if src.scales, err = get(p+"_scales", safetensors.U8, E, proj.rows, nb); err != nil {
					return nil, err
				}
				if src.scales == "" {
					return nil, missing("MXFP4 scales (_scales)")
				}
			case fl:
				if src.weight, err = get(p, "", E, proj.cols, proj.rows); err != nil {
					return nil, err
				}
			default:
				return nil, missing("weight (_blocks and _scales, or a float tensor)")
			}
			if _, ok := ts[p+"_scales"]; ok && !mx {
				return nil, missing("MXFP4 blocks (_blocks) beside its _scales")
			}
			bias, err := get(p+"_bias", "", E, proj.rows)
			if err != nil {
				return nil, err
			}
			if bias == "" {
				return nil, missing("bias (_bias)")
			}
			gg := []struct {
				name string
				sel  int
			}{{"ffn_down_exps", rowsAll}}
			if proj.name == "gate_up_proj" {
				gg = []struct {
					name string
					sel  int
				}{{"ffn_gate_exps", rowsEven}, {"ffn_up_exps", rowsOdd}}
			}
			for _, g := range gg {
				w := src
				w.sel = g.sel
				rows := int64(w.outRows())
				out = append(out,
					tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s.weight", n, g.name), shape: []int64{E, rows, proj.cols}, layer: n, oss: &w},
					tensorPlan{ggufName: fmt.Sprintf("blk.%d.%s.bias", n, g.name), shape: []int64{E, rows}, layer: n,
						oss: &ossSource{bias: bias, sel: g.sel, experts: int(E), rows: int(proj.rows)}})
			}
		}
	}
	return out, nil
}

// mxfp4 reports whether the tensor is written as the checkpoint's MXFP4
// blocks.
func (s *ossSource) mxfp4() bool { return s != nil && s.blocks != "" }

// writeOSS writes a gpt-oss expert tensor, one expert at a time.
func (tw *tensorWriter) writeOSS(ctx context.Context, w io.Writer, p tensorPlan, typ gguf.Type) error {
	s := p.oss
	rows := s.outRows()
	switch {
	case s.blocks != "":
		nb := s.cols / 32
		bi, _ := tw.st.Tensor(s.blocks)
		si, _ := tw.st.Tensor(s.scales)
		bf, _ := tw.st.FileOf(s.blocks)
		sf, _ := tw.st.FileOf(s.scales)
		blocks := make([]byte, s.rows*nb*16)
		scales := make([]byte, s.rows*nb)
		out := make([]byte, rows*nb*17)
		for e := range s.experts {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := readAt(bf, blocks, bi.Offset+int64(e)*int64(len(blocks))); err != nil {
				return fmt.Errorf("tensor %q: %w", s.blocks, err)
			}
			if err := readAt(sf, scales, si.Offset+int64(e)*int64(len(scales))); err != nil {
				return fmt.Errorf("tensor %q: %w", s.scales, err)
			}
			for r := range rows {
				sr := s.srcRow(r)
				for b := range nb {
					repackMXFP4(out[(r*nb+b)*17:(r*nb+b+1)*17], scales[sr*nb+b], blocks[(sr*nb+b)*16:(sr*nb+b+1)*16])
				}
			}
			if err := tw.emit(w, out); err != nil {
				return err
			}
		}
		return nil
	case s.weight != "":
		// [experts, cols (in), rows (out)]: one expert's matrix at a time,
		// transposed to [rows, cols] with the selected rows (or, with
		// outIn, the selected rows as they are).
		vals, dst := make([]float32, s.cols*s.rows), make([]float32, rows*s.cols)
		for e := range s.experts {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := tw.readFloats(s.weight, e, vals); err != nil {
				return err
			}
			for r := range rows {
				sr := s.srcRow(r)
				if s.outIn {
					copy(dst[r*s.cols:(r+1)*s.cols], vals[sr*s.cols:(sr+1)*s.cols])
					continue
				}
				for c := range s.cols {
					dst[r*s.cols+c] = vals[c*s.rows+sr]
				}
			}
			if err := tw.encode(w, dst, typ); err != nil {
				return fmt.Errorf("tensor %q: %w", s.weight, err)
			}
		}
		return nil
	default:
		vals, dst := make([]float32, s.rows), make([]float32, rows)
		for e := range s.experts {
			if err := tw.readFloats(s.bias, e, vals); err != nil {
				return err
			}
			for r := range rows {
				dst[r] = vals[s.srcRow(r)]
			}
			if err := tw.encode(w, dst, typ); err != nil {
				return fmt.Errorf("tensor %q: %w", s.bias, err)
			}
		}
		return nil
	}
}

// readFloats reads the e-th of the equal slices along the first
// dimension of a float tensor into dst as float32.
func (tw *tensorWriter) readFloats(name string, e int, dst []float32) error {
	info, _ := tw.st.Tensor(name)
	f, ok := tw.st.FileOf(name)
	if !ok {
		return fmt.Errorf("tensor %q: not in the checkpoint", name)
	}
	esz := int(info.DType.Size())
	raw := make([]byte, len(dst)*esz)
	if err := readAt(f, raw, info.Offset+int64(e)*int64(len(raw))); err != nil {
		return fmt.Errorf("tensor %q: %w", name, err)
	}
	if err := safetensors.DecodeFloat32s(dst, info.DType, raw); err != nil {
		return fmt.Errorf("tensor %q: %w", name, err)
	}
	return nil
}

// repackMXFP4 writes one ggml MXFP4 block (the E8M0 exponent, then 16
// bytes whose byte j holds value j in its low nibble and value j+16 in
// its high one) from the checkpoint's exponent and 16 bytes, whose byte j
// holds value 2j in its low nibble and value 2j+1 in its high one.
func repackMXFP4(dst []byte, scale byte, src []byte) {
	var v [32]byte
	for j, b := range src[:16] {
		v[2*j], v[2*j+1] = b&0x0f, b>>4
	}
	dst[0] = scale
	for j := range 16 {
		dst[1+j] = v[j] | v[j+16]<<4
	}
}
