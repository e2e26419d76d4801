package convert

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/safetensors"
)

// FP8 checkpoints (DeepSeek-V3's and Qwen3's "-FP8" releases,
// transformers' fine-grained FP8, Mistral's FP8 Ministral 3 and
// Devstral, compressed-tensors FP8 from llm-compressor) store weights as
// F8_E4M3 codes with a float scale tensor beside each: W = code × scale.
// The scale is NAME_scale_inv (transformers' "fp8" quant_method; despite
// the name it multiplies) or NAME_scale (compressed-tensors), and is
// either one value for the whole tensor, one per row ([rows, 1]), or one
// per block of config.json's quantization_config.weight_block_size
// ([⌈rows/b0⌉, ⌈cols/b1⌉]). As convert_hf_to_gguf.py does, the weights
// are dequantized to float32 and written as the output type, and the
// scales and the activations' static scales (activation_scale,
// input_scale, which only inference that keeps activations in FP8 uses)
// are left out.

// fp8Config is config.json's quantization_config, as far as FP8 needs:
// transformers' weight_block_size, or compressed-tensors' block_structure
// of a "block" weights strategy.
type fp8Config struct {
	QuantMethod     string `json:"quant_method"`
	WeightBlockSize []int  `json:"weight_block_size"`
	ConfigGroups    map[string]struct {
		Weights *struct {
			Strategy       string `json:"strategy"`
			BlockStructure []int  `json:"block_structure"`
		} `json:"weights"`
	} `json:"config_groups"`
}

// readFP8Config decodes quantization_config; absent gives the zero value.
func readFP8Config(raw json.RawMessage) (fp8Config, error) {
	var q fp8Config
	if isNull(raw) {
		return q, nil
	}
	if err := json.Unmarshal(raw, &q); err != nil {
		return q, fmt.Errorf("convert: config.json: quantization_config: %w", err)
	}
	if q.WeightBlockSize == nil {
		for name, g := range q.ConfigGroups {
			w := g.Weights
			if w == nil || w.Strategy != "block" {
				continue
			}
			if q.WeightBlockSize != nil && !slices.Equal(q.WeightBlockSize, w.BlockStructure) {
				return q, fmt.Errorf("%w: config.json: quantization_config.config_groups: groups with different block_structure (%s: %v, another %v)", ErrUnsupported, name, w.BlockStructure, q.WeightBlockSize)
			}
			q.WeightBlockSize = w.BlockStructure
		}
	}
	if b := q.WeightBlockSize; b != nil && (len(b) != 2 || b[0] <= 0 || b[1] <= 0) {
		return q, fmt.Errorf("%w: config.json: quantization_config.weight_block_size %v is not two positive sizes", ErrMismatch, b)
	}
	return q, nil
}

// fp8ScaleName returns the scale tensor of the FP8 weight name, if the
// checkpoint has one.
func fp8ScaleName(st *safetensors.Model, name string) (string, bool) {
	for _, s := range []string{name + "_scale_inv", name + "_scale"} {
		if _, ok := st.Tensor(s); ok {
			return s, true
		}
	}
	return "", false
}

// fp8Aux reports whether name is a scale of an FP8 weight in st (its
// weight scale, or the static scale of the activations it multiplies),
// which the converter folds in or leaves out.
func fp8Aux(st *safetensors.Model, name string) bool {
	var weight string
	switch {
	case strings.HasSuffix(name, ".weight_scale_inv"):
		weight = strings.TrimSuffix(name, "_scale_inv")
	case strings.HasSuffix(name, ".weight_scale"):
		weight = strings.TrimSuffix(name, "_scale")
	case strings.HasSuffix(name, ".activation_scale"):
		weight = strings.TrimSuffix(name, ".activation_scale") + ".weight"
	case strings.HasSuffix(name, ".input_scale"):
		weight = strings.TrimSuffix(name, ".input_scale") + ".weight"
	default:
		return false
	}
	t, ok := st.Tensor(weight)
	return ok && t.DType == safetensors.F8E4M3
}

// checkWeightDType refuses a weight the converter cannot read as floats:
// any dtype but F32, F16 and BF16, except FP8 with a scale that fits it.
func checkWeightDType(st *safetensors.Model, t safetensors.TensorInfo, h hparams) error {
	if t.DType.Supported() {
		return nil
	}
	if t.DType == safetensors.F8E4M3 {
		if _, ok := fp8ScaleName(st, t.Name); !ok {
			return fmt.Errorf("%w: tensor %q is FP8 (F8_E4M3) without a %s_scale_inv or %s_scale tensor to dequantize it", ErrMismatch, t.Name, t.Name, t.Name)
		}
		if len(t.Shape) == 0 {
			return fmt.Errorf("%w: FP8 tensor %q is a scalar", ErrMismatch, t.Name)
		}
		cols := int64(1)
		for _, d := range t.Shape[1:] {
			cols *= d
		}
		_, err := newFP8Scales(st, t.Name, int(t.Shape[0]), int(cols), h.fp8Block)
		return err
	}
	return fmt.Errorf("%w: tensor %q has dtype %s; the converter reads F32, F16, BF16 and FP8 (with scales) weights", ErrUnsupported, t.Name, t.DType)
}

// fp8Scales dequantizes one FP8 weight of rows × cols: each value times
// the scale of its block of blockRows × blockCols.
type fp8Scales struct {
	scale                []float32 // row-major, [⌈rows/blockRows⌉, ⌈cols/blockCols⌉]
	perRow               int       // scales per block row
	blockRows, blockCols int
	// tabs are toF16's tables for the block row tabRow.
	tabs   [][256]uint16
	tabRow int
}

