package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llm-go/llm/internal/shareddata"
)

// fixedNow is the time the reference renderings fixed strftime_now to.
var fixedNow = time.Date(2024, 7, 26, 12, 0, 0, 0, time.UTC)

func mustObject(t *testing.T, v any) *Object {
	t.Helper()
	o, ok := v.(*Object)
	if !ok {
		t.Fatalf("not an object: %T", v)
	}
	return o
}

func field[T any](t *testing.T, o *Object, key string) T {
	t.Helper()
	v, _ := o.Get(key)
	x, ok := v.(T)
	if !ok {
		t.Fatalf("field %q: got %T", key, v)
	}
	return x
}

func loadJSON(t *testing.T, path string) *Object {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	return mustObject(t, v)
}

// firstDiff describes where got and want first differ.
func firstDiff(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(i-80, 0)
	cut := func(s string) string { return s[lo:min(i+80, len(s))] }
	return fmt.Sprintf("first difference at byte %d (len got %d, want %d)\n got: %q\nwant: %q", i, len(got), len(want), cut(got), cut(want))
}

// knownRenderingFailures lists the records of chat_template_renderings.json
// that do not yet render like Python, as "template/conversation/agp". The
// test checks they still fail, so the list cannot go stale.
var knownRenderingFailures = map[string]string{}

func TestChatTemplateRenderings(t *testing.T) {
	path := shareddata.Path(t, "testdata", "chat_templates", "chat_template_renderings.json")
	root := loadJSON(t, path)
	convs := field[*Object](t, root, "conversations")
	recs := field[[]any](t, root, "renderings")
	tmpls := map[string]*Template{}
	pass, total := 0, 0
	for _, r := range recs {
		rec := mustObject(t, r)
		name := field[string](t, rec, "template")
		convName := field[string](t, rec, "conversation")
		agp := field[bool](t, rec, "add_generation_prompt")
		id := fmt.Sprintf("%s/%s/%v", name, convName, agp)
		total++
		tmpl, ok := tmpls[name]
		if !ok {
			src, err := os.ReadFile(filepath.Join(filepath.Dir(path), "jinja", name))
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err = Parse(string(src))
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			tmpls[name] = tmpl
		}
		conv := field[*Object](t, convs, convName)
		msgs, err := MessagesFromValues(field[[]any](t, conv, "messages"))
		if err != nil {
			t.Fatal(err)
		}
		opts := Options{Messages: msgs, AddGenerationPrompt: agp, BOS: "<BOS>", EOS: "<EOS>", Now: fixedNow}
		if tools, ok := conv.Get("tools"); ok {
			opts.Tools = tools.([]any)
		}
		var fail string
		if tmpl == nil {
			fail = "template did not parse"
		} else {
			got, err := tmpl.Render(opts)
			if wantErr, ok := rec.Get("error"); ok {
				if err == nil {
					fail = fmt.Sprintf("want error %q, got output %q", wantErr, got)
				} else if err.Error() != wantErr.(string) {
					fail = fmt.Sprintf("want error %q, got %q", wantErr, err)
				} else if te, ue := (*TemplateError)(nil), (*UndefinedError)(nil); !errors.As(err, &te) && !errors.As(err, &ue) {
					fail = fmt.Sprintf("error %T is neither *TemplateError nor *UndefinedError", err)
				}
			} else {
				want := field[string](t, rec, "output")
				if err != nil {
					fail = fmt.Sprintf("unexpected error: %v", err)
				} else if got != want {
					fail = firstDiff(got, want)
				}
			}
		}
		_, known := knownRenderingFailures[id]
		switch {
		case fail == "" && known:
			t.Errorf("%s: listed as a known failure but now passes; remove it from knownRenderingFailures", id)
			pass++
		case fail == "":
			pass++
		case known:
			t.Logf("%s: known failure: %s", id, knownRenderingFailures[id])
		default:
			t.Errorf("%s: %s", id, fail)
		}
	}
	t.Logf("chat_template_renderings.json: %d/%d render byte-identically", pass, total)
}
