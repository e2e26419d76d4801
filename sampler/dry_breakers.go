package sampler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/llm-go/llm/engine"
)

// DRY's limits on sequence breakers, as llama.cpp's.
const (
	dryMaxBreakerBytes = 40
	dryMaxTailTokens   = 20
)

// dryBreakers turns sequence-breaker strings into token sequences as
// llama.cpp's get_overlapping_token_sequences does: every token whose text
// contains a breaker is a one-token breaker, and every token whose text ends
// with the start of a breaker begins one, completed by the tokenization of
// the rest.
func dryBreakers(m *engine.Model, strs []string) (map[engine.Token][][]engine.Token, error) {
	out := map[engine.Token][][]engine.Token{}
	if len(strs) == 0 {
		return out, nil
	}
	n := m.VocabSize()
	words := make([]string, n)
	one := make([]engine.Token, 1)
	for id := range n {
		one[0] = engine.Token(id)
		w, err := m.Detokenize(one, false, true)
		if err != nil {
			return nil, fmt.Errorf("sampler: DRY sequence breakers: %w", err)
		}
		words[id] = w
	}
	add := func(id engine.Token, tail []engine.Token) {
		for _, t := range out[id] {
			if slices.Equal(t, tail) {
				return
			}
		}
		out[id] = append(out[id], tail)
	}
	for _, s := range strs {
		if s == "" {
			continue
		}
		if len(s) > dryMaxBreakerBytes {
			s = s[:dryMaxBreakerBytes]
		}
		for id, w := range words {
			if strings.Contains(w, s) {
				add(engine.Token(id), []engine.Token{})
				continue
			}
			for pos := strings.IndexByte(w, s[0]); pos >= 0; {
				match := true
				i := 1
				for ; i < len(s) && i+pos < len(w); i++ {
					if w[pos+i] != s[i] {
						match = false
						break
					}
				}
				if match {
					tail, err := m.Tokenize(s[i:], false, false)
					if err != nil {
						return nil, fmt.Errorf("sampler: DRY sequence breaker %q: %w", s, err)
					}
					if len(tail) > dryMaxTailTokens {
						tail = tail[:dryMaxTailTokens]
					}
					add(engine.Token(id), tail)
				}
				next := strings.IndexByte(w[pos+1:], s[0])
				if next < 0 {
					break
				}
				pos += 1 + next
			}
		}
	}
	return out, nil
}
