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

// Draft returns at most n tokens that may follow history: those that
// followed an earlier occurrence of history's longest suffix (of MaxNgram
// down to MinNgram tokens) that occurred before: the latest occurrence
// with n tokens after it, else the one with the most. It returns nil when
// no suffix occurred before, or MinNgram exceeds MaxNgram.
func (l Lookup) Draft(history []engine.Token, n int) []engine.Token {
	hi, lo := l.MaxNgram, l.MinNgram
	if hi <= 0 {
		hi = 3
	}
	if lo <= 0 {
		lo = 2
	}
	h := len(history)
	if n <= 0 || h < 2 {
		return nil
	}
	for size := min(hi, h-1); size >= lo; size-- {
		pattern := history[h-size:]
		var best []engine.Token
		// From the latest start before the suffix itself: a repeating
		// sequence's latest occurrence has fewer tokens after it than an
		// older one, which continues the repetition.
		for start := h - size - 1; start >= 0 && len(best) < n; start-- {
			if !equal(history[start:start+size], pattern) {
				continue
			}
			if follow := history[start+size : min(start+size+n, h)]; len(follow) > len(best) {
				best = follow
			}
		}
		if len(best) > 0 {
			return best
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
