// Package speculate drafts tokens for speculative decoding, in which a
// model checks several guessed tokens in one batch instead of making them
// one decode at a time: each guess that matches what the model would have
// sampled anyway is kept, so the output is the same, only sooner.
//
// Lookup drafts by prompt lookup (transformers' prompt_lookup_num_tokens,
// llama.cpp's lookup decoding, vLLM's n-gram speculation): the tokens that
// followed the latest earlier occurrence of the sequence's last few
// tokens. It costs no model and pays off where the output copies its input
// (summaries, code edits, extraction, retrieval answers) or repeats
// itself.
package speculate

import "github.com/llm-go/llm/engine"

// Lookup drafts by prompt lookup.
type Lookup struct {
	// MaxNgram and MinNgram bound the length of the suffix looked up: the
	// longest that occurred before is used (defaults 3 and 2: a single
	// token predicts what follows it too poorly to be worth checking).
	MaxNgram, MinNgram int
}

// Draft returns at most max tokens that may follow history: those that
// followed the latest earlier occurrence of history's longest suffix (of
// MaxNgram down to MinNgram tokens) that occurred before. It returns nil
// when no suffix did.
func (l Lookup) Draft(history []engine.Token, max int) []engine.Token {
	hi, lo := l.MaxNgram, l.MinNgram
	if hi <= 0 {
		hi = 3
	}
	if lo <= 0 {
		lo = 2
	}
	n := len(history)
	if max <= 0 || n < 2 {
		return nil
	}
	for size := min(hi, n-1); size >= lo; size-- {
		pattern := history[n-size:]
		// The latest start before the suffix itself.
		for start := n - size - 1; start >= 0; start-- {
			if !equal(history[start:start+size], pattern) {
				continue
			}
			follow := history[start+size : min(start+size+max, n)]
			if len(follow) > 0 {
				return follow
			}
		}
	}
	return nil
}

func equal(a, b []engine.Token) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
