package llm_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/synth"
)

// TestWithNoRepack: a pipeline loads a Q4_0 model's matrices into ggml's
// repacked buffers unless WithNoRepack keeps them in the mapped file, as
// engine.ModelOptions.NoRepack does (engine's TestWeightRepacking checks
// the buffers' results).
func TestWithNoRepack(t *testing.T) {
	if engine.HaveGPU() {
		t.Skip("with a GPU backend, llama.cpp puts the CPU's weights in pinned host buffers, never repacked")
	}
	features := engine.System().Backends["CPU"]
	if !slices.Contains(features, "REPACK") || !slices.Contains(features, "AVX2") {
		t.Skipf("this build repacks no Q4_0 weights (the Makefile's builds for AVX2 do): %v", features)
	}
	shape := synth.Shape{Name: "repack", Vocab: 512, Embd: 256, FF: 512, Layers: 1, Heads: 4, KVHeads: 4,
		Context: 256, RopeTheta: 10000, NormEps: 1e-5}
	path := filepath.Join(t.TempDir(), "q4.gguf")
	if err := synth.Create(context.Background(), path, shape, "Q4_0", 1, 2); err != nil {
		t.Fatal(err)
	}
	buffers := func(opts ...llm.Option) string {
		var buf bytes.Buffer
		engine.SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
		p, err := llm.New(context.Background(), path, append([]llm.Option{llm.WithThreads(1), llm.WithContextLength(64)}, opts...)...)
		engine.SetLogger(nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		var lines []string
		for l := range strings.Lines(buf.String()) {
			if strings.Contains(l, "model buffer size") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		return strings.Join(lines, "\n")
	}
	if got := buffers(); !strings.Contains(got, "CPU_REPACK model buffer") {
		t.Errorf("default: no repacked buffer:\n%s", got)
	}
	if got := buffers(llm.WithNoRepack()); strings.Contains(got, "REPACK") || strings.Contains(got, "AMX") {
		t.Errorf("WithNoRepack: repacked buffers:\n%s", got)
	}
}
