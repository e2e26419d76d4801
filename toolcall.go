package llm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/llm-go/llm/tokenizer"
)

// ToolCall is a function call a model made: Result.ToolCalls, and the
// ToolCalls of an assistant Message sent back with the results.
type ToolCall = tokenizer.ToolCall

// newCallID returns an id for a parsed tool call, as OpenAI's look.
func newCallID() string {
	var b [12]byte
	rand.Read(b[:])
	return "call_" + hex.EncodeToString(b[:])
}

// ToolNames returns the function names of tool definitions in OpenAI's
// shape ({"type": "function", "function": {"name": ...}}) or bare
// ({"name": ...}).
func ToolNames(tools []any) []string {
	var names []string
	for _, t := range tools {
		data, err := json.Marshal(t)
		if err != nil {
			continue
		}
		var def struct {
			Name     string `json:"name"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(data, &def) != nil {
			continue
		}
		if def.Function.Name != "" {
			names = append(names, def.Function.Name)
		} else if def.Name != "" {
			names = append(names, def.Name)
		}
	}
	return names
}

// Markers that open tool calls in the formats chat templates define.
const (
	hermesOpen   = "<tool_call>"    // Hermes, Qwen 2/2.5/3: <tool_call>{json}</tool_call>
	hermesClose  = "</tool_call>"   //
	mistralCalls = "[TOOL_CALLS]"   // Mistral: [TOOL_CALLS][{...}, ...] or [TOOL_CALLS]name[ARGS]{...}
	mistralArgs  = "[ARGS]"         //
	pythonTag    = "<|python_tag|>" // Llama 3.1: an optional prefix of the JSON call
)

// ParseToolCalls finds the tool calls in a model's output, in the formats
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
//     the offered tools (names).
//
// It returns the text outside the calls and the calls, each with a fresh
// id and its arguments as a compact JSON object (json.RawMessage, in the
// model's key order); ok is false when the output holds no well-formed
// call, and is then plain content.
func ParseToolCalls(text string, names []string) (content string, calls []ToolCall, ok bool) {
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
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
			if !tagged && !known[c.Function.Name] {
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
func parseHermes(s string) ([]ToolCall, string, error) {
	var calls []ToolCall
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
func parseMistral(s string) ([]ToolCall, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		return parseJSONCalls(s)
	}
	var calls []ToolCall
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
func parseJSONCalls(s string) ([]ToolCall, error) {
	var calls []ToolCall
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
func callFromJSON(data []byte) (ToolCall, error) {
	var obj struct {
		Name       string          `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
		Parameters json.RawMessage `json:"parameters"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return ToolCall{}, fmt.Errorf("a tool call is not a JSON object with a name: %w", err)
	}
	args := obj.Arguments
	if isNull(args) {
		args = obj.Parameters
	}
	return newCall(obj.Name, args)
}

// newCall checks a call's name and arguments (an object, or a string
// holding one; none is {}).
func newCall(name string, args json.RawMessage) (ToolCall, error) {
	if name == "" {
		return ToolCall{}, errors.New("a tool call without a name")
	}
	args = bytes.TrimSpace(args)
	if isNull(args) {
		args = json.RawMessage("{}")
	}
	if args[0] == '"' {
		var s string
		if err := json.Unmarshal(args, &s); err != nil {
			return ToolCall{}, err
		}
		args = json.RawMessage(strings.TrimSpace(s))
	}
	if !json.Valid(args) || args[0] != '{' {
		return ToolCall{}, fmt.Errorf("the arguments of %s are not a JSON object", name)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return ToolCall{}, err
	}
	return ToolCall{ID: newCallID(), Type: "function", Function: tokenizer.FunctionCall{Name: name, Arguments: json.RawMessage(buf.Bytes())}}, nil
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}
