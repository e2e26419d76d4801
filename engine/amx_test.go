//go:build llm_amx

package engine_test

import (
	"slices"
	"testing"

	"github.com/llm-go/llm/engine"
)

// amxBuild: this test binary was built with the tag llm_amx, as the
// Makefile builds where the CPU flags enable AMX.
const amxBuild = true

// TestAMXCompiledIn: a build with the tag lists AMX among the CPU backend's
// features (its flags must enable AMX, or ggml compiles the AMX code empty).
func TestAMXCompiledIn(t *testing.T) {
	if f := engine.System().Backends["CPU"]; !slices.Contains(f, "AMX_INT8") {
		t.Fatalf("built with llm_amx but the CPU backend lists no AMX_INT8: %v", f)
	}
}
