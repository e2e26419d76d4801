package engine_test

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/repacktest"
	"github.com/llm-go/llm/synth"
)

// repackShape is a one-block Q4_0 model whose matrices ggml's CPU backend
// rearranges at load: its AMX code takes matrices of 2048 columns (the
// attention's, with AMX compiled in), the AVX2 repacking the rest of those
// with rows in multiples of 8 (the MLP's 1024-column down projection).
var repackShape = synth.Shape{Name: "repack-test", Vocab: 512, Embd: 2048, FF: 1024, Layers: 1,
	Heads: 16, KVHeads: 16, Context: 256, RopeTheta: 10000, NormEps: 1e-5}

// loadLogged loads path with opts and returns the model and the "model
// buffer size" lines llama.cpp logged while loading it.
func loadLogged(t *testing.T, path string, opts engine.ModelOptions) (*engine.Model, []string) {
	t.Helper()
	var buf bytes.Buffer
	engine.SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	m, err := engine.LoadModel(context.Background(), path, opts)
	engine.SetLogger(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, repacktest.ModelBuffers(buf.String())
}

func hasBuffer(lines []string, name string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, " "+name+" model buffer size") })
}

// TestWeightRepacking: in the Makefile's builds (CGO_CPPFLAGS carries
// -DGGML_USE_CPU_REPACK, and the build tag llm_amx where the CPU has AMX)
// Q4_0 and Q4_K_M models' matrices are loaded into ggml's repacked buffers
// (and AMX buffers with AMX), NoRepack keeps them in the mapped file, and
// both give the same logits up to rounding.
func TestWeightRepacking(t *testing.T) {
	if f := engine.System().Backends["CPU"]; !slices.Contains(f, "REPACK") && strings.Contains(os.Getenv("CGO_CPPFLAGS"), "-DGGML_USE_CPU_REPACK") {
		t.Fatalf("built with -DGGML_USE_CPU_REPACK but the CPU backend lists no REPACK: %v", f)
	}
	repacktest.SkipUnlessRepacking(t)
	// Q4_0: AMX (where built) takes the attention, repacking the rest.
	// Q4_K_M: repacking takes the Q4_K matrices, or AMX all of them.
	for _, typ := range []string{"Q4_0", "Q4_K_M"} {
		t.Run(typ, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), typ+".gguf")
			if err := synth.Create(context.Background(), path, repackShape, typ, 1, 2); err != nil {
				t.Fatal(err)
			}
			packed, lines := loadLogged(t, path, engine.ModelOptions{})
			switch {
			case typ == "Q4_0" && !hasBuffer(lines, "CPU_REPACK"):
				t.Errorf("no repacked buffer: %q", lines)
			case amxBuild && !hasBuffer(lines, "AMX"):
				t.Errorf("built for AMX but no AMX buffer: %q", lines)
			case !hasBuffer(lines, "CPU_REPACK") && !hasBuffer(lines, "AMX"):
				t.Errorf("no repacked buffer: %q", lines)
			}
			plain, lines := loadLogged(t, path, engine.ModelOptions{NoRepack: true})
			if hasBuffer(lines, "CPU_REPACK") || hasBuffer(lines, "AMX") || !hasBuffer(lines, "CPU_Mapped") {
				t.Errorf("NoRepack: want only the mapped file, got %q", lines)
			}
			compareLogits(t, plain, packed)
		})
	}
}

// compareLogits checks that packed, the model loaded with its weights
// repacked, gives plain's logits after a one-token and an 8-token prompt.
// The kernels quantize the activations to 8 bits each their own way: on
// the test's random weights the logits of an 8-token prompt differ by up to
// about 1% of the largest, where both lie 15% to 21% from the F32 model's (the
// price of 4-bit weights). Weights rearranged wrongly give differences of
// the logits' own size.
func compareLogits(t *testing.T, plain, packed *engine.Model) {
	t.Helper()
	ctxOpts := engine.ContextOptions{ContextLength: 64}
	for _, prompt := range [][]engine.Token{{1}, {1, 17, 300, 42, 99, 7, 256, 511}} {
		_, want := greedy(t, newContext(t, plain, ctxOpts), prompt, 1, false)
		_, got := greedy(t, newContext(t, packed, ctxOpts), prompt, 1, false)
		var diff, scale float64
		for i := range want {
			diff = max(diff, math.Abs(float64(got[i]-want[i])))
			scale = max(scale, math.Abs(float64(want[i])))
		}
		t.Logf("%d-token prompt: repacked against plain: max |Δlogit| %.3g of max |logit| %.3g", len(prompt), diff, scale)
		if scale == 0 || diff > 0.05*scale {
			t.Errorf("%d-token prompt: repacked logits differ: max |Δ| %g of max |logit| %g", len(prompt), diff, scale)
		}
	}
}
