package server

import (
	"encoding/json"
	"strings"

	"github.com/llm-go/llm"
)

// toolCall is a function call parsed from a model's output.
type toolCall struct {
	ID        string
	Name      string
	Arguments json.RawMessage // a JSON object, in the model's key order
}

// Markers that open tool calls in the formats chat templates define (see
// llm.ParseToolCalls).
const (
	hermesOpen   = "<tool_call>"    // Hermes, Qwen 2/2.5/3
	mistralCalls = "[TOOL_CALLS]"   // Mistral
	pythonTag    = "<|python_tag|>" // Llama 3.1
)

// parseToolCalls finds the tool calls in a model's output with
// llm.ParseToolCalls; a bare JSON call counts only when it names one of the
// offered tools (known).
func parseToolCalls(text string, known map[string]bool) (content string, calls []toolCall, ok bool) {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	content, found, ok := llm.ParseToolCalls(text, names)
	for _, c := range found {
		args, _ := c.Function.Arguments.(json.RawMessage)
		calls = append(calls, toolCall{ID: c.ID, Name: c.Function.Name, Arguments: args})
	}
	return content, calls, ok
}

// replyCalls returns the calls of a reply: those in its text, or else those
// the library parsed out of it (a harmony reply, gpt-oss's, whose calls are
// separate messages and not in the text), of the offered tools (known).
func replyCalls(res *genResult, text string, known map[string]bool) (content string, calls []toolCall, ok bool) {
	if content, calls, ok := parseToolCalls(text, known); ok {
		return content, calls, true
	}
	calls = libraryCalls(res, known)
	return text, calls, len(calls) > 0
}

// libraryCalls returns the calls the library parsed, of the offered tools.
func libraryCalls(res *genResult, known map[string]bool) []toolCall {
	var calls []toolCall
	for _, c := range res.calls {
		if !known[c.Function.Name] {
			continue
		}
		args, _ := c.Function.Arguments.(json.RawMessage)
		calls = append(calls, toolCall{ID: c.ID, Name: c.Function.Name, Arguments: args})
	}
	return calls
}

// toolFilter holds back streamed text that may be a tool call, so that the
// call is sent as a call and not as content. Text that starts with a call
// marker (or JSON) is held to the end and parsed; other text streams on,
// except that a Hermes <tool_call> later in it starts holding again.
type toolFilter struct {
	known    map[string]bool
	state    int // filterUndecided, filterContent or filterCapture
	pending  string
	captured strings.Builder
}

const (
	filterUndecided = iota
	filterContent
	filterCapture
)

// callStarts are the beginnings of output that may be a tool call.
var callStarts = []string{hermesOpen, mistralCalls, pythonTag, "{", "["}

// push takes new text and returns what may be sent as content now.
func (f *toolFilter) push(text string) string {
	switch f.state {
	case filterCapture:
		f.captured.WriteString(text)
		return ""
	case filterUndecided:
		f.pending += text
		t := strings.TrimLeft(f.pending, " \t\r\n")
		if t == "" {
			return ""
		}
		for _, m := range callStarts {
			if strings.HasPrefix(t, m) {
				f.state = filterCapture
				f.captured.WriteString(f.pending)
				f.pending = ""
				return ""
			}
			if strings.HasPrefix(m, t) {
				return "" // may still become a marker
			}
		}
		f.state = filterContent
		text, f.pending = f.pending, ""
	}
	s := f.pending + text
	if i := strings.Index(s, hermesOpen); i >= 0 {
		f.state = filterCapture
		f.captured.WriteString(s[i:])
		f.pending = ""
		return s[:i]
	}
	hold := overlap(s, hermesOpen)
	f.pending = s[len(s)-hold:]
	return s[:len(s)-hold]
}

// finish returns the content still held and the calls found in it.
func (f *toolFilter) finish() (string, []toolCall) {
	if f.state != filterCapture {
		out := f.pending
		f.pending = ""
		return out, nil
	}
	text := f.captured.String()
	if content, calls, ok := parseToolCalls(text, f.known); ok {
		return content, calls
	}
	return text, nil
}

// overlap returns the length of the longest suffix of text that is a proper
// prefix of marker.
func overlap(text, marker string) int {
	for n := min(len(text), len(marker)-1); n > 0; n-- {
		if strings.HasSuffix(text, marker[:n]) {
			return n
		}
	}
	return 0
}
