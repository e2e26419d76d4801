package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
)

// TestShowLocal: llm show describes models named by their path, as generate
// and run take them: a GGUF file and a Hugging Face folder, without Hub
// revision or cache lines.
func TestShowLocal(t *testing.T) {
	gguf := shareddata.Path(t, "models", "stories260K.gguf")
	code, out, stderr := run(t, "", "show", gguf)
	if code != 0 {
		t.Fatalf("show %s: exit %d: %s", gguf, code, stderr)
	}
	for _, want := range []string{"Model:", "stories260K.gguf", "Format:          gguf", "Architecture:    llama",
		"Parameters:      292.8K", "Context length:  2048", "GPU offload:", "Files:", "Devices:"} {
		if !strings.Contains(out, want) {
			t.Errorf("show of a GGUF file lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Revision:") || strings.Contains(out, "Cache:") {
		t.Errorf("a local file has no revision or cache:\n%s", out)
	}
	if !regexp.MustCompile(`Capabilities:\s+completion\n`).MatchString(out) {
		t.Errorf("show of stories260K: no capabilities line:\n%s", out)
	}
	// An embedding model's size and pooling.
	bert, _ := testmodel.BERT(t, false)
	code, out, stderr = run(t, "", "show", bert)
	if code != 0 || !regexp.MustCompile(`Capabilities:\s+embedding\n\s+Embeddings:\s+32 dimensions, mean pooling\n`).MatchString(out) {
		t.Errorf("show of a BERT: exit %d (%s):\n%s", code, stderr, out)
	}
	// A LoRA adapter is said to be one, without a model's capabilities.
	adapter := testmodel.StoriesLoRA(t, nil)
	code, out, stderr = run(t, "", "show", adapter)
	if code != 0 || !regexp.MustCompile(`Adapter:\s+lora adapter for llama models: alpha 8, 8 tensors`).MatchString(out) || strings.Contains(out, "Capabilities:") {
		t.Errorf("show of an adapter: exit %d (%s):\n%s", code, stderr, out)
	}

	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	code, out, stderr = run(t, "", "show", dir, "--json")
	if code != 0 {
		t.Fatalf("show %s: exit %d: %s", dir, code, stderr)
	}
	var rep modelReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Local || len(rep.Weights) != 1 || rep.Weights[0].Format != "safetensors" ||
		rep.Weights[0].Architecture != "LlamaForCausalLM" || rep.Weights[0].ChatTemplate == nil || !*rep.Weights[0].ChatTemplate {
		t.Errorf("show of an HF folder: %+v", rep)
	}
	names := map[string]bool{}
	for _, f := range rep.Files {
		names[f.Path] = true
	}
	if !names["config.json"] || !names["model.safetensors"] {
		t.Errorf("files %v", rep.Files)
	}

	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "", "show", empty); code != 1 || !strings.Contains(stderr, "no GGUF or safetensors weights") {
		t.Errorf("a folder without weights: exit %d, %q", code, stderr)
	}
}
