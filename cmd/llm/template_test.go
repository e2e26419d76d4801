package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
)

func TestTemplateCommand(t *testing.T) {
	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "tiny-llama-st_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Example struct {
			Messages json.RawMessage `json:"messages"`
			Rendered string          `json:"rendered"`
		} `json:"chat_template_example"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	msgs := filepath.Join(tmp, "messages.json")
	os.WriteFile(msgs, ref.Example.Messages, 0o644)

	// An HF model directory: its tokenizer_config.json template and tokens.
	code, out, stderr := run(t, "", "template", dir, "--messages", msgs)
	if code != 0 || out != ref.Example.Rendered {
		t.Errorf("exit %d (%s)\n got %q\nwant %q", code, stderr, out, ref.Example.Rendered)
	}
	// Messages from stdin.
	if code, out, _ = run(t, string(ref.Example.Messages), "template", dir, "--messages", "-"); code != 0 || out != ref.Example.Rendered {
		t.Errorf("messages from stdin: exit %d, %q", code, out)
	}

	// A bare template with --bos, --eos, --now and --kwargs.
	bare := filepath.Join(tmp, "t.jinja")
	os.WriteFile(bare, []byte(`{{ bos_token }}{{ strftime_now("%d %b %Y") }}{% if enable_thinking %} think{% endif %}|{{ messages[0].content }}{{ eos_token }}{% if add_generation_prompt %}<gen>{% endif %}`), 0o644)
	code, out, stderr = run(t, "", "template", bare, "--messages", msgs, "--bos", "<B>", "--eos", "<E>",
		"--now", "2024-07-26T12:00:00", "--kwargs", `{"enable_thinking": true}`)
	if want := "<B>26 Jul 2024 think|You are a helpful assistant.<E><gen>"; code != 0 || out != want {
		t.Errorf("bare template: exit %d (%s): %q, want %q", code, stderr, out, want)
	}
	code, out, _ = run(t, "", "template", bare, "--messages", msgs, "--now", "2024-07-26", "--no-generation-prompt")
	if want := "26 Jul 2024|You are a helpful assistant."; code != 0 || out != want {
		t.Errorf("--no-generation-prompt: exit %d, %q, want %q", code, out, want)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"template", dir}, 2, "--messages"},
		{[]string{"template", "--messages", msgs}, 2, "one MODEL"},
		{[]string{"template", shareddata.Path(t, "models", "stories260K.gguf"), "--messages", msgs}, 1, "no chat template"},
		{[]string{"template", bare, "--messages", msgs, "--now", "yesterday"}, 2, "--now"},
		{[]string{"template", bare, "--messages", bare}, 1, "--messages"},
	} {
		code, _, stderr := run(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, %q; want exit %d mentioning %q", tc.args[1:], code, stderr, tc.code, tc.msg)
		}
	}
}
