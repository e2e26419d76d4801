package engine

/*
#include <stdlib.h>
#include "llama_api.h"
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	"github.com/llm-go/llm/loader/gguf"
)

// quantTypes maps the names llama-quantize accepts to llama.cpp file types.
var quantTypes = map[string]C.enum_llama_ftype{
	"F32": C.LLAMA_FTYPE_ALL_F32, "F16": C.LLAMA_FTYPE_MOSTLY_F16, "BF16": C.LLAMA_FTYPE_MOSTLY_BF16,
	"Q8_0": C.LLAMA_FTYPE_MOSTLY_Q8_0,
	"Q4_0": C.LLAMA_FTYPE_MOSTLY_Q4_0, "Q4_1": C.LLAMA_FTYPE_MOSTLY_Q4_1,
	"Q5_0": C.LLAMA_FTYPE_MOSTLY_Q5_0, "Q5_1": C.LLAMA_FTYPE_MOSTLY_Q5_1,
	"Q2_K":   C.LLAMA_FTYPE_MOSTLY_Q2_K,
	"Q3_K_S": C.LLAMA_FTYPE_MOSTLY_Q3_K_S, "Q3_K_M": C.LLAMA_FTYPE_MOSTLY_Q3_K_M, "Q3_K_L": C.LLAMA_FTYPE_MOSTLY_Q3_K_L,
	"Q4_K_S": C.LLAMA_FTYPE_MOSTLY_Q4_K_S, "Q4_K_M": C.LLAMA_FTYPE_MOSTLY_Q4_K_M,
	"Q5_K_S": C.LLAMA_FTYPE_MOSTLY_Q5_K_S, "Q5_K_M": C.LLAMA_FTYPE_MOSTLY_Q5_K_M,
	"Q6_K":   C.LLAMA_FTYPE_MOSTLY_Q6_K,
	"IQ4_NL": C.LLAMA_FTYPE_MOSTLY_IQ4_NL, "IQ4_XS": C.LLAMA_FTYPE_MOSTLY_IQ4_XS,
	// Experts (3-D tensors) in MXFP4, kept when they are MXFP4 already
	// (gpt-oss), the rest Q8_0.
	"MXFP4_MOE": C.LLAMA_FTYPE_MOSTLY_MXFP4_MOE,
	// llama-quantize's aliases
	"Q3_K": C.LLAMA_FTYPE_MOSTLY_Q3_K_M, "Q4_K": C.LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q5_K": C.LLAMA_FTYPE_MOSTLY_Q5_K_M,
}

// QuantTypes returns the names Quantize accepts.
func QuantTypes() []string {
	out := make([]string, 0, len(quantTypes))
	for k := range quantTypes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Quantize converts the GGUF model in to the type typ (for example "Q4_K_M",
// "Q8_0", "F16"; case-insensitive, see QuantTypes) and writes it to out,
// with llama.cpp's quantizer on threads threads (0: all CPUs). The input is
// validated first. out is written under a temporary name and renamed when
// complete, so it never holds a partial model.
//
// llama.cpp cannot interrupt a quantization: when ctx is cancelled, Quantize
// returns ctx's error at once, the work finishes in the background and its
// output is deleted.
func Quantize(ctx context.Context, in, out, typ string, threads int) error {
	ftype, ok := quantTypes[strings.ToUpper(typ)]
	if !ok {
		return fmt.Errorf("engine: quantize: unknown type %q (one of %s): %w", typ, strings.Join(QuantTypes(), ", "), ErrInvalidArgument)
	}
	if threads < 0 || threads > 1024 {
		return fmt.Errorf("engine: quantize: threads %d: %w", threads, ErrInvalidArgument)
	}
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	header, err := gguf.ValidateModel(in)
	if err != nil {
		return fmt.Errorf("engine: quantize: %w", err)
	}
	absIn, _ := filepath.Abs(in)
	absOut, _ := filepath.Abs(out)
	if absIn == absOut {
		return fmt.Errorf("engine: quantize: output %s is the input file: %w", out, ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp := out + ".tmp"

	done := make(chan error, 1)
	go func() {
		p := C.llama_model_quantize_default_params()
		p.nthread = C.int32_t(threads)
		p.ftype = ftype
		cin, ctmp := C.CString(in), C.CString(tmp)
		defer C.free(unsafe.Pointer(cin))
		defer C.free(unsafe.Pointer(ctmp))
		rc := C.llama_model_quantize(cin, ctmp, &p)
		reason := takeLastError()
		if rc != 0 {
			os.Remove(tmp)
			if strings.Contains(reason, "Unsupported tensor size") {
				done <- unevenRowsError(header, in, typ)
				return
			}
			done <- fmt.Errorf("engine: quantize %s to %s: %s: %w", in, typ, orUnknown(reason), ErrLoad)
			return
		}
		if ctx.Err() != nil {
			os.Remove(tmp)
			done <- ctx.Err()
			return
		}
		if err := os.Rename(tmp, out); err != nil {
			os.Remove(tmp)
			done <- fmt.Errorf("engine: quantize: %w", err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// keptTensors are the parts of names whose tensors llama.cpp's quantizer
// keeps as they are, besides norms and 1-D tensors: routers, Gemma 3n's
// AltUp and LAuReL, convolutions, RWKV's time mixing, positions.
var keptTensors = []string{"_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d.weight",
	"shortconv.conv.weight", "time_mix_", "attn_rel_b.weight", "position_embd.", "token_types."}

// quantized reports whether llama.cpp's quantizer quantizes tensor t: a
// weight matrix that is not one of keptTensors.
func quantized(t gguf.TensorInfo) bool {
	if len(t.Shape) < 2 || !strings.HasSuffix(t.Name, "weight") {
		return false
	}
	for _, k := range keptTensors {
		if strings.Contains(t.Name, k) {
			return false
		}
	}
	return true
}

// unevenRowsError explains llama.cpp's "Unsupported tensor size": a
// matrix whose rows do not fill whole blocks of the type, which llama.cpp
// replaces by another type for K- and I-quants only (a small model's, or
// Mamba-130M's dt projection of rank 48). It names the first such matrix
// when the header shows one.
func unevenRowsError(h *gguf.File, in, typ string) error {
	which := "a tensor's rows are"
	if t, err := gguf.ParseType(typ); err == nil && t.BlockSize() > 1 {
		for _, ti := range h.Tensors {
			if quantized(ti) && ti.Shape[0]%t.BlockSize() != 0 {
				which = fmt.Sprintf("%s has rows of %d values,", ti.Name, ti.Shape[0])
				break
			}
		}
		which = fmt.Sprintf("%s not a multiple of %s's blocks of %d", which, strings.ToUpper(typ), t.BlockSize())
	} else {
		which += " not a multiple of the type's blocks"
	}
	return fmt.Errorf("engine: quantize %s to %s: %s (llama.cpp falls back to another type for K- and I-quants only): quantize to a K-quant such as Q4_K_M, Q5_K_M or Q6_K instead: %w",
		in, typ, which, ErrInvalidArgument)
}
