package gguf

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Keys of a LoRA adapter file (llama.cpp's convert_lora_to_gguf.py writes
// them; llama_adapter_lora_init reads them).
const (
	// KeyArchitecture names the model architecture (also of an adapter).
	KeyArchitecture = "general.architecture"
	KeyGeneralType  = "general.type"                    // "adapter"
	KeyAdapterType  = "adapter.type"                    // "lora"
	KeyLoRAAlpha    = "adapter.lora.alpha"              // f32; the scale is alpha/rank
	KeyALoRATokens  = "adapter.alora.invocation_tokens" // u32 array (activated LoRA)
	// KeyLoRATaskName names the task an adapter was trained for (one of
	// jina-embeddings-v3's).
	KeyLoRATaskName = "adapter.lora.task_name"
	// KeyLoRAPromptPrefix is the instruction put before a text embedded
	// for the adapter's task.
	KeyLoRAPromptPrefix = "adapter.lora.prompt_prefix"
)

// The suffixes of an adapter's tensor names.
const (
	loraASuffix       = ".lora_a"
	loraBSuffix       = ".lora_b"
	loraIgnoredSuffix = "_norm.weight" // norm vectors, which llama.cpp skips
)

// Adapter describes a validated LoRA adapter: the alpha its scale is
// multiplied by (alpha/rank; 0 means 1) and its rank-r pairs by base
// tensor name.
type Adapter struct {
	// Alpha is adapter.lora.alpha, 0 when absent.
	Alpha float64
	// Pairs are the adapted base tensors, sorted by name.
	Pairs []LoRAPair
}

// LoRAPair is one adapted base tensor: its update is B·A (A: Rank × in, B:
// out × Rank).
type LoRAPair struct {
	Base string
	A, B TensorInfo
	Rank uint64
}

// ValidateAdapter checks that the LoRA adapter f can be applied to the
// model whose tensors base looks up, as llama.cpp's
// llama_adapter_lora_init requires (it aborts the process on some of these,
// such as a general.type that is not a string): general.type "adapter",
// the base model's architecture, adapter.type "lora", an f32 alpha if any,
// u32 invocation tokens if any, and tensors that come in lora_a/lora_b
// pairs naming base tensors, with shapes that fit them (for token_embd, A
// and B are swapped, as llama.cpp's embedding lookup uses them).
func ValidateAdapter(f *File, arch string, base func(name string) (TensorInfo, bool)) (*Adapter, error) {
	str := func(key string) (string, error) {
		v, ok := f.Lookup(key)
		if !ok {
			return "", fmt.Errorf("gguf: a LoRA adapter needs %s: %w", key, ErrInvalid)
		}
		s, isStr := v.AsString()
		if !isStr || v.Type != ValueString {
			return "", fmt.Errorf("gguf: %s has type %s, must be a string: %w", key, typeName(v), ErrInvalid)
		}
		return s, nil
	}
	typ, err := str(KeyGeneralType)
	if err != nil {
		return nil, err
	}
	if typ != "adapter" {
		return nil, fmt.Errorf("gguf: %s is %q, not \"adapter\": not a LoRA adapter: %w", KeyGeneralType, typ, ErrInvalid)
	}
	a, err := str(KeyArchitecture)
	if err != nil {
		return nil, err
	}
	if a != arch {
		return nil, fmt.Errorf("gguf: the adapter is for architecture %q, the model is %q: %w", a, arch, ErrInvalid)
	}
	at, err := str(KeyAdapterType)
	if err != nil {
		return nil, err
	}
	if at != "lora" {
		return nil, fmt.Errorf("gguf: %s is %q; only \"lora\" adapters are supported: %w", KeyAdapterType, at, ErrInvalid)
	}
	out := &Adapter{}
	if v, ok := f.Lookup(KeyLoRAAlpha); ok {
		if v.Type != ValueFloat32 {
			return nil, fmt.Errorf("gguf: %s has type %s, must be f32: %w", KeyLoRAAlpha, typeName(v), ErrInvalid)
		}
		out.Alpha, _ = v.AsFloat()
		if math.IsNaN(out.Alpha) || math.IsInf(out.Alpha, 0) {
			return nil, fmt.Errorf("gguf: %s is %v: %w", KeyLoRAAlpha, out.Alpha, ErrInvalid)
		}
	}
	if _, ok := f.Lookup(KeyALoRATokens); ok {
		// llama.cpp would apply it to every token, not only after its
		// invocation tokens.
		return nil, fmt.Errorf("gguf: an activated LoRA (%s): not supported: %w", KeyALoRATokens, ErrInvalid)
	}

	pairs := map[string]*LoRAPair{}
	for _, t := range f.Tensors {
		var name string
		var isA bool
		switch {
		case strings.HasSuffix(t.Name, loraASuffix):
			name, isA = strings.TrimSuffix(t.Name, loraASuffix), true
		case strings.HasSuffix(t.Name, loraBSuffix):
			name = strings.TrimSuffix(t.Name, loraBSuffix)
		case strings.HasSuffix(t.Name, loraIgnoredSuffix):
			continue
		default:
			return nil, fmt.Errorf("gguf: adapter tensor %q is neither a .lora_a nor a .lora_b: %w", t.Name, ErrInvalid)
		}
		p := pairs[name]
		if p == nil {
			p = &LoRAPair{Base: name}
			pairs[name] = p
		}
		if isA {
			p.A = t
		} else {
			p.B = t
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("gguf: the adapter has no lora_a/lora_b tensors: %w", ErrInvalid)
	}
	for _, p := range pairs {
		if p.A.Name == "" || p.B.Name == "" {
			return nil, fmt.Errorf("gguf: adapter tensor %s has a lora_a or a lora_b but not both: %w", p.Base, ErrInvalid)
		}
		bt, ok := base(p.Base)
		if !ok {
			return nil, fmt.Errorf("gguf: the adapter changes %s, which the model does not have (an adapter for another model?): %w", p.Base, ErrInvalid)
		}
		for _, t := range []TensorInfo{p.A, p.B} {
			if !loraTypes[t.Type] {
				// llama.cpp has no matrix product for the integer types.
				return nil, fmt.Errorf("gguf: adapter tensor %s has type %s; LoRA factors are F32, F16, BF16 or Q8_0: %w", t.Name, t.Type, ErrInvalid)
			}
		}
		if _, out := base("output.weight"); !out && !headless[arch] && strings.HasSuffix(p.Base, "token_embd.weight") {
			// The model's output is then token_embd.weight under that name,
			// and llama.cpp would apply the swapped pair to it too.
			return nil, fmt.Errorf("gguf: the adapter changes token_embd.weight of a model whose output shares it (tied embeddings), which llama.cpp cannot apply: %w", ErrInvalid)
		}
		if err := checkPair(p, bt); err != nil {
			return nil, err
		}
		out.Pairs = append(out.Pairs, *p)
	}
	sort.Slice(out.Pairs, func(i, j int) bool { return out.Pairs[i].Base < out.Pairs[j].Base })
	return out, nil
}

// headless are the archs whose llama.cpp graph has no output layer (the
// encoders, pooled into embeddings): the embeddings are not also the head,
// and an adapter of token_embd changes the input only.
var headless = map[string]bool{
	"bert": true, "jina-bert-v2": true, "jina-bert-v3": true, "nomic-bert": true, "nomic-bert-moe": true,
}

// loraTypes are the types llama.cpp multiplies LoRA factors in, as
// convert_lora_to_gguf.py writes them.
var loraTypes = map[Type]bool{TypeF32: true, TypeF16: true, TypeBF16: true, TypeQ8_0: true}

// checkPair checks the shapes of a pair against its base tensor: A is
// [in → rank] and B [rank → out] in ggml order (ne0 first), with the same
// extra dimensions (experts) as the base; for token_embd A and B swap.
func checkPair(p *LoRAPair, base TensorInfo) error {
	dim := func(s []uint64, i int) uint64 {
		if i < len(s) {
			return s[i]
		}
		return 1
	}
	a, b := p.A.Shape, p.B.Shape
	for i := 2; i < 4; i++ {
		if dim(a, i) != dim(base.Shape, i) || dim(b, i) != dim(base.Shape, i) {
			return fmt.Errorf("gguf: adapter tensors for %s have shapes %v and %v, the model's is %v (an adapter for another model?): %w", p.Base, a, b, base.Shape, ErrInvalid)
		}
	}
	in, out := dim(base.Shape, 0), dim(base.Shape, 1)
	if strings.HasSuffix(p.Base, "token_embd.weight") {
		if dim(b, 1) != in || dim(a, 1) != out || dim(a, 0) != dim(b, 0) {
			return fmt.Errorf("gguf: adapter tensors for %s have shapes %v and %v, the model's is %v (an adapter for another model?): %w", p.Base, a, b, base.Shape, ErrInvalid)
		}
		p.Rank = dim(a, 0)
		if p.Rank == 0 {
			return fmt.Errorf("gguf: adapter tensors for %s have rank 0: %w", p.Base, ErrInvalid)
		}
		return nil
	}
	if dim(a, 0) != in || dim(b, 1) != out {
		return fmt.Errorf("gguf: adapter tensors for %s have shapes %v and %v, the model's is %v (an adapter for another model?): %w", p.Base, a, b, base.Shape, ErrInvalid)
	}
	if dim(a, 1) != dim(b, 0) {
		return fmt.Errorf("gguf: adapter tensors for %s: lora_a %v and lora_b %v disagree on the rank (a lora_a not transposed?): %w", p.Base, a, b, ErrInvalid)
	}
	p.Rank = dim(a, 1)
	if p.Rank == 0 {
		return fmt.Errorf("gguf: adapter tensors for %s have rank 0: %w", p.Base, ErrInvalid)
	}
	return nil
}
