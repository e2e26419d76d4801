package sampler

import (
	"math"
	"slices"
)

// The truncation and scaling stages, each as llama.cpp's sampler of the same
// name in llama-sampling.cpp applies it to a candidate array.

// topK keeps the k most likely candidates (k ≤ 0: all).
func (c *cands) topK(k int) {
	if k <= 0 {
		return
	}
	k = min(k, len(c.d))
	if !c.sorted {
		partialSort(c.d, k)
		c.sorted = true
	}
	c.d = c.d[:k]
}

// topP keeps the smallest prefix of the candidates, by descending
// probability, whose probabilities add up to at least p, and at least
// minKeep candidates. Only the prefix it keeps is sorted: massSelect finds
// about how many candidates that takes, and the running sum (in float32,
// as llama.cpp adds them) sorts more, in blocks, if rounding asks for more.
func (c *cands) topP(p float32, minKeep int) {
	if p >= 1 || len(c.d) == 0 {
		return
	}
	c.softmax(false)
	n := len(c.d)
	sortedTo := n // the candidates before sortedTo are the best, sorted
	if !c.sorted {
		sortedTo = min(massSelect(c.d, float64(p))+8, n)
		partialSort(c.d, sortedTo)
	}
	var cum float32
	last := n
	for i := 0; i < n; i++ {
		if i == sortedTo {
			next := min(max(2*sortedTo, 256), n)
			partialSort(c.d[sortedTo:], next-sortedTo)
			sortedTo = next
		}
		cum += c.d[i].P
		if cum >= p && i+1 >= minKeep {
			last = i + 1
			break
		}
	}
	c.sorted = true
	c.d = c.d[:last]
}

// massSelect reorders d so that its best m candidates come first, where m
// is the fewest whose probabilities add up to p (in float64; all of d if
// they never do), and returns m: a quickselect that follows the mass.
func massSelect(d []Candidate, p float64) int {
	lo, hi := 0, len(d)
	need := p
	for hi-lo > 16 {
		_, j := partition(d, lo, hi-1)
		// d[lo:j+1] rank before d[j+1:hi]
		var mass float64
		for _, x := range d[lo : j+1] {
			mass += float64(x.P)
		}
		if mass >= need {
			hi = j + 1
		} else {
			need -= mass
			lo = j + 1
		}
	}
	sortDesc(d[lo:hi])
	for i := lo; i < hi; i++ {
		need -= float64(d[i].P)
		if need <= 0 {
			return i + 1
		}
	}
	return hi
}

// before reports whether a ranks before b: a higher logit, or the same
// logit and a lower token.
func before(a, b *Candidate) bool {
	return a.Logit > b.Logit || (a.Logit == b.Logit && a.Token < b.Token)
}

// minP drops the candidates whose probability is below p times the
// largest, keeping at least minKeep.
func (c *cands) minP(p float32, minKeep int) {
	if p <= 0 || len(c.d) == 0 {
		return
	}
	logP := log32(p)
	if !c.sorted {
		maxL := float32(-math.MaxFloat32)
		for _, x := range c.d {
			maxL = max(maxL, x.Logit)
		}
		minL := maxL + logP
		n := 0
		for _, x := range c.d {
			if x.Logit >= minL {
				n++
			}
		}
		if n > 0 && n >= minKeep {
			j := 0
			for _, x := range c.d {
				if x.Logit >= minL {
					c.d[j] = x
					j++
				}
			}
			c.d = c.d[:j]
			return
		}
		sortDesc(c.d)
		c.sorted = true
	}
	minL := c.d[0].Logit + logP
	i := 1
	for ; i < len(c.d); i++ {
		if c.d[i].Logit < minL && i >= minKeep {
			break
		}
	}
	c.d = c.d[:i]
}

// typical keeps the locally typical candidates: by increasing distance of
// their surprise from the entropy, until their probabilities add up to more
// than p. scores and idx are scratch space of at least len(c.d). A candidate
// of probability 0 adds 0 to the entropy (llama.cpp adds NaN).
func (c *cands) typical(p float32, minKeep int, scores []float32, idx []int32, tmp []Candidate) {
	if p >= 1 || len(c.d) == 0 {
		return
	}
	c.softmax(true)
	var entropy float32
	for _, x := range c.d {
		if x.P > 0 {
			entropy += -x.P * log32(x.P)
		}
	}
	n := len(c.d)
	scores, idx = scores[:n], idx[:n]
	for i, x := range c.d {
		scores[i] = float32(math.Abs(float64(-log32(x.P) - entropy)))
		idx[i] = int32(i)
	}
	sortIdxByScore(idx, scores)
	var cum float32
	last := n
	for i, j := range idx {
		cum += c.d[j].P
		if cum > p && (minKeep == 0 || i >= minKeep-1) {
			last = i + 1
			break
		}
	}
	tmp = tmp[:last]
	for i := range tmp {
		tmp[i] = c.d[idx[i]]
	}
	copy(c.d, tmp)
	c.d = c.d[:last]
	c.sorted = false
}

