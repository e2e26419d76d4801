package gguf

import (
	"io"
	"path/filepath"
	"testing"
)

// TestValidateModelHparams checks the hyperparameters llama.cpp asserts on
// are refused with an error naming them, and the layouts real models have
// pass.
func TestValidateModelHparams(t *testing.T) {
	u := func(k string, v uint32) KV { return KV{"llama." + k, Uint32(v)} }
	tests := []struct {
		name  string
		kv    []KV
		words []string // nil: valid
	}{
		{name: "dense"},
		{name: "Mixtral", kv: []KV{u("expert_count", 8), u("expert_used_count", 2)}},
		{name: "DeepSeek V3 groups", kv: []KV{u("expert_count", 256), u("expert_used_count", 8), u("expert_group_count", 8), u("expert_group_used_count", 4)}},
		{name: "one group", kv: []KV{u("expert_count", 128), u("expert_used_count", 8), u("expert_group_count", 1), u("expert_group_used_count", 1)}},
		{name: "rope yarn", kv: []KV{{"llama.rope.scaling.type", String("yarn")}}},
		{name: "too many experts", kv: []KV{u("expert_count", 1024), u("expert_used_count", 8)}, words: []string{"expert_count 1024"}},
		{name: "used over experts", kv: []KV{u("expert_count", 4), u("expert_used_count", 8)}, words: []string{"expert_used_count 8 of expert_count 4"}},
		{name: "used without experts", kv: []KV{u("expert_used_count", 2)}, words: []string{"expert_used_count 2 of expert_count 0"}},
		{name: "experts none used", kv: []KV{u("expert_count", 8)}, words: []string{"no expert_used_count"}},
		{name: "groups without experts", kv: []KV{u("expert_group_count", 2)}, words: []string{"without experts"}},
		{name: "as many groups as experts", kv: []KV{u("expert_count", 8), u("expert_used_count", 2), u("expert_group_count", 8), u("expert_group_used_count", 2)}, words: []string{"expert_group_count 8 of expert_count 8"}},
		{name: "groups not dividing", kv: []KV{u("expert_count", 8), u("expert_used_count", 2), u("expert_group_count", 3), u("expert_group_used_count", 1)}, words: []string{"must divide"}},
		{name: "every group used", kv: []KV{u("expert_count", 8), u("expert_used_count", 2), u("expert_group_count", 4), u("expert_group_used_count", 4)}, words: []string{"some but not all"}},
		{name: "no group used", kv: []KV{u("expert_count", 8), u("expert_used_count", 2), u("expert_group_count", 4)}, words: []string{"some but not all"}},
		{name: "rope dynamic", kv: []KV{{"llama.rope.scaling.type", String("dynamic")}}, words: []string{`rope.scaling.type "dynamic"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter()
			w.Set("general.architecture", String("llama"))
			for _, kv := range tc.kv {
				w.Set(kv.Key, kv.Value)
			}
			p := filepath.Join(t.TempDir(), "h.gguf")
			if err := w.WriteFile(p); err != nil {
				t.Fatal(err)
			}
			_, err := ValidateModel(p)
			if tc.words == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, ErrInvalid, append(tc.words, p, "llama.cpp aborts")...)
		})
	}
}

// TestValidateModelShapes checks the attention, arch and tensor-form
// conditions llama.cpp asserts on (at load, context creation or the first
// decode) are refused, and real layouts pass.
func TestValidateModelShapes(t *testing.T) {
	type tensor struct {
		name  string
		typ   Type
		shape []uint64
	}
	u := func(k string, v uint32) KV { return KV{k, Uint32(v)} }
	llama := []KV{{"general.architecture", String("llama")}, u("llama.block_count", 2), u("llama.embedding_length", 64),
		u("llama.attention.head_count", 4), u("llama.attention.head_count_kv", 2), u("llama.rope.dimension_count", 16)}
	with := func(base []KV, kv ...KV) []KV { return append(append([]KV(nil), base...), kv...) }
	as := func(arch string, kv ...KV) []KV {
		out := []KV{{"general.architecture", String(arch)}, u(arch+".block_count", 2), u(arch+".embedding_length", 64), u(arch+".attention.head_count", 4)}
		for _, x := range kv {
			x.Key = arch + "." + x.Key
			out = append(out, x)
		}
		return out
	}
	tests := []struct {
		name    string
		kv      []KV
		tensors []tensor
		words   []string // nil: valid
	}{
		{name: "llama", kv: llama},
		{name: "phi3 partial rope", kv: as("phi3", u("rope.dimension_count", 8))},
		{name: "granitehybrid", kv: as("granitehybrid", KV{"attention.head_count_kv", Uint32s([]uint32{0, 2})}, u("ssm.inner_size", 128),
			u("ssm.group_count", 1), u("ssm.time_step_rank", 8), u("ssm.conv_kernel", 4))},
		{name: "deepseek2 MLA", kv: as("deepseek2", u("attention.head_count_kv", 1), u("attention.key_length_mla", 192), u("attention.value_length_mla", 128),
			u("attention.kv_lora_rank", 512), u("rope.dimension_count", 64), u("attention.key_length", 576), u("attention.value_length", 512))},
		{name: "rope_freqs F32", kv: llama, tensors: []tensor{{"rope_freqs.weight", TypeF32, []uint64{8}}}},
		{name: "block_count 0", kv: with(llama, u("llama.block_count", 0)), words: []string{"block_count is 0"}},
		{name: "odd rope", kv: with(llama, u("llama.rope.dimension_count", 15)), words: []string{"rope.dimension_count 15"}},
		{name: "rope past the head", kv: with(llama, u("llama.rope.dimension_count", 32)), words: []string{"rope.dimension_count 32"}},
		{name: "qwen2 partial rope", kv: as("qwen2", u("rope.dimension_count", 8)), words: []string{"does not match the head size 16"}},
		{name: "KV heads per layer", kv: with(llama, KV{"llama.attention.head_count_kv", Uint32s([]uint32{2, 4})}), words: []string{"differs between layers"}},
		{name: "heads not a multiple", kv: with(llama, u("llama.attention.head_count_kv", 3)), words: []string{"not a multiple"}},
		{name: "float head counts", kv: with(llama, KV{"llama.attention.head_count", Float32s([]float32{4, 4})}), words: []string{"attention.head_count has type arr[f32]"}},
		{name: "key and value sizes", kv: with(llama, u("llama.attention.key_length", 16), u("llama.attention.value_length", 32)), words: []string{"key_length 16 and attention.value_length 32"}},
		{name: "deci", kv: as("deci", KV{"attention.head_count", Uint32s([]uint32{4, 0})}, KV{"attention.head_count_kv", Uint32s([]uint32{2, 0})},
			KV{"feed_forward_length", Uint32s([]uint32{256, 256})})},
		{name: "deci no heads in layer 0", kv: as("deci", KV{"attention.head_count", Uint32s([]uint32{0, 4})}, KV{"attention.head_count_kv", Uint32s([]uint32{0, 2})}),
			words: []string{"head_count is 0 in layer 0 and not in others"}},
		{name: "deci last layer empty", kv: as("deci", KV{"attention.head_count", Uint32s([]uint32{4, 0})}, KV{"attention.head_count_kv", Uint32s([]uint32{2, 0})},
			KV{"feed_forward_length", Uint32s([]uint32{256, 0})}), words: []string{"feed_forward_length is 0 in the last layer (1)"}},
		{name: "deci last layer without MLP", kv: as("deci", KV{"attention.head_count", Uint32s([]uint32{4, 4})}, KV{"attention.head_count_kv", Uint32s([]uint32{2, 2})},
			KV{"feed_forward_length", Uint32s([]uint32{256, 0})}), words: []string{"feed_forward_length is 0 in the last layer (1)"}},
		{name: "mamba2 width", kv: as("mamba2", u("ssm.inner_size", 192), u("ssm.group_count", 1), u("ssm.time_step_rank", 8)), words: []string{"not twice"}},
		{name: "jamba width", kv: as("jamba", u("ssm.inner_size", 192)), words: []string{"not twice"}},
		{name: "gemma2 no heads", kv: as("gemma2", KV{"attention.head_count", Uint32s([]uint32{0, 4})}), words: []string{"head_count is 0 in layer 0"}},
		{name: "pooling 7", kv: as("bert", u("pooling_type", 7)), words: []string{"pooling_type 7"}},
		{name: "gating 4", kv: as("deepseek2", u("expert_gating_func", 4)), words: []string{"expert_gating_func 4"}},
		{name: "glm4moe no experts", kv: as("glm4moe"), words: []string{"expert_count is 0"}},
		{name: "bailingmoe2", kv: as("bailingmoe2", u("expert_count", 4), u("expert_used_count", 2), u("nextn_predict_layers", 1))},
		{name: "minicpm partial rope", kv: as("minicpm", u("rope.dimension_count", 8)), words: []string{"does not match the head size 16"}},
		{name: "internlm2 heads of 32", kv: as("internlm2", u("attention.key_length", 32), u("attention.value_length", 32)), words: []string{"head size 32", "embedding_length 64"}},
		{name: "internlm2 key and value sizes", kv: as("internlm2", u("attention.key_length", 16), u("attention.value_length", 32)), words: []string{"key_length 16"}},
		{name: "bailingmoe no experts", kv: as("bailingmoe"), words: []string{"expert_count is 0"}},
		{name: "chatglm partial rope", kv: as("chatglm", u("rope.dimension_count", 8))},
		{name: "chatglm key and value sizes", kv: as("chatglm", u("attention.key_length", 16), u("attention.value_length", 32)), words: []string{"key_length 16"}},
		{name: "chatglm KV heads per layer", kv: as("chatglm", KV{"attention.head_count_kv", Uint32s([]uint32{2, 4})}), words: []string{"differs between layers"}},
		{name: "bailingmoe partial rope", kv: as("bailingmoe", u("expert_count", 4), u("expert_used_count", 2), u("rope.dimension_count", 8)),
			words: []string{"does not match the head size 16"}},
		{name: "bailingmoe2 no experts", kv: as("bailingmoe2"), words: []string{"expert_count is 0"}},
		{name: "bailingmoe2 all next-token layers", kv: as("bailingmoe2", u("expert_count", 4), u("expert_used_count", 2), u("nextn_predict_layers", 2)),
			words: []string{"nextn_predict_layers 2", "block_count 2"}},
		{name: "bailingmoe2 heads of 32", kv: as("bailingmoe2", u("expert_count", 4), u("expert_used_count", 2), u("attention.key_length", 32), u("attention.value_length", 32)),
			words: []string{"head size 32", "embedding_length 64"}},
		{name: "llama4 dense", kv: as("llama4", u("interleave_moe_layer_step", 0), u("rope.dimension_count", 16))},
		{name: "llama4 experts", kv: as("llama4", u("interleave_moe_layer_step", 2), u("expert_count", 4), u("expert_used_count", 1), u("rope.dimension_count", 16))},
		{name: "llama4 no experts", kv: as("llama4", u("interleave_moe_layer_step", 1)), words: []string{"expert_count is 0"}},
		{name: "llama4 partial rope", kv: as("llama4", u("rope.dimension_count", 8)), words: []string{"does not match the head size 16"}},
		{name: "ernie step 0", kv: as("ernie4_5-moe", u("interleave_moe_layer_step", 0)), words: []string{"interleave_moe_layer_step is 0"}},
		{name: "deepseek2 MLA widths", kv: as("deepseek2", u("attention.head_count_kv", 1), u("attention.key_length_mla", 192), u("attention.value_length_mla", 128),
			u("attention.kv_lora_rank", 512), u("rope.dimension_count", 64), u("attention.key_length", 512), u("attention.value_length", 512)), words: []string{"latent attention"}},
		{name: "deepseek2 temperature", kv: as("deepseek2", KV{"attention.temperature_scale", Float32(0.1)}), words: []string{"without attention.temperature_length"}},
		{name: "no SSM groups", kv: as("nemotron_h", u("ssm.inner_size", 128), u("ssm.time_step_rank", 8)), words: []string{"ssm.group_count is 0"}},
		{name: "SSM heads and groups", kv: as("nemotron_h", u("ssm.inner_size", 128), u("ssm.time_step_rank", 8), u("ssm.group_count", 3)), words: []string{"the groups must divide"}},
		{name: "granitehybrid width", kv: as("granitehybrid", u("ssm.inner_size", 192), u("ssm.group_count", 1), u("ssm.time_step_rank", 8)), words: []string{"not twice"}},
		{name: "SSM kernel 5", kv: as("mamba", u("ssm.inner_size", 128), u("ssm.conv_kernel", 5)), words: []string{"ssm.conv_kernel 5"}},
		{name: "rope_freqs F16", kv: llama, tensors: []tensor{{"rope_freqs.weight", TypeF16, []uint64{8}}}, words: []string{"rope_freqs.weight", "must be F32"}},
		{name: "embeddings 3-D", kv: llama, tensors: []tensor{{"token_embd.weight", TypeF32, []uint64{64, 10, 2}}}, words: []string{"token_embd.weight", "at most 2"}},
		{name: "exaone4 64 layers window 0", kv: append(as("exaone4", u("attention.sliding_window", 0)), u("exaone4.block_count", 64)), words: []string{"sliding_window is 0"}},
		{name: "gemma2 window 0", kv: as("gemma2", u("attention.sliding_window", 0)), words: []string{"sliding_window is 0", "NaN"}},
		{name: "lfm2", kv: as("lfm2", KV{"attention.head_count_kv", Uint32s([]uint32{0, 2})}, u("shortconv.l_cache", 3)),
			tensors: []tensor{{"blk.0.shortconv.conv.weight", TypeF32, []uint64{3, 64}}}},
		{name: "lfm2 heads of 32", kv: as("lfm2", u("shortconv.l_cache", 3), u("attention.key_length", 32), u("attention.value_length", 32)), words: []string{"head size 32", "embedding_length 64"}},
		{name: "lfm2 heads not dividing", kv: as("lfm2moe", u("attention.head_count", 5)), words: []string{"attention.head_count 5"}},
		{name: "lfm2 key and value sizes", kv: as("lfm2", u("attention.key_length", 16), u("attention.value_length", 32)), words: []string{"key_length 16"}},
		{name: "lfm2 width 2", kv: as("lfm2", u("shortconv.l_cache", 2)), words: []string{"shortconv.l_cache 2"}},
		{name: "lfm2 conv F16", kv: as("lfm2", u("shortconv.l_cache", 3)), tensors: []tensor{{"blk.0.shortconv.conv.weight", TypeF16, []uint64{3, 64}}}, words: []string{"shortconv.conv.weight", "must be F32"}},
		{name: "mamba conv1d F16", kv: llama, tensors: []tensor{{"blk.0.ssm_conv1d.weight", TypeF16, []uint64{4, 64}}}, words: []string{"ssm_conv1d.weight", "must be F32"}},
		{name: "qwen3next", kv: as("qwen3next", u("attention.head_count_kv", 2), u("ssm.inner_size", 64), u("ssm.state_size", 16), u("ssm.time_step_rank", 4),
			u("ssm.group_count", 2), u("ssm.conv_kernel", 4), u("expert_count", 4), u("expert_used_count", 2))},
		{name: "qwen3next no experts", kv: as("qwen3next", u("attention.head_count_kv", 2)), words: []string{"expert_count is 0"}},
		{name: "qwen3next value heads", kv: as("qwen3next", u("expert_count", 4), u("expert_used_count", 2), u("ssm.inner_size", 64), u("ssm.state_size", 16), u("ssm.time_step_rank", 3), u("ssm.group_count", 2)),
			words: []string{"ssm.time_step_rank 3"}},
		{name: "qwen3next inner size", kv: as("qwen3next", u("expert_count", 4), u("expert_used_count", 2), u("ssm.inner_size", 96), u("ssm.state_size", 16), u("ssm.time_step_rank", 4), u("ssm.group_count", 2)),
			words: []string{"ssm.inner_size 96"}},
		{name: "qwen3next no KV heads in layer 0", kv: as("qwen3next", KV{"attention.head_count_kv", Uint32s([]uint32{0, 2})}), words: []string{"head_count_kv is 0 in layer 0"}},
		{name: "qwen3next KV heads differ", kv: append(as("qwen3next", KV{"attention.head_count_kv", Uint32s([]uint32{2, 0, 0, 4, 0, 0, 0, 2})}), u("qwen3next.block_count", 8)),
			words: []string{"head_count_kv 4 in layer 3"}},
		{name: "qwen3next key and value sizes", kv: as("qwen3next", u("attention.key_length", 16), u("attention.value_length", 32)), words: []string{"key_length 16"}},
		{name: "qwen3next no state", kv: as("qwen3next", u("expert_count", 4), u("expert_used_count", 2), u("ssm.inner_size", 0), u("ssm.state_size", 0), u("ssm.time_step_rank", 4), u("ssm.group_count", 2)),
			words: []string{"ssm.state_size 0"}},
		{name: "falcon-h1", kv: as("falcon-h1", u("ssm.inner_size", 96), u("ssm.group_count", 2), u("ssm.time_step_rank", 6), u("ssm.conv_kernel", 4))},
		{name: "falcon-h1 groups", kv: as("falcon-h1", u("ssm.inner_size", 96), u("ssm.group_count", 4), u("ssm.time_step_rank", 6)), words: []string{"ssm.group_count 4"}},
		{name: "minimax-m2", kv: as("minimax-m2", u("expert_count", 4), u("expert_used_count", 2), u("expert_gating_func", 2))},
		{name: "minimax-m2 no gating", kv: as("minimax-m2", u("expert_count", 4), u("expert_used_count", 2)), words: []string{"expert_gating_func is missing"}},
		{name: "minimax-m2 no experts", kv: as("minimax-m2", u("expert_gating_func", 2)), words: []string{"expert_count is 0"}},
		{name: "minimax-m2 KV heads differ", kv: as("minimax-m2", KV{"attention.head_count_kv", Uint32s([]uint32{2, 4})}, u("expert_count", 4), u("expert_used_count", 2), u("expert_gating_func", 2)),
			words: []string{"differs between layers"}},
		{name: "lfm2moe", kv: as("lfm2moe", u("leading_dense_block_count", 1), u("expert_count", 4), u("expert_used_count", 2))},
		{name: "lfm2moe all dense", kv: as("lfm2moe", u("leading_dense_block_count", 2))},
		{name: "lfm2moe no experts", kv: as("lfm2moe", u("leading_dense_block_count", 1)), words: []string{"leading_dense_block_count 1", "expert_count is 0"}},
		{name: "labels not strings", kv: as("bert", KV{"classifier.output_labels", Uint32s([]uint32{1, 2})}), words: []string{"classifier.output_labels"}},
	}
	// A vocabulary-only load reads no hyperparameters: it is not refused.
	w := NewWriter()
	for _, kv := range with(llama, u("llama.block_count", 0)) {
		w.Set(kv.Key, kv.Value)
	}
	vp := filepath.Join(t.TempDir(), "v.gguf")
	if err := w.WriteFile(vp); err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateVocab(vp); err != nil {
		t.Errorf("ValidateVocab: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter()
			for _, kv := range tc.kv {
				w.Set(kv.Key, kv.Value)
			}
			for _, ti := range tc.tensors {
				n := uint64(1)
				for _, d := range ti.shape {
					n *= d
				}
				size := int(n) * 4
				if ti.typ == TypeF16 {
					size = int(n) * 2
				}
				if err := w.AddTensor(ti.name, ti.typ, ti.shape, func(wr io.Writer) error { _, err := wr.Write(make([]byte, size)); return err }); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(t.TempDir(), "s.gguf")
			if err := w.WriteFile(p); err != nil {
				t.Fatal(err)
			}
			_, err := ValidateModel(p)
			if tc.words == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, ErrInvalid, append(tc.words, p)...)
		})
	}
}
