package modelfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/llm-go/llm/tokenizer"
)

// Template is a chat template in Ollama's Go text/template form, rendered
// as Ollama renders it:
//
//   - A template that uses .Messages gets the whole conversation at once:
//     .System (every system message joined by blank lines), .Messages
//     (.Role, .Content, .Thinking, .ToolCalls, .ToolName, .ToolCallID),
//     .Tools and an empty .Response.
//   - Any other template is a per-turn template over .System, .Prompt and
//     .Response: it is rendered once per user turn with that turn's answer,
//     and the last turn is cut after the .Response action, leaving the
//     assistant's turn open (or continuing a final assistant message). A template that names neither .Messages nor
//     .Response gets {{ .Response }} appended.
//
// Consecutive messages of the same role (other than tool) are merged with a
// blank line between them first. The functions json, currentDate,
// yesterdayDate and toTypeScriptType are defined; a missing field renders
// as its zero value.
type Template struct {
	raw      string
	t        *template.Template
	messages bool // the template uses .Messages
	now      func() time.Time
}

// ParseTemplate parses an Ollama chat template.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{raw: s, now: time.Now}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(t.funcs()).Parse(s)
	if err != nil {
		return nil, fmt.Errorf("modelfile: TEMPLATE: %w", err)
	}
	vars := map[string]bool{}
	if tmpl.Tree != nil {
		walk(tmpl.Tree.Root, func(n parse.Node) {
			if f, ok := n.(*parse.FieldNode); ok {
				for _, id := range f.Ident {
					vars[strings.ToLower(id)] = true
				}
			}
		})
	}
	t.messages = vars["messages"]
	if !t.messages && !vars["response"] {
		tmpl, err = template.New("").Option("missingkey=zero").Funcs(t.funcs()).Parse(s + "{{ .Response }}")
		if err != nil {
			return nil, fmt.Errorf("modelfile: TEMPLATE: %w", err)
		}
	}
	t.t = tmpl
	return t, nil
}

// String returns the template text.
func (t *Template) String() string { return t.raw }

func (t *Template) funcs() template.FuncMap {
	return template.FuncMap{
		"json": func(v any) string {
			b, _ := json.Marshal(v)
			return string(b)
		},
		"currentDate":      func(...string) string { return t.now().Format("2006-01-02") },
		"yesterdayDate":    func(...string) string { return t.now().AddDate(0, 0, -1).Format("2006-01-02") },
		"toTypeScriptType": toTypeScriptType,
	}
}

// walk calls fn on every node under n.
func walk(n parse.Node, fn func(parse.Node)) {
	if n == nil {
		return
	}
	fn(n)
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				walk(c, fn)
			}
		}
	case *parse.ActionNode:
		walk(n.Pipe, fn)
	case *parse.PipeNode:
		if n != nil {
			for _, d := range n.Decl {
				walk(d, fn)
			}
			for _, c := range n.Cmds {
				walk(c, fn)
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walk(a, fn)
		}
	case *parse.IfNode:
		walk(n.Pipe, fn)
		walk(n.List, fn)
		walk(n.ElseList, fn)
	case *parse.RangeNode:
		walk(n.Pipe, fn)
		walk(n.List, fn)
		walk(n.ElseList, fn)
	case *parse.WithNode:
		walk(n.Pipe, fn)
		walk(n.List, fn)
		walk(n.ElseList, fn)
	case *parse.TemplateNode:
		walk(n.Pipe, fn)
	case *parse.ChainNode:
		walk(n.Node, fn)
	}
}

// message is what a template sees of one message.
type message struct {
	Role       string
	Content    string
	Thinking   string
	ToolCalls  []toolCall
	ToolName   string
	ToolCallID string
}

type toolCall struct {
	ID       string
	Function toolCallFunction
}

type toolCallFunction struct {
	Index     int
	Name      string
	Arguments jsonMap
}

// jsonMap is a map that prints as JSON.
type jsonMap map[string]any

// String formats the map as JSON.
func (m jsonMap) String() string {
	if m == nil {
		return "{}"
	}
	b, _ := json.Marshal(map[string]any(m))
	return string(b)
}

// tools is the .Tools value: it prints as JSON.
type tools []tool

// String formats the tools as JSON.
func (t tools) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

