package convert

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Output types written in Go, with their general.file_type
// (llama_ftype).
var outTypes = map[string]struct {
	typ      gguf.Type
	fileType uint32
}{
	"f32":  {gguf.TypeF32, 0},
	"f16":  {gguf.TypeF16, 1},
	"q8_0": {gguf.TypeQ8_0, 7},
	"bf16": {gguf.TypeBF16, 32},
}

// parseOutType returns the output type named s ("" is f32).
func parseOutType(s string) (gguf.Type, uint32, error) {
	t := strings.ToLower(s)
	if t == "" {
		t = "f32"
	}
	o, ok := outTypes[t]
	if !ok {
		return 0, 0, fmt.Errorf("%w output type %q: want f32, f16, bf16 or q8_0", ErrUnsupported, s)
	}
	return o.typ, o.fileType, nil
}

// tensorType is the type a tensor of row-major shape is written in when
// the output type is out: out for the 2-D weights and the 3-D stacked
// experts, except learned positions and token types (keepF32) and the
// experts' router (ffn_gate_inp), which stay F32 as convert_hf_to_gguf.py
// and llama.cpp's quantizer keep them, and Q8_0 rows whose length is not a
// multiple of 32, which fall back to F16 as convert_hf_to_gguf.py's do;
// F32 for the rest: biases, and norms, including Command R+'s per-head
// q/k norm weights [heads, head_dim], which ggml multiplies only as F32,
// Mamba-2's conv1d, A and D and LFM2's convolution, which ggml's kernels
// read as F32, and Gemma 3n's AltUp coefficients. Under Q8_0, Gemma 3n's
// AltUp and LAuReL matrices and per-layer input projection are F16, as
// llama.cpp's quantizer leaves them.
func tensorType(name string, shape []int64, out gguf.Type) gguf.Type {
	if len(shape) < 2 || len(shape) > 3 || keepF32[name] || strings.Contains(name, ".ffn_gate_inp") || strings.HasSuffix(name, ".bias") || strings.HasSuffix(name, "_norm.weight") ||
		strings.HasSuffix(name, ".ssm_conv1d.weight") || strings.HasSuffix(name, ".ssm_a") || strings.HasSuffix(name, ".ssm_d") ||
		strings.HasSuffix(name, ".shortconv.conv.weight") {
		return gguf.TypeF32
	}
	if strings.HasSuffix(name, ".altup_correct_coef.weight") || strings.HasSuffix(name, ".altup_predict_coef.weight") {
		return gguf.TypeF32 // Gemma 3n's stream-mixing coefficients, as convert_hf_to_gguf.py keeps them
	}
	if out == gguf.TypeQ8_0 && (shape[len(shape)-1]%qk8_0 != 0 || strings.Contains(name, "altup") || strings.Contains(name, "laurel") ||
		strings.Contains(name, "per_layer_model_proj")) {
		return gguf.TypeF16 // Gemma 3n's AltUp and LAuReL matrices, which llama.cpp's quantizer leaves unquantized
	}
	return out
}

// qk8_0 is the number of values in a Q8_0 block; a block is their F16
// scale followed by one int8 per value.
const (
	qk8_0         = 32
	q8_0BlockSize = 2 + qk8_0
)

// quantizeQ8_0 writes src, a multiple of 32 values, as Q8_0 blocks into
// dst (34 bytes per 32 values), exactly as ggml's reference
// quantize_row_q8_0_ref, which llama.cpp's quantizer uses: per block the
// scale d = max|x|/127 rounded to F16, and each value round(x·(1/d)) with
// the product in float32, halves rounded away from zero.
func quantizeQ8_0(dst []byte, src []float32) {
	for b := range len(src) / qk8_0 {
		x := src[b*qk8_0 : (b+1)*qk8_0]
		out := dst[b*q8_0BlockSize : (b+1)*q8_0BlockSize]
		var amax float32
		for _, v := range x {
			// ggml's MAX(amax, fabsf(v)), NaN handling included.
			if a := float32(math.Abs(float64(v))); !(amax > a) {
				amax = a
			}
		}
		d := float32(amax / 127)
		var id float32
		if d != 0 {
			id = float32(1 / d)
		}
		binary.LittleEndian.PutUint16(out, f32ToF16(math.Float32bits(d)))
		for j, v := range x {
			out[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
		}
	}
}

// encodeBF16 writes src as BF16 into dst (2 bytes per value), rounding to
// nearest, ties to even, NaNs kept quiet, as ggml's fp32→bf16.
func encodeBF16(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], safetensors.Float32ToBF16(v))
	}
}

// encodedSize is the number of bytes n values take as typ.
func encodedSize(typ gguf.Type, n int) int {
	switch typ {
	case gguf.TypeF32:
		return 4 * n
	case gguf.TypeF16, gguf.TypeBF16:
		return 2 * n
	case gguf.TypeQ8_0:
		return n / qk8_0 * q8_0BlockSize
	case gguf.TypeMXFP4:
		return n / 32 * 17
	}
	return 0
}
