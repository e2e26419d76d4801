package llm

import (
	"strings"
	"testing"
)

// TestSplitThinking: the reasoning block of a reply, whole or streamed in
// pieces of every size, gives the same split.
func TestSplitThinking(t *testing.T) {
	cases := []struct {
		name, reply      string
		open             bool
		thinking, answer string
	}{
		{"block then answer", "<think>\nLet me see.\nTwo.\n</think>\n\nThe answer is 2.", false, "Let me see.\nTwo.", "The answer is 2."},
		{"leading blank", "  \n<think>hm</think>ok", false, "hm", "ok"},
		{"opened by the prompt", "I should add.\n</think>\n4", true, "I should add.", "4"},
		{"no block", "Just an answer </think> with a stray tag", false, "", "Just an answer </think> with a stray tag"},
		{"not at the start", "Answer <think>x</think> y", false, "", "Answer <think>x</think> y"},
		{"cut short", "<think>still thinking about", false, "still thinking about", ""},
		{"empty reasoning", "<think>\n\n</think>\n\nHi", false, "", "Hi"},
		{"opened, empty reply", "", true, "", ""},
		{"plain", "Hello there", false, "", "Hello there"},
		{"almost a tag", "<thin k>", false, "", "<thin k>"},
		{"close tag split", "<think>a</thin</think>b", false, "a</thin", "b"},
	}
	for _, tc := range cases {
		th, ans := SplitThinking(tc.reply, tc.open)
		if th != tc.thinking || ans != tc.answer {
			t.Errorf("%s: SplitThinking = %q, %q; want %q, %q", tc.name, th, ans, tc.thinking, tc.answer)
		}
		for size := 1; size <= len(tc.reply); size++ {
			s := newThinkSplitter(tc.open)
			var pieces []piece
			for i := 0; i < len(tc.reply); i += size {
				pieces = append(pieces, s.push(tc.reply[i:min(i+size, len(tc.reply))])...)
			}
			pieces = append(pieces, s.flush()...)
			var tb, ab strings.Builder
			answered := false
			for _, p := range pieces {
				if p.thinking {
					if answered {
						t.Errorf("%s, pieces of %d: reasoning after the answer", tc.name, size)
					}
					tb.WriteString(p.text)
				} else {
					answered = true
					ab.WriteString(p.text)
				}
			}
			if tb.String() != tc.thinking || ab.String() != tc.answer {
				t.Errorf("%s, pieces of %d: %q, %q; want %q, %q", tc.name, size, tb.String(), ab.String(), tc.thinking, tc.answer)
			}
		}
	}
}

// TestThinkKeepsTemplateVars: Think sets enable_thinking over the
// TemplateVars given before it, keeping the others.
func TestThinkKeepsTemplateVars(t *testing.T) {
	g, err := newGenConfig(nil, []GenerateOption{TemplateVars(map[string]any{"x": 1}), Think(false)})
	if err != nil {
		t.Fatal(err)
	}
	if g.extra["x"] != 1 || g.extra["enable_thinking"] != false || g.splitThinking {
		t.Errorf("extra %v, split %v", g.extra, g.splitThinking)
	}
	g, err = newGenConfig(nil, []GenerateOption{SeparateThinking()})
	if err != nil || !g.splitThinking || g.extra != nil {
		t.Errorf("SeparateThinking: extra %v, split %v, %v", g.extra, g.splitThinking, err)
	}
}
