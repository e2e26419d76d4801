package llm

import "strings"

// stopMatcher cuts generated text at the first stop string. Text that could
// still become a stop string is held back, so a stop string never reaches
// the caller, not even in part.
type stopMatcher struct {
	stops   []string
	pending string
}

// push adds text and returns what can be emitted now, and whether a stop
// string was found (the text before it is returned; the rest is dropped).
func (m *stopMatcher) push(text string) (out string, stopped bool) {
	m.pending += text
	if len(m.stops) == 0 {
		out, m.pending = m.pending, ""
		return out, false
	}
	cut := -1
	for _, s := range m.stops {
		if i := strings.Index(m.pending, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		out, m.pending = m.pending[:cut], ""
		return out, true
	}
	hold := 0
	for _, s := range m.stops {
		hold = max(hold, overlap(m.pending, s))
	}
	out = m.pending[:len(m.pending)-hold]
	m.pending = m.pending[len(m.pending)-hold:]
	return out, false
}

// flush returns the held-back text at the end of generation.
func (m *stopMatcher) flush() string {
	out := m.pending
	m.pending = ""
	return out
}

// overlap returns the length of the longest suffix of text that is a proper
// prefix of stop.
func overlap(text, stop string) int {
	for n := min(len(text), len(stop)-1); n > 0; n-- {
		if strings.HasSuffix(text, stop[:n]) {
			return n
		}
	}
	return 0
}
