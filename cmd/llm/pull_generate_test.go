package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/llm-go/llm/hub/hubtest"
	"github.com/llm-go/llm/internal/shareddata"
)

// TestPullThenGenerate pulls stories260K from a fake Hub serving
// ../shared/models into a fresh cache, then generates from the pulled file:
// the greedy text must be the reference continuation. A second pull is
// served from the cache, and works offline.
func TestPullThenGenerate(t *testing.T) {
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "stories260K_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []struct {
			Prompt string `json:"prompt"`
			Text   string `json:"generated_text"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	srv := hubtest.Shared(t)
	hubEnv(t, srv)

	code, out, stderr := run(t, "", "pull", "-q", "test/stories260K/stories260K.gguf")
	if code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	path := strings.TrimSpace(out)
	code, text, stderr := run(t, "", "generate", "-m", path, "--temp", "0", "-t", "1", "-n", "64", ref.Prompts[0].Prompt)
	if code != 0 {
		t.Fatalf("generate: exit %d: %s", code, stderr)
	}
	if text != ref.Prompts[0].Text+"\n" {
		t.Errorf("generated from the pulled model:\n%q\nwant\n%q", text, ref.Prompts[0].Text)
	}

	t.Setenv("HF_HUB_OFFLINE", "1")
	served := srv.ServedTotal()
	code, out, stderr = run(t, "", "pull", "-q", "test/stories260K/stories260K.gguf")
	if code != 0 || strings.TrimSpace(out) != path {
		t.Errorf("offline pull: exit %d, %q (%s), want %q", code, out, stderr, path)
	}
	if srv.ServedTotal() != served {
		t.Error("the offline pull reached the server")
	}
}
