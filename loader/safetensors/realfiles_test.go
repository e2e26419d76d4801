package safetensors

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
)

func TestRealFiles(t *testing.T) {
	tests := []struct {
		dir     string
		tensors int
		dtype   DType
		params  int64
		header  int64
		check   map[string][]int64
		absent  []string
	}{
		{
			dir: "tiny-random-gpt2", tensors: 64, dtype: F32, params: 111968, header: 5984,
			check: map[string][]int64{
				"transformer.wte.weight":             {1000, 32},
				"transformer.wpe.weight":             {512, 32},
				"transformer.h.0.attn.c_attn.weight": {32, 96},
				"transformer.h.4.mlp.c_fc.weight":    {32, 128},
			},
			absent: []string{"lm_head.weight"},
		},
		{
			dir: "tiny-llama-st", tensors: 21, dtype: F32, params: 4170048, header: 2224,
			check: llamaShapes(true),
		},
		{
			dir: "tiny-llama-st-bf16", tensors: 21, dtype: BF16, params: 4170048, header: 2208,
			check: llamaShapes(true),
		},
		{
			dir: "tiny-qwen2-st", tensors: 26, dtype: F16, params: 2122304, header: 2704,
			check: func() map[string][]int64 {
				m := llamaShapes(false)
				m["model.layers.1.self_attn.q_proj.bias"] = []int64{64}
				m["model.layers.0.self_attn.k_proj.bias"] = []int64{32}
				m["model.layers.0.self_attn.v_proj.bias"] = []int64{32}
				return m
			}(),
			absent: []string{"lm_head.weight", "model.layers.0.self_attn.o_proj.bias"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			p := shareddata.Path(t, "models", "hf", tc.dir, "model.safetensors")
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if f.Size != st.Size() || f.HeaderSize != tc.header || f.DataOffset != 8+tc.header {
				t.Errorf("size %d header %d data offset %d", f.Size, f.HeaderSize, f.DataOffset)
			}
			if f.Metadata["format"] != "pt" {
				t.Errorf("metadata = %v", f.Metadata)
			}
			if len(f.Tensors) != tc.tensors {
				t.Errorf("%d tensors, want %d", len(f.Tensors), tc.tensors)
			}
			if !slices.IsSortedFunc(f.Tensors, func(a, b TensorInfo) int { return cmpStr(a.Name, b.Name) }) {
				t.Error("tensors not sorted by name")
			}
			for _, ti := range f.Tensors {
				if ti.DType != tc.dtype {
					t.Errorf("%s: dtype %s, want %s", ti.Name, ti.DType, tc.dtype)
				}
			}
			if n := f.ParamCount(); n != tc.params {
				t.Errorf("ParamCount = %d, want %d", n, tc.params)
			}
			for name, shape := range tc.check {
				ti, ok := f.Tensor(name)
				if !ok || !slices.Equal(ti.Shape, shape) || ti.Size != ti.Elements()*tc.dtype.Size() {
					t.Errorf("%s: %+v, %v; want shape %v", name, ti, ok, shape)
				}
			}
			for _, name := range tc.absent {
				if _, ok := f.Tensor(name); ok {
					t.Errorf("%s present", name)
				}
			}

			// The same through OpenDir (a single-file checkpoint).
			m, err := OpenDir(filepath.Dir(p))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if len(m.Tensors()) != tc.tensors || m.ParamCount() != tc.params || len(m.Files) != 1 || m.IndexMetadata != nil {
				t.Errorf("OpenDir: %d tensors, %d params, %d files", len(m.Tensors()), m.ParamCount(), len(m.Files))
			}

			// Every tensor converts, and values are finite.
			for _, ti := range f.Tensors {
				v, err := m.Float32s(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(v)) != ti.Elements() {
					t.Fatalf("%s: %d values", ti.Name, len(v))
				}
				for _, x := range v {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						t.Fatalf("%s: non-finite value %v", ti.Name, x)
					}
				}
			}
		})
	}
}

// llamaShapes returns a few tensor shapes of the synthetic Llama and Qwen2
// fixtures.
func llamaShapes(head bool) map[string][]int64 {
	m := map[string][]int64{
		"model.embed_tokens.weight":                      {32000, 64},
		"model.layers.0.input_layernorm.weight":          {64},
		"model.layers.0.self_attn.q_proj.weight":         {64, 64},
		"model.layers.1.self_attn.k_proj.weight":         {32, 64},
		"model.layers.1.self_attn.v_proj.weight":         {32, 64},
		"model.layers.0.self_attn.o_proj.weight":         {64, 64},
		"model.layers.1.post_attention_layernorm.weight": {64},
		"model.layers.0.mlp.gate_proj.weight":            {128, 64},
		"model.layers.0.mlp.up_proj.weight":              {128, 64},
		"model.layers.1.mlp.down_proj.weight":            {64, 128},
		"model.norm.weight":                              {64},
	}
	if head {
		m["lm_head.weight"] = []int64{32000, 64}
	}
	return m
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestBF16MatchesF32 checks that the BF16 fixture holds the F32 fixture's
// values rounded to bfloat16 (nearest, ties to even), bit for bit, and that
// Float32s widens them exactly.
func TestBF16MatchesF32(t *testing.T) {
	f32, err := OpenDir(shareddata.Path(t, "models", "hf", "tiny-llama-st"))
	if err != nil {
		t.Fatal(err)
	}
	defer f32.Close()
	bf, err := OpenDir(shareddata.Path(t, "models", "hf", "tiny-llama-st-bf16"))
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	for _, name := range []string{
		"model.layers.0.self_attn.q_proj.weight",
		"model.layers.1.input_layernorm.weight",
		"model.norm.weight",
		"model.layers.1.mlp.down_proj.weight",
		"lm_head.weight",
	} {
		want, err := f32.Float32s(name)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := bf.ReadTensor(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := bf.Float32s(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != 2*len(want) || len(got) != len(want) {
			t.Fatalf("%s: %d BF16 bytes, %d values, for %d F32 values", name, len(raw), len(got), len(want))
		}
		ties := 0
		for i, w := range want {
			b := binary.LittleEndian.Uint16(raw[2*i:])
			if r := Float32ToBF16(w); b != r {
				t.Fatalf("%s[%d]: BF16 bits %#04x, want %#04x (F32 %v)", name, i, b, r, w)
			}
			if got[i] != BF16ToFloat32(b) {
				t.Fatalf("%s[%d]: Float32s %v, want %v", name, i, got[i], BF16ToFloat32(b))
			}
			if math.Float32bits(w)&0xffff == 0x8000 {
				ties++
			}
		}
		t.Logf("%s: %d values equal, %d exact ties", name, len(want), ties)
	}
}

// TestF16Values checks the F16 fixture's values against an independent
// decoding of the raw bits.
func TestF16Values(t *testing.T) {
	f, err := Open(shareddata.Path(t, "models", "hf", "tiny-qwen2-st", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := "model.layers.0.self_attn.q_proj.bias"
	raw, err := f.ReadTensor(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Float32s(name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if w := f16ToFloat64(binary.LittleEndian.Uint16(raw[2*i:])); float64(got[i]) != w {
			t.Fatalf("%s[%d] = %v, want %v", name, i, got[i], w)
		}
	}
}

// f16ToFloat64 decodes IEEE binary16 bits from first principles (finite
// values only).
func f16ToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	if exp == 0 {
		return sign * math.Ldexp(frac, -24)
	}
	return sign * math.Ldexp(1024+frac, exp-25)
}
