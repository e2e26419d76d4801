package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOllamaThink: Ollama's think on /api/chat and /api/generate. The
// template opens a <think> block unless enable_thinking is false, so what
// stories260K writes after it is reasoning: with think true it comes back
// as thinking (streamed or not) and the content is empty; with think false
// the template does not open the block and the text is the content.
func TestOllamaThink(t *testing.T) {
	cfg := testConfig(t)
	cfg.Models = []string{withTemplate(t, "reasoner",
		"{% for m in messages %}{{ m.content }}{% endfor %}{% if enable_thinking is not false %}<think>\n{% endif %}")}
	_, url := start(t, cfg)
	msgs := []map[string]any{{"role": "user", "content": "Once upon a time"}}
	type message struct{ Content, Thinking string }
	chat := func(think any, stream bool) (int, []byte) {
		resp, body := post(t, url+"/api/chat", map[string]any{"model": "reasoner", "messages": msgs, "think": think,
			"stream": stream, "options": greedyOllama(16)})
		return resp.StatusCode, body
	}
	code, body := chat(true, false)
	on := decode[struct{ Message message }](t, body)
	if code != http.StatusOK || on.Message.Thinking == "" || on.Message.Content != "" {
		t.Errorf("think true: %d %s", code, body)
	}
	code, body = chat("high", true)
	var thinking, content strings.Builder
	for _, line := range ndjsonLines(body) {
		var r struct{ Message message }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		thinking.WriteString(r.Message.Thinking)
		content.WriteString(r.Message.Content)
	}
	if code != http.StatusOK || thinking.String() != on.Message.Thinking || content.String() != "" {
		t.Errorf("think \"high\", streamed: %d, thinking %q (want %q), content %q", code, thinking.String(), on.Message.Thinking, content.String())
	}
	code, body = chat(false, false)
	off := decode[struct{ Message message }](t, body)
	if code != http.StatusOK || off.Message.Thinking != "" || off.Message.Content == "" {
		t.Errorf("think false: %d %s", code, body)
	}
	resp, body := post(t, url+"/api/generate", map[string]any{"model": "reasoner", "prompt": "Once upon a time", "think": true,
		"stream": false, "options": greedyOllama(16)})
	gen := decode[struct{ Response, Thinking string }](t, body)
	if resp.StatusCode != http.StatusOK || gen.Thinking != on.Message.Thinking || gen.Response != "" {
		t.Errorf("/api/generate think true: %d %s", resp.StatusCode, body)
	}
}
