package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
)

// TestCreatePreset: llm create makes a preset from a Modelfile; list,
// show, run and rm then take its name.
func TestCreatePreset(t *testing.T) {
	dir := t.TempDir()
	model := shareddata.Path(t, "models", "stories260K.gguf")
	if err := os.Symlink(model, filepath.Join(dir, "stories.gguf")); err != nil {
		t.Fatal(err)
	}
	// FROM a path relative to the Modelfile.
	mf := filepath.Join(dir, "Modelfile")
	os.WriteFile(mf, []byte("FROM ./stories.gguf\nPARAMETER temperature 0\nPARAMETER num_predict 8\nPARAMETER num_thread 1\nTEMPLATE {{ .Prompt }}\n"), 0o644)
	code, out, stderr := run(t, "", "create", "storyteller", "-f", mf)
	if code != 0 || !strings.Contains(out, "created storyteller") {
		t.Fatalf("create: exit %d: %s%s", code, out, stderr)
	}

	code, out, stderr = run(t, "", "list")
	if code != 0 || !strings.Contains(out, "PRESET") || !strings.Contains(out, "storyteller") || !strings.Contains(out, filepath.Join(dir, "stories.gguf")) {
		t.Errorf("list: exit %d: %s%s", code, out, stderr)
	}
	code, out, _ = run(t, "", "show", "storyteller", "--json")
	var shown struct {
		Model      string         `json:"model"`
		Parameters map[string]any `json:"parameters"`
		Template   string         `json:"template"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Model != filepath.Join(dir, "stories.gguf") ||
		shown.Parameters["num_predict"] != 8.0 || shown.Template != "{{ .Prompt }}" {
		t.Errorf("show --json: exit %d: %s", code, out)
	}

	// The preset's template, temperature and num_predict apply.
	code, out, stderr = run(t, "Once upon a time\n", "run", "storyteller")
	if code != 0 || strings.TrimSpace(out) != ", there was a little girl" {
		t.Errorf("run preset: exit %d (%s): %q", code, stderr, out)
	}

	for _, c := range []struct{ modelfile, want string }{
		{"FROM ./missing.gguf\n", "no such file"},
		{"FROM ./stories.gguf\nPARAMETER temprature 1\n", "temprature"},
		{"FROM ./stories.gguf\nPARAMETER top_p 7\n", "top_p"},
		{"FROM ./stories.gguf\nTEMPLATE {{ .Prompt \n", "TEMPLATE"},
		{"FROM ./stories.gguf\nADAPTER ./lora.gguf\n", "ADAPTER"},
		{"PARAMETER temperature 1\n", "FROM"},
		{"FROM ./stories.gguf\nWHAT now\n", "line 2"},
	} {
		os.WriteFile(mf, []byte(c.modelfile), 0o644)
		code, _, stderr := run(t, "", "create", "broken", "-f", mf)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, %q; want an error naming %q", c.modelfile, code, stderr, c.want)
		}
	}
	if code, _, _ := run(t, "", "create", "org/repo", "-f", mf); code != 2 {
		t.Errorf("a name with a slash: exit %d", code)
	}
	if code, _, _ := run(t, "", "run", "broken"); code == 0 {
		t.Error("a preset that failed to create exists")
	}

	code, out, _ = run(t, "", "rm", "storyteller")
	if code != 0 || !strings.Contains(out, "removed preset storyteller") {
		t.Errorf("rm: exit %d: %s", code, out)
	}
	if _, out, _ := run(t, "", "list"); strings.Contains(out, "storyteller") {
		t.Errorf("after rm, list still shows it:\n%s", out)
	}
}

// TestSamplersFlag: --samplers orders the stages as llama.cpp's flag does;
// an unknown stage is a usage error naming it.
func TestSamplersFlag(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	code, out, stderr := run(t, "", "generate", model, "--samplers", "top_k;temperature", "--top-k", "1", "-n", "8", "-t", "1", "Once upon a time")
	if code != 0 || !strings.HasPrefix(out, ", there was a little girl") {
		t.Errorf("top-k 1 then temperature: exit %d (%s): %q", code, stderr, out)
	}
	code, _, stderr = run(t, "", "generate", model, "--samplers", "top_k;bogus", "Once")
	if code != 2 || !strings.Contains(stderr, "bogus") {
		t.Errorf("an unknown stage: exit %d: %s", code, stderr)
	}
}
