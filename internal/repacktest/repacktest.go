// Package repacktest helps tests of ggml's weight repacking: whether this
// build repacks, a small model it repacks, and where a load put the
// weights. (It is apart from testmodel, which engine's internal tests
// import, because it uses engine.)
package repacktest

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/synth"
)

// SkipUnlessRepacking skips the test where this build repacks no Q4_0
// weights: without REPACK among the CPU backend's features (the Makefile
// compiles it in), without the kernels ggml repacks for (chosen when it is
// compiled: AVX2, or NEON with dot products), or with a GPU backend, where
// llama.cpp puts the CPU's weights in pinned host buffers, never repacked.
func SkipUnlessRepacking(t testing.TB) {
	t.Helper()
	if engine.HaveGPU() {
		t.Skip("with a GPU backend, llama.cpp puts the CPU's weights in pinned host buffers, never repacked")
	}
	f := engine.System().Backends["CPU"]
	if !slices.Contains(f, "REPACK") {
		t.Skipf("built without -DGGML_USE_CPU_REPACK (the Makefile sets it): %v", f)
	}
	if !slices.Contains(f, "AVX2") && !(slices.Contains(f, "NEON") && slices.Contains(f, "DOTPROD")) {
		t.Skipf("ggml repacks Q4_0 for AVX2 and NEON with dot products; this build has neither: %v", f)
	}
}

// RepackQ4 writes a small one-block Q4_0 model whose matrices ggml repacks
// (none of them suits AMX), in a temporary directory, and returns its
// path; it skips the test where nothing would be repacked
// (SkipUnlessRepacking).
func RepackQ4(t testing.TB) string {
	t.Helper()
	SkipUnlessRepacking(t)
	shape := synth.Shape{Name: "repack", Vocab: 512, Embd: 256, FF: 512, Layers: 1, Heads: 4, KVHeads: 4,
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
	path := filepath.Join(t.TempDir(), "q4.gguf")
	if err := synth.Create(context.Background(), path, shape, "Q4_0", 1, 2); err != nil {
		t.Fatal(err)
	}
	return path
}

// ModelBuffers returns the lines of llama.cpp's log text that say where a
// load put the weights ("CPU_REPACK model buffer size = ...").
func ModelBuffers(log string) []string {
	var lines []string
	for l := range strings.Lines(log) {
		if strings.Contains(l, "model buffer size") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}