// newFP8Scales reads the scale of the FP8 weight name (rows × cols, its
// trailing dimensions flattened) and works out its blocks: one scale for
// the whole tensor, one per row, or one per block of block (config.json's
// weight_block_size; without it, only blocks that divide the weight
// exactly can be inferred from the scale's shape).
func newFP8Scales(st *safetensors.Model, name string, rows, cols int, block []int) (*fp8Scales, error) {
	sname, ok := fp8ScaleName(st, name)
	if !ok {
		return nil, fmt.Errorf("%w: tensor %q is FP8 without a scale", ErrMismatch, name)
	}
	info, _ := st.Tensor(sname)
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("%w: FP8 tensor %q has no elements (%d × %d)", ErrMismatch, name, rows, cols)
	}
	f := &fp8Scales{}
	sr, sc := 1, 1
	switch len(info.Shape) {
	case 0:
	case 1:
		sr = int(info.Shape[0])
	case 2:
		sr, sc = int(info.Shape[0]), int(info.Shape[1])
	default:
		return nil, fmt.Errorf("%w: tensor %q has shape %v; FP8 scales are a scalar, per row or per 2-D block", ErrUnsupported, sname, info.Shape)
	}
	ceil := func(a, b int) int { return (a + b - 1) / b }
	switch {
	case sr*sc == 1:
		f.blockRows, f.blockCols = rows, cols
	case sr == rows && sc == 1:
		f.blockRows, f.blockCols = 1, cols
	case block != nil:
		f.blockRows, f.blockCols = block[0], block[1]
	default:
		// The block cannot be told from the scale's shape (960 rows in
		// 8 scale rows are blocks of 128, padded, not of 120).
		return nil, fmt.Errorf("%w: tensor %q has shape %v: block scales of %q (%d × %d), but config.json's quantization_config gives no weight_block_size (or block_structure)",
			ErrMismatch, sname, info.Shape, name, rows, cols)
	}
	if sr != ceil(rows, f.blockRows) || sc != ceil(cols, f.blockCols) {
		return nil, fmt.Errorf("%w: tensor %q has shape %v; %q (%d × %d) in blocks of %d × %d needs %d × %d scales",
			ErrMismatch, sname, info.Shape, name, rows, cols, f.blockRows, f.blockCols, ceil(rows, f.blockRows), ceil(cols, f.blockCols))
	}
	f.perRow = sc
	scale, err := st.Float32s(sname)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	for i, s := range scale {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("%w: tensor %q: scale %d is %v", ErrMismatch, sname, i, s)
		}
	}
	f.scale = scale
	return f, nil
}

// toF16 writes the F16 values of raw, the FP8 codes of source row r,
// scaled, into dst (2 bytes each): through one table of the 256 codes'
// F16 values per scale, built when a row of scale blocks is first met, so
// that each value costs a lookup. The values are those of apply then
// rounding to F16.
func (f *fp8Scales) toF16(dst, raw []byte, r int) {
	br := r / f.blockRows
	if f.tabs == nil || f.tabRow != br {
		if f.tabs == nil {
			f.tabs = make([][256]uint16, f.perRow)
		}
		s := f.scale[br*f.perRow:]
		for b := range f.tabs {
			for c := range 256 {
				f.tabs[b][c] = f32ToF16(math.Float32bits(safetensors.F8E4M3Value(byte(c)) * s[b]))
			}
		}
		f.tabRow = br
	}
	for b, c0 := 0, 0; c0 < len(raw); b, c0 = b+1, c0+f.blockCols {
		tab := &f.tabs[b]
		for j, code := range raw[c0:min(c0+f.blockCols, len(raw))] {
			binary.LittleEndian.PutUint16(dst[2*(c0+j):], tab[code])
		}
	}
}

// apply multiplies vals, the FP8 codes of source row r, by their scales.
func (f *fp8Scales) apply(vals []float32, r int) {
	s := f.scale[(r/f.blockRows)*f.perRow:]
	for b, c0 := 0, 0; c0 < len(vals); b, c0 = b+1, c0+f.blockCols {
		k := s[b]
		for j := range vals[c0:min(c0+f.blockCols, len(vals))] {
			vals[c0+j] *= k
		}
	}
}

// loadFloat32s reads a whole tensor as float32, dequantizing FP8 with its
// scales (block: quantization_config.weight_block_size).
func loadFloat32s(st *safetensors.Model, name string, block []int) ([]float32, error) {
	info, ok := st.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("tensor %q: not in the checkpoint", name)
	}
	if info.DType != safetensors.F8E4M3 {
		return st.Float32s(name)
	}
	if len(info.Shape) == 0 {
		return nil, fmt.Errorf("%w: FP8 tensor %q is a scalar", ErrMismatch, name)
	}
	rows, cols := int(info.Shape[0]), 1
	for _, d := range info.Shape[1:] {
		cols *= int(d)
	}
	sc, err := newFP8Scales(st, name, rows, cols, block)
	if err != nil {
		return nil, err
	}
	f, _ := st.FileOf(name)
	raw := make([]byte, rows*cols)
	if err := readAt(f, raw, info.Offset); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	out := make([]float32, len(raw))
	if err := safetensors.DecodeF8E4M3(out, raw); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	for r := range rows {
		sc.apply(out[r*cols:(r+1)*cols], r)
	}
	return out, nil
}
