package engine_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
)

// TestBackendWithoutDevice loads, from LLM_TEST_NODEVICE_DIR, a backend
// library that registers no device and logs why through its own copy of
// ggml-base, as CUDA does on a machine without a usable driver (make
// test-backends builds it from backends/testdata/nodevice.cpp). The error
// must match ErrNoDevice and carry the backend's reason, which reaches us
// only if that library's log is routed into ours; models still run on the
// CPU. It runs in its own process: a loaded backend stays loaded.
func TestBackendWithoutDevice(t *testing.T) {
	dir := os.Getenv("LLM_TEST_NODEVICE_DIR")
	if dir == "" {
		t.Skip("LLM_TEST_NODEVICE_DIR is not set (make test-backends sets it)")
	}
	before := len(engine.Devices())
	err := engine.LoadBackends(dir)
	if !errors.Is(err, engine.ErrNoDevice) {
		t.Fatalf("LoadBackends(%s) = %v, want an error matching ErrNoDevice", dir, err)
	}
	var nd *engine.NoDeviceError
	if !errors.As(err, &nd) {
		t.Fatalf("%v is not a *NoDeviceError", err)
	}
	if nd.Backend != "NoDevice" || !strings.HasSuffix(nd.Library, "libggml-nodevice.so") ||
		!strings.Contains(nd.Reason, "no NoDevice-capable device is detected") {
		t.Errorf("NoDeviceError = %+v, want backend NoDevice, its library and the reason it logged", *nd)
	}
	t.Log(err)
	if n := len(engine.Devices()); n != before {
		t.Errorf("%d devices after loading a backend without any, %d before", n, before)
	}
	// Loaded once: a second call has nothing new to report.
	if err := engine.LoadBackends(dir); err != nil {
		t.Errorf("loading the same directory again: %v", err)
	}

	ref := readReference(t, "stories260K_reference.json")
	p := ref.Prompts[0]
	m := loadModel(t, engine.ModelOptions{GPULayers: -1}, "models", "stories260K.gguf")
	c := newContext(t, m, engine.ContextOptions{ContextLength: 256})
	got, _ := greedy(t, c, tokens(p.PromptIDs), len(p.GeneratedIDs), false)
	for i, tok := range got {
		if int(tok) != p.GeneratedIDs[i] {
			t.Fatalf("token %d is %d on the CPU with every layer asked for the GPU, the reference has %d", i, tok, p.GeneratedIDs[i])
		}
	}
}
