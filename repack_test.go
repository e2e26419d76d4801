package llm_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/repacktest"
)

// TestWithNoRepack: a pipeline loads a Q4_0 model's matrices into ggml's
// repacked buffers unless WithNoRepack keeps them in the mapped file, as
// engine.ModelOptions.NoRepack does (engine's TestWeightRepacking checks
// the buffers' results).
func TestWithNoRepack(t *testing.T) {
	path := repacktest.RepackQ4(t)
	buffers := func(opts ...llm.Option) string {
		var buf bytes.Buffer
		engine.SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
		p, err := llm.New(context.Background(), path, append([]llm.Option{llm.WithThreads(1), llm.WithContextLength(64)}, opts...)...)
		engine.SetLogger(nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		return strings.Join(repacktest.ModelBuffers(buf.String()), "\n")
	}
	if got := buffers(); !strings.Contains(got, "CPU_REPACK model buffer") {
		t.Errorf("default: no repacked buffer:\n%s", got)
	}
	if got := buffers(llm.WithNoRepack()); strings.Contains(got, "REPACK") || strings.Contains(got, "AMX") {
		t.Errorf("WithNoRepack: repacked buffers:\n%s", got)
	}
}
