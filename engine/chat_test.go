package engine_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
)

func TestBuiltinTemplates(t *testing.T) {
	names := engine.BuiltinTemplates()
	for _, want := range []string{"chatml", "llama3", "llama2", "gemma", "mistral-v7"} {
		if !slices.Contains(names, want) {
			t.Errorf("%q missing from %v", want, names)
		}
	}
	msgs := []engine.ChatMessage{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}}
	for _, c := range []struct{ tmpl, want string }{
		{"chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"llama3", "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		// Detection from a template's text, as for a template llama.cpp
		// cannot run as Jinja.
		{"{% for m in messages %}<|im_start|>{{ m.role }}...{% endfor %}", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
	} {
		got, err := engine.ApplyBuiltinTemplate(c.tmpl, msgs, true)
		if err != nil || got != c.want {
			t.Errorf("%.30q: got %q, %v\nwant %q", c.tmpl, got, err, c.want)
		}
	}
	// A long conversation needs the retry with a larger buffer.
	long := []engine.ChatMessage{{Role: "user", Content: strings.Repeat("word ", 5000)}}
	if got, err := engine.ApplyBuiltinTemplate("chatml", long, false); err != nil || !strings.HasSuffix(got, "word <|im_end|>\n") {
		t.Errorf("long message: %v, %d bytes", err, len(got))
	}
	if _, err := engine.ApplyBuiltinTemplate("no such format", msgs, true); !errors.Is(err, engine.ErrUnknownTemplate) {
		t.Errorf("unknown template: %v", err)
	}
	if _, err := engine.ApplyBuiltinTemplate("chatml", []engine.ChatMessage{{Role: "user", Content: "a\x00b"}}, true); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("NUL byte: %v", err)
	}
	if got, err := engine.ApplyBuiltinTemplate("chatml", nil, true); err != nil || got != "<|im_start|>assistant\n" {
		t.Errorf("no messages: %q, %v", got, err)
	}
}
