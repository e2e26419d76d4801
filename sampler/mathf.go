package sampler

import "math"

// Float helpers written in plain Go arithmetic, with explicit conversions
// where a product is added (the Go spec lets a compiler fuse x*y+z into one
// FMA unless a conversion forces the rounding), so that the same inputs give
// bit-identical results on every platform.

const (
	log2e = 1.4426950408889634 // 1/ln 2
	ln2   = 0.6931471805599453
)

var negInf = float32(math.Inf(-1))

// exp32 returns e^x rounded to float32, within one unit in the last place of
// C's expf: the reduction x = k·ln2 + r and a degree-8 Taylor polynomial for
// e^r (|r| ≤ ln2/2, error < 3e-10) run in float64.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72284:
		return float32(math.Inf(1))
	case x < -103.97208:
		return 0
	}
	xd := float64(x)
	t := float64(xd * log2e)
	var k int
	if t >= 0 {
		k = int(t + 0.5)
	} else {
		k = int(t - 0.5)
	}
	r := xd - float64(float64(k)*ln2)
	p := float64(r*(1.0/40320)) + 1.0/5040
	p = float64(p*r) + 1.0/720
	p = float64(p*r) + 1.0/120
	p = float64(p*r) + 1.0/24
	p = float64(p*r) + 1.0/6
	p = float64(p*r) + 0.5
	p = float64(p*r) + 1
	p = float64(p*r) + 1
	// 2^k as float64 bits: k is in [-150, 128], a normal double.
	return float32(p * math.Float64frombits(uint64(k+1023)<<52))
}

// log32 is logf.
func log32(x float32) float32 { return float32(math.Log(float64(x))) }

// log2f32 is log2f.
func log2f32(x float32) float32 { return float32(math.Log2(float64(x))) }
