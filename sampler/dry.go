package sampler

import (
	"math"
	"slices"

	"github.com/llm-go/llm/engine"
)

// dry is llama.cpp's DRY sampler (ported there from Koboldcpp): a token
// that would extend a repetition of n ≥ allowed tokens of the recent
// history is penalised by multiplier·base^(n−allowed); sequence breakers
// (such as a newline) end a repetition.
type dry struct {
	mult, base float32
	allowed    int
	lastN      int // effective window
	total      int // the context size

	// breakers maps the head token of each sequence breaker to the tails
	// that complete it (an empty tail for a one-token breaker).
	breakers map[engine.Token][][]engine.Token

	repeat    []int32 // per position of the window: the repeat length there
	maxRepeat []int32 // per token: 1 + its longest repeat, 0 when none
	touched   []int32 // tokens with a maxRepeat
	maxExp    int
}

func (d *dry) active() bool { return d.mult != 0 && d.base >= 1 && d.lastN > 0 }

func (d *dry) init(nVocab int) {
	d.repeat = make([]int32, d.lastN)
	d.maxRepeat = make([]int32, nVocab)
	d.touched = make([]int32, 0, min(nVocab, d.lastN))
	if d.base > 1.000001 {
		d.maxExp = int(float32(88.7228391) / log32(d.base))
	}
}

// prepare finds, from the history, the longest repetition each next token
// would extend (steps 1–3 of llama.cpp's llama_sampler_dry_apply). It
// reports whether any token is penalised.
func (d *dry) prepare(h *history) bool {
	for _, id := range d.touched {
		d.maxRepeat[id] = 0
	}
	d.touched = d.touched[:0]
	n := min(h.size, d.lastN, d.total)
	if n <= d.allowed {
		return false
	}

	// Step 1: the most recent sequence breaker limits the repetition length.
	repLimit := n
	for i := 0; i < n; i++ {
		tails, ok := d.breakers[h.rat(i)]
		if !ok {
			continue
		}
		longest := -1
		for _, tail := range tails {
			l := len(tail)
			if l > longest && l <= i {
				match := true
				for off := 0; off < l; off++ {
					if tail[off] != h.rat(i-off-1) {
						match = false
						break
					}
				}
				if match {
					longest = l
				}
			}
		}
		if longest >= 0 {
			repLimit = i - longest
			break
		}
	}
	if repLimit < d.allowed {
		return false
	}

	// Step 2: the Z-algorithm, backwards, for the lengths of the suffixes
	// that reappear earlier.
	rc := d.repeat[:n]
	clear(rc)
	last := n - 1
	rt, lt := 0, 0
	for k := 1; k < n; k++ {
		if k > rt {
			m := 0
			for m+k < n && h.rat(m) == h.rat(m+k) {
				m++
			}
			rc[last-k] = int32(min(m, repLimit))
			if m > 0 {
				lt = k
				rt = k + m - 1
			}
		} else {
			p := k - lt
			right := rt - k + 1
			if int(rc[last-p]) < right {
				rc[last-k] = int32(min(int(rc[last-p]), repLimit))
			} else {
				i := rt + 1
				for i < n && h.rat(i) == h.rat(i-k) {
					i++
				}
				rc[last-k] = int32(min(i-k, repLimit))
				lt = k
				rt = i - 1
			}
		}
	}

	// Step 3: the token after each repeat would extend it.
	for i := 0; i < n-1; i++ {
		l := rc[i]
		if int(l) >= d.allowed {
			t := int32(h.rat(n - 2 - i))
			if d.maxRepeat[t] == 0 {
				d.touched = append(d.touched, t)
			}
			if d.maxRepeat[t] < l+1 {
				d.maxRepeat[t] = l + 1
			}
		}
	}
	return len(d.touched) > 0
}

// penalty returns the penalty of token t (after prepare), and whether it
// has one.
func (d *dry) penalty(t int32) (float32, bool) {
	m := d.maxRepeat[t]
	if m == 0 {
		return 0, false
	}
	if tails, ok := d.breakers[engine.Token(t)]; ok && slices.ContainsFunc(tails, func(t []engine.Token) bool { return len(t) == 0 }) {
		return 0, false // a one-token sequence breaker
	}
	e := int(m-1) - d.allowed
	if d.maxExp > 0 && e > d.maxExp {
		e = d.maxExp
	}
	return float32(float64(d.mult) * math.Pow(float64(d.base), float64(e))), true
}

// override applies the penalties through the overrides (after prepare).
func (d *dry) override(o *overrides, logits []float32) {
	for _, t := range d.touched {
		if pen, ok := d.penalty(t); ok {
			o.set(t, o.value(t, logits)-pen)
		}
	}
}

// apply applies the penalties to a candidate array (after prepare).
func (d *dry) apply(c *cands) {
	if len(d.touched) == 0 {
		return
	}
	for i := range c.d {
		if pen, ok := d.penalty(int32(c.d[i].Token)); ok {
			c.d[i].Logit -= pen
		}
	}
	c.sorted = false
}
