package synth

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
)

// DefaultCacheDir returns where Cached keeps synthetic models when given no
// directory: llm/synth under the user cache directory
// (~/.cache/llm/synth on Linux).
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("synth: no cache directory: %w", err)
	}
	return filepath.Join(dir, "llm", "synth"), nil
}

// CachePath returns the file under dir that Cached uses for shape s in type
// quant with seed: <shape>-<QUANT>-seed<N>.gguf, for example
// tinyllama-1.1b-Q4_0-seed1.gguf. An empty dir means DefaultCacheDir (or
// the current directory when there is none).
func CachePath(dir string, s Shape, quant string, seed uint64) string {
	if dir == "" {
		dir, _ = DefaultCacheDir()
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%s-seed%d.gguf", s.Name, normQuant(quant), seed))
}

// normQuant is the upper-case name of a type, F16 for "".
func normQuant(quant string) string {
	if quant == "" {
		return "F16"
	}
	return strings.ToUpper(quant)
}

// Cached returns the path of the random-weight model of shape s in type
// quant with seed, creating it under dir (DefaultCacheDir when "") with
// Create on threads threads (0: all CPUs) when it is not there yet. The
// file appears complete or not at all: it is created under a temporary name
// in dir and renamed. Creating needs free disk for the model and, for
// quantized types, the F16 file it is quantized from (see DiskBytes);
// callers should check memory and disk first.
func Cached(ctx context.Context, dir string, s Shape, quant string, seed uint64, threads int) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	if _, err := s.WeightBytes(quant); err != nil {
		return "", err
	}
	if dir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return "", err
		}
		dir = d
	}
	path := CachePath(dir, s, quant, seed)
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("synth: cache directory: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.partial")
	if err != nil {
		return "", fmt.Errorf("synth: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp) // after a successful rename this finds nothing
	if err := Create(ctx, tmp, s, quant, seed, threads); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("synth: %w", err)
	}
	return path, nil
}

// bitsPerWeight is the average size, in bits per weight over the whole
// model, of llama.cpp's mixed k-quant file types, which quantize different
// tensors to different types: the values llama.cpp's quantize README lists
// for Llama 2 7B, and 4.89 (Q4_K_M) and 5.69 (Q5_K_M) as measured on
// Llama 3 8B files. The aliases Q3_K, Q4_K and Q5_K are the _M types.
var bitsPerWeight = map[string]float64{
	"Q2_K":   3.35,
	"Q3_K_S": 3.50, "Q3_K_M": 3.91, "Q3_K_L": 4.27, "Q3_K": 3.91,
	"Q4_K_S": 4.58, "Q4_K_M": 4.89, "Q4_K": 4.89,
	"Q5_K_S": 5.52, "Q5_K_M": 5.69, "Q5_K": 5.69,
}

// singleTypes are the file types that store every matrix in one ggml type.
var singleTypes = map[string]gguf.Type{
	"F32": gguf.TypeF32, "F16": gguf.TypeF16, "BF16": gguf.TypeBF16,
	"Q8_0": gguf.TypeQ8_0, "Q4_0": gguf.TypeQ4_0, "Q4_1": gguf.TypeQ4_1,
	"Q5_0": gguf.TypeQ5_0, "Q5_1": gguf.TypeQ5_1, "Q6_K": gguf.TypeQ6_K,
	"IQ4_NL": gguf.TypeIQ4_NL, "IQ4_XS": gguf.TypeIQ4_XS,
}

