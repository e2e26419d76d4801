package engine

/*
#include "llama_api.h"
*/
import "C"

import "strings"

// SystemInfo describes the llama.cpp build linked into the program.
type SystemInfo struct {
	// LlamaCppCommit is the vendored llama.cpp commit.
	LlamaCppCommit string
	// Backends lists, per registered ggml backend, the features it was built
	// with, e.g. "CPU": ["AVX", "AVX2", "FMA", "F16C", ...].
	Backends map[string][]string
	// SupportsMmap, SupportsMlock and SupportsGPUOffload are llama.cpp's
	// capability checks.
	SupportsMmap, SupportsMlock, SupportsGPUOffload bool
	// Raw is llama_print_system_info's text.
	Raw string
}

// System returns facts about the linked llama.cpp build, notably the CPU
// features compiled in (a build without -march flags lacks AVX2/FMA and is
// several times slower).
func System() SystemInfo {
	raw := C.GoString(C.llama_print_system_info())
	return SystemInfo{
		LlamaCppCommit:     LlamaCppCommit,
		Backends:           parseSystemInfo(raw),
		SupportsMmap:       bool(C.llama_supports_mmap()),
		SupportsMlock:      bool(C.llama_supports_mlock()),
		SupportsGPUOffload: bool(C.llama_supports_gpu_offload()),
		Raw:                strings.TrimSpace(raw),
	}
}

// parseSystemInfo reads "CPU : SSE3 = 1 | AVX = 1 | ... | " into the enabled
// features of each backend. A feature with a value other than 0 (such as
// "REPACK = 1" or "LLAMAFILE = 1") is listed.
func parseSystemInfo(raw string) map[string][]string {
	out := map[string][]string{}
	backend := ""
	for _, field := range strings.Split(raw, "|") {
		field = strings.TrimSpace(field)
		if name, rest, ok := strings.Cut(field, " : "); ok {
			backend = strings.TrimSpace(name)
			field = rest
			if _, seen := out[backend]; !seen {
				out[backend] = []string{}
			}
		}
		k, v, ok := strings.Cut(field, "=")
		if !ok || backend == "" {
			continue
		}
		if v = strings.TrimSpace(v); v != "0" && v != "" {
			out[backend] = append(out[backend], strings.TrimSpace(k))
		}
	}
	return out
}
