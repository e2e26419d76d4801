package server_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
)

// TestHarmonyOpenAI: a gpt-oss model (its own chat template) whose reply
// is harmony (forced here with a grammar) answers on /v1/chat/completions
// with its analysis channel in reasoning_content and its message to
// functions.get_weather as a tool call, streamed or not; nothing of the
// markup reaches the content.
func TestHarmonyOpenAI(t *testing.T) {
	tmpl, err := os.ReadFile(shareddata.Path(t, "testdata", "chat_templates", "jinja", "openai-gpt-oss-120b.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.ContextLength = 2048 // the template's system message and tools are long
	cfg.Models = []string{withTemplate(t, "gpt-oss", string(tmpl))}
	_, url := start(t, cfg)
	grammar := `root ::= "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}"`
	req := map[string]any{"model": "gpt-oss", "messages": []map[string]any{{"role": "user", "content": "Weather in Paris?"}},
		"tools": weatherTool, "grammar": grammar, "temperature": 0, "max_tokens": 300, "reasoning_effort": "high"}
	resp, body := post(t, url+"/v1/chat/completions", req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	r := decode[struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct {
				Content          *string `json:"content"`
				ReasoningContent string  `json:"reasoning_content"`
				ToolCalls        []struct {
					Function struct{ Name, Arguments string }
				} `json:"tool_calls"`
			}
		}
	}](t, body)
	m := r.Choices[0].Message
	if r.Choices[0].FinishReason != "tool_calls" || m.Content != nil || m.ReasoningContent != "Need the weather." ||
		len(m.ToolCalls) != 1 || m.ToolCalls[0].Function.Name != "get_weather" || m.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Errorf("response %s", body)
	}

	req["stream"] = true
	_, body = post(t, url+"/v1/chat/completions", req)
	events := sseEvents(t, body)
	var content, reasoning strings.Builder
	calls, finish := 0, ""
	for _, e := range events[:len(events)-1] {
		ch := decode[chatResp](t, []byte(e))
		d := ch.Choices[0].Delta
		if d.Content != nil {
			content.WriteString(*d.Content)
		}
		reasoning.WriteString(d.ReasoningContent)
		for _, tc := range d.ToolCalls {
			calls++
			if tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city":"Paris"}` {
				t.Errorf("streamed call %+v", tc)
			}
		}
		if f := ch.Choices[0].FinishReason; f != nil {
			finish = *f
		}
	}
	if content.String() != "" || reasoning.String() != "Need the weather." || calls != 1 || finish != "tool_calls" {
		t.Errorf("streamed: content %q, reasoning %q, %d calls, finish %q", content.String(), reasoning.String(), calls, finish)
	}
}

// TestReasoningEffort: OpenAI's reasoning_effort and Ollama's think levels
// reach the chat template as reasoning_effort; an Ollama message's
// thinking reaches it as thinking (and reasoning_content). The template
// raises an error that shows what it was given.
func TestReasoningEffort(t *testing.T) {
	cfg := testConfig(t)
	cfg.Models = []string{withTemplate(t, "effort", `{%- for m in messages %}{% if m.thinking is defined %}`+
		`{{ raise_exception('thinking ' + m.thinking + ', reasoning_content ' + m.reasoning_content) }}{% endif %}{{ m.content }}{% endfor %}`+
		`{%- if reasoning_effort is not defined or reasoning_effort != 'high' %}{{ raise_exception('effort not high') }}{% endif %}`)}
	_, url := start(t, cfg)
	user := []map[string]any{{"role": "user", "content": "Once upon a time"}}
	for _, tc := range []struct {
		path   string
		req    map[string]any
		status int
		want   string
	}{
		{"/v1/chat/completions", map[string]any{"reasoning_effort": "high"}, http.StatusOK, ""},
		{"/v1/chat/completions", map[string]any{"reasoning_effort": "xhigh"}, http.StatusOK, ""},
		{"/v1/chat/completions", map[string]any{"reasoning_effort": "low"}, http.StatusBadRequest, "effort not high"},
		{"/v1/chat/completions", map[string]any{"reasoning_effort": "high", "chat_template_kwargs": map[string]any{"reasoning_effort": "low"}}, http.StatusBadRequest, "effort not high"},
		{"/v1/chat/completions", map[string]any{"reasoning_effort": "max"}, http.StatusBadRequest, "reasoning_effort"},
		{"/api/chat", map[string]any{"think": "high", "stream": false}, http.StatusOK, ""},
		{"/api/chat", map[string]any{"think": "medium", "stream": false}, http.StatusBadRequest, "effort not high"},
		{"/api/chat", map[string]any{"think": true, "stream": false}, http.StatusBadRequest, "effort not high"},
		{"/api/chat", map[string]any{"think": "high", "stream": false, "messages": []map[string]any{
			{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "thinking": "greet back"}, {"role": "user", "content": "Bye"}}},
			http.StatusBadRequest, "thinking greet back, reasoning_content greet back"},
	} {
		req := map[string]any{"model": "effort", "messages": user, "max_tokens": 4, "options": greedyOllama(4)}
		for k, v := range tc.req {
			req[k] = v
		}
		resp, body := post(t, url+tc.path, req)
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %v: %d %s; want %d with %q", tc.path, tc.req, resp.StatusCode, body, tc.status, tc.want)
		}
	}
}
