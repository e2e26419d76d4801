package sampler

import "github.com/llm-go/llm/engine"

// penalties is llama.cpp's penalties sampler: over the last lastN tokens,
// the repeat penalty divides a positive logit and multiplies a negative one,
// then count·frequency + presence is subtracted.
type penalties struct {
	lastN                 int
	repeat, freq, present float32
	counts                []int32 // occurrences of each token in the window
	distinct              []int32 // tokens with a count
	dpos                  []int32 // 1 + index in distinct, 0 when absent
}

func (p *penalties) active() bool {
	return p.lastN > 0 && !(p.repeat == 1 && p.freq == 0 && p.present == 0)
}

func (p *penalties) init(nVocab int) {
	p.counts = make([]int32, nVocab)
	p.dpos = make([]int32, nVocab)
	p.distinct = make([]int32, 0, min(nVocab, p.lastN))
}

// accept counts t, and forgets the token that leaves the window; h is the
// history before t is pushed.
func (p *penalties) accept(t engine.Token, h *history) {
	p.inc(int32(t))
	if h.size >= p.lastN {
		p.dec(int32(h.rat(p.lastN - 1)))
	}
}

func (p *penalties) inc(id int32) {
	p.counts[id]++
	if p.counts[id] == 1 {
		p.distinct = append(p.distinct, id)
		p.dpos[id] = int32(len(p.distinct))
	}
}

func (p *penalties) dec(id int32) {
	p.counts[id]--
	if p.counts[id] == 0 {
		i := p.dpos[id] - 1
		last := p.distinct[len(p.distinct)-1]
		p.distinct[i] = last
		p.dpos[last] = i + 1
		p.distinct = p.distinct[:len(p.distinct)-1]
		p.dpos[id] = 0
	}
}

func (p *penalties) clear() {
	for _, id := range p.distinct {
		p.counts[id] = 0
		p.dpos[id] = 0
	}
	p.distinct = p.distinct[:0]
}

// adjust returns logit v of a token seen count times.
func (p *penalties) adjust(v float32, count int32) float32 {
	if v <= 0 {
		v *= p.repeat
	} else {
		v /= p.repeat
	}
	var present float32
	if count > 0 {
		present = p.present
	}
	return v - (float32(float32(count)*p.freq) + present)
}

// override applies the penalties through the overrides.
func (p *penalties) override(o *overrides, logits []float32) {
	for _, id := range p.distinct {
		o.set(id, p.adjust(o.value(id, logits), p.counts[id]))
	}
}

// apply applies the penalties to a candidate array.
func (p *penalties) apply(c *cands) {
	for i := range c.d {
		if n := p.counts[c.d[i].Token]; n > 0 {
			c.d[i].Logit = p.adjust(c.d[i].Logit, n)
		}
	}
	c.sorted = false
}
