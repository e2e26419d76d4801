// Package modelfile reads Ollama's Modelfile format, renders the Go
// text/template chat templates its TEMPLATE command holds (with Ollama's
// semantics), and keeps named presets made from Modelfiles.
//
// A Modelfile is a list of commands, one per line, case-insensitive:
//
//	FROM Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M
//	PARAMETER temperature 0.2
//	PARAMETER stop "<|im_end|>"
//	SYSTEM """You are a pirate.
//	Answer in one sentence."""
//	MESSAGE user Who are you?
//	MESSAGE assistant Arr, a pirate.
//
// A value runs to the end of its line, or, when it opens with " or """,
// to the matching closing quotes, across lines. Lines starting with # are
// comments.
package modelfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors callers can test with errors.Is.
var (
	// ErrNoFrom means a Modelfile has no FROM command.
	ErrNoFrom = errors.New("modelfile: no FROM command")
)

// SyntaxError is a malformed line.
type SyntaxError struct {
	Line int    // 1-based
	Msg  string // what is wrong
}

// Error implements error.
func (e *SyntaxError) Error() string { return fmt.Sprintf("modelfile: line %d: %s", e.Line, e.Msg) }

// Modelfile is a parsed Modelfile.
type Modelfile struct {
	From       string      // the base model: a GGUF path, an HF directory, a Hub name or another preset
	Parameters []Parameter // in the order given; a name may repeat (stop)
	System     string      // the default system prompt (the last SYSTEM wins)
	Template   string      // a Go text/template chat template (the last TEMPLATE wins)
	Messages   []Message   // a conversation put before every chat
	License    []string    // LICENSE texts
	Adapters   []string    // ADAPTER paths: LoRA adapter GGUF files
	Other      []Parameter // RENDERER, PARSER and REQUIRES, kept but not applied
}

// Parameter is one PARAMETER command.
type Parameter struct {
	Name  string // lower case, e.g. "temperature", "stop", "num_ctx"
	Value string // as written, unquoted
}

// Message is one MESSAGE command.
type Message struct {
	Role    string // system, user, assistant or tool
	Content string
}

// Parse reads a Modelfile.
func Parse(r io.Reader) (*Modelfile, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("modelfile: %w", err)
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), len(text)+1)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	var m Modelfile
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		if w, r, ok := strings.Cut(line, "\t"); ok && len(w) < len(word) {
			word, rest = w, r
		}
		cmd := strings.ToLower(word)
		rest = strings.TrimLeft(rest, " \t")
		var name string
		switch cmd {
		case "parameter", "message":
			name, rest, _ = cutSpace(rest)
			if name == "" {
				return nil, &SyntaxError{lineNo, fmt.Sprintf("%s needs a name and a value", strings.ToUpper(cmd))}
			}
		case "from", "system", "template", "license", "adapter", "renderer", "parser", "requires":
		default:
			return nil, &SyntaxError{lineNo, fmt.Sprintf("unknown command %q: want FROM, PARAMETER, SYSTEM, TEMPLATE, MESSAGE, LICENSE, ADAPTER, RENDERER, PARSER or REQUIRES", word)}
		}
		value, used, err := readValue(rest, lines[i+1:])
		if err != nil {
			return nil, &SyntaxError{lineNo, fmt.Sprintf("%s: %v", strings.ToUpper(cmd), err)}
		}
		i += used
		if value == "" && (cmd == "parameter" || cmd == "message") {
			return nil, &SyntaxError{lineNo, fmt.Sprintf("%s needs a name and a value", strings.ToUpper(cmd))}
		}
		switch cmd {
		case "from":
			if value == "" {
				return nil, &SyntaxError{lineNo, "FROM needs a model"}
			}
			m.From = value
		case "parameter":
			if !validParamName(name) {
				return nil, &SyntaxError{lineNo, fmt.Sprintf("PARAMETER name %q: letters, digits and _ only", name)}
			}
			m.Parameters = append(m.Parameters, Parameter{Name: strings.ToLower(name), Value: value})
		case "message":
			role := strings.ToLower(name)
			switch role {
			case "system", "user", "assistant", "tool":
			default:
				return nil, &SyntaxError{lineNo, fmt.Sprintf("MESSAGE role %q: want system, user, assistant or tool", name)}
			}
			m.Messages = append(m.Messages, Message{Role: role, Content: value})
		case "system":
			m.System = value
		case "template":
			m.Template = value
		case "license":
			m.License = append(m.License, value)
		case "adapter":
			m.Adapters = append(m.Adapters, value)
		default:
			m.Other = append(m.Other, Parameter{Name: cmd, Value: value})
		}
	}
	if m.From == "" {
		return nil, ErrNoFrom
	}
	return &m, nil
}

// cutSpace splits s at its first run of blanks.
func cutSpace(s string) (word, rest string, ok bool) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", false
	}
	return s[:i], strings.TrimLeft(s[i:], " \t"), true
}

func validParamName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return s != ""
}

// readValue reads a value that starts with first (the rest of the command's
// line) and may continue on the following lines when quoted. It returns
// the value and how many following lines it used.
func readValue(first string, next []string) (string, int, error) {
	first = strings.TrimRight(first, " \t")
	var quote string
	switch {
	case strings.HasPrefix(first, `"""`):
		quote = `"""`
	case strings.HasPrefix(first, `"`):
		quote = `"`
	default:
		return first, 0, nil
	}
	body := first[len(quote):]
	for used := 0; ; used++ {
		if end := strings.Index(body, quote); end >= 0 {
			if tail := strings.TrimSpace(body[end+len(quote):]); tail != "" {
				return "", 0, fmt.Errorf("text %q after the closing %s", tail, quote)
			}
			return body[:end], used, nil
		}
		if used == len(next) {
			return "", 0, fmt.Errorf("no closing %s", quote)
		}
		body += "\n" + next[used]
	}
}

// String formats m as a Modelfile that Parse reads back to the same value.
func (m *Modelfile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", quote(m.From))
	for _, p := range m.Parameters {
		fmt.Fprintf(&b, "PARAMETER %s %s\n", p.Name, quote(p.Value))
	}
	if m.Template != "" {
		fmt.Fprintf(&b, "TEMPLATE %s\n", quote(m.Template))
	}
	if m.System != "" {
		fmt.Fprintf(&b, "SYSTEM %s\n", quote(m.System))
	}
	for _, a := range m.Adapters {
		fmt.Fprintf(&b, "ADAPTER %s\n", quote(a))
	}
	for _, o := range m.Other {
		fmt.Fprintf(&b, "%s %s\n", strings.ToUpper(o.Name), quote(o.Value))
	}
	for _, msg := range m.Messages {
		fmt.Fprintf(&b, "MESSAGE %s %s\n", msg.Role, quote(msg.Content))
	}
	for _, l := range m.License {
		fmt.Fprintf(&b, "LICENSE %s\n", quote(l))
	}
	return b.String()
}

// quote quotes a value when it would not read back as it is.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, "\n\"") && strings.TrimSpace(s) == s {
		return s
	}
	if !strings.Contains(s, `"`) && !strings.Contains(s, "\n") {
		return `"` + s + `"`
	}
	return `"""` + s + `"""`
}