type tool struct {
	Type     string       `json:"type"`
	Items    any          `json:"items,omitempty"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Parameters  toolParameters `json:"parameters"`
}

type toolParameters struct {
	Type       string     `json:"type"`
	Defs       any        `json:"$defs,omitempty"`
	Items      any        `json:"items,omitempty"`
	Required   []string   `json:"required,omitempty"`
	Properties properties `json:"properties"`
}

// properties prints as JSON.
type properties map[string]property

// String formats the properties as JSON.
func (p properties) String() string {
	if p == nil {
		return "{}"
	}
	b, _ := json.Marshal(map[string]property(p))
	return string(b)
}

type property struct {
	AnyOf       []property `json:"anyOf,omitempty"`
	Type        any        `json:"type,omitempty"`
	Items       any        `json:"items,omitempty"`
	Description string     `json:"description,omitempty"`
	Enum        []any      `json:"enum,omitempty"`
}

// toTypeScriptType renders a property's JSON-schema type as TypeScript.
func toTypeScriptType(v any) string {
	p, ok := v.(property)
	if !ok {
		if pp, ok2 := v.(*property); ok2 && pp != nil {
			p, ok = *pp, true
		}
	}
	if !ok {
		return "any"
	}
	if len(p.AnyOf) > 0 {
		var parts []string
		for _, a := range p.AnyOf {
			parts = append(parts, toTypeScriptType(a))
		}
		return strings.Join(parts, " | ")
	}
	var types []string
	switch t := p.Type.(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				types = append(types, s)
			}
		}
	}
	if len(types) == 0 {
		return "any"
	}
	var out []string
	for _, t := range types {
		switch t {
		case "string", "number", "boolean", "null":
			out = append(out, t)
		case "integer":
			out = append(out, "number")
		case "array":
			out = append(out, "any[]")
		case "object":
			out = append(out, "Record<string, any>")
		default:
			out = append(out, "any")
		}
	}
	return strings.Join(out, " | ")
}

// Render renders a conversation, opening the assistant's turn. tools are
// JSON-like tool definitions (OpenAI's shape).
func (t *Template) Render(messages []tokenizer.Message, toolDefs []any) (string, error) {
	msgs, err := convertMessages(messages)
	if err != nil {
		return "", err
	}
	system, msgs := collate(msgs)
	if t.messages {
		ts, err := convertTools(toolDefs)
		if err != nil {
			return "", err
		}
		var b bytes.Buffer
		err = t.t.Execute(&b, map[string]any{
			"System": system, "Messages": msgs, "Tools": ts, "Response": "",
			"Think": false, "ThinkLevel": "", "IsThinkSet": false,
		})
		if err != nil {
			return "", fmt.Errorf("modelfile: TEMPLATE: %w", err)
		}
		return b.String(), nil
	}

	var b bytes.Buffer
	system = ""
	var prompt, response string
	exec := func(tmpl *template.Template) error {
		err := tmpl.Execute(&b, map[string]any{
			"System": system, "Prompt": prompt, "Response": response,
			"Think": false, "ThinkLevel": "", "IsThinkSet": false,
		})
		system, prompt, response = "", "", ""
		if err != nil {
			return fmt.Errorf("modelfile: TEMPLATE: %w", err)
		}
		return nil
	}
	for _, m := range msgs {
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				if err := exec(t.t); err != nil {
					return "", err
				}
			}
			system = m.Content
		case "user":
			if response != "" {
				if err := exec(t.t); err != nil {
					return "", err
				}
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
	}
	if err := exec(t.cut()); err != nil {
		return "", err
	}
	return b.String(), nil
}

// cut returns the template with everything after the first .Response
// action removed, for the open last turn.
func (t *Template) cut() *template.Template {
	root := t.t.Tree.Root.CopyList()
	cutting := false
	var prune func(l *parse.ListNode) *parse.ListNode
	prune = func(l *parse.ListNode) *parse.ListNode {
		if l == nil {
			return nil
		}
		var kept []parse.Node
		for _, n := range l.Nodes {
			if cutting {
				break
			}
			if usesResponse(n) && isLeaf(n) {
				// The .Response action stays (an assistant message that
				// ends the conversation is continued); what follows goes.
				kept = append(kept, n)
				cutting = true
				break
			}
			switch n := n.(type) {
			case *parse.IfNode:
				n.List, n.ElseList = prune(n.List), prune(n.ElseList)
			case *parse.RangeNode:
				n.List, n.ElseList = prune(n.List), prune(n.ElseList)
			case *parse.WithNode:
				n.List, n.ElseList = prune(n.List), prune(n.ElseList)
			}
			kept = append(kept, n)
		}
		l.Nodes = kept
		return l
	}
	prune(root)
	tree := &parse.Tree{Root: root}
	out, _ := template.New("").Option("missingkey=zero").Funcs(t.funcs()).AddParseTree("", tree)
	return out
}

// usesResponse reports whether n mentions .Response.
func usesResponse(n parse.Node) bool {
	found := false
	walk(n, func(x parse.Node) {
		if f, ok := x.(*parse.FieldNode); ok && slices.Contains(f.Ident, "Response") {
			found = true
		}
	})
	return found
}

// isLeaf reports whether n is an action rather than a control structure
// whose branches are pruned separately.
func isLeaf(n parse.Node) bool {
	switch n.(type) {
	case *parse.IfNode, *parse.RangeNode, *parse.WithNode:
		return false
	}
	return true
}

// collate merges consecutive messages of the same role (not tool) and
// gathers the system messages' text.
func collate(msgs []*message) (string, []*message) {
	var system []string
	var out []*message
	for _, m := range msgs {
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if n := len(out); n > 0 && out[n-1].Role == m.Role && m.Role != "tool" {
			out[n-1].Content += "\n\n" + m.Content
			continue
		}
		out = append(out, m)
	}
	return strings.Join(system, "\n\n"), out
}

// convertMessages gives each message the fields Ollama's templates use.
func convertMessages(in []tokenizer.Message) ([]*message, error) {
	out := make([]*message, 0, len(in))
	for i, m := range in {
		content, err := textOf(m.Content)
		if err != nil {
			return nil, fmt.Errorf("modelfile: message %d: %w", i, err)
		}
		msg := &message{Role: m.Role, Content: content, ToolName: m.Name, ToolCallID: m.ToolCallID}
		if m.Extra != nil {
			for _, k := range []string{"thinking", "reasoning_content"} {
				if v, ok := m.Extra.Get(k); ok {
					if s, ok := v.(string); ok {
						msg.Thinking = s
						break
					}
				}
			}
			if v, ok := m.Extra.Get("tool_name"); ok && msg.ToolName == "" {
				msg.ToolName, _ = v.(string)
			}
		}
		for j, c := range m.ToolCalls {
			args, err := argumentsOf(c.Function.Arguments)
			if err != nil {
				return nil, fmt.Errorf("modelfile: message %d, tool call %d: %w", i, j, err)
			}
			msg.ToolCalls = append(msg.ToolCalls, toolCall{ID: c.ID, Function: toolCallFunction{Index: j, Name: c.Function.Name, Arguments: args}})
		}
		out = append(out, msg)
	}
	return out, nil
}

// textOf returns a message content's text: a string, or the text parts of
// a list joined by newlines.
func textOf(c any) (string, error) {
	switch c := c.(type) {
	case nil:
		return "", nil
	case string:
		return c, nil
	case []tokenizer.Part:
		var parts []string
		for _, p := range c {
			if p.Type == "text" {
				parts = append(parts, p.Text)
			}
		}
		return strings.Join(parts, "\n"), nil
	default:
		return "", fmt.Errorf("content of type %T: want a string or text parts", c)
	}
}

// argumentsOf turns tool-call arguments (an object or a JSON string) into a
// map.
func argumentsOf(a any) (jsonMap, error) {
	var data []byte
	switch a := a.(type) {
	case nil:
		return jsonMap{}, nil
	case string:
		data = []byte(a)
	default:
		var err error
		if data, err = json.Marshal(a); err != nil {
			return nil, err
		}
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("arguments are not a JSON object: %w", err)
	}
	return m, nil
}

// convertTools reads JSON-like tool definitions into the shape Ollama's
// templates range over.
func convertTools(in []any) (tools, error) {
	if len(in) == 0 {
		return nil, nil
	}
	data, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("modelfile: tools: %w", err)
	}
	var out tools
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("modelfile: tools: %w", err)
	}
	return out, nil
}
