package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/llm-go/llm/modelfile"
)

// TestPreset: a preset (Modelfile) names a model; its sampling PARAMETERs
// and num_predict are the defaults that a request's own fields override,
// on both APIs.
func TestPreset(t *testing.T) {
	ref := reference(t)
	store := &modelfile.Store{Dir: t.TempDir()}
	mf, err := modelfile.Parse(strings.NewReader("FROM " + storiesPath(t) + "\nPARAMETER temperature 0\nPARAMETER repeat_penalty 1\nPARAMETER num_predict 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save("storyteller", mf); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Models, cfg.Presets = nil, store
	_, url := start(t, cfg)
	// The first 8 greedy tokens of the reference.
	want8 := ", there was a little girl"
	if !strings.HasPrefix(ref.Text, want8) {
		t.Fatalf("the reference starts %q", ref.Text[:40])
	}
	msgs := []map[string]any{{"role": "user", "content": ref.Prompt}}
	resp, body := post(t, url+"/v1/chat/completions", map[string]any{"model": "storyteller", "messages": msgs})
	if r := decode[chatResp](t, body); resp.StatusCode != http.StatusOK || *r.Choices[0].Message.Content != want8 || *r.Choices[0].FinishReason != "length" {
		t.Errorf("OpenAI with the preset's defaults: %d %s", resp.StatusCode, body)
	}
	_, body = post(t, url+"/v1/chat/completions", map[string]any{"model": "storyteller", "messages": msgs, "max_tokens": ref.NPredict})
	if r := decode[chatResp](t, body); *r.Choices[0].Message.Content != ref.Text {
		t.Errorf("OpenAI with max_tokens: %s", body)
	}
	_, body = post(t, url+"/api/generate", map[string]any{"model": "storyteller", "prompt": ref.Prompt, "stream": false})
	if r := decode[ollamaResp](t, body); r.Response != want8 || r.EvalCount != 8 {
		t.Errorf("Ollama with the preset's defaults: %s", body)
	}
	_, body = post(t, url+"/api/generate", map[string]any{"model": "storyteller", "prompt": ref.Prompt, "stream": false,
		"options": map[string]any{"num_predict": 4}})
	if r := decode[ollamaResp](t, body); r.Response != ", there was a" {
		t.Errorf("Ollama with num_predict 4: %s", body)
	}
}
