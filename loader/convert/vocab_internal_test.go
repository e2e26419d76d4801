package convert

import (
	"strings"
	"testing"
)

// TestCheckUnique checks that tokens are compared as llama.cpp reads them:
// up to a NUL byte, an empty one as "[EMPTY_i]".
func TestCheckUnique(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tokens []string
		dup    string // "" when unique
	}{
		{"unique", []string{"a", "b", "", "c"}, ""},
		{"two empty tokens", []string{"", "x", ""}, ""},
		{"duplicate", []string{"a", "b", "a"}, `token 2 "a" has the text of token 0`},
		{"empty collides", []string{"[EMPTY_1]", ""}, `token 1 "[EMPTY_1]" has the text of token 0`},
		{"cut at NUL", []string{"ab", "ab\x00c"}, `token 1 "ab" has the text of token 0`},
		{"NUL alone", []string{"[EMPTY_1]", "\x00"}, `token 1 "[EMPTY_1]" has the text of token 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&vocab{tokens: tc.tokens}).checkUnique()
			switch {
			case tc.dup == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.dup != "" && (err == nil || !strings.Contains(err.Error(), tc.dup)):
				t.Errorf("error %v, want one saying %s", err, tc.dup)
			}
		})
	}
}
