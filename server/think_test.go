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

// TestOpenAIReasoning: /v1/chat/completions puts a reasoning model's
// reasoning in reasoning_content, as llama-server does by default,
// streamed or not; reasoning_format "none" leaves it in the content, and
// chat_template_kwargs reaches the template (enable_thinking false: no
// <think> block is opened, so all is content).
func TestOpenAIReasoning(t *testing.T) {
	cfg := testConfig(t)
	cfg.Models = []string{withTemplate(t, "reasoner",
		"{% for m in messages %}{{ m.content }}{% endfor %}{% if enable_thinking is not false %}<think>\n{% endif %}")}
	_, url := start(t, cfg)
	type msg struct {
		Content          *string `json:"content"`
		ReasoningContent string  `json:"reasoning_content"`
	}
	chat := func(extra map[string]any) msg {
		req := map[string]any{"model": "reasoner", "messages": []map[string]any{{"role": "user", "content": "Once upon a time"}},
			"temperature": 0, "max_tokens": 16}
		for k, v := range extra {
			req[k] = v
		}
		resp, body := post(t, url+"/v1/chat/completions", req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%v: %d %s", extra, resp.StatusCode, body)
		}
		r := decode[struct{ Choices []struct{ Message msg } }](t, body)
		if len(r.Choices) != 1 || r.Choices[0].Message.Content == nil {
			t.Fatalf("%v: %s", extra, body)
		}
		return r.Choices[0].Message
	}
	def := chat(nil)
	if def.ReasoningContent == "" || *def.Content != "" {
		t.Errorf("default: reasoning %q, content %q", def.ReasoningContent, *def.Content)
	}
	if raw := chat(map[string]any{"reasoning_format": "none"}); raw.ReasoningContent != "" || !strings.Contains(*raw.Content, def.ReasoningContent) {
		t.Errorf("reasoning_format none: reasoning %q, content %q", raw.ReasoningContent, *raw.Content)
	}
	if off := chat(map[string]any{"chat_template_kwargs": map[string]any{"enable_thinking": false}}); off.ReasoningContent != "" || *off.Content == "" {
		t.Errorf("enable_thinking false: reasoning %q, content %q", off.ReasoningContent, *off.Content)
	}
	resp, body := post(t, url+"/v1/chat/completions", map[string]any{"model": "reasoner", "stream": true,
		"messages": []map[string]any{{"role": "user", "content": "Once upon a time"}}, "temperature": 0, "max_tokens": 16})
	var reasoning, content strings.Builder
	for _, ev := range sseEvents(t, body) {
		if ev == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content          string `json:"content"`
					ReasoningContent string `json:"reasoning_content"`
				}
			}
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			reasoning.WriteString(ch.Delta.ReasoningContent)
			content.WriteString(ch.Delta.Content)
		}
	}
	if resp.StatusCode != http.StatusOK || reasoning.String() != def.ReasoningContent || content.String() != "" {
		t.Errorf("streamed: %d, reasoning %q (want %q), content %q", resp.StatusCode, reasoning.String(), def.ReasoningContent, content.String())
	}
	resp, body = post(t, url+"/v1/chat/completions", map[string]any{"model": "reasoner", "reasoning_format": "sideways",
		"messages": []map[string]any{{"role": "user", "content": "x"}}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "reasoning_format") {
		t.Errorf("bad reasoning_format: %d %s", resp.StatusCode, body)
	}
}
