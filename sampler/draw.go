package sampler

import "math"

// dist draws a candidate from the softmax of c's logits, as llama.cpp's dist
// sampler: float32 exponentials, a float64 sum, one uniform draw scaled by
// the sum and a running sum. It sets the probabilities and returns the
// index of the drawn candidate; a candidate of probability 0 is never drawn.
func (s *Sampler) dist(c *cands) (int, error) {
	n := len(c.d)
	if n == 0 {
		return 0, ErrNoCandidates
	}
	var maxL float32
	if c.sorted {
		maxL = c.d[0].Logit
	} else {
		maxL = maxLogit(c.d)
	}
	if maxL == negInf {
		return 0, ErrNoCandidates
	}
	if n == 1 {
		c.d[0].P = 1
		return 0, nil
	}
	var sum float64
	for i := range c.d {
		p := exp32(c.d[i].Logit - maxL)
		c.d[i].P = p
		sum += float64(p)
	}
	target := sum * s.rng.float64()
	var run float64
	sel := -1
	for i := range c.d {
		p := c.d[i].P
		if sel < 0 && p > 0 {
			run += float64(p)
			if run >= target {
				sel = i
			}
		}
		c.d[i].P = float32(float64(p) / sum)
	}
	if sel < 0 { // rounding: the last candidate with a probability
		for i := n - 1; i >= 0; i-- {
			if c.d[i].P > 0 {
				sel = i
				break
			}
		}
	}
	return sel, nil
}

// drawP draws an index from c's probabilities (which need not add up to
// exactly 1), as std::discrete_distribution does in llama.cpp.
func (s *Sampler) drawP(c *cands) int {
	var sum float64
	for _, x := range c.d {
		sum += float64(x.P)
	}
	target := sum * s.rng.float64()
	var run float64
	last := 0
	for i, x := range c.d {
		if x.P > 0 {
			run += float64(x.P)
			last = i
			if run >= target {
				return i
			}
		}
	}
	return last
}

// mirostatV1 is llama.cpp's mirostat sampler: it estimates the Zipf
// exponent s from the m most likely tokens, keeps the top k for which the
// expected surprise is mu, and draws from them. It returns the index and
// the surprise of the drawn token (the caller updates mu).
func (s *Sampler) mirostatV1(c *cands) (int, float32, error) {
	if len(c.d) == 0 || maxLogit(c.d) == negInf {
		return 0, 0, ErrNoCandidates
	}
	c.softmax(false)
	n := len(c.d)
	m := min(s.mirostatM, n)
	partialSort(c.d, m)
	var sumTB, sumTT float32
	for i := 0; i < s.mirostatM-1 && i < n-1; i++ {
		t := log32(float32(i+2) / float32(i+1))
		b := log32(c.d[i].P / c.d[i+1].P)
		sumTB += t * b
		sumTT += t * t
	}
	sHat := sumTB / sumTT
	eps := sHat - 1
	kf := math.Pow(float64(eps*float32(math.Pow(2, float64(s.mu))))/float64(1-float32(math.Pow(float64(s.nVocab), float64(-eps)))), float64(1/sHat))
	k := n
	if !(kf >= 1) { // NaN too
		k = 1
	} else if kf < float64(n) {
		k = int(kf)
	}
	if k > m {
		partialSort(c.d, k)
	}
	c.d = c.d[:k]
	c.sorted = true
	c.softmax(true)
	i := s.drawP(c)
	return i, -log2f32(c.d[i].P), nil
}

// mirostatV2 is llama.cpp's mirostat 2.0: it keeps the tokens whose
// surprise is at most mu (at least the most likely one) and draws from
// them. It returns the index and the surprise of the drawn token.
func (s *Sampler) mirostatV2(c *cands) (int, float32, error) {
	if len(c.d) == 0 || maxLogit(c.d) == negInf {
		return 0, 0, ErrNoCandidates
	}
	c.softmax(false)
	best := 0
	j := 0
	for i := range c.d {
		if byLogitDesc(c.d[i], c.d[best]) < 0 {
			best = i
		}
	}
	top := c.d[best]
	for _, x := range c.d {
		if !(-log2f32(x.P) > s.mu) {
			c.d[j] = x
			j++
		}
	}
	if j == 0 {
		c.d[0] = top
		j = 1
	}
	c.d = c.d[:j]
	c.sorted = false
	c.softmax(false)
	i := s.drawP(c)
	return i, -log2f32(c.d[i].P), nil
}
