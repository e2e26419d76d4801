package convert_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
)

// e4m3 is the value of each F8_E4M3 byte, written from the format's
// definition (OCP FP8 E4M3 "fn": bias 7, no infinities, NaN at S.1111.111)
// as a check on the converter's decoder.
func e4m3(b byte) float64 {
	sign := 1.0
	if b&0x80 != 0 {
		sign = -1
	}
	exp, man := int(b>>3&0xf), float64(b&7)
	if exp == 15 && man == 7 {
		return math.NaN()
	}
	if exp == 0 {
		return sign * man / 8 / 64
	}
	return sign * (1 + man/8) * math.Pow(2, float64(exp-7))
}

// toE4M3 returns the F8_E4M3 byte nearest x.
func toE4M3(x float64) byte {
	best, bd := byte(0), math.Inf(1)
	for b := range 256 {
		v := e4m3(byte(b))
		if d := math.Abs(v - x); !math.IsNaN(v) && d < bd {
			best, bd = byte(b), d
		}
	}
	return best
}

// fp8Scheme is one way of storing FP8 weights: the scale's name suffix,
// its blocks (0: the whole dimension; rows 1: per row) and the
// activation scale's suffix, if any.
type fp8Scheme struct {
	quant                string // quantization_config.quant_method
	scale                string
	blockRows, blockCols int
	configBlock          bool   // the block in config.json
	structure            bool   // as compressed-tensors' block_structure, not weight_block_size
	rowVector            bool   // per-row scales as a 1-D tensor
	activation           string // "" or the activation scale suffix
}

var fp8Schemes = map[string]fp8Scheme{
	// transformers' fine-grained FP8 (DeepSeek-V3, Qwen3-FP8), with
	// blocks that do not divide 64 or 128.
	"block": {quant: "fp8", scale: "_scale_inv", blockRows: 48, blockCols: 48, configBlock: true},
	// Mistral's FP8: one scale per tensor and static activation scales.
	"tensor": {quant: "fp8", scale: "_scale_inv", activation: ".activation_scale"},
	// compressed-tensors (llm-compressor's FP8): one scale per row.
	"channel": {quant: "compressed-tensors", scale: "_scale", blockRows: 1, activation: ".input_scale"},
	// One scale per row as a 1-D tensor.
	"row vector": {quant: "fp8", scale: "_scale_inv", blockRows: 1, rowVector: true},
	// compressed-tensors' block strategy, its block in config_groups.
	"block structure": {quant: "compressed-tensors", scale: "_scale", blockRows: 32, blockCols: 32, configBlock: true, structure: true},
}

// fp8Quantize returns ts with the 2-D weights whose names contain
// "_proj.weight" quantized to FP8 under scheme s, with their scales
// (fp8s), and the same tensors with those weights dequantized (code ×
// scale in float64, rounded to F32) from the codes written (deqs).
func fp8Quantize(t *testing.T, ts []stTensor, s fp8Scheme) (fp8s, deqs []stTensor) {
	t.Helper()
	for _, st := range ts {
		if !strings.Contains(st.name, "_proj.weight") || len(st.shape) != 2 || st.dtype != "F32" {
			fp8s, deqs = append(fp8s, st), append(deqs, st)
			continue
		}
		var buf bytes.Buffer
		if err := st.data(&buf); err != nil {
			t.Fatal(err)
		}
		rows, cols := int(st.shape[0]), int(st.shape[1])
		w := make([]float64, rows*cols)
		for i := range w {
			w[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(buf.Bytes()[4*i:])))
		}
		br, bc := s.blockRows, s.blockCols
		if br == 0 {
			br = rows
		}
		if bc == 0 {
			bc = cols
		}
		sr, sc := (rows+br-1)/br, (cols+bc-1)/bc
		scales := make([]float32, sr*sc)
		for i := range w {
			b := (i/cols/br)*sc + (i%cols)/bc
			scales[b] = max(scales[b], float32(math.Abs(w[i])/448))
		}
		codes := make([]byte, len(w))
		deq := make([]float32, len(w))
		for i := range w {
			sv := float64(scales[(i/cols/br)*sc+(i%cols)/bc])
			codes[i] = toE4M3(w[i] / sv)
			deq[i] = float32(e4m3(codes[i]) * sv)
		}
		sshape := []int64{}
		switch {
		case sr*sc == 1:
		case sc == 1 && br == 1 && s.rowVector:
			sshape = []int64{int64(sr)}
		case sc == 1 && br == 1:
			sshape = []int64{int64(sr), 1}
		default:
			sshape = []int64{int64(sr), int64(sc)}
		}
		fp8s = append(fp8s, stTensor{name: st.name, dtype: "F8_E4M3", shape: st.shape,
			data: func(w io.Writer) error { _, err := w.Write(codes); return err }},
			f32Tensor(st.name+s.scale, sshape, scales))
		if s.activation != "" {
			fp8s = append(fp8s, f32Tensor(strings.TrimSuffix(st.name, ".weight")+s.activation, []int64{}, []float32{0.5}))
		}
		deqs = append(deqs, f32Tensor(st.name, st.shape, deq))
	}
	return fp8s, deqs
}

