package llm

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestHarmonySplitter: gpt-oss's replies, whole or streamed in pieces of
// every size, split the same way into reasoning (analysis), answer (final
// and commentary for the user) and tool calls (messages to functions.X).
func TestHarmonySplitter(t *testing.T) {
	type call struct{ name, args string }
	cases := []struct {
		name, opened, reply string
		thinking, answer    string
		calls               []call
	}{
		{"analysis then final", harmonyAssistant,
			"<|channel|>analysis<|message|>User says hi. Reply.<|end|><|start|>assistant<|channel|>final<|message|>Hello! How can I help?",
			"User says hi. Reply.", "Hello! How can I help?", nil},
		{"return tag rendered", harmonyAssistant,
			"<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>final<|message|>b<|return|>", "a", "b", nil},
		{"tool call, recipient in the channel", harmonyAssistant,
			"<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\": \"Paris\"}",
			"Need weather.", "", []call{{"get_weather", `{"location":"Paris"}`}}},
		{"tool call, recipient in the role", harmonyAssistant,
			"<|channel|>analysis<|message|>x<|end|><|start|>assistant to=functions.lookup<|channel|>commentary json<|message|>{\"q\":1}<|call|>",
			"x", "", []call{{"lookup", `{"q":1}`}}},
		{"preamble, then two calls", harmonyAssistant,
			"<|channel|>commentary<|message|>Checking both.<|end|><|start|>assistant<|channel|>commentary to=functions.a<|message|>{}<|call|><|start|>assistant<|channel|>commentary to=functions.b<|message|>{\"n\": [1, 2]}",
			"", "Checking both.", []call{{"a", `{}`}, {"b", `{"n":[1,2]}`}}},
		{"call without arguments", harmonyAssistant,
			"<|channel|>commentary to=functions.now<|message|>", "", "", []call{{"now", `{}`}}},
		{"arguments not an object", harmonyAssistant,
			"<|channel|>commentary to=functions.f<|message|>not json", "", "not json", nil},
		{"cut in the reasoning", harmonyAssistant,
			"<|channel|>analysis<|message|>Let me th", "Let me th", "", nil},
		{"cut in a header", harmonyAssistant,
			"<|channel|>analysis<|message|>r<|end|><|start|>assis", "r", "", nil},
		{"not harmony", harmonyAssistant, "Just text, <|end|> and all.", "", "Just text, <|end|> and all.", nil},
		{"prompt opened the final channel", harmonyAssistant + "<|channel|>final<|message|>", "Sure.", "", "Sure.", nil},
		{"empty", harmonyAssistant, "", "", "", nil},
		{"a tag split", harmonyAssistant, "<|channel|>analysis<|message|>a<|en<|end|><|start|>assistant<|channel|>final<|message|><|ch", "a<|en", "<|ch", nil},
		{"blank lines kept in the text", harmonyAssistant, "<|channel|>final<|message|>\n\nA\n", "", "\n\nA\n", nil},
	}
	for _, tc := range cases {
		for size := 1; size <= max(len(tc.reply), 1); size++ {
			s := newHarmonySplitter(tc.opened)
			var pieces []piece
			for i := 0; i < len(tc.reply); i += size {
				pieces = append(pieces, s.push(tc.reply[i:min(i+size, len(tc.reply))])...)
			}
			pieces = append(pieces, s.flush()...)
			var tb, ab strings.Builder
			for _, p := range pieces {
				if p.text == "" {
					t.Errorf("%s, pieces of %d: an empty piece", tc.name, size)
				}
				if p.thinking {
					tb.WriteString(p.text)
				} else {
					ab.WriteString(p.text)
				}
			}
			if tb.String() != tc.thinking || ab.String() != tc.answer {
				t.Errorf("%s, pieces of %d: %q, %q; want %q, %q", tc.name, size, tb.String(), ab.String(), tc.thinking, tc.answer)
			}
			var got []call
			for _, c := range s.calls {
				args, _ := c.Function.Arguments.(json.RawMessage)
				if c.ID == "" || c.Type != "function" {
					t.Errorf("%s: call %+v", tc.name, c)
				}
				got = append(got, call{c.Function.Name, string(args)})
			}
			if len(got) != len(tc.calls) {
				t.Errorf("%s, pieces of %d: calls %v, want %v", tc.name, size, got, tc.calls)
				continue
			}
			for i := range got {
				if got[i] != tc.calls[i] {
					t.Errorf("%s, pieces of %d: call %d %v, want %v", tc.name, size, i, got[i], tc.calls[i])
				}
			}
		}
	}
}

