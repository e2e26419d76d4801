package gguf

import (
	"fmt"
	"slices"
	"strings"
)

// maxExperts is llama.cpp's LLAMA_MAX_EXPERTS.
const maxExperts = 512

// checkHparams checks the hyperparameters that llama.cpp's model loader
// asserts on (GGML_ASSERT, which aborts the process) instead of failing
// cleanly, for any architecture:
//
//   - {arch}.expert_count at most 512 and {arch}.expert_used_count at most
//     the experts; with experts, some used; without, none used and no
//     expert groups;
//   - {arch}.expert_group_count fewer than the experts and, above 1,
//     dividing them, with {arch}.expert_group_used_count between 1 and
//     the groups (exclusive);
//   - {arch}.rope.scaling.type one of none, linear, yarn and longrope;
//   - the attention's sizes (checkHeads), single archs' keys
//     (checkArchKeys) and the tensors llama.cpp tries operations on
//     before checking their shapes (checkTensorForms).
func checkHparams(f *File) error {
	arch := f.Architecture()
	if arch == "" {
		return nil
	}
	get := func(key string) uint64 {
		v, _ := f.Uint(arch + "." + key)
		return v
	}
	experts, used := get("expert_count"), get("expert_used_count")
	groups, groupsUsed := get("expert_group_count"), get("expert_group_used_count")
	fail := func(format string, args ...any) error {
		return fmt.Errorf("gguf: %s: "+format+" (llama.cpp aborts): %w", append([]any{arch}, append(args, ErrInvalid)...)...)
	}
	switch {
	case experts > maxExperts:
		return fail("expert_count %d is more than llama.cpp's %d", experts, maxExperts)
	case used > experts:
		return fail("expert_used_count %d of expert_count %d", used, experts)
	case experts > 0 && used == 0:
		return fail("expert_count %d with no expert_used_count", experts)
	case experts == 0 && groups != 0:
		return fail("expert_group_count %d without experts", groups)
	case experts > 0 && groups >= experts:
		return fail("expert_group_count %d of expert_count %d", groups, experts)
	case groups > 1 && (experts%groups != 0 || groupsUsed == 0 || groupsUsed >= groups):
		return fail("expert_group_count %d (expert_group_used_count %d) over expert_count %d: the groups must divide the experts and some but not all be used", groups, groupsUsed, experts)
	}
	if s, ok := f.String(arch + ".rope.scaling.type"); ok && !slices.Contains([]string{"none", "linear", "yarn", "longrope"}, s) {
		return fail("rope.scaling.type %q is not none, linear, yarn or longrope", s)
	}
	if err := checkHeads(f, arch, fail); err != nil {
		return err
	}
	if err := checkArchKeys(f, arch, fail); err != nil {
		return err
	}
	return checkTensorForms(f, arch)
}

