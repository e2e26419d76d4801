package sampler

// firstAboveAVX2 is firstAboveGo with AVX2 (scan_amd64.s).
//
//go:noescape
func firstAboveAVX2(x []float32, thr float32) int

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax, edx uint32)

// hasAVX2 reports whether the CPU and the operating system support AVX2.
var hasAVX2 = func() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const osxsave, avx = 1 << 27, 1 << 28
	if ecx1&osxsave == 0 || ecx1&avx == 0 {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&6 != 6 { // XMM and YMM state enabled
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0
}()

// firstAbove returns the offset of the first block of scanBlock values of x
// holding a value > thr, or len(x) rounded down to a block.
func firstAbove(x []float32, thr float32) int {
	if hasAVX2 {
		return firstAboveAVX2(x, thr)
	}
	return firstAboveGo(x, thr)
}
