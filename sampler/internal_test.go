package sampler

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/llm-go/llm/engine"
)

func TestFirstAbove(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 300; n++ {
		x := make([]float32, n)
		for i := range x {
			switch r.IntN(10) {
			case 0:
				x[i] = float32(math.NaN())
			case 1:
				x[i] = float32(math.Inf(-1))
			default:
				x[i] = float32(r.NormFloat64())
			}
		}
		for _, thr := range []float32{-1, 0, 1.5, 2.5, 10, float32(math.Inf(-1))} {
			want := len(x) &^ (scanBlock - 1)
			for i := 0; i < len(x)&^(scanBlock-1); i++ {
				if x[i] > thr {
					want = i &^ (scanBlock - 1)
					break
				}
			}
			if got := firstAboveGo(x, thr); got != want {
				t.Fatalf("firstAboveGo(n=%d, thr=%g) = %d, want %d", n, thr, got, want)
			}
			if got := firstAbove(x, thr); got != want {
				t.Fatalf("firstAbove(n=%d, thr=%g) = %d, want %d", n, thr, got, want)
			}
		}
	}
}

func TestPartialSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for rep := 0; rep < 300; rep++ {
		n := 1 + r.IntN(2000)
		d := make([]Candidate, n)
		for i := range d {
			d[i] = Candidate{Token: engine.Token(i), Logit: float32(r.IntN(50))} // many ties
		}
		r.Shuffle(n, func(i, j int) { d[i], d[j] = d[j], d[i] })
		want := slices.Clone(d)
		slices.SortFunc(want, byLogitDesc)
		k := r.IntN(n + 1)
		partialSort(d, k)
		if !slices.Equal(d[:k], want[:k]) {
			t.Fatalf("n=%d k=%d: partial sort differs", n, k)
		}
	}
}

func TestExp32(t *testing.T) {
	worst := 0.0
	check := func(x float32) {
		got := exp32(x)
		want := float32(math.Exp(float64(x)))
		if got == want {
			return
		}
		ulp := math.Abs(float64(got)-float64(want)) / math.Abs(float64(math.Nextafter32(want, float32(math.Inf(1)))-want))
		worst = max(worst, ulp)
		if ulp > 1 {
			t.Fatalf("exp32(%g) = %g, want %g (%.1f ulp)", x, got, want, ulp)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 200000 {
		check(float32(r.Float64()*200 - 105))
	}
	for _, x := range []float32{0, -0.5, 88.72, -87.3, -103.9, -103.98, -200, 89, 1e-8} {
		check(x)
	}
	if exp32(float32(math.Inf(-1))) != 0 || !math.IsInf(float64(exp32(float32(math.Inf(1)))), 1) || !math.IsNaN(float64(exp32(float32(math.NaN())))) {
		t.Error("exp32 edges")
	}
	t.Logf("worst error %.2f ulp", worst)
}

// The generator's sequence is part of the reproducibility promise: these
// numbers must never change.
func TestRNGGolden(t *testing.T) {
	// The reference vectors of splitmix64 and xoshiro256** (prng.di.unimi.it).
	x := uint64(0)
	if got := splitmix64(&x); got != 0xe220a8397b1dcdaf {
		t.Errorf("splitmix64(0) = %#x", got)
	}
	ref := rng{s: [4]uint64{1, 2, 3, 4}}
	for i, want := range []uint64{11520, 0, 1509978240, 1215971899390074240} {
		if got := ref.uint64(); got != want {
			t.Errorf("xoshiro256** from {1,2,3,4}: output %d = %d, want %d", i, got, want)
		}
	}

	var r rng
	r.seed(42)
	got := []uint64{r.uint64(), r.uint64(), r.uint64()}
	want := rngGolden
	if !slices.Equal(got, want) {
		t.Errorf("xoshiro256** seeded 42 gives %#x, want %#x", got, want)
	}
}

var rngGolden = []uint64{0x15780b2e0c2ec716, 0x6104d9866d113a7e, 0xae17533239e499a1}

func TestMassSelect(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for rep := 0; rep < 300; rep++ {
		n := 1 + r.IntN(3000)
		c := cands{d: make([]Candidate, n)}
		for i := range c.d {
			c.d[i] = Candidate{Token: engine.Token(i), Logit: float32(r.IntN(40)) / 4}
		}
		c.softmax(false)
		p := r.Float64()
		want := slices.Clone(c.d)
		slices.SortFunc(want, byLogitDesc)
		m := massSelect(c.d, p)
		got := slices.Clone(c.d[:m])
		slices.SortFunc(got, byLogitDesc)
		if !slices.Equal(got, want[:m]) {
			t.Fatalf("n=%d p=%g: the first %d are not the best", n, p, m)
		}
		var sum float64
		for i := 0; i < m; i++ {
			sum += float64(want[i].P)
			if i < m-1 && sum >= p {
				t.Fatalf("n=%d p=%g: %d candidates reach p, massSelect says %d", n, p, i+1, m)
			}
		}
		if m < n && sum < p {
			t.Fatalf("n=%d p=%g: %d candidates sum to %g", n, p, m, sum)
		}
	}
}