// WeightBytes returns the bytes of weights of a model of shape s in the
// llama.cpp file type quant (F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, ...): the
// size of its tensor data in the GGUF file.
//
// For types that store every matrix in one ggml type (F32, F16, BF16, Q8_0,
// Q4_0, Q4_1, Q5_0, Q5_1, Q6_K) it is exact, from the types' block sizes:
// norm weights are F32 and, as llama.cpp's quantizer does, the output
// matrix of a quantized type is Q6_K (Q8_0 for Q8_0, or when its rows are
// not a multiple of 256). IQ4_NL and IQ4_XS are computed the same way,
// a fraction of a percent low for models with grouped-query attention,
// whose attn_v llama.cpp raises to Q5_K. For the mixed k-quant types
// (Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M), which llama.cpp quantizes tensor
// by tensor to different types, it is an approximation: the parameter count
// times llama.cpp's documented average bits per weight (Q4_K_M ≈ 4.89,
// Q5_K_M ≈ 5.69, Q3_K_M ≈ 3.91, ...), within a few percent of real files,
// but for matrices whose rows are not a multiple of 256 values, which
// llama.cpp gives a fallback type (kQuantFallback), counted at its size.
func (s Shape) WeightBytes(quant string) (uint64, error) {
	q := normQuant(quant)
	if q == "MXFP4_MOE" {
		// As llama.cpp's quantizer: experts MXFP4, routers left as they
		// are (F16), everything else Q8_0.
		return s.bytesOf(func(t tensorSpec) gguf.Type {
			switch {
			case t.expert():
				return gguf.TypeMXFP4
			case strings.HasSuffix(t.name, ".ffn_gate_inp.weight"):
				return gguf.TypeF16
			}
			return gguf.TypeQ8_0
		})
	}
	if bpw, ok := bitsPerWeight[q]; ok {
		// Matrices whose rows are not a multiple of 256 values cannot take
		// a k-quant: llama.cpp's quantizer gives them its fallback type.
		fallback := kQuantFallback(q)
		moreBits := q == "Q4_K_M" || q == "Q5_K_M" || q == "Q4_K" || q == "Q5_K"
		tensors := s.tensors()
		nV := 0
		for _, t := range tensors {
			if strings.HasSuffix(t.name, ".attn_v.weight") {
				nV++
			}
		}
		var bits float64
		iV, iDown := 0, 0
		for _, t := range tensors {
			n := 1.0
			for _, d := range t.shape {
				n *= float64(d)
			}
			// Q4_K_M and Q5_K_M give some layers' ffn_down and attn_v Q6_K,
			// whose fallback is Q8_0.
			six := false
			if moreBits {
				if strings.HasSuffix(t.name, ".attn_v.weight") {
					six = useMoreBits(iV, nV)
					iV++
				} else if strings.Contains(t.name, ".ffn_down") { // as llama.cpp matches it: the shared experts' too
					// llama.cpp counts the ffn_down tensors, or with
					// experts reads the block from the name.
					layer := iDown
					if s.Experts > 1 {
						fmt.Sscanf(t.name, "blk.%d.", &layer)
					}
					iDown++
					six = useMoreBits(layer, s.Layers)
				}
			}
			if t.fanIn > 0 && !t.f32 && t.shape[0]%256 != 0 {
				typ := fallback
				if isOutput(s, t.name) || six {
					typ = gguf.TypeQ8_0 // Q6_K's fallback
				}
				row, err := typ.RowSize(t.shape[0])
				if err == nil {
					bits += n / float64(t.shape[0]) * float64(row) * 8
					continue
				}
			}
			bits += n * bpw
		}
		return uint64(math.Ceil(bits / 8)), nil
	}
	typ, ok := singleTypes[q]
	if !ok {
		known := make([]string, 0, len(singleTypes)+len(bitsPerWeight))
		for k := range singleTypes {
			known = append(known, k)
		}
		for k := range bitsPerWeight {
			known = append(known, k)
		}
		return 0, fmt.Errorf("synth: unknown type %q (one of %s, MXFP4_MOE)", quant, strings.Join(sortedStrings(known), ", "))
	}
	quantized := typ != gguf.TypeF32 && typ != gguf.TypeF16 && typ != gguf.TypeBF16
	return s.bytesOf(func(t tensorSpec) gguf.Type {
		switch {
		case quantized && strings.HasSuffix(t.name, ".ffn_gate_inp.weight"):
			return gguf.TypeF16 // llama.cpp's quantizer leaves routers as they are
		case quantized && isOutput(s, t.name):
			return outputType(typ, t.shape[0])
		case typ == gguf.TypeQ6_K && t.shape[0]%256 != 0:
			return kQuantFallback(q)
		case typ == gguf.TypeIQ4_XS && t.shape[0]%256 != 0:
			return gguf.TypeIQ4_NL // llama.cpp's fallback for IQ4_XS
		}
		return typ
	})
}

