package sampler

import "testing"

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