// TestHarmonyOpened: only a prompt that ends inside an assistant message
// opens a harmony reply.
func TestHarmonyOpened(t *testing.T) {
	for prompt, want := range map[string]string{
		"<|start|>user<|message|>Hi<|end|><|start|>assistant":                                     "<|start|>assistant",
		"<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>":          "<|start|>assistant<|channel|>final<|message|>",
		"<|start|>assistant<|channel|>final<|message|>Hi<|end|><|start|>user<|message|>Hi<|end|>": "",
		"<|start|>assistant<|channel|>final<|message|>Hi<|return|>":                               "",
		"<|im_start|>assistant\n": "",
		"":                        "",
	} {
		if got := harmonyOpened(prompt); got != want {
			t.Errorf("harmonyOpened(%q) = %q, want %q", prompt, got, want)
		}
	}
}

// TestThinkLevel: a level sets reasoning_effort with Think(true)'s
// variables; an unknown level is an error.
func TestThinkLevel(t *testing.T) {
	g, err := newGenConfig(nil, []GenerateOption{ThinkLevel(ThinkHigh)})
	if err != nil {
		t.Fatal(err)
	}
	if g.extra["reasoning_effort"] != "high" || g.extra["enable_thinking"] != true || g.extra["thinking"] != true || !g.splitThinking {
		t.Errorf("extra %v, split %v", g.extra, g.splitThinking)
	}
	if _, err := newGenConfig(nil, []GenerateOption{ThinkLevel("max")}); err == nil || !strings.Contains(err.Error(), `"max"`) {
		t.Errorf("ThinkLevel(max): %v", err)
	}
}

// FuzzSplitters: for any reply, the <think> and harmony splitters give the
// same reasoning, answer (and calls) whether the reply comes whole or in
// pieces cut anywhere, and never an empty piece.
func FuzzSplitters(f *testing.F) {
	f.Add("<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>final<|message|>b", uint8(3))
	f.Add("<think>x</think>y", uint8(1))
	f.Add("<|channel|>commentary to=functions.f<|message|>{\"a\":1}", uint8(5))
	f.Fuzz(func(t *testing.T, reply string, step uint8) {
		size := int(step%16) + 1
		splitters := []func() replySplitter{
			func() replySplitter { return newThinkSplitter(false) },
			func() replySplitter { return newThinkSplitter(true) },
			func() replySplitter { return newHarmonySplitter(harmonyAssistant) },
		}
		for i, mk := range splitters {
			whole, streamed := mk(), mk()
			wt, wa := collectPieces(t, append(whole.push(reply), whole.flush()...))
			var pieces []piece
			for j := 0; j < len(reply); j += size {
				pieces = append(pieces, streamed.push(reply[j:min(j+size, len(reply))])...)
			}
			st, sa := collectPieces(t, append(pieces, streamed.flush()...))
			if st != wt || sa != wa {
				t.Errorf("splitter %d, pieces of %d: %q, %q; whole %q, %q", i, size, st, sa, wt, wa)
			}
			if h, ok := whole.(*harmonySplitter); ok && len(h.calls) != len(streamed.(*harmonySplitter).calls) {
				t.Errorf("harmony, pieces of %d: %d calls, whole %d", size, len(streamed.(*harmonySplitter).calls), len(h.calls))
			}
		}
	})
}

// collectPieces joins the reasoning and the answer pieces.
func collectPieces(t *testing.T, pieces []piece) (thinking, answer string) {
	var tb, ab strings.Builder
	for _, p := range pieces {
		if p.text == "" {
			t.Error("an empty piece")
		}
		if p.thinking {
			tb.WriteString(p.text)
		} else {
			ab.WriteString(p.text)
		}
	}
	return tb.String(), ab.String()
}
