//go:build !amd64

package sampler

// firstAbove returns the offset of the first block of scanBlock values of x
// holding a value > thr, or len(x) rounded down to a block.
func firstAbove(x []float32, thr float32) int { return firstAboveGo(x, thr) }
