package sampler

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"

	"github.com/llm-go/llm/engine"
)

// DRY's limits on sequence breakers, as llama.cpp's.
const (
	dryMaxBreakerBytes = 40
	dryMaxTailTokens   = 20
)

// breakerCache keeps each model's DRY breakers by their strings, so that a
// server making a sampler per request matches them against the vocabulary
// once. Entries go when their model is garbage.
var breakerCache sync.Map // weak.Pointer[engine.Model] → *modelBreakers

type modelBreakers struct {
	mu    sync.Mutex
	byKey map[string]map[engine.Token][][]engine.Token
}

// cachedDryBreakers is dryBreakers, remembered per model and strings. The
// maps it returns are shared and must not be changed.
func cachedDryBreakers(m *engine.Model, strs []string) (map[engine.Token][][]engine.Token, error) {
	wp := weak.Make(m)
	v, loaded := breakerCache.LoadOrStore(wp, &modelBreakers{byKey: map[string]map[engine.Token][][]engine.Token{}})
	if !loaded {
		runtime.AddCleanup(m, func(wp weak.Pointer[engine.Model]) { breakerCache.Delete(wp) }, wp)
	}
	mb := v.(*modelBreakers)
	key := strings.Join(strs, "\x00")
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if b, ok := mb.byKey[key]; ok {
		return b, nil
	}
	b, err := dryBreakers(m, strs)
	if err != nil {
		return nil, err
	}
	mb.byKey[key] = b
	return b, nil
}

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
