package modelfile

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ollama/ollama/api"
	ollamatemplate "github.com/ollama/ollama/template"

	"github.com/llm-go/llm/tokenizer"
)

// ollamaDir is the directory of the Ollama module, whose template/ holds
// Ollama's named chat templates.
func ollamaDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Fatalf("locating the Ollama module: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// conversations are the cases every template renders.
var conversations = []struct {
	name string
	msgs []tokenizer.Message
}{
	{"one user turn", []tokenizer.Message{{Role: "user", Content: "Hello!"}}},
	{"system and user", []tokenizer.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Why is the sky blue?"}}},
	{"multi-turn", []tokenizer.Message{
		{Role: "system", Content: "You are a pirate."},
		{Role: "user", Content: "Hi"},
		{Role: "assistant", Content: "Arr!"},
		{Role: "user", Content: "Where is the treasure?"},
	}},
	{"merged user turns", []tokenizer.Message{{Role: "user", Content: "First."}, {Role: "user", Content: "Second."}}},
	{"assistant last", []tokenizer.Message{{Role: "user", Content: "Count to three"}, {Role: "assistant", Content: "One, two"}}},
	{"system in the middle", []tokenizer.Message{
		{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"},
		{Role: "system", Content: "new rules"}, {Role: "user", Content: "c"},
	}},
	{"parts", []tokenizer.Message{{Role: "user", Content: []tokenizer.Part{{Type: "text", Text: "line one"}, {Type: "text", Text: "line two"}}}}},
}

func toOllama(t *testing.T, msgs []tokenizer.Message) []api.Message {
	out := make([]api.Message, 0, len(msgs))
	for _, m := range msgs {
		c, err := textOf(m.Content)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, api.Message{Role: m.Role, Content: c})
	}
	return out
}

// TestOllamaNamedTemplates: each of Ollama's own named templates renders
// every conversation byte for byte as Ollama's renderer does.
func TestOllamaNamedTemplates(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(ollamaDir(t), "template", "*.gotmpl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Ollama templates found: %v", err)
	}
	n := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := ollamatemplate.Parse(string(src))
		if err != nil {
			t.Fatalf("%s: Ollama cannot parse it: %v", f, err)
		}
		ours, err := ParseTemplate(string(src))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range conversations {
			var want bytes.Buffer
			if err := theirs.Execute(&want, ollamatemplate.Values{Messages: toOllama(t, c.msgs)}); err != nil {
				t.Fatalf("%s %s: Ollama: %v", filepath.Base(f), c.name, err)
			}
			got, err := ours.Render(c.msgs, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", filepath.Base(f), c.name, err)
			}
			if got != want.String() {
				t.Errorf("%s, %s:\n got %q\nwant %q", filepath.Base(f), c.name, got, want.String())
			}
			n++
		}
	}
	t.Logf("%d renders of %d templates match Ollama's", n, len(files))
}

// toolTemplate is a Messages template with tools, in the style of the
// Ollama library's Qwen 2.5 template.
const toolTemplate = `{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}`

// TestToolsTemplate: a Messages template with tools and tool calls renders
// as Ollama renders it.
func TestToolsTemplate(t *testing.T) {
	toolJSON := `[{"type":"function","function":{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"The city"}}}}}]`
	var ourTools []any
	if err := json.Unmarshal([]byte(toolJSON), &ourTools); err != nil {
		t.Fatal(err)
	}
	var theirTools api.Tools
	if err := json.Unmarshal([]byte(toolJSON), &theirTools); err != nil {
		t.Fatal(err)
	}
	msgs := []tokenizer.Message{
		{Role: "system", Content: "Be helpful."},
		{Role: "user", Content: "Weather in Paris?"},
		{Role: "assistant", ToolCalls: []tokenizer.ToolCall{{Function: tokenizer.FunctionCall{Name: "get_weather", Arguments: map[string]any{"city": "Paris"}}}}},
		{Role: "tool", Content: "22 C, sunny", Name: "get_weather"},
	}
	var args api.ToolCallFunctionArguments
	if err := json.Unmarshal([]byte(`{"city":"Paris"}`), &args); err != nil {
		t.Fatal(err)
	}
	theirMsgs := []api.Message{
		{Role: "system", Content: "Be helpful."},
		{Role: "user", Content: "Weather in Paris?"},
		{Role: "assistant", ToolCalls: []api.ToolCall{{Function: api.ToolCallFunction{Name: "get_weather", Arguments: args}}}},
		{Role: "tool", Content: "22 C, sunny", ToolName: "get_weather"},
	}
	theirs, err := ollamatemplate.Parse(toolTemplate)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := theirs.Execute(&want, ollamatemplate.Values{Messages: theirMsgs, Tools: theirTools}); err != nil {
		t.Fatal(err)
	}
	ours, err := ParseTemplate(toolTemplate)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ours.Render(msgs, ourTools)
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Errorf("\n got %q\nwant %q", got, want.String())
	}
	if !strings.Contains(got, "get_weather Weather in a city") || !strings.Contains(got, `{"name": "get_weather", "arguments": {"city":"Paris"}}`) {
		t.Errorf("tools or tool call missing:\n%s", got)
	}
}

func TestTemplateErrors(t *testing.T) {
	if _, err := ParseTemplate("{{ .Prompt "); err == nil {
		t.Error("an unclosed action parsed")
	}
	tmpl, err := ParseTemplate("{{ .Prompt }}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmpl.Render([]tokenizer.Message{{Role: "user", Content: 42}}, nil); err == nil || !strings.Contains(err.Error(), "message 0") {
		t.Errorf("numeric content: %v", err)
	}
	if _, err := tmpl.Render([]tokenizer.Message{{Role: "assistant", ToolCalls: []tokenizer.ToolCall{{Function: tokenizer.FunctionCall{Name: "f", Arguments: "not json"}}}}}, nil); err == nil {
		t.Error("tool-call arguments that are not JSON were accepted")
	}
}
