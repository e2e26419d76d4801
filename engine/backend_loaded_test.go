package engine_test

import (
	"context"
	"os"
	"testing"

	"github.com/llm-go/llm/engine"
)

// TestLoadedBackend loads the backend libraries in LLM_TEST_BACKEND_DIR
// (make test-backends builds ggml's BLAS backend there with
// backends/CMakeLists.txt, the same way make cuda builds CUDA) and checks
// that a model computes correctly with it: the reference continuation of
// stories260K, fed in one batch large enough for the backend to take the
// matrix products, must predict every next token. It runs in its own
// process: a loaded backend stays loaded.
func TestLoadedBackend(t *testing.T) {
	dir := os.Getenv("LLM_TEST_BACKEND_DIR")
	if dir == "" {
		t.Skip("LLM_TEST_BACKEND_DIR is not set (make test-backends sets it)")
	}
	if err := engine.LoadBackends(dir); err != nil {
		t.Fatal(err)
	}
	before := len(engine.Devices())
	var names []string
	for _, d := range engine.Devices() {
		names = append(names, d.Name)
	}
	if before < 2 {
		t.Fatalf("no device added by the backends in %s: %v", dir, names)
	}
	t.Logf("devices: %v", names)
	if err := engine.LoadBackends(dir); err != nil || len(engine.Devices()) != before {
		t.Errorf("loading the same directory twice: %v, %d devices", err, len(engine.Devices()))
	}

	ref := readReference(t, "stories260K_reference.json")
	p := ref.Prompts[0]
	seq := tokens(append(append([]int(nil), p.PromptIDs...), p.GeneratedIDs...))
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	c := newContext(t, m, engine.ContextOptions{ContextLength: 256})
	b := newBatch(t, len(seq), 1)
	for i, tok := range seq {
		b.Add(tok, engine.Pos(i), true)
	}
	if err := c.Decode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for i := len(p.PromptIDs) - 1; i < len(seq)-1; i++ {
		l, err := c.Logits(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := argmax(l); got != seq[i+1] {
			t.Fatalf("position %d predicts %d, the reference continues with %d", i, got, seq[i+1])
		}
	}
}
