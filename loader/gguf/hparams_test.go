package gguf

import (
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
