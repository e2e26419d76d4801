package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/llm-go/llm/tokenizer/internal/jinja"
)

// Template is a parsed chat template. It is safe for concurrent use.
type Template struct {
	src string
	t   *jinja.Template
}

// TemplateError is the error raised by a template calling
// raise_exception(message), e.g. a model that rejects a system message.
// It corresponds to jinja2.exceptions.TemplateError in Python.
type TemplateError struct {
	Message string
}

// Error implements the error interface.
func (e *TemplateError) Error() string { return "TemplateError: " + e.Message }

// UndefinedError reports a use of an undefined value that Python Jinja2
// rejects (arithmetic such as "text" + functions), as
// jinja2.exceptions.UndefinedError does. Printing an undefined value, testing
// it (is defined, if x) and ~ concatenation are not errors.
type UndefinedError struct {
	// Message is Python's message, e.g. "'functions' is undefined".
	Message string
}

// Error implements the error interface.
func (e *UndefinedError) Error() string { return "UndefinedError: " + e.Message }

// Options is the input of [Template.Render]: the variables transformers'
// apply_chat_template passes to the template.
type Options struct {
	// Messages is the conversation.
	Messages []Message
	// Tools are the tool (function) definitions, usually OpenAI-style
	// {"type": "function", "function": {...}} objects. Use *Object (or
	// [DecodeJSON]) to keep key order; structs are encoded through
	// encoding/json, which keeps field order. Nil leaves tools undefined.
	Tools []any
	// AddGenerationPrompt asks the template to open an assistant turn.
	AddGenerationPrompt bool
	// BOS and EOS are the values of bos_token and eos_token.
	BOS, EOS string
	// Now is the time strftime_now formats; zero means time.Now().
	Now time.Time
	// Extra holds further template variables, such as enable_thinking or
	// documents (apply_chat_template's **kwargs). Their values are
	// converted like Tools. They cannot replace the variables above.
	Extra map[string]any
}

// Message is one conversation turn. Keys are presented to the template in
// the order role, content, tool_calls, tool_call_id, name, then Extra's.
// Empty optional fields are left undefined, as if the key were absent from
// the Python dict.
type Message struct {
	// Role is "system", "user", "assistant", "tool", ...
	Role string
	// Content is a string, a []Part (multimodal content as a list of
	// parts), or any other JSON-like value; nil leaves content undefined.
	Content any
	// ToolCalls are the calls an assistant message makes.
	ToolCalls []ToolCall
	// ToolCallID is the id of the call a "tool" message answers.
	ToolCallID string
	// Name is the tool name of a "tool" message (or a participant name).
	Name string
	// Extra holds further keys (e.g. "reasoning_content", "thinking"),
	// appended in order.
	Extra *Object
}

// Part is one element of a message's content list.
type Part struct {
	// Type is "text", "image", ...
	Type string
	// Text is the text of a "text" part; empty leaves it undefined.
	Text string
	// Extra holds further keys (e.g. "image_url"), appended in order.
	Extra *Object
}

// ToolCall is one call in an assistant message's tool_calls.
type ToolCall struct {
	// ID is the call id; empty leaves it undefined.
	ID string
	// Type is usually "function"; empty leaves it undefined.
	Type string
	// Function is the called function.
	Function FunctionCall
}

// FunctionCall names the function a [ToolCall] calls.
type FunctionCall struct {
	// Name is the function name.
	Name string
	// Arguments is either an object (*Object, to keep key order, or any
	// JSON-like value) or a string holding JSON, as clients send it.
	Arguments any
}

// Parse parses a chat template.
func Parse(src string) (*Template, error) {
	t, err := jinja.Compile(rewrite(src))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: parse chat template: %w", err)
	}
	return &Template{src: src, t: t}, nil
}

// Source returns the template text given to [Parse].
func (t *Template) Source() string { return t.src }

// tojsonName is the name the tojson filter is renamed to, so that our
// Python-compatible implementation runs instead of the engine's built-in.
const tojsonName = "llm_py_tojson"

var (
	// tagRE matches {{ ... }} and {% ... %} tags (not comments).
	tagRE = regexp.MustCompile(`(?s)\{\{.*?\}\}|\{%.*?%\}`)
	// tojsonRE matches the tojson filter inside a tag.
	tojsonRE = regexp.MustCompile(`\|\s*tojson\b`)
	// generationRE matches transformers' {% generation %} and
	// {% endgeneration %} tags, which render nothing.
	generationRE = regexp.MustCompile(`^\{%(-?)\s*(?:end)?generation\s*(-?)%\}$`)
)