// sortIdxByScore sorts idx by ascending scores[idx], then ascending index.
func sortIdxByScore(idx []int32, scores []float32) {
	less := func(a, b int32) bool {
		sa, sb := scores[a], scores[b]
		if sa != sb {
			return sa < sb || (sb != sb && sa == sa) // NaN last
		}
		return a < b
	}
	if len(idx) <= 24 {
		for i := 1; i < len(idx); i++ {
			v := idx[i]
			j := i
			for ; j > 0 && less(v, idx[j-1]); j-- {
				idx[j] = idx[j-1]
			}
			idx[j] = v
		}
		return
	}
	slices.SortFunc(idx, func(a, b int32) int {
		if less(a, b) {
			return -1
		}
		if less(b, a) {
			return 1
		}
		return 0
	})
}

// temp divides the logits by t; t ≤ 0 keeps only the (first) largest
// logit, setting the others to -Inf.
func (c *cands) temp(t float32) {
	if len(c.d) == 0 {
		return
	}
	if t <= 0 {
		maxI := 0
		maxL := c.d[0].Logit
		for i := 1; i < len(c.d); i++ {
			if c.d[i].Logit > maxL {
				c.d[maxI].Logit = negInf
				maxI = i
				maxL = c.d[i].Logit
			} else {
				c.d[i].Logit = negInf
			}
		}
		return
	}
	for i := range c.d {
		c.d[i].Logit /= t
	}
}

// tempExt is dynamic temperature: with delta > 0 the temperature moves in
// [t−delta, t+delta] with the normalised entropy raised to exponent.
func (c *cands) tempExt(t, delta, exponent float32) {
	if delta <= 0 {
		c.temp(t)
		return
	}
	minT := max(0, t-delta)
	maxT := t + delta
	if len(c.d) <= 1 {
		return
	}
	maxEntropy := -log32(1 / float32(len(c.d)))
	c.softmax(true)
	var entropy float32
	for _, x := range c.d {
		if x.P > 0 {
			entropy -= x.P * log32(x.P)
		}
	}
	norm := entropy / maxEntropy
	dyn := minT + (maxT-minT)*float32(math.Pow(float64(norm), float64(exponent)))
	c.temp(dyn)
	maxL := float64(c.d[0].Logit)
	var sum float64
	for i := range c.d {
		p := math.Exp(float64(c.d[i].Logit) - maxL)
		c.d[i].P = float32(p)
		sum += p
	}
	for i := range c.d {
		c.d[i].P = float32(float64(c.d[i].P) / sum)
	}
}

// xtc removes, with the given chance, all the candidates of probability ≥
// threshold except the least likely of them. draw is the uniform number
// for the chance (drawn by the caller only when the stage is on).
func (c *cands) xtc(probability, threshold float32, minKeep int, draw float32) {
	if probability <= 0 || threshold > 0.5 || len(c.d) < 2 {
		return
	}
	if draw > probability {
		return
	}
	c.softmax(true)
	posLast := 0
	for i := range c.d {
		if c.d[i].P >= threshold {
			posLast = i
		} else {
			break
		}
	}
	if len(c.d)-posLast >= minKeep && posLast > 0 {
		c.d = c.d[posLast:]
	}
}

// xtcActive reports whether xtc would draw its chance.
func xtcActive(probability, threshold float32, n int) bool {
	return probability > 0 && threshold <= 0.5 && n >= 2
}

// topNSigma sets to -Inf the logits more than n standard deviations below
// the largest (-Inf logits left out of the statistics), then computes the
// probabilities with the candidates sorted.
func (c *cands) topNSigma(n float32) {
	if n <= 0 || len(c.d) <= 1 {
		return
	}
	maxL := c.d[0].Logit
	var sum float32
	valid := 0
	for _, x := range c.d {
		if x.Logit != negInf {
			if x.Logit > maxL {
				maxL = x.Logit
			}
			sum += x.Logit
			valid++
		}
	}
	var mean float32
	if valid > 0 {
		mean = sum / float32(valid)
	}
	var acc float32
	for _, x := range c.d {
		if x.Logit != negInf {
			d := float64(x.Logit - mean)
			acc = float32(float64(acc) + d*d)
		}
	}
	var std float32
	if valid > 0 {
		std = float32(math.Sqrt(float64(acc / float32(valid))))
	}
	cut := maxL - float32(n*std)
	// The masked logits are all -Inf: sorting means moving the kept ones,
	// sorted, to the front.
	j := 0
	for i := range c.d {
		if c.d[i].Logit < cut {
			c.d[i].Logit = negInf
		} else if c.d[i].Logit != negInf {
			c.d[i], c.d[j] = c.d[j], c.d[i]
			j++
		}
	}
	sortDesc(c.d[:j])
	if j < len(c.d) {
		sortDesc(c.d[j:]) // all -Inf: by token
	}
	c.sorted = true
	c.softmax(false)
}
