package sampler

// scanBlock is the granularity of firstAbove: it reports blocks of this many
// logits.
const scanBlock = 32

// firstAboveGo returns the offset of the first block of scanBlock values of
// x holding a value > thr, or len(x) rounded down to a block when none does
// (the caller handles the tail). NaN is never > thr.
func firstAboveGo(x []float32, thr float32) int {
	n := len(x) &^ (scanBlock - 1)
	for i := 0; i < n; i += 16 {
		b := (*[16]float32)(x[i : i+16])
		if b[0] > thr || b[1] > thr || b[2] > thr || b[3] > thr || b[4] > thr || b[5] > thr || b[6] > thr || b[7] > thr ||
			b[8] > thr || b[9] > thr || b[10] > thr || b[11] > thr || b[12] > thr || b[13] > thr || b[14] > thr || b[15] > thr {
			return i &^ (scanBlock - 1)
		}
	}
	return n
}