// useMoreBits is llama.cpp's choice of the i-th of n layers that
// Q4_K_M and Q5_K_M quantize with more bits: the first and last eighth,
// and every third between.
func useMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// kQuantFallback is the type llama.cpp's quantizer gives a matrix whose
// rows are not a multiple of 256 values in a file of k-quant type quant
// (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, Q2_K and Q3_K → IQ4_NL), by the
// type the file mostly holds.
func kQuantFallback(quant string) gguf.Type {
	switch {
	case strings.HasPrefix(quant, "Q2_K"), strings.HasPrefix(quant, "Q3_K"):
		return gguf.TypeIQ4_NL
	case strings.HasPrefix(quant, "Q4_K"):
		return gguf.TypeQ5_0
	case strings.HasPrefix(quant, "Q5_K"):
		return gguf.TypeQ5_1
	}
	return gguf.TypeQ8_0
}

// bytesOf sums the tensors' sizes, each matrix in the type typeOf gives it
// (norm weights, biases, sinks, Mamba-2's A and D and its convolution
// are F32).
func (s Shape) bytesOf(typeOf func(tensorSpec) gguf.Type) (uint64, error) {
	var total uint64
	for _, t := range s.tensors() {
		tt := gguf.TypeF32
		if t.fanIn > 0 && !t.f32 {
			tt = typeOf(t)
		}
		size, err := tensorBytes(tt, t.shape)
		if err != nil {
			return 0, fmt.Errorf("synth: %s in %v: %w", t.name, tt, err)
		}
		total += size
	}
	return total, nil
}

// DiskBytes returns the free disk that Cached needs to create the model of
// shape s in type quant: the model, plus for quantized types the F16 file
// it is quantized from, which exists until the quantized file is complete.
func (s Shape) DiskBytes(quant string) (uint64, error) {
	n, err := s.WeightBytes(quant)
	if err != nil {
		return 0, err
	}
	switch normQuant(quant) {
	case "F16", "F32":
		return n, nil
	case "MXFP4_MOE": // its source has the experts in MXFP4 already
		src, err := s.bytesOf(func(t tensorSpec) gguf.Type {
			if t.expert() {
				return gguf.TypeMXFP4
			}
			return gguf.TypeF16
		})
		return n + src, err
	}
	f16, err := s.WeightBytes("F16")
	if err != nil {
		return 0, err
	}
	return n + f16, nil
}

// isOutput reports whether tensor name is the one llama.cpp's quantizer
// treats as the output matrix: output.weight, or token_embd.weight when the
// embeddings are tied.
func isOutput(s Shape, name string) bool {
	return name == "output.weight" || (s.TiedEmbeddings && name == "token_embd.weight")
}

// outputType is the type llama.cpp's quantizer gives the output matrix of a
// file of quantized type typ whose rows hold ne0 values.
func outputType(typ gguf.Type, ne0 uint64) gguf.Type {
	if typ == gguf.TypeQ8_0 || ne0%256 != 0 {
		return gguf.TypeQ8_0
	}
	return gguf.TypeQ6_K
}

func tensorBytes(t gguf.Type, shape []uint64) (uint64, error) {
	row, err := t.RowSize(shape[0])
	if err != nil {
		return 0, err
	}
	for _, d := range shape[1:] {
		row *= d
	}
	return row, nil
}

func sortedStrings(s []string) []string {
	sort.Strings(s)
	return s
}
