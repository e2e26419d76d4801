package tokenizer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/gguf"
)

// TestLoadSourceHFDirectory renders the tiny-llama-st fixture's template
// from its tokenizer_config.json and compares it with the reference
// rendering made by Python jinja2 as apply_chat_template does.
func TestLoadSourceHFDirectory(t *testing.T) {
	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "tiny-llama-st_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Example struct {
			Messages json.RawMessage `json:"messages"`
			AddGen   bool            `json:"add_generation_prompt"`
			BOS      string          `json:"bos_token"`
			EOS      string          `json:"eos_token"`
			Rendered string          `json:"rendered"`
		} `json:"chat_template_example"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	src, err := LoadSource(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if src.BOS != ref.Example.BOS || src.EOS != ref.Example.EOS {
		t.Errorf("BOS/EOS %q/%q, want %q/%q", src.BOS, src.EOS, ref.Example.BOS, ref.Example.EOS)
	}
	msgs, err := ParseMessages(ref.Example.Messages)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse(src.Template)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(Options{Messages: msgs, AddGenerationPrompt: ref.Example.AddGen, BOS: src.BOS, EOS: src.EOS})
	if err != nil {
		t.Fatal(err)
	}
	if got != ref.Example.Rendered {
		t.Errorf("rendered\n%q\nwant\n%q", got, ref.Example.Rendered)
	}
}

func TestLoadSourceKinds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bare := write("t.jinja", "{{ bos_token }}x")
	if s, err := LoadSource(bare, ""); err != nil || s.Template != "{{ bos_token }}x" {
		t.Errorf("bare file: %+v %v", s, err)
	}

	named := filepath.Join(dir, "named")
	write("named/tokenizer_config.json", `{"bos_token": {"content": "<|b|>", "lstrip": false}, "eos_token": "<|e|>",
		"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]}`)
	if s, err := LoadSource(named, ""); err != nil || s.Template != "D" || s.BOS != "<|b|>" || s.EOS != "<|e|>" {
		t.Errorf("named default: %+v %v", s, err)
	}
	if s, err := LoadSource(named, "tool_use"); err != nil || s.Template != "T" {
		t.Errorf("named tool_use: %+v %v", s, err)
	}
	if _, err := LoadSource(named, "rag"); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("missing named template: %v", err)
	}

	jinja := filepath.Join(dir, "jinja")
	write("jinja/tokenizer_config.json", `{"chat_template": "old", "eos_token": "</s>"}`)
	write("jinja/chat_template.jinja", "new")
	if s, err := LoadSource(jinja, ""); err != nil || s.Template != "new" || s.EOS != "</s>" {
		t.Errorf("chat_template.jinja should win: %+v %v", s, err)
	}

	// A processor's chat_template.json when the tokenizer has none.
	proc := filepath.Join(dir, "proc")
	write("proc/tokenizer_config.json", `{"eos_token": "</s>"}`)
	write("proc/chat_template.json", `{"chat_template": "P"}`)
	if s, err := LoadSource(proc, ""); err != nil || s.Template != "P" || !strings.HasSuffix(s.From, "chat_template.json") {
		t.Errorf("chat_template.json: %+v %v", s, err)
	}
	write("jinja/chat_template.json", `{"chat_template": "P"}`)
	if s, err := LoadSource(jinja, ""); err != nil || s.Template != "new" {
		t.Errorf("chat_template.jinja should win over chat_template.json: %+v %v", s, err)
	}

	none := filepath.Join(dir, "none")
	write("none/tokenizer_config.json", `{"eos_token": "</s>"}`)
	if _, err := LoadSource(none, ""); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("no template: %v", err)
	}
	write("bad/tokenizer_config.json", `{"chat_template": 5}`)
	if _, err := LoadSource(filepath.Join(dir, "bad"), ""); err == nil {
		t.Error("a numeric chat_template was accepted")
	}
	if _, err := LoadSource(filepath.Join(dir, "absent"), ""); err == nil {
		t.Error("a missing path was accepted")
	}
}

func TestLoadSourceGGUFWithoutTemplate(t *testing.T) {
	_, err := LoadSource(shareddata.Path(t, "models", "stories260K.gguf"), "")
	if !errors.Is(err, ErrNoTemplate) {
		t.Errorf("stories260K has no template: %v", err)
	}
}

func TestLoadSourceGGUF(t *testing.T) {
	w := gguf.NewWriter()
	w.Set("general.architecture", gguf.String("llama"))
	w.Set("tokenizer.ggml.tokens", gguf.Strings([]string{"<unk>", "<|begin|>", "<|end|>"}))
	w.Set("tokenizer.ggml.bos_token_id", gguf.Uint32(1))
	w.Set("tokenizer.ggml.eos_token_id", gguf.Uint32(2))
	w.Set("tokenizer.chat_template", gguf.String("{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"))
	w.Set("tokenizer.chat_template.rag", gguf.String("RAG"))
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSource(path, "")
	if err != nil || s.BOS != "<|begin|>" || s.EOS != "<|end|>" {
		t.Fatalf("%+v %v", s, err)
	}
	tmpl, _ := Parse(s.Template)
	out, err := tmpl.Render(Options{Messages: []Message{{Role: "user", Content: "hi"}}, BOS: s.BOS, EOS: s.EOS})
	if err != nil || out != "<|begin|>hi<|end|>" {
		t.Errorf("rendered %q %v", out, err)
	}
	if s, err := LoadSource(path, "rag"); err != nil || s.Template != "RAG" {
		t.Errorf("named GGUF template: %+v %v", s, err)
	}
}
