package gguf

import (
	"fmt"
	"slices"
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
//   - {arch}.rope.scaling.type one of none, linear, yarn and longrope.
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
	return nil
}
