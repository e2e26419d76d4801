package server

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/shareddata"
)

// TestTruncateInput: an over-long input becomes a prefix of itself, cut at
// a character boundary, whose tokens fit and which no longer prefix
// (by one more character) would fit; the model embeds it. Inputs that fit
// are left as they are, and one of which nothing fits is returned whole.
func TestTruncateInput(t *testing.T) {
	p, err := llm.New(context.Background(), shareddata.Path(t, "models", "stories260K.gguf"), llm.WithContextLength(512), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	l := &lease{p: p, name: "stories260K"}
	if got := embedLimit(l); got != 512 {
		t.Fatalf("embedLimit %d, want 512", got)
	}
	count := func(s string) int {
		ids, err := p.Model().Tokenize(s, true, false)
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	texts := []string{
		strings.Repeat("Once upon a time there was a little girl. ", 80),
		strings.Repeat("Über café naïve 東京 🙂 ", 200),
		strings.Repeat("x", 5000),
		"The little dog",
	}
	for _, limit := range []int{512, 20, 3} {
		for _, text := range texts {
			out, err := truncateInput(l, "", text, limit)
			if err != nil {
				t.Fatal(err)
			}
			_, first := utf8.DecodeRuneInString(text)
			switch n := count(out); {
			case count(text) <= limit:
				if out != text {
					t.Errorf("limit %d: %q, which fits, became %q", limit, text, out)
				}
			case count(text[:first]) > limit:
				if out != text {
					t.Errorf("limit %d: not even %q fits, yet the input became %q", limit, text[:first], out)
				}
			case !strings.HasPrefix(text, out) || !utf8.ValidString(out) || out == "":
				t.Errorf("limit %d: %q is not a non-empty prefix of the input cut at a character", limit, out)
			case n > limit:
				t.Errorf("limit %d: the cut input has %d tokens", limit, n)
			default:
				_, size := utf8.DecodeRuneInString(text[len(out):])
				if m := count(text[:len(out)+size]); m <= limit {
					t.Errorf("limit %d: cut at %d bytes (%d tokens), but %d bytes fit (%d tokens)", limit, len(out), n, len(out)+size, m)
				}
			}
			if limit == 512 {
				if _, err := p.Embed(context.Background(), out); err != nil {
					t.Errorf("embedding the cut input: %v", err)
				}
			}
		}
	}
	if out, _ := truncateInput(l, "", "Hello there", 1); out != "Hello there" {
		t.Errorf("with room for the BOS only: %q", out)
	}
}
