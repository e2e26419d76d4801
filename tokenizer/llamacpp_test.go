package tokenizer

import (
	"fmt"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
)

// knownLlamaCppFailures lists the Jinja-supported cases of
// llama_cpp_chat_template_cases.json that do not render like Python yet, by
// case name. The test checks they still fail.
var knownLlamaCppFailures = map[string]string{}

// mergeSystemIntoFirstUser is llama.cpp's polyfill for templates without a
// system role: the system content and the first user content joined with
// "\n" into one user message.
func mergeSystemIntoFirstUser(msgs []Message) []Message {
	if len(msgs) == 0 || msgs[0].Role != "system" {
		return msgs
	}
	sys, _ := msgs[0].Content.(string)
	out := append([]Message(nil), msgs[1:]...)
	for i := range out {
		if out[i].Role == "user" {
			c, _ := out[i].Content.(string)
			out[i].Content = sys + "\n" + c
			break
		}
	}
	return out
}

func TestLlamaCppChatTemplateCases(t *testing.T) {
	path := shareddata.Path(t, "testdata", "chat_templates", "llama_cpp_chat_template_cases.json")
	root := loadJSON(t, path)
	conv, err := MessagesFromValues(field[[]any](t, root, "conversation"))
	if err != nil {
		t.Fatal(err)
	}
	agp := field[bool](t, root, "add_generation_prompt")
	pass, total, skipped := 0, 0, 0
	for _, c := range field[[]any](t, root, "cases") {
		cs := mustObject(t, c)
		name := field[string](t, cs, "name")
		if !field[bool](t, cs, "supported_with_jinja") {
			skipped++
			continue
		}
		total++
		extra, err := MessagesFromValues(field[[]any](t, cs, "extra_messages"))
		if err != nil {
			t.Fatal(err)
		}
		msgs := append(append([]Message(nil), conv...), extra...)
		switch v := field[string](t, cs, "jinja_input_variant"); v {
		case "plain":
		case "system_merged_into_first_user":
			msgs = mergeSystemIntoFirstUser(msgs)
		default:
			t.Fatalf("%s: unknown jinja_input_variant %q", name, v)
		}
		want := field[string](t, cs, "expected_output_jinja")
		var fail string
		tmpl, err := Parse(field[string](t, cs, "template"))
		if err != nil {
			fail = err.Error()
		} else {
			got, err := tmpl.Render(Options{
				Messages:            msgs,
				AddGenerationPrompt: agp,
				BOS:                 field[string](t, cs, "bos_token"),
				EOS:                 field[string](t, cs, "eos_token"),
				Now:                 fixedNow,
			})
			switch {
			case err != nil:
				fail = fmt.Sprintf("unexpected error: %v", err)
			case got != want:
				fail = firstDiff(got, want)
			}
		}
		_, known := knownLlamaCppFailures[name]
		switch {
		case fail == "" && known:
			t.Errorf("%s: listed as a known failure but now passes; remove it from knownLlamaCppFailures", name)
			pass++
		case fail == "":
			pass++
		case known:
			t.Logf("%s: known failure: %s", name, knownLlamaCppFailures[name])
		default:
			t.Errorf("%s: %s", name, fail)
		}
	}
	t.Logf("llama_cpp_chat_template_cases.json: %d/%d Jinja-supported cases render byte-identically (%d not supported with Jinja, skipped)", pass, total, skipped)
}