// quantConfig is the quantization_config of scheme s.
func (s fp8Scheme) quantConfig() map[string]any {
	q := map[string]any{"quant_method": s.quant}
	switch {
	case s.configBlock && s.structure:
		q["config_groups"] = map[string]any{"group_0": map[string]any{"targets": []string{"Linear"},
			"weights": map[string]any{"num_bits": 8, "type": "float", "strategy": "block", "block_structure": []int{s.blockRows, s.blockCols}}}}
	case s.configBlock:
		q["weight_block_size"] = []int{s.blockRows, s.blockCols}
	}
	return q
}

// fp8Fixture writes tiny-llama-st with its projections quantized to FP8
// under scheme s, and the same checkpoint dequantized (fp8Quantize);
// edit, if not nil, changes the FP8 checkpoint.
func fp8Fixture(t *testing.T, s fp8Scheme, edit func(map[string]any, []stTensor) []stTensor) (fp8Dir, deqDir string) {
	t.Helper()
	fp8Dir, deqDir = t.TempDir(), t.TempDir()
	fp8s, deqs := fp8Quantize(t, f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil), s)
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", fp8Dir, func(m map[string]any) {
		m["quantization_config"] = s.quantConfig()
		cfg = m
	})
	copyHFFiles(t, "tiny-llama-st", deqDir, func(map[string]any) {})
	finishFixture(t, "tiny-llama-st", deqDir, nil, deqs, nil)
	finishFixture(t, "tiny-llama-st", fp8Dir, cfg, fp8s, edit)
	return fp8Dir, deqDir
}

// TestFP8 converts FP8 checkpoints in the three scale layouts: the GGUF
// is byte for byte the conversion of the checkpoint dequantized by the
// test's own decoder (q and k permuted, so each row takes its source
// row's scale), its logits match the float64 reference of that
// checkpoint, and the scales and activation scales are left out.
func TestFP8(t *testing.T) {
	ctx := context.Background()
	prompts := readReference(t, "tiny-llama-st").Prompts
	for name, s := range fp8Schemes {
		t.Run(name, func(t *testing.T) {
			fp8Dir, deqDir := fp8Fixture(t, s, nil)
			for _, typ := range []string{"f32", "f16"} {
				got, want := filepath.Join(t.TempDir(), "fp8.gguf"), filepath.Join(t.TempDir(), "deq.gguf")
				if err := convert.Convert(ctx, fp8Dir, got, convert.Options{Type: typ, Name: "x"}); err != nil {
					t.Fatal(err)
				}
				if err := convert.Convert(ctx, deqDir, want, convert.Options{Type: typ, Name: "x"}); err != nil {
					t.Fatal(err)
				}
				a, err := os.ReadFile(got)
				if err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(want)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a, b) {
					t.Errorf("%s: the FP8 conversion differs from the dequantized checkpoint's", typ)
				}
				if typ == "f32" {
					m := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}
					checkRef(t, refContext(t, got), prompts, loadLlamaRef(t, deqDir, m, 2).forward, 1e-5)
				}
			}
		})
	}
}

// TestFP8Errors: an FP8 weight without its scale, or with a scale whose
// shape does not fit it, is refused before anything is written.
func TestFP8Errors(t *testing.T) {
	ctx := context.Background()
	const w = "model.layers.0.self_attn.q_proj.weight"
	for _, tc := range []struct {
		name   string
		scheme fp8Scheme
		edit   func(map[string]any, []stTensor) []stTensor
		want   string
	}{
		{"no scale", fp8Schemes["block"], dropTensor(w + "_scale_inv"), "without a"},
		{"other block size", fp8Schemes["block"], func(cfg map[string]any, ts []stTensor) []stTensor {
			cfg["quantization_config"] = map[string]any{"quant_method": "fp8", "weight_block_size": []int{32, 32}}
			return ts
		}, "needs"},
		// 64 rows in 2 scale rows could be blocks of 32 or, padded, of 48
		// (as here): without the block in config.json it is refused.
		{"no block size", fp8Schemes["block"], setConfig("quantization_config", map[string]any{"quant_method": "fp8"}), "weight_block_size"},
		{"bad block size", fp8Schemes["block"], setConfig("quantization_config", map[string]any{"quant_method": "fp8", "weight_block_size": []int{0, 128}}), "weight_block_size"},
		{"empty weight", fp8Schemes["tensor"], func(_ map[string]any, ts []stTensor) []stTensor {
			for i, s := range ts {
				if s.name == "model.layers.0.self_attn.q_proj.weight" {
					ts[i] = stTensor{name: s.name, dtype: "F8_E4M3", shape: []int64{0, 64}, data: func(io.Writer) error { return nil }}
				}
			}
			return ts
		}, "shape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := fp8Fixture(t, tc.scheme, tc.edit)
			out := filepath.Join(t.TempDir(), "x.gguf")
			err := convert.Convert(ctx, dir, out, convert.Options{Type: "f16"})
			if !errors.Is(err, convert.ErrMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want ErrMismatch with %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s written: %v", out, err)
			}
		})
	}
}
