package engine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
)

func TestBackendDirs(t *testing.T) {
	t.Setenv("LLM_BACKEND_PATH", "/a/lib"+string(os.PathListSeparator)+"/b")
	if got := engine.BackendDirs(); !reflect.DeepEqual(got, []string{"/a/lib", "/b"}) {
		t.Errorf("BackendDirs with LLM_BACKEND_PATH: %v", got)
	}
	os.Unsetenv("LLM_BACKEND_PATH")
	dirs := engine.BackendDirs()
	if len(dirs) != 2 || filepath.Base(dirs[0]) != "lib" {
		t.Errorf("default BackendDirs: %v", dirs)
	}
}

// TestLoadBackendsRefusals checks the ways a backend directory can be wrong
// without a GPU: each is an error naming the problem, and the process lives.
func TestLoadBackendsRefusals(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	dir := t.TempDir()
	if err := engine.LoadBackends(dir); err != nil {
		t.Errorf("an empty directory: %v", err)
	}

	// A real shared library that is not a ggml backend.
	src := filepath.Join(dir, "x.c")
	os.WriteFile(src, []byte("int llm_not_a_backend(void) { return 1; }\n"), 0o644)
	lib := filepath.Join(dir, "libggml-fake.so")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
		t.Fatalf("building a test library: %v\n%s", err, out)
	}
	// ggml-base and CPU variants are built into this binary and are skipped.
	os.WriteFile(filepath.Join(dir, "libggml-base.so"), []byte("not a library"), 0o644)
	os.WriteFile(filepath.Join(dir, "libggml-cpu-haswell.so"), []byte("not a library"), 0o644)

	err := engine.LoadBackends(dir)
	if err == nil || !strings.Contains(err.Error(), engine.BackendManifest) {
		t.Errorf("no manifest: %v", err)
	}
	manifest := filepath.Join(dir, engine.BackendManifest)
	os.WriteFile(manifest, []byte("0123abc\n"), 0o644)
	err = engine.LoadBackends(dir)
	if err == nil || !strings.Contains(err.Error(), "0123abc") || !strings.Contains(err.Error(), engine.LlamaCppCommit) {
		t.Errorf("another commit: %v", err)
	}
	os.WriteFile(manifest, []byte(engine.LlamaCppCommit+"\n"), 0o644)
	err = engine.LoadBackends(dir)
	if err == nil || !strings.Contains(err.Error(), "libggml-fake.so") || strings.Contains(err.Error(), "libggml-base") {
		t.Errorf("a library that is not a backend: %v", err)
	}

	os.WriteFile(filepath.Join(dir, "libggml-junk.so"), []byte("not a library"), 0o644)
	if err := engine.LoadBackends(dir); err == nil || !strings.Contains(err.Error(), "libggml-junk.so") {
		t.Errorf("a file that is not a library: %v", err)
	}
}

func TestDevicesIncludeCPU(t *testing.T) {
	var cpu bool
	for _, d := range engine.Devices() {
		if d.Type == engine.DeviceCPU {
			cpu = true
			if d.Name == "" {
				t.Errorf("CPU device without a name: %+v", d)
			}
		}
	}
	if !cpu {
		t.Errorf("no CPU device in %+v", engine.Devices())
	}
}

func TestAutoGPULayersWithoutGPU(t *testing.T) {
	path := shareddata.Path(t, "models", "stories260K.gguf")
	for _, d := range engine.Devices() {
		if d.Type == engine.DeviceGPU {
			t.Skip("this machine has a GPU")
		}
	}
	n, why, err := engine.AutoGPULayers(path, engine.ContextOptions{ContextLength: 2048})
	if err != nil || n != 0 || !strings.Contains(why, "no GPU") {
		t.Errorf("AutoGPULayers without a GPU: %d %q %v", n, why, err)
	}
}
