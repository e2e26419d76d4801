package llm_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/sampler"
)

func TestParseToolCalls(t *testing.T) {
	names := []string{"get_weather", "add"}
	for _, c := range []struct {
		name, text, content string
		calls               []string // name + compact arguments
	}{
		{"hermes", "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "Let me check.", []string{`get_weather{"city":"Paris"}`}},
		{"hermes two", "<tool_call>{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}</tool_call>\n<tool_call>{\"name\":\"add\",\"arguments\":\"{\\\"a\\\": 3}\"}</tool_call>", "", []string{`add{"a":1,"b":2}`, `add{"a":3}`}},
		{"mistral list", `[TOOL_CALLS][{"name": "add", "arguments": {"b": 2, "a": 1}}]`, "", []string{`add{"b":2,"a":1}`}},
		{"mistral args", `[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}`, "", []string{`get_weather{"city":"Oslo"}`}},
		{"llama 3 json", `{"name": "get_weather", "parameters": {"city": "Rome"}}`, "", []string{`get_weather{"city":"Rome"}`}},
		{"python tag", `<|python_tag|>{"name": "other", "parameters": {}}`, "", []string{`other{}`}},
		{"json answer, not a tool", `{"name": "Bob", "age": 3}`, `{"name": "Bob", "age": 3}`, nil},
		{"plain text", "The weather is fine.", "The weather is fine.", nil},
		{"broken call", "<tool_call>{\"name\": \"add\", \"arguments\": {</tool_call>", "<tool_call>{\"name\": \"add\", \"arguments\": {</tool_call>", nil},
	} {
		content, calls, ok := llm.ParseToolCalls(c.text, names)
		if ok != (c.calls != nil) || content != c.content || len(calls) != len(c.calls) {
			t.Errorf("%s: ok %v, content %q, %d calls", c.name, ok, content, len(calls))
			continue
		}
		for i, call := range calls {
			args, _ := call.Function.Arguments.(json.RawMessage)
			if got := call.Function.Name + string(args); got != c.calls[i] || call.ID == "" || call.Type != "function" {
				t.Errorf("%s: call %d is %s (id %q), want %s", c.name, i, got, call.ID, c.calls[i])
			}
		}
	}
}

// TestChatToolCalls: a chat offered tools answers with Result.ToolCalls
// (the output forced to a call by a grammar, since stories260K knows no
// tools), streamed or not.
func TestChatToolCalls(t *testing.T) {
	p, err := llm.New(context.Background(), withTemplate(t, "{% for m in messages %}{{ m.content }}{% endfor %}"), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tool := map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "parameters": map[string]any{"type": "object"}}}
	o := sampler.DefaultOptions()
	o.Temperature = 0
	o.Grammar = `root ::= "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>"`
	msgs := []llm.Message{{Role: "user", Content: "Weather in Paris?"}}
	res, err := p.Chat(context.Background(), msgs, llm.Tools(tool), llm.Sampling(o), llm.MaxTokens(400))
	if err != nil {
		t.Fatal(err)
	}
	check := func(how string, res *llm.Result) {
		if res == nil || len(res.ToolCalls) != 1 || res.FinishReason != llm.FinishToolCalls {
			t.Fatalf("%s: %+v", how, res)
		}
		c := res.ToolCalls[0]
		args, _ := c.Function.Arguments.(json.RawMessage)
		if c.Function.Name != "get_weather" || string(args) != `{"city":"Paris"}` {
			t.Errorf("%s: call %+v", how, c)
		}
	}
	check("Chat", res)
	var final *llm.Result
	for c, err := range p.ChatStream(context.Background(), msgs, llm.Tools(tool), llm.Sampling(o), llm.MaxTokens(400)) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Result != nil {
			final = c.Result
		}
	}
	check("ChatStream", final)
	// The same output without tools offered is text.
	res, err = p.Chat(context.Background(), msgs, llm.Sampling(o), llm.MaxTokens(400))
	if err != nil || len(res.ToolCalls) != 0 || res.FinishReason == llm.FinishToolCalls {
		t.Errorf("without tools: %+v, %v", res, err)
	}
}
