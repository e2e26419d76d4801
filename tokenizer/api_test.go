package tokenizer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func render(t *testing.T, src string, opts Options) string {
	t.Helper()
	tmpl, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	got, err := tmpl.Render(opts)
	if err != nil {
		t.Fatalf("Render(%q): %v", src, err)
	}
	return got
}

func TestRenderSmall(t *testing.T) {
	args := NewObject("zeta", 1, "alpha", "x")
	tools, err := DecodeJSON([]byte(`[{"type":"function","function":{"name":"f","parameters":{"z":1,"a":[true,null,1.5]}}}]`))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Messages: []Message{
			{Role: "system", Content: "sys"},
			{Role: "user", Content: []Part{{Type: "text", Text: "hi"}, {Type: "image"}}},
			{Role: "assistant", ToolCalls: []ToolCall{{ID: "c1", Type: "function", Function: FunctionCall{Name: "f", Arguments: args}}}},
			{Role: "tool", ToolCallID: "c1", Name: "f", Content: "ok"},
		},
		Tools:               tools.([]any),
		AddGenerationPrompt: true,
		BOS:                 "<s>",
		EOS:                 "</s>",
		Now:                 time.Date(2024, 7, 26, 12, 0, 0, 0, time.UTC),
		Extra:               map[string]any{"enable_thinking": false},
	}
	cases := []struct{ name, src, want string }{
		{"tojson keeps key order", `{{ messages[2].tool_calls[0].function.arguments|tojson }}`, `{"zeta": 1, "alpha": "x"}`},
		{"tojson indent", `{{ tools[0].function.parameters|tojson(indent=2) }}`, "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    1.5\n  ]\n}"},
		{"tojson separators and sort_keys", `{{ tools[0].function.parameters|tojson(separators=(',', ':'), sort_keys=true) }}`, `{"a":[true,null,1.5],"z":1}`},
		{"tojson no ascii escaping", `{{ "café <&> \n"|tojson }}`, `"café <&> \n"`},
		{"content parts", `{% for p in messages[1].content %}{{ p.type }}{% if p.text is defined %}={{ p.text }}{% endif %};{% endfor %}`, "text=hi;image;"},
		{"undefined optional keys", `{{ messages[0].tool_calls is defined }} {{ messages[3].tool_call_id }} {{ messages[2].content is defined }}`, "False c1 False"},
		{"tokens and flags", `{{ bos_token }}{{ add_generation_prompt }}{{ eos_token }}`, "<s>True</s>"},
		{"extra kwargs", `{% if enable_thinking is defined and not enable_thinking %}no-think{% endif %}`, "no-think"},
		{"strftime_now", `{{ strftime_now("%d %b %Y") }}|{{ strftime_now("%Y-%m-%d %H:%M") }}`, "26 Jul 2024|2024-07-26 12:00"},
		{"trim_blocks and lstrip_blocks", "{% for m in messages %}\n  {% if m.role == 'system' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}", "[sys]\n"},
		{"lstrip only beside the tag", "{% for m in messages[:2] %}{% if loop.first %}<{{ m.role }}>\n {{ m.content }}{% else %}<{{ m.role }}>{% endif %}{% endfor %}", "<system>\n sys<user>"},
		{"generation tag is a no-op", "{% generation %}a{% endgeneration %}b", "ab"},
		{"Markup plus str escapes", `{{ "<b>"|safe + '"x" & y' }}`, "<b>&#34;x&#34; &amp; y"},
		{"None and floats print like Python", `{{ none }} {{ 1.0 }} {{ 0.5 }} {{ 100000000000000000000.0 }} {{ 0.00001 }}`, "None 1.0 0.5 1e+20 1e-05"},
		{"fromjson keeps order", `{{ '{"b": 1, "a": 2.0}'|fromjson|tojson }}`, `{"b": 1, "a": 2.0}`},
		{"undefined prints empty", `[{{ nothing }}]{{ nothing is defined }}{{ "a" ~ nothing }}`, "[]Falsea"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := render(t, c.src, opts); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	tmpl, err := Parse(`{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(Options{Messages: []Message{{Role: "system", Content: "x"}}})
	var te *TemplateError
	if !errors.As(err, &te) || te.Message != "System role not supported" || err.Error() != "TemplateError: System role not supported" {
		t.Errorf("raise_exception: got %v", err)
	}
	if got, err := tmpl.Render(Options{Messages: []Message{{Role: "user", Content: "x"}}}); err != nil || got != "ok" {
		t.Errorf("got %q, %v", got, err)
	}

	tmpl, err = Parse(`{{ "x" + functions }}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(Options{})
	var ue *UndefinedError
	if !errors.As(err, &ue) || err.Error() != "UndefinedError: 'functions' is undefined" {
		t.Errorf("undefined: got %v", err)
	}
	if got := render(t, `{{ "x" + functions }}`, Options{Extra: map[string]any{"functions": "[]"}}); got != "x[]" {
		t.Errorf("got %q", got)
	}

	if _, err := Parse(`{% if %}`); err == nil || !strings.HasPrefix(err.Error(), "tokenizer: parse chat template") {
		t.Errorf("parse error: got %v", err)
	}
}

func TestParseMessages(t *testing.T) {
	msgs, err := ParseMessages([]byte(`[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{\"b\":1}"}}],"reasoning_content":"hmm"}]`))
	if err != nil {
		t.Fatal(err)
	}
	got := render(t, `{% set m = messages[0] %}{{ m.content }}|{{ m.tool_calls[0].function.arguments }}|{{ m.reasoning_content }}|{{ m|tojson }}`, Options{Messages: msgs})
	want := `None|{"b":1}|hmm|{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"b\":1}"}}], "content": null, "reasoning_content": "hmm"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := ParseMessages([]byte(`{"role":"user"}`)); err == nil {
		t.Error("want error for a non-array")
	}
}

func TestObjectJSON(t *testing.T) {
	var o Object
	if err := o.UnmarshalJSON([]byte(`{"b":{"y":1,"x":2},"a":[1,"s"]}`)); err != nil {
		t.Fatal(err)
	}
	data, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"b":{"y":1,"x":2},"a":[1,"s"]}` {
		t.Errorf("round trip: %s", data)
	}
	if k := o.Keys(); len(k) != 2 || k[0] != "b" || o.Len() != 2 {
		t.Errorf("keys %v", k)
	}
}

func TestRenderConcurrent(t *testing.T) {
	tmpl, err := Parse(`{% for m in messages %}{{ m.role }}:{{ m.content }}|{{ m|tojson }}{% endfor %}{{ strftime_now("%Y") }}`)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Messages: []Message{{Role: "user", Content: "a"}}, Now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	want := `user:a|{"role": "user", "content": "a"}2030`
	done := make(chan string)
	for range 8 {
		go func() {
			got, err := tmpl.Render(opts)
			if err != nil {
				got = err.Error()
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
