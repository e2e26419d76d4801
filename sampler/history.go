package sampler

import "github.com/llm-go/llm/engine"

// history is a ring buffer of the last tokens accepted: the window that the
// penalties and DRY look at.
type history struct {
	buf   []engine.Token
	first int // index of the oldest token
	size  int
}

func newHistory(capacity int) history {
	return history{buf: make([]engine.Token, max(capacity, 1))}
}

func (h *history) push(t engine.Token) {
	n := len(h.buf)
	if h.size == n {
		h.buf[h.first] = t
		h.first++
		if h.first == n {
			h.first = 0
		}
		return
	}
	i := h.first + h.size
	if i >= n {
		i -= n
	}
	h.buf[i] = t
	h.size++
}

// rat returns the i-th most recent token: rat(0) is the last one.
func (h *history) rat(i int) engine.Token {
	j := h.first + h.size - 1 - i
	if j >= len(h.buf) {
		j -= len(h.buf)
	} else if j < 0 {
		j += len(h.buf)
	}
	return h.buf[j]
}

func (h *history) clear() { h.first, h.size = 0, 0 }