// uniformHeadArchs size their KV cache and attention from layer 0: a
// per-layer head_count_kv must be the same in every layer.
var uniformHeadArchs = []string{"llama", "qwen2", "qwen3", "qwen3moe", "gemma", "gemma2", "gemma3", "gemma-embedding", "phi3", "mistral3", "command-r", "cohere2",
	"olmo2", "olmoe", "smollm3", "ernie4_5", "ernie4_5-moe", "granite", "granitemoe", "glm4", "glm4moe", "gpt-oss", "bert", "gpt2", "arcee", "deepseek2",
	"nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "minimax-m2", "falcon-h1", "apertus", "llama4", "exaone", "starcoder2", "nemotron", "phi2", "starcoder", "gptneox", "olmo", "falcon", "stablelm", "deepseek", "dots1", "bailingmoe", "bailingmoe2", "minicpm", "internlm2", "minicpm3", "bloom", "chatglm"}

// exactRopeArchs assert that the rotated dimensions are the whole head.
var exactRopeArchs = []string{"qwen2", "qwen3", "qwen3moe", "mistral3", "olmo2", "smollm3", "ernie4_5", "ernie4_5-moe", "granite", "granitemoe", "gpt-oss", "apertus", "llama4",
	"exaone", "starcoder2", "olmo", "falcon", "deepseek", "dots1", "bailingmoe", "minicpm", "internlm2"}

// sameKVArchs assert that keys and values have one head size.
var sameKVArchs = []string{"llama", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "gemma-embedding", "phi3", "glm4moe", "mistral3", "command-r", "cohere2",
	"olmo2", "smollm3", "ernie4_5", "ernie4_5-moe", "granite", "granitemoe", "granitehybrid", "nemotron_h", "nemotron_h_moe", "bert", "gpt2", "gpt-oss",
	"nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "lfm2", "lfm2moe", "minimax-m2", "qwen3next", "falcon-h1", "apertus", "llama4",
	"exaone", "starcoder2", "nemotron", "phi2", "starcoder", "gptneox", "olmo", "falcon", "stablelm", "deepseek", "jamba", "dots1", "deci", "bailingmoe", "bailingmoe2", "minicpm", "internlm2", "bloom", "chatglm"}

// embdHeadArchs project the queries to the hidden size: heads × head size
// must be embedding_length (the graph's reshape aborts otherwise; the
// fused attn_qkv of bailingmoe2 is split there).
var embdHeadArchs = []string{"lfm2", "lfm2moe", "bailingmoe2", "internlm2"}

// checkHeads checks the attention's sizes: block_count not 0; the
// per-layer head counts and MLP widths integer arrays; head_count_kv
// dividing head_count in every layer, and the same in every layer where
// the arch takes layer 0's; key and value heads of one size where the arch
// asserts it; and rope.dimension_count even and at most the head size
// (the whole head where the arch asserts it).
func checkHeads(f *File, arch string, fail func(string, ...any) error) error {
	n, ok := f.Uint(arch + ".block_count")
	if !ok {
		return nil
	}
	if n == 0 {
		return fail("block_count is 0")
	}
	per := func(key string) ([]uint64, error) {
		v, ok := f.Lookup(arch + "." + key)
		if !ok {
			return nil, nil
		}
		if v.IsArray() && v.Elem() != ValueInt32 && v.Elem() != ValueUint32 {
			return nil, fail("%s has type %s; llama.cpp reads arr[i32] or arr[u32]", key, typeName(v))
		}
		xs, _ := f.LayerUints(arch+"."+key, int(n))
		return xs, nil // nil when of the wrong length: llama.cpp refuses that itself
	}
	heads, err := per("attention.head_count")
	if err != nil {
		return err
	}
	kv, err := per("attention.head_count_kv")
	if err != nil {
		return err
	}
	ff, err := per("feed_forward_length")
	if err != nil {
		return err
	}
	if (arch == "gemma2" || arch == "gemma3") && len(heads) > 0 && heads[0] == 0 {
		return fail("attention.head_count is 0 in layer 0")
	}
	if arch == "deci" {
		// Its graph sizes every head by layer 0's; and in the last layer
		// it picks the rows to output, then skips the rest of a block
		// without MLP, leaving them out of the graph: that aborts.
		if len(heads) > 0 && heads[0] == 0 && slices.ContainsFunc(heads, func(h uint64) bool { return h > 0 }) {
			return fail("attention.head_count is 0 in layer 0 and not in others")
		}
		if last := int(n) - 1; len(ff) == int(n) && ff[last] == 0 {
			return fail("feed_forward_length is 0 in the last layer (%d)", last)
		}
	}
	if arch == "qwen3next" {
		// Its graph sizes every attention layer's keys by layer 0's (the
		// KV cache by each layer's own); its recurrent layers (all but
		// every fourth) hold none whatever the key says.
		if len(kv) > 0 && kv[0] == 0 {
			return fail("attention.head_count_kv is 0 in layer 0")
		}
		for i := range kv {
			if (i+1)%4 == 0 && kv[i] != kv[0] {
				return fail("attention.head_count_kv %d in layer %d and %d in layer 0: qwen3next's attention layers take layer 0's", kv[i], i, kv[0])
			}
		}
	}
	for i := range kv {
		if i < len(heads) && kv[i] > 0 && heads[i]%kv[i] != 0 {
			return fail("attention.head_count %d is not a multiple of attention.head_count_kv %d in layer %d", heads[i], kv[i], i)
		}
		if slices.Contains(uniformHeadArchs, arch) && kv[i] != kv[0] {
			return fail("attention.head_count_kv differs between layers 0 (%d) and %d (%d)", kv[0], i, kv[i])
		}
	}
	kl, hasK := f.Uint(arch + ".attention.key_length")
	vl, hasV := f.Uint(arch + ".attention.value_length")
	if hasK && hasV && kl != vl && slices.Contains(sameKVArchs, arch) {
		return fail("attention.key_length %d and attention.value_length %d differ", kl, vl)
	}
	headDim := kl
	embd, _ := f.Uint(arch + ".embedding_length")
	if slices.Contains(embdHeadArchs, arch) && len(heads) > 0 {
		hd := kl
		if !hasK && heads[0] > 0 {
			hd = embd / heads[0]
		}
		for i, n := range heads {
			if n == 0 || n*hd != embd {
				return fail("attention.head_count %d of head size %d in layer %d: the queries must fill embedding_length %d", n, hd, i, embd)
			}
		}
	}
	if !hasK {
		if len(heads) == 0 || heads[0] == 0 {
			return nil
		}
		headDim = embd / heads[0]
	}
	if rot, ok := f.Uint(arch + ".rope.dimension_count"); ok && arch != "deepseek2" {
		switch {
		case rot%2 != 0 || rot > headDim:
			return fail("rope.dimension_count %d: want an even count of at most the head size %d", rot, headDim)
		case rot != headDim && slices.Contains(exactRopeArchs, arch):
			return fail("rope.dimension_count %d does not match the head size %d", rot, headDim)
		}
	}
	return nil
}

// checkArchKeys checks the keys of single archs llama.cpp asserts on: the
// pooling type, the experts' gating function, glm4moe's and
// ernie4_5-moe's experts, DeepSeek's latent attention and attention
// temperature (Mistral 3's takes its length from the rope), the Mamba-2
// sizes, LFM2's convolution width and LFM2-MoE's experts.
func checkArchKeys(f *File, arch string, fail func(string, ...any) error) error {
	get := func(key string) (uint64, bool) { return f.Uint(arch + "." + key) }
	if p, ok := get("pooling_type"); ok && p > 4 {
		return fail("pooling_type %d: llama.cpp knows 0 to 4", p)
	}
	if g, ok := get("expert_gating_func"); ok && g > 3 {
		return fail("expert_gating_func %d: llama.cpp knows 0 to 3", g)
	}
	if e, _ := get("expert_count"); arch == "bailingmoe" && e == 0 {
		// Not an abort: llama.cpp refuses to load it.
		return fmt.Errorf("gguf: %s: expert_count is 0: llama.cpp's bailingmoe needs experts: %w", arch, ErrInvalid)
	}
	if e, _ := get("expert_count"); (arch == "glm4moe" || arch == "qwen3next" || arch == "minimax-m2" || arch == "bailingmoe2") && e == 0 {
		return fail("expert_count is 0")
	}
	if g, ok := get("expert_gating_func"); arch == "minimax-m2" && (!ok || g == 0) {
		// llama.cpp sets no default for minimax-m2 and aborts on none.
		return fail("expert_gating_func is missing or 0")
	}
	if n, _ := get("nextn_predict_layers"); arch == "bailingmoe2" && n > 0 {
		if layers, _ := get("block_count"); n >= layers {
			return fail("nextn_predict_layers %d leaves none of block_count %d to run", n, layers)
		}
	}
	if s, ok := get("interleave_moe_layer_step"); ok && s == 0 && arch == "ernie4_5-moe" {
		return fail("interleave_moe_layer_step is 0")
	}
	if s, _ := get("interleave_moe_layer_step"); arch == "llama4" && s > 0 {
		if e, _ := get("expert_count"); e == 0 {
			// Its layers with experts would have routers of no experts.
			return fail("interleave_moe_layer_step %d puts experts in layers, and expert_count is 0", s)
		}
	}
	layers, _ := get("block_count")
	if w, ok := get("attention.sliding_window"); ok && w == 0 && (slices.Contains([]string{"gemma2", "cohere2", "gpt-oss"}, arch) || (arch == "exaone4" && layers == 64)) {
		// Not an abort: every position masked, NaN logits.
		return fmt.Errorf("gguf: %s: attention.sliding_window is 0: llama.cpp would mask every position (NaN logits): %w", arch, ErrInvalid)
	}
	if scale, ok := f.Float(arch + ".attention.temperature_scale"); ok && scale != 0 && arch == "deepseek2" {
		if n, _ := get("attention.temperature_length"); n == 0 {
			return fail("attention.temperature_scale %v without attention.temperature_length", scale)
		}
	}
	if arch == "deepseek2" {
		kMLA, _ := get("attention.key_length_mla")
		vMLA, _ := get("attention.value_length_mla")
		if kMLA > 0 && vMLA > 0 {
			rank, _ := get("attention.kv_lora_rank")
			rot, _ := get("rope.dimension_count")
			kl, _ := get("attention.key_length")
			vl, _ := get("attention.value_length")
			kv, _ := get("attention.head_count_kv")
			if kv != 1 || kl != rank+rot || vl != rank {
				return fail("latent attention: head_count_kv %d, key_length %d, value_length %d; want 1, kv_lora_rank + rope.dimension_count (%d), kv_lora_rank (%d)", kv, kl, vl, rank+rot, rank)
			}
		}
	}
	if l, ok := get("shortconv.l_cache"); ok && l != 3 && l != 4 {
		// lfm2 asserts a width above 1, ggml's CUDA convolution 3 or 4.
		return fail("shortconv.l_cache %d: ggml's CUDA convolution runs 3 or 4 only", l)
	}
	if arch == "lfm2moe" {
		dense, _ := get("leading_dense_block_count")
		if e, _ := get("expert_count"); e == 0 && dense < layers {
			return fail("leading_dense_block_count %d of block_count %d leaves layers with experts, and expert_count is 0", dense, layers)
		}
	}
	inner, ok := get("ssm.inner_size")
	if !ok {
		return nil
	}
	groups, _ := get("ssm.group_count")
	heads, _ := get("ssm.time_step_rank")
	state, _ := get("ssm.state_size")
	conv, hasConv := get("ssm.conv_kernel")
	embd, _ := get("embedding_length")
	mamba2 := arch == "granitehybrid" || arch == "nemotron_h" || arch == "nemotron_h_moe" || arch == "mamba2" || arch == "falcon-h1"
	switch {
	case hasConv && conv != 3 && conv != 4:
		return fail("ssm.conv_kernel %d: ggml's CUDA convolution runs 3 or 4 only", conv)
	case mamba2 && groups == 0:
		return fail("ssm.group_count is 0")
	case mamba2 && (heads == 0 || heads%groups != 0 || inner%heads != 0 || inner%groups != 0):
		return fail("ssm.time_step_rank %d, ssm.group_count %d, ssm.inner_size %d: the groups must divide the heads, and the heads and groups the inner size", heads, groups, inner)
	case (arch == "granitehybrid" || arch == "mamba2" || arch == "jamba") && inner != 2*embd:
		return fail("ssm.inner_size %d is not twice embedding_length %d", inner, embd)
	case arch == "qwen3next" && (groups == 0 || heads == 0 || state == 0 || heads%groups != 0 || inner != heads*state):
		// Its DeltaNet: groups key heads, heads value heads, all of
		// state_size; inner_size the value width.
		return fail("ssm.group_count %d, ssm.time_step_rank %d, ssm.state_size %d, ssm.inner_size %d: the key heads must divide the value heads, and the value heads of state_size fill inner_size", groups, heads, state, inner)
	}
	return nil
}

// checkTensorForms checks what llama.cpp builds test operations on before
// it checks tensor shapes: rope frequency factors in F32, embeddings of
// at most 2 dimensions, stacked experts of at most 3, Mamba's conv1d and
// A of 2; what ggml's kernels assert at the first decode: Mamba's and
// LFM2's convolution weights in F32; and that classifier.output_labels
// is an array of strings.
func checkTensorForms(f *File, arch string) error {
	if v, ok := f.Lookup(arch + ".classifier.output_labels"); ok && v.IsArray() && v.Elem() != ValueString {
		return fmt.Errorf("gguf: %s.classifier.output_labels has type %s, must be arr[str] (llama.cpp aborts): %w", arch, typeName(v), ErrInvalid)
	}
	for _, t := range f.Tensors {
		bad := ""
		dims := len(t.Shape)
		for dims > 1 && t.Shape[dims-1] == 1 {
			dims--
		}
		switch {
		case (t.Name == "rope_freqs.weight" || strings.HasPrefix(t.Name, "rope_factors_") || strings.HasSuffix(t.Name, ".rope_freqs.weight")) && t.Type != TypeF32:
			bad = "must be F32"
		case (t.Name == "token_embd.weight" || t.Name == "position_embd.weight" || t.Name == "token_types.weight") && dims > 2:
			bad = "must have at most 2 dimensions"
		case strings.HasSuffix(t.Name, "_exps.weight") && dims > 3:
			bad = "must have at most 3 dimensions"
		case (strings.HasSuffix(t.Name, ".ssm_conv1d.weight") || strings.HasSuffix(t.Name, ".ssm_a")) && dims > 2:
			bad = "must have at most 2 dimensions"
		case (strings.HasSuffix(t.Name, ".ssm_conv1d.weight") || strings.HasSuffix(t.Name, ".shortconv.conv.weight")) && t.Type != TypeF32:
			bad = "must be F32 (ggml's convolution reads F32 only)"
		}
		if bad != "" {
			return fmt.Errorf("gguf: tensor %s (%s, shape %v) %s (llama.cpp aborts): %w", t.Name, t.Type, t.Shape, bad, ErrInvalid)
		}
	}
	return nil
}
