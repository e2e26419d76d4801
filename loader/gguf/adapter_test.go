package gguf

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestValidateAdapter: adapters llama.cpp would take and then crash on
// (integer factors, a token_embd pair on tied embeddings, rank 0), or
// misapply (an activated LoRA), are refused with the reason.
func TestValidateAdapter(t *testing.T) {
	base := map[string]TensorInfo{
		"blk.0.attn_q.weight": {Name: "blk.0.attn_q.weight", Type: TypeF32, Shape: []uint64{64, 64}},
		"token_embd.weight":   {Name: "token_embd.weight", Type: TypeF32, Shape: []uint64{64, 512}},
	}
	lookup := func(withOutput bool) func(string) (TensorInfo, bool) {
		return func(n string) (TensorInfo, bool) {
			if n == "output.weight" {
				return TensorInfo{Name: n, Type: TypeF32, Shape: []uint64{64, 512}}, withOutput
			}
			t, ok := base[n]
			return t, ok
		}
	}
	kv := func(extra ...KV) []KV {
		return append([]KV{{KeyGeneralType, String("adapter")}, {KeyArchitecture, String("llama")}, {KeyAdapterType, String("lora")}}, extra...)
	}
	pair := func(name string, typ Type, a, b []uint64) []TensorInfo {
		return []TensorInfo{{Name: name + ".lora_a", Type: typ, Shape: a}, {Name: name + ".lora_b", Type: typ, Shape: b}}
	}
	q := pair("blk.0.attn_q.weight", TypeF16, []uint64{64, 4}, []uint64{4, 64})
	for _, tc := range []struct {
		name    string
		f       *File
		output  bool
		want    string // "" for success
		wantErr error
	}{
		{"fine", &File{KV: kv(), Tensors: q}, true, "", nil},
		{"integer factors", &File{KV: kv(), Tensors: pair("blk.0.attn_q.weight", TypeI32, []uint64{64, 4}, []uint64{4, 64})}, true, "LoRA factors are F32, F16, BF16 or Q8_0", ErrInvalid},
		{"token_embd on tied embeddings", &File{KV: kv(), Tensors: pair("token_embd.weight", TypeF32, []uint64{4, 512}, []uint64{4, 64})}, false, "tied embeddings", ErrInvalid},
		{"token_embd with an output", &File{KV: kv(), Tensors: pair("token_embd.weight", TypeF32, []uint64{4, 512}, []uint64{4, 64})}, true, "", nil},
		{"rank 0", &File{KV: kv(), Tensors: pair("blk.0.attn_q.weight", TypeF32, []uint64{64, 0}, []uint64{0, 64})}, true, "rank 0", ErrInvalid},
		{"a NaN alpha", &File{KV: kv(KV{KeyLoRAAlpha, Float32(float32(math.NaN()))}), Tensors: q}, true, "NaN", ErrInvalid},
		{"an activated LoRA", &File{KV: kv(KV{KeyALoRATokens, Uint32s([]uint32{1, 2})}), Tensors: q}, true, "activated LoRA", ErrInvalid},
	} {
		_, err := ValidateAdapter(tc.f, "llama", lookup(tc.output))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %v naming %q", tc.name, err, tc.wantErr, tc.want)
		}
	}
}
