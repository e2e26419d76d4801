package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// toolCall is a function call parsed from a model's output.
type toolCall struct {
	ID        string
	Name      string
	Arguments json.RawMessage // a JSON object, in the model's key order
}

// Markers that open tool calls in the formats chat templates define.
const (
	hermesOpen   = "<tool_call>"    // Hermes, Qwen 2/2.5/3: <tool_call>{json}</tool_call>
	hermesClose  = "</tool_call>"   //
	mistralCalls = "[TOOL_CALLS]"   // Mistral: [TOOL_CALLS][{...}, ...] or [TOOL_CALLS]name[ARGS]{...}
	mistralArgs  = "[ARGS]"         //
	pythonTag    = "<|python_tag|>" // Llama 3.1: an optional prefix of the JSON call
)

// parseToolCalls finds the tool calls in a model's output, in the formats
// of the common chat templates:
//
//   - Hermes and Qwen: <tool_call>{"name": …, "arguments": {…}}</tool_call>,
//     one or more, possibly after some text (which stays the content);
//   - Mistral: [TOOL_CALLS][{"name": …, "arguments": {…}}, …], or the newer
//     [TOOL_CALLS]name[ARGS]{…};
//   - Llama 3: the whole output one JSON object {"name": …, "parameters":
//     {…}} (or "arguments"), optionally after <|python_tag|>, or several
//     separated by ";" or newlines, or a JSON array of them. Since ordinary
//     answers can be JSON too, such a call counts only when it names one of
//     the offered tools (known).
//
// It returns the text outside the calls and the calls; ok is false when the
// output holds no well-formed call, and is then plain content.
func parseToolCalls(text string, known map[string]bool) (content string, calls []toolCall, ok bool) {
	trimmed := strings.TrimSpace(text)
	if i := strings.Index(text, hermesOpen); i >= 0 {
		calls, rest, err := parseHermes(text[i:])
		if err == nil {
			return strings.TrimSpace(text[:i] + rest), calls, true
		}
		return text, nil, false
	}
	if rest, found := strings.CutPrefix(trimmed, mistralCalls); found {
		calls, err := parseMistral(rest)
		if err == nil {
			return "", calls, true
		}
		return text, nil, false
	}
	rest, tagged := strings.CutPrefix(trimmed, pythonTag)
	if strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, "[") {
		calls, err := parseJSONCalls(rest)
		if err != nil {
			return text, nil, false
		}
		for _, c := range calls {
			if !tagged && !known[c.Name] {
				return text, nil, false
			}
		}
		return "", calls, true
	}
	return text, nil, false
}

// parseHermes parses <tool_call>…</tool_call> blocks; a missing last
// closing tag is accepted (generation stopped at the end of the turn). It
// returns the text after the calls.
func parseHermes(s string) ([]toolCall, string, error) {
	var calls []toolCall
	for {
		body, ok := strings.CutPrefix(strings.TrimSpace(s), hermesOpen)
		if !ok {
			break
		}
		s = ""
		if end := strings.Index(body, hermesClose); end >= 0 {
			body, s = body[:end], body[end+len(hermesClose):]
		}
		c, err := callFromJSON([]byte(strings.TrimSpace(body)))
		if err != nil {
			return nil, "", err
		}
		calls = append(calls, c)
	}
	return calls, s, nil
}

// parseMistral parses what follows [TOOL_CALLS].
func parseMistral(s string) ([]toolCall, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		return parseJSONCalls(s)
	}
	var calls []toolCall
	for s != "" {
		name, args, ok := strings.Cut(s, mistralArgs)
		if !ok {
			return nil, errors.New("a [TOOL_CALLS] call without [ARGS]")
		}
		dec := json.NewDecoder(strings.NewReader(args))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("the arguments of %s: %w", name, err)
		}
		c, err := newCall(strings.TrimSpace(name), raw)
		if err != nil {
			return nil, err
		}
		calls = append(calls, c)
		s = strings.TrimSpace(args[dec.InputOffset():])
		s = strings.TrimSpace(strings.TrimPrefix(s, mistralCalls))
	}
	if len(calls) == 0 {
		return nil, errors.New("no call after [TOOL_CALLS]")
	}
	return calls, nil
}

// parseJSONCalls parses a JSON array of calls, or JSON call objects
// separated by ";" or white space, making up the whole of s.
func parseJSONCalls(s string) ([]toolCall, error) {
	var calls []toolCall
	dec := json.NewDecoder(strings.NewReader(s))
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(raw, []byte("[")) {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, err
			}
			for _, item := range list {
				c, err := callFromJSON(item)
				if err != nil {
					return nil, err
				}
				calls = append(calls, c)
			}
		} else {
			c, err := callFromJSON(raw)
			if err != nil {
				return nil, err
			}
			calls = append(calls, c)
		}
		// Skip a ";" between calls.
		rest := strings.TrimLeft(s[dec.InputOffset():], " \t\r\n")
		if strings.HasPrefix(rest, ";") {
			dec = json.NewDecoder(strings.NewReader(rest[1:]))
			s = rest[1:]
		}
	}
	if len(calls) == 0 {
		return nil, errors.New("no call")
	}
	return calls, nil
}

// callFromJSON reads {"name": …, "arguments" or "parameters": {…} or a
// string holding a JSON object}.
func callFromJSON(data []byte) (toolCall, error) {
	var obj struct {
		Name       string          `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
		Parameters json.RawMessage `json:"parameters"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return toolCall{}, fmt.Errorf("a tool call is not a JSON object with a name: %w", err)
	}
	args := obj.Arguments
	if isNull(args) {
		args = obj.Parameters
	}
	return newCall(obj.Name, args)
}

// newCall checks a call's name and arguments (an object, or a string
// holding one; none is {}).
func newCall(name string, args json.RawMessage) (toolCall, error) {
	if name == "" {
		return toolCall{}, errors.New("a tool call without a name")
	}
	args = bytes.TrimSpace(args)
	if isNull(args) {
		args = json.RawMessage("{}")
	}
	if args[0] == '"' {
		var s string
		if err := json.Unmarshal(args, &s); err != nil {
			return toolCall{}, err
		}
		args = json.RawMessage(strings.TrimSpace(s))
	}
	if !json.Valid(args) || args[0] != '{' {
		return toolCall{}, fmt.Errorf("the arguments of %s are not a JSON object", name)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return toolCall{}, err
	}
	return toolCall{ID: "call_" + newRequestID(), Name: name, Arguments: buf.Bytes()}, nil
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
