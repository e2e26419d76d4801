package llm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/modelfile"
)

// TestPreset: a preset name opens its FROM model with its parameters as
// the defaults of every call, its TEMPLATE and its SYSTEM prompt.
func TestPreset(t *testing.T) {
	r := references(t)[0]
	store := &modelfile.Store{Dir: t.TempDir()}
	src := "FROM " + shareddata.Path(t, "models", "stories260K.gguf") + `
PARAMETER temperature 0
PARAMETER num_predict 8
PARAMETER num_ctx 256
PARAMETER num_thread 1
SYSTEM ignored by this template
TEMPLATE {{ .Prompt }}
`
	mf, err := modelfile.Parse(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save("storyteller", mf); err != nil {
		t.Fatal(err)
	}
	if err := store.Save("storyteller:short", &modelfile.Modelfile{From: "storyteller", Parameters: []modelfile.Parameter{{Name: "num_predict", Value: "4"}}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := llm.New(ctx, "storyteller", llm.WithPresets(store))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	plain := open(t)
	want, err := plain.Generate(ctx, r.Prompt, greedy(8)...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Generate(ctx, r.Prompt)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != want.Text || len(got.Tokens) != 8 {
		t.Errorf("preset Generate %q (%d tokens), want %q", got.Text, len(got.Tokens), want.Text)
	}
	if got.Model != "storyteller" || p.Preset() == nil || p.Preset().Model == "" {
		t.Errorf("Model %q, preset %+v", got.Model, p.Preset())
	}
	prompt, err := p.ChatPrompt([]llm.Message{{Role: "user", Content: r.Prompt}})
	if err != nil || prompt != r.Prompt {
		t.Errorf("preset template rendered %q, %v", prompt, err)
	}
	chat, err := p.Chat(ctx, []llm.Message{{Role: "user", Content: r.Prompt}})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Text != want.Text {
		t.Errorf("preset Chat %q, want %q", chat.Text, want.Text)
	}
	// A call's own options win over the preset's.
	if res, err := p.Generate(ctx, r.Prompt, llm.MaxTokens(2)); err != nil || len(res.Tokens) != 2 {
		t.Errorf("MaxTokens(2) over num_predict 8: %v tokens, %v", res, err)
	}

	short, err := llm.New(ctx, "storyteller:short", llm.WithPresets(store))
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	if res, err := short.Generate(ctx, r.Prompt); err != nil || res.Text != "" && !strings.HasPrefix(want.Text, res.Text) || len(res.Tokens) != 4 {
		t.Errorf("a preset FROM a preset: %+v, %v", res, err)
	}

	if err := store.Save("bad", &modelfile.Modelfile{From: "storyteller", Parameters: []modelfile.Parameter{{Name: "temprature", Value: "1"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := llm.New(ctx, "bad", llm.WithPresets(store)); err == nil || !strings.Contains(err.Error(), "temprature") {
		t.Errorf("a misspelt parameter: %v", err)
	}
	if _, err := llm.New(ctx, "nosuchpreset", llm.WithPresets(store)); err == nil || errors.Is(err, modelfile.ErrNotFound) {
		t.Errorf("an unknown name must fail as a model name, not as a preset: %v", err)
	}
}

// TestPresetSystem: the preset's SYSTEM prompt and MESSAGEs open a chat
// that has no system message; a chat's own system message wins.
func TestPresetSystem(t *testing.T) {
	store := &modelfile.Store{Dir: t.TempDir()}
	mf := &modelfile.Modelfile{
		From:     shareddata.Path(t, "models", "stories260K.gguf"),
		System:   "Be kind.",
		Template: "{{ range .Messages }}[{{ .Role }}] {{ .Content }}\n{{ end }}",
		Messages: []modelfile.Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello"}},
	}
	if err := store.Save("kind", mf); err != nil {
		t.Fatal(err)
	}
	p, err := llm.New(context.Background(), "kind", llm.WithPresets(store), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got, err := p.ChatPrompt([]llm.Message{{Role: "user", Content: "Tell a story"}})
	if want := "[system] Be kind.\n[user] Hi\n[assistant] Hello\n[user] Tell a story\n"; err != nil || got != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
	got, err = p.ChatPrompt([]llm.Message{{Role: "system", Content: "Be short."}, {Role: "user", Content: "Go"}})
	if want := "[system] Be short.\n[user] Hi\n[assistant] Hello\n[user] Go\n"; err != nil || got != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
}
