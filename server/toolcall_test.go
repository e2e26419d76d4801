package server

import (
	"strings"
	"testing"
)

func TestParseToolCalls(t *testing.T) {
	known := map[string]bool{"get_weather": true, "add": true}
	type call struct{ name, args string }
	tests := []struct {
		name    string
		text    string
		content string
		calls   []call // nil: not a tool call
	}{
		{"hermes", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>", "",
			[]call{{"get_weather", `{"city":"Paris","unit":"c"}`}}},
		{"hermes after text", "Let me check.\n<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"}}</tool_call>", "Let me check.",
			[]call{{"get_weather", `{"city":"Rome"}`}}},
		{"hermes two, unclosed", "<tool_call>{\"name\":\"add\",\"arguments\":{\"a\":1}}</tool_call>\n<tool_call>{\"name\":\"add\",\"arguments\":{\"a\":2}}", "",
			[]call{{"add", `{"a":1}`}, {"add", `{"a":2}`}}},
		{"hermes string arguments", `<tool_call>{"name":"add","arguments":"{\"a\": 1}"}</tool_call>`, "", []call{{"add", `{"a":1}`}}},
		{"hermes any name", `<tool_call>{"name":"unknown_tool","arguments":{}}</tool_call>`, "", []call{{"unknown_tool", `{}`}}},
		{"hermes broken", "<tool_call>{\"name\": \"add\", \"argu", "", nil},
		{"mistral list", `[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "add", "arguments": {"b": 2, "a": 1}}]`, "",
			[]call{{"get_weather", `{"city":"Oslo"}`}, {"add", `{"b":2,"a":1}`}}},
		{"mistral v11", `[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}[TOOL_CALLS]add[ARGS]{"a": 1}`, "",
			[]call{{"get_weather", `{"city":"Oslo"}`}, {"add", `{"a":1}`}}},
		{"mistral broken", `[TOOL_CALLS]get_weather{"city": "Oslo"}`, "", nil},
		{"llama3", ` {"name": "get_weather", "parameters": {"city": "Lima"}}`, "", []call{{"get_weather", `{"city":"Lima"}`}}},
		{"llama3 python tag", `<|python_tag|>{"name": "search", "parameters": {"q": "x"}}`, "", []call{{"search", `{"q":"x"}`}}},
		{"llama3 two", `{"name": "add", "parameters": {"a": 1}}; {"name": "add", "parameters": {"a": 2}}`, "",
			[]call{{"add", `{"a":1}`}, {"add", `{"a":2}`}}},
		{"llama3 array", `[{"name": "add", "arguments": {"a": 1}}]`, "", []call{{"add", `{"a":1}`}}},
		{"json answer, unknown name", `{"name": "Lily", "parameters": {"age": 3}}`, "", nil},
		{"json answer", `{"answer": 42}`, "", nil},
		{"json then text", `{"name": "add", "parameters": {}} and more`, "", nil},
		{"arguments not an object", `<tool_call>{"name":"add","arguments":[1]}</tool_call>`, "", nil},
		{"no name", `<tool_call>{"arguments":{}}</tool_call>`, "", nil},
		{"plain text", "Once upon a time", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			content, calls, ok := parseToolCalls(tc.text, known)
			if ok != (tc.calls != nil) {
				t.Fatalf("ok %v, calls %+v", ok, calls)
			}
			if !ok {
				if content != tc.text {
					t.Errorf("content %q, want the text", content)
				}
				return
			}
			if content != tc.content || len(calls) != len(tc.calls) {
				t.Fatalf("content %q, calls %+v", content, calls)
			}
			for i, c := range calls {
				if c.Name != tc.calls[i].name || string(c.Arguments) != tc.calls[i].args || !strings.HasPrefix(c.ID, "call_") {
					t.Errorf("call %d: %s %s %s, want %s %s", i, c.ID, c.Name, c.Arguments, tc.calls[i].name, tc.calls[i].args)
				}
			}
		})
	}
}

// TestToolFilter: streamed text that starts a call is held and parsed at
// the end; other text streams on, whatever the chunking.
func TestToolFilter(t *testing.T) {
	known := map[string]bool{"f": true}
	tests := []struct {
		name     string
		text     string
		streamed string // sent before the end
		rest     string // sent at the end, as content
		calls    int
	}{
		{"plain", "Hello there, <b>friend</b>", "Hello there, <b>friend</b>", "", 0},
		{"hermes", "  <tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", "", "", 1},
		{"text then hermes", "Sure. <tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", "Sure. ", "", 1},
		{"json", "{\"name\":\"f\",\"parameters\":{\"x\":1}}", "", "", 1},
		{"json answer", "{\"answer\": 1}", "", "{\"answer\": 1}", 0},
		{"almost a marker", "<tool_cal is not it", "<tool_cal is not it", "", 0},
		{"marker prefix at the end", "ends with <tool", "ends with ", "<tool", 0},
		{"mistral", "[TOOL_CALLS][{\"name\":\"f\",\"arguments\":{}}]", "", "", 1},
	}
	for _, tc := range tests {
		for _, size := range []int{1, 3, 1000} {
			f := &toolFilter{known: known}
			var streamed strings.Builder
			for i := 0; i < len(tc.text); i += size {
				streamed.WriteString(f.push(tc.text[i:min(i+size, len(tc.text))]))
			}
			rest, calls := f.finish()
			if streamed.String() != tc.streamed || rest != tc.rest || len(calls) != tc.calls {
				t.Errorf("%s, chunks of %d: streamed %q, rest %q, %d calls; want %q, %q, %d",
					tc.name, size, streamed.String(), rest, len(calls), tc.streamed, tc.rest, tc.calls)
			}
		}
	}
}
