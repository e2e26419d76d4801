package tokenizer

import (
	"fmt"
)

// ParseMessages decodes an OpenAI-style JSON array of messages
// ([{"role": ..., "content": ..., "tool_calls": [...]}, ...]) into
// [Message] values, keeping the key order of nested objects (tool-call
// arguments, content parts) and moving unknown keys to Extra.
func ParseMessages(data []byte) ([]Message, error) {
	v, err := DecodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: messages: %w", err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("tokenizer: messages: not a JSON array")
	}
	return MessagesFromValues(list)
}

// MessagesFromValues converts decoded JSON messages (each an *Object, as
// [DecodeJSON] returns) into [Message] values.
func MessagesFromValues(list []any) ([]Message, error) {
	out := make([]Message, len(list))
	for i, it := range list {
		o, ok := it.(*Object)
		if !ok {
			return nil, fmt.Errorf("tokenizer: message %d is not an object", i)
		}
		m, err := messageFromObject(o)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: message %d: %w", i, err)
		}
		out[i] = m
	}
	return out, nil
}

func messageFromObject(o *Object) (Message, error) {
	var m Message
	for _, k := range o.Keys() {
		v, _ := o.Get(k)
		switch k {
		case "role":
			s, ok := v.(string)
			if !ok {
				return m, fmt.Errorf("role is not a string")
			}
			m.Role = s
		case "content":
			if parts, ok := v.([]any); ok {
				ps, err := partsFromValues(parts)
				if err != nil {
					return m, err
				}
				m.Content = ps
			} else if v == nil {
				m.extra().Set(k, nil)
			} else {
				m.Content = v
			}
		case "tool_calls":
			calls, ok := v.([]any)
			if !ok {
				m.extra().Set(k, v)
				continue
			}
			m.ToolCalls = make([]ToolCall, len(calls))
			for i, c := range calls {
				co, ok := c.(*Object)
				if !ok {
					return m, fmt.Errorf("tool call %d is not an object", i)
				}
				tc, err := toolCallFromObject(co)
				if err != nil {
					return m, fmt.Errorf("tool call %d: %w", i, err)
				}
				m.ToolCalls[i] = tc
			}
		case "tool_call_id", "name":
			s, ok := v.(string)
			if !ok || s == "" {
				m.extra().Set(k, v)
				continue
			}
			if k == "name" {
				m.Name = s
			} else {
				m.ToolCallID = s
			}
		default:
			m.extra().Set(k, v)
		}
	}
	return m, nil
}

func (m *Message) extra() *Object {
	if m.Extra == nil {
		m.Extra = &Object{}
	}
	return m.Extra
}

func partsFromValues(list []any) ([]Part, error) {
	out := make([]Part, len(list))
	for i, it := range list {
		o, ok := it.(*Object)
		if !ok {
			return nil, fmt.Errorf("content part %d is not an object", i)
		}
		var p Part
		for _, k := range o.Keys() {
			v, _ := o.Get(k)
			s, isStr := v.(string)
			switch {
			case k == "type" && isStr:
				p.Type = s
			case k == "text" && isStr && s != "":
				p.Text = s
			default:
				if p.Extra == nil {
					p.Extra = &Object{}
				}
				p.Extra.Set(k, v)
			}
		}
		out[i] = p
	}
	return out, nil
}

func toolCallFromObject(o *Object) (ToolCall, error) {
	var tc ToolCall
	for _, k := range o.Keys() {
		v, _ := o.Get(k)
		switch k {
		case "id":
			tc.ID, _ = v.(string)
		case "type":
			tc.Type, _ = v.(string)
		case "function":
			f, ok := v.(*Object)
			if !ok {
				return tc, fmt.Errorf("function is not an object")
			}
			name, _ := f.Get("name")
			tc.Function.Name, _ = name.(string)
			tc.Function.Arguments, _ = f.Get("arguments")
		}
	}
	return tc, nil
}
