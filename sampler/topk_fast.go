package sampler

import "github.com/llm-go/llm/engine"

// topKFast returns the k candidates with the largest logits, with the
// overrides in place of their tokens' logits, sorted by descending logit
// (ties: lower token first), in s.buf. It reads the row once, keeping the
// best n = k+len(overrides) raw logits in a min-heap (an overridden token
// may take a place it does not deserve: n places leave room for every
// one); firstAbove skips, 32 at a time, the logits that cannot enter it.
// Then the overridden tokens get their new logits and the best k are kept.
// k+len(overrides) must be below the vocabulary size.
func (s *Sampler) topKFast(logits []float32, k int) []Candidate {
	n := k + len(s.ov.ids)
	h := s.buf[:n]
	for i := range h {
		v := logits[i]
		if v != v {
			v = negInf
		}
		h[i] = Candidate{Token: engine.Token(i), Logit: v}
	}
	for i := n/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	thr := h[0].Logit
	offer := func(i int, v float32) {
		if v > thr {
			h[0] = Candidate{Token: engine.Token(i), Logit: v}
			siftDown(h, 0)
			thr = h[0].Logit
		}
	}
	// The logits up to the next block boundary, the blocks, the tail.
	i := n
	for ; i < len(logits) && i%scanBlock != 0; i++ {
		offer(i, logits[i])
	}
	for i < len(logits)-scanBlock+1 {
		i += firstAbove(logits[i:], thr)
		end := min(i+scanBlock, len(logits))
		if end-i < scanBlock {
			break
		}
		for ; i < end; i++ {
			offer(i, logits[i])
		}
	}
	for ; i < len(logits); i++ {
		offer(i, logits[i])
	}

	if len(s.ov.ids) > 0 {
		j := 0
		for _, c := range h {
			if s.ov.pos[c.Token] == 0 {
				h[j] = c
				j++
			}
		}
		h = h[:j]
		for x, id := range s.ov.ids {
			h = append(h, Candidate{Token: engine.Token(id), Logit: s.ov.vals[x]})
		}
	}
	partialSort(h, k)
	return h[:k]
}

// worse reports whether a ranks below b: a lower logit, or the same logit
// and a higher token.
func worse(a, b *Candidate) bool {
	return a.Logit < b.Logit || (a.Logit == b.Logit && a.Token > b.Token)
}

// siftDown restores the min-heap (the worst candidate at the root) below i.
func siftDown(h []Candidate, i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && worse(&h[r], &h[l]) {
			m = r
		}
		if !worse(&h[m], &h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
