package sampler

import (
	"math"
	"math/rand/v2"
	"testing"
)

// BenchmarkDefaultChainPureGo is the default chain at 152,064 logits with
// the pure-Go scan that machines without AVX2 use.
func BenchmarkDefaultChainPureGo(b *testing.B) {
	saved := hasAVX2
	hasAVX2 = false
	defer func() { hasAVX2 = saved }()
	n := 152064
	logits := benchLogits(n)
	s, err := NewForVocab(benchOptions(), n)
	if err != nil {
		b.Fatal(err)
	}
	s.AddHistory(benchHistory(n))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sample(logits); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFirstAboveAVX2MatchesGo checks the assembly scan against the Go one on
// random inputs: lengths around and below a block, values equal to the
// threshold, NaN, ±Inf, and the first hit in every position.
func TestFirstAboveAVX2MatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 on this CPU")
	}
	rng := rand.New(rand.NewPCG(7, 7))
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1))}
	for iter := range 20000 {
		n := rng.IntN(300)
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
			if rng.IntN(10) == 0 {
				x[i] = special[rng.IntN(len(special))]
			}
		}
		thr := float32(rng.NormFloat64() + 2)
		if n > 0 && iter%3 == 0 {
			x[rng.IntN(n)] = thr // equal is not above
		}
		if n > 0 && iter%5 == 0 {
			x[rng.IntN(n)] = thr + 1
		}
		if got, want := firstAboveAVX2(x, thr), firstAboveGo(x, thr); got != want {
			t.Fatalf("n=%d thr=%v: AVX2 %d, Go %d (x=%v)", n, thr, got, want, x)
		}
	}
}
