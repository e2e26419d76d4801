package speculate

import (
	"slices"
	"testing"

	"github.com/llm-go/llm/engine"
)

func toks(s string) []engine.Token {
	out := make([]engine.Token, len(s))
	for i, c := range s {
		out[i] = engine.Token(c)
	}
	return out
}

// TestLookup: the draft follows the latest earlier occurrence of the
// longest suffix that occurred, up to max tokens; nothing when none did.
func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		history string
		max     int
		l       Lookup
		want    string
	}{
		{"abcdxyzabc", 4, Lookup{}, "dxyz"},         // "abc" occurred at 0
		{"abcdabcxabc", 3, Lookup{}, "xab"},         // the latest "abc" (4) wins over 0
		{"abqxbcyzbc", 2, Lookup{}, "yz"},           // no "zbc" before: "bc" at 4
		{"abcdefc", 5, Lookup{MinNgram: 1}, "defc"}, // only "c" matches; the draft runs to the end
		{"abcdefc", 5, Lookup{}, ""},                // a 1-gram is too short by default
		{"abcde", 3, Lookup{}, ""},                  // nothing repeats
		{"aaaa", 3, Lookup{}, "a"},                  // "aaa" at 0 is followed by one token
		{"abababab", 4, Lookup{}, "abab"},           // an older "bab" continues the repetition further
		{"abcabc", 2, Lookup{MaxNgram: 1}, ""},      // MinNgram above MaxNgram
		{"abcdxbcd", 2, Lookup{MinNgram: 4}, ""},    // no 4-gram repeats
		{"ab", 0, Lookup{}, ""},
		{"", 3, Lookup{}, ""},
	} {
		got := tc.l.Draft(toks(tc.history), tc.max)
		if !slices.Equal(got, toks(tc.want)) {
			t.Errorf("Draft(%q, %d) = %v, want %q", tc.history, tc.max, got, tc.want)
		}
	}
}

// BenchmarkLookup drafts after a 4096-token history with no repeat, the
// slowest case: every start is compared.
func BenchmarkLookup(b *testing.B) {
	h := make([]engine.Token, 4096)
	for i := range h {
		h[i] = engine.Token(i)
	}
	for b.Loop() {
		Lookup{}.Draft(h, 8)
	}
}