// rewrite adapts the template source to the engine: tojson is renamed to our
// filter and the generation tags become comments (with the same whitespace
// control, so the surrounding text is kept or trimmed as in Python).
func rewrite(src string) string {
	return tagRE.ReplaceAllStringFunc(src, func(tag string) string {
		if m := generationRE.FindStringSubmatch(tag); m != nil {
			return "{#" + m[1] + " generation " + m[2] + "#}"
		}
		return tojsonRE.ReplaceAllString(tag, "|"+tojsonName)
	})
}

// Render renders the template for the given conversation, as
// tokenizer.apply_chat_template(messages, tools=..., add_generation_prompt=...,
// tokenize=False, **extra) does. A raise_exception call in the template
// returns a *TemplateError.
func (t *Template) Render(opts Options) (string, error) {
	data := make(map[string]jinja.Value, 8+len(opts.Extra))
	keys := make([]string, 0, len(opts.Extra))
	for k := range opts.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		data[k] = toValue(opts.Extra[k])
	}
	msgs := make([]jinja.Value, len(opts.Messages))
	for i, m := range opts.Messages {
		msgs[i] = m.value()
	}
	data["messages"] = jinja.NewList(msgs)
	if opts.Tools != nil {
		data["tools"] = toValue(opts.Tools)
	}
	data["add_generation_prompt"] = jinja.NewBool(opts.AddGenerationPrompt)
	data["bos_token"] = jinja.NewString(opts.BOS)
	data["eos_token"] = jinja.NewString(opts.EOS)

	var raised *TemplateError
	data["raise_exception"] = jinja.NewCallable("raise_exception", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		msg := ""
		if len(args) > 0 {
			msg = args[0].String()
			if args[0].IsString() {
				msg = args[0].AsString()
			}
		}
		raised = &TemplateError{Message: msg}
		return jinja.Undefined(), raised
	})
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	data["strftime_now"] = jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		if len(args) == 0 || !args[0].IsString() {
			return jinja.Undefined(), errors.New("strftime_now: format must be a string")
		}
		return jinja.NewString(strftime(now, args[0].AsString())), nil
	})
	data[tojsonName] = jinja.NewCallable("tojson", tojson)

	out, err := t.t.RenderValues(data)
	if err != nil {
		if raised != nil {
			return "", raised
		}
		var ue *jinja.UndefinedError
		if errors.As(err, &ue) {
			return "", &UndefinedError{Message: ue.Message}
		}
		return "", fmt.Errorf("tokenizer: render chat template: %w", err)
	}
	return out, nil
}

// tojson implements transformers' tojson filter:
// json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
// sort_keys=sort_keys), keeping dict insertion order.
func tojson(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Undefined(), errors.New("tojson: missing value")
	}
	get := func(name string, pos int) (jinja.Value, bool) {
		if v, ok := kwargs[name]; ok {
			return v, true
		}
		if len(args) > pos {
			return args[pos], true
		}
		return jinja.Value{}, false
	}
	var indent *int
	if v, ok := get("indent", 1); ok && v.IsInt() {
		n := int(v.AsInt())
		indent = &n
	}
	var sep *[2]string
	if v, ok := get("separators", 3); ok && v.IsList() && v.AsList().Len() == 2 {
		it := v.AsList().Items
		if it[0].IsString() && it[1].IsString() {
			sep = &[2]string{it[0].AsString(), it[1].AsString()}
		}
	}
	sortKeys := false
	if v, ok := get("sort_keys", 4); ok {
		sortKeys = v.IsTruthy()
	}
	var b strings.Builder
	if err := newPyJSON(indent, sep, sortKeys).encode(&b, fromValue(args[0]), 0); err != nil {
		return jinja.Undefined(), fmt.Errorf("tojson: %w", err)
	}
	return jinja.NewString(b.String()), nil
}

