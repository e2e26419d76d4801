package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// toolTemplate is a minimal chat template that shows the tools.
const toolTemplate = `{%- if tools %}Tools: {{ tools | tojson }}
{% endif %}{% for m in messages %}{{ m.role }}: {{ m.content }}
{% endfor %}assistant:`

var weatherTool = []map[string]any{{"type": "function", "function": map[string]any{
	"name": "get_weather", "description": "The weather in a city",
	"parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
}}}

// TestToolCallsOpenAI: a model whose template takes tools and whose output
// is a Hermes <tool_call> (forced here with a grammar) answers with
// tool_calls and finish_reason "tool_calls", streamed or not.
func TestToolCallsOpenAI(t *testing.T) {
	cfg := testConfig(t)
	cfg.Models = []string{withTemplate(t, "tools", toolTemplate)}
	_, url := start(t, cfg)
	grammar := `root ::= "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"`
	req := map[string]any{"model": "tools", "messages": []map[string]any{{"role": "user", "content": "Weather in Paris?"}},
		"tools": weatherTool, "grammar": grammar, "temperature": 0, "max_tokens": 200}
	resp, body := post(t, url+"/v1/chat/completions", req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	r := decode[chatResp](t, body)
	c := r.Choices[0]
	if *c.FinishReason != "tool_calls" || c.Message.Content != nil || len(c.Message.ToolCalls) != 1 {
		t.Fatalf("response %s", body)
	}
	tc := c.Message.ToolCalls[0]
	if tc.Type != "function" || tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city":"Paris"}` || !strings.HasPrefix(tc.ID, "call_") {
		t.Errorf("tool call %+v", tc)
	}

	req["stream"] = true
	_, body = post(t, url+"/v1/chat/completions", req)
	events := sseEvents(t, body)
	var content strings.Builder
	var calls int
	var finish string
	for _, e := range events[:len(events)-1] {
		ch := decode[chatResp](t, []byte(e))
		d := ch.Choices[0].Delta
		if d.Content != nil {
			content.WriteString(*d.Content)
		}
		for _, tc := range d.ToolCalls {
			calls++
			if tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city":"Paris"}` || tc.Index != 0 {
				t.Errorf("streamed call %+v", tc)
			}
		}
		if f := ch.Choices[0].FinishReason; f != nil {
			finish = *f
		}
	}
	if content.String() != "" || calls != 1 || finish != "tool_calls" {
		t.Errorf("streamed content %q, %d calls, finish %q", content.String(), calls, finish)
	}

	// tool_choice "none" leaves the tools out: the output is content.
	req["stream"], req["tool_choice"] = false, "none"
	_, body = post(t, url+"/v1/chat/completions", req)
	if r := decode[chatResp](t, body); r.Choices[0].Message.Content == nil || !strings.HasPrefix(*r.Choices[0].Message.Content, "<tool_call>") {
		t.Errorf("tool_choice none: %s", body)
	}
}

// TestToolCallsOllama: /api/chat with tools parses a Llama-3-style JSON
// call (forced here with a format schema) into message.tool_calls.
func TestToolCallsOllama(t *testing.T) {
	cfg := testConfig(t)
	cfg.Models = []string{withTemplate(t, "tools", toolTemplate)}
	_, url := start(t, cfg)
	schema := json.RawMessage(`{"type":"object","properties":{"name":{"enum":["get_weather"]},"parameters":{"type":"object","properties":{"city":{"enum":["Paris"]}},"required":["city"]}},"required":["name","parameters"]}`)
	req := map[string]any{"model": "tools", "messages": []map[string]any{{"role": "user", "content": "Weather in Paris?"}},
		"tools": weatherTool, "format": schema, "stream": false, "options": greedyOllama(200)}
	resp, body := post(t, url+"/api/chat", req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	check := func(r ollamaResp, raw []byte) {
		t.Helper()
		if r.Message == nil || len(r.Message.ToolCalls) != 1 || r.Message.Content != "" {
			t.Fatalf("response %s", raw)
		}
		f := r.Message.ToolCalls[0].Function
		if f.Name != "get_weather" || f.Arguments["city"] != "Paris" {
			t.Errorf("tool call %+v", f)
		}
	}
	check(decode[ollamaResp](t, body), body)

	delete(req, "stream")
	_, body = post(t, url+"/api/chat", req)
	found := false
	for _, l := range ndjsonLines(body) {
		if r := decode[ollamaResp](t, []byte(l)); r.Message != nil && len(r.Message.ToolCalls) > 0 {
			check(r, []byte(l))
			found = true
		} else if r.Message != nil && r.Message.Content != "" {
			t.Errorf("content streamed: %s", l)
		}
	}
	if !found {
		t.Errorf("no tool call streamed: %s", body)
	}
	// A tool result goes back through the template.
	req["messages"] = []map[string]any{
		{"role": "user", "content": "Weather in Paris?"},
		{"role": "assistant", "content": "", "tool_calls": []map[string]any{{"function": map[string]any{"name": "get_weather", "arguments": map[string]any{"city": "Paris"}}}}},
		{"role": "tool", "content": "sunny", "tool_name": "get_weather"},
	}
	delete(req, "format")
	req["stream"] = false
	if resp, body := post(t, url+"/api/chat", req); resp.StatusCode != http.StatusOK {
		t.Errorf("with a tool result: %d %s", resp.StatusCode, body)
	}
}