// fromValue converts an engine value to the tree the Python JSON encoder
// walks.
func fromValue(v jinja.Value) any {
	switch {
	case v.IsUndefined(), v.IsNone(), v.IsCallable():
		return nil
	case v.IsBool():
		return v.AsBool()
	case v.IsInt():
		return v.AsInt()
	case v.IsFloat():
		return v.AsFloat()
	case v.IsString():
		return v.AsString()
	case v.IsList():
		items := v.AsList().Items
		out := make(pyList, len(items))
		for i, it := range items {
			out[i] = fromValue(it)
		}
		return out
	case v.IsDict():
		d := v.AsDict()
		out := make(pyDict, 0, d.Len())
		for _, k := range d.OrderedKeys() {
			x, _ := d.Get(k)
			out = append(out, pyKV{k, fromValue(x)})
		}
		return out
	}
	return nil
}

func (m Message) value() jinja.Value {
	d := jinja.NewDict()
	o := d.AsDict()
	o.Set("role", jinja.NewString(m.Role))
	if m.Content != nil {
		o.Set("content", toValue(m.Content))
	}
	if m.ToolCalls != nil {
		calls := make([]jinja.Value, len(m.ToolCalls))
		for i, c := range m.ToolCalls {
			calls[i] = c.value()
		}
		o.Set("tool_calls", jinja.NewList(calls))
	}
	if m.ToolCallID != "" {
		o.Set("tool_call_id", jinja.NewString(m.ToolCallID))
	}
	if m.Name != "" {
		o.Set("name", jinja.NewString(m.Name))
	}
	setExtra(o, m.Extra)
	return d
}

func (p Part) value() jinja.Value {
	d := jinja.NewDict()
	o := d.AsDict()
	o.Set("type", jinja.NewString(p.Type))
	if p.Text != "" {
		o.Set("text", jinja.NewString(p.Text))
	}
	setExtra(o, p.Extra)
	return d
}

func (c ToolCall) value() jinja.Value {
	d := jinja.NewDict()
	o := d.AsDict()
	if c.ID != "" {
		o.Set("id", jinja.NewString(c.ID))
	}
	if c.Type != "" {
		o.Set("type", jinja.NewString(c.Type))
	}
	fd := jinja.NewDict()
	f := fd.AsDict()
	f.Set("name", jinja.NewString(c.Function.Name))
	f.Set("arguments", toValue(c.Function.Arguments))
	o.Set("function", fd)
	return d
}

func setExtra(d *jinja.Dict, extra *Object) {
	for _, k := range extra.Keys() {
		v, _ := extra.Get(k)
		d.Set(k, toValue(v))
	}
}

// toValue converts a Go value to an engine value, keeping the key order of
// *Object values. Go maps are presented with sorted keys; other types go
// through encoding/json.
func toValue(v any) jinja.Value {
	switch x := v.(type) {
	case nil:
		return jinja.None()
	case jinja.Value:
		return x
	case string:
		return jinja.NewString(x)
	case bool:
		return jinja.NewBool(x)
	case int:
		return jinja.NewInt(int64(x))
	case int64:
		return jinja.NewInt(x)
	case int32:
		return jinja.NewInt(int64(x))
	case float64:
		return jinja.NewFloat(x)
	case float32:
		return jinja.NewFloat(float64(x))
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return jinja.NewInt(n)
		}
		f, _ := x.Float64()
		return jinja.NewFloat(f)
	case *Object:
		d := jinja.NewDict()
		setExtra(d.AsDict(), x)
		return d
	case Object:
		return toValue(&x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := jinja.NewDict()
		for _, k := range keys {
			d.AsDict().Set(k, toValue(x[k]))
		}
		return d
	case []any:
		items := make([]jinja.Value, len(x))
		for i, it := range x {
			items[i] = toValue(it)
		}
		return jinja.NewList(items)
	case []Part:
		items := make([]jinja.Value, len(x))
		for i, p := range x {
			items[i] = p.value()
		}
		return jinja.NewList(items)
	case Part:
		return x.value()
	case Message:
		return x.value()
	case []Message:
		items := make([]jinja.Value, len(x))
		for i, m := range x {
			items[i] = m.value()
		}
		return jinja.NewList(items)
	case ToolCall:
		return x.value()
	case []string:
		items := make([]jinja.Value, len(x))
		for i, s := range x {
			items[i] = jinja.NewString(s)
		}
		return jinja.NewList(items)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return jinja.Undefined()
	}
	dv, err := DecodeJSON(data)
	if err != nil {
		return jinja.Undefined()
	}
	return toValue(dv)
}
