package sampler

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/llm-go/llm/engine"
)

func mustNew(t testing.TB, o Options, n int) *Sampler {
	t.Helper()
	s, err := NewForVocab(o, n)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleN(t testing.TB, s *Sampler, logits []float32, n int) []engine.Token {
	t.Helper()
	out := make([]engine.Token, n)
	for i := range out {
		tok, err := s.Sample(logits)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = tok
	}
	return out
}

// Same seed and logits, same tokens; another seed, other tokens; Reset
// starts over. The golden sequence pins the whole pipeline (generator,
// exp, chain): it must be the same on every machine.
func TestReproducible(t *testing.T) {
	logits := benchLogits(32000)
	o := DefaultOptions()
	o.Seed = 1234
	o.Temperature = 1.5
	o.TopK, o.TopP, o.MinP = 40, 0.99, 0.001
	o.RepeatPenalty = 1.2
	a := sampleN(t, mustNew(t, o, len(logits)), logits, 40)
	s := mustNew(t, o, len(logits))
	b := sampleN(t, s, logits, 40)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different tokens:\n%v\n%v", a, b)
	}
	s.Reset()
	if c := sampleN(t, s, logits, 40); !slices.Equal(a, c) {
		t.Fatalf("after Reset:\n%v\n%v", a, c)
	}
	o.Seed = 1235
	if d := sampleN(t, mustNew(t, o, len(logits)), logits, 40); slices.Equal(a, d) {
		t.Fatal("seeds 1234 and 1235 gave the same tokens")
	}
	t.Logf("seed 1234: %v", a[:12])
	if !slices.Equal(a[:len(goldenTokens)], goldenTokens) {
		t.Errorf("seed 1234 gives %v, want %v", a[:len(goldenTokens)], goldenTokens)
	}
	// A random seed is reported.
	o.Seed = -1
	if s := mustNew(t, o, 10); s.Seed() == 0 && mustNew(t, o, 10).Seed() == 0 {
		t.Error("random seeds are 0")
	}
}

var goldenTokens = []engine.Token{28427, 3766, 4030, 20120, 24007, 6049, 20357, 5542, 24007, 5542, 28427, 27573}

// chiSquare returns the statistic of counts against probabilities p.
func chiSquare(counts []int, p []float64) float64 {
	n := 0
	for _, c := range counts {
		n += c
	}
	var x float64
	for i, c := range counts {
		e := p[i] * float64(n)
		if e == 0 {
			if c != 0 {
				return math.Inf(1)
			}
			continue
		}
		x += (float64(c) - e) * (float64(c) - e) / e
	}
	return x
}

// Random sampling follows the softmax of the logits (at the temperature,
// over what the truncations leave). Critical values: chi-square at p =
// 0.001.
func TestDistributionChiSquare(t *testing.T) {
	logits := []float32{2, 1.5, 1, 0.7, 0.5, 0.2, 0, -0.3, -0.5, -1, -1.2, -1.5, -2, -2.5, -3, -4}
	cases := []struct {
		name string
		opts func(*Options)
		keep int     // top tokens kept
		temp float64 // temperature
		crit float64 // chi-square critical value for keep-1 degrees of freedom
	}{
		{"plain", func(o *Options) { o.TopK, o.TopP, o.MinP, o.Temperature = 0, 1, 0, 1 }, 16, 1, 37.70},
		{"temperature 0.7, top-k 6", func(o *Options) { o.TopK, o.TopP, o.MinP, o.Temperature = 6, 1, 0, 0.7 }, 6, 0.7, 20.52},
		{"temperature 2", func(o *Options) { o.TopK, o.TopP, o.MinP, o.Temperature = 0, 1, 0, 2 }, 16, 2, 37.70},
	}
	const draws = 200000
	for _, tc := range cases {
		o := DefaultOptions()
		o.Seed = 99
		tc.opts(&o)
		s := mustNew(t, o, len(logits))
		counts := make([]int, len(logits))
		for range draws {
			tok, err := s.Sample(logits)
			if err != nil {
				t.Fatal(err)
			}
			counts[tok]++
		}
		p := make([]float64, len(logits))
		var sum float64
		for i := 0; i < tc.keep; i++ {
			p[i] = math.Exp(float64(logits[i]) / tc.temp)
			sum += p[i]
		}
		for i := range p {
			p[i] /= sum
		}
		x := chiSquare(counts, p)
		t.Logf("%s: chi-square %.2f (critical %.2f, %d draws)", tc.name, x, tc.crit, draws)
		if x > tc.crit {
			t.Errorf("%s: chi-square %.2f above %.2f: counts %v", tc.name, x, tc.crit, counts)
		}
	}
}

// Mirostat holds the average surprise of the drawn tokens, as it measures
// it (over the candidates it keeps), at tau. The surprise under the full
// softmax is logged.
func TestMirostatHoldsTarget(t *testing.T) {
	// Zipf-like logits over 4000 tokens.
	n := 4000
	logits := make([]float32, n)
	r := rand.New(rand.NewPCG(1, 1))
	perm := r.Perm(n)
	for rank, id := range perm {
		logits[id] = float32(-1.1 * math.Log(float64(rank+1)))
	}
	for _, mode := range []int{1, 2} {
		for _, tau := range []float64{3, 5} {
			o := DefaultOptions()
			o.Mirostat, o.MirostatTau, o.MirostatEta, o.Temperature, o.Seed = mode, tau, 0.1, 1, 5
			s := mustNew(t, o, n)
			var sum, sumFull float64
			const warm, steps = 200, 3000
			for i := range warm + steps {
				tok, err := s.Sample(logits)
				if err != nil {
					t.Fatal(err)
				}
				if i >= warm {
					sumFull += -math.Log2(softmaxAt(logits, tok))
					for _, c := range s.Candidates() {
						if c.Token == tok {
							sum += -math.Log2(float64(c.P))
						}
					}
				}
			}
			mean := sum / steps
			t.Logf("mirostat %d, tau %g: mean surprise %.3f bits (%.3f under the full softmax) over %d tokens, mu %.3f",
				mode, tau, mean, sumFull/steps, steps, s.mu)
			if math.Abs(mean-tau) > 0.15 {
				t.Errorf("mirostat %d: mean surprise %.3f, target %g", mode, mean, tau)
			}
		}
	}
}

// softmaxAt returns the probability of token t under the softmax of logits.
func softmaxAt(logits []float32, t engine.Token) float64 {
	m := math.Inf(-1)
	for _, l := range logits {
		m = max(m, float64(l))
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - m)
	}
	return math.Exp(float64(logits[t])-m) / sum
}

func TestGreedy(t *testing.T) {
	o := DefaultOptions()
	o.Temperature = 0
	logits := []float32{1, 5, 3, 5, -1}
	s := mustNew(t, o, len(logits))
	if tok, _ := s.Sample(logits); tok != 1 {
		t.Errorf("greedy with a tie: %d, want 1 (the lower id)", tok)
	}
	// The repeat penalty moves the maximum.
	o.RepeatPenalty = 2
	s = mustNew(t, o, len(logits))
	s.AddHistory([]engine.Token{1, 3})
	if tok, _ := s.Sample(logits); tok != 2 {
		t.Errorf("greedy after penalising 1 and 3: %d, want 2", tok)
	}
	// Mirostat at temperature 0 is greedy too.
	o.Mirostat = 2
	s = mustNew(t, o, len(logits))
	if tok, _ := s.Sample(logits); tok != 1 {
		t.Errorf("mirostat at temperature 0: %d, want 1", tok)
	}
	c := s.Candidates()
	if len(c) != 1 || c[0].P != 1 {
		t.Errorf("greedy candidates %v", c)
	}
}

func TestNaNAndBannedLogits(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(-1))
	logits := []float32{nan, 1, nan, 2, inf}
	for _, temp := range []float64{0, 1} {
		o := DefaultOptions()
		o.Temperature, o.Seed = temp, 3
		s := mustNew(t, o, len(logits))
		for range 200 {
			tok, err := s.Sample(logits)
			if err != nil || (tok != 1 && tok != 3) {
				t.Fatalf("temperature %g: token %d, %v", temp, tok, err)
			}
		}
	}
	// Everything banned: an error, not a token.
	o := DefaultOptions()
	o.LogitBias = map[engine.Token]float64{1: math.Inf(-1), 3: math.Inf(-1)}
	for _, temp := range []float64{0, 0.8} {
		o.Temperature = temp
		if _, err := mustNew(t, o, len(logits)).Sample(logits); !errors.Is(err, ErrNoCandidates) {
			t.Errorf("temperature %g, all banned: %v, want ErrNoCandidates", temp, err)
		}
	}
	if _, err := mustNew(t, DefaultOptions(), 4).Sample(logits); !errors.Is(err, ErrVocabSize) {
		t.Errorf("5 logits for 4 tokens: %v", err)
	}
}

// Typical-p with probabilities of 0 (llama.cpp's entropy is NaN there):
// the -Inf tokens never come out, and the rest are kept in order.
func TestTypicalWithZeroProbabilities(t *testing.T) {
	inf := float32(math.Inf(-1))
	logits := []float32{inf, 3, 2.5, inf, 1, 0.5, -2, inf}
	o := DefaultOptions()
	o.TypicalP, o.TopK, o.TopP, o.MinP, o.Temperature = 0.9, 0, 1, 0, 1
	s := mustNew(t, o, len(logits))
	seen := map[engine.Token]bool{}
	for range 500 {
		tok, err := s.Sample(logits)
		if err != nil {
			t.Fatal(err)
		}
		if math.IsInf(float64(logits[tok]), -1) {
			t.Fatalf("drew banned token %d", tok)
		}
		seen[tok] = true
	}
	if len(seen) < 2 {
		t.Errorf("typical-p 0.9 drew only %v", seen)
	}
}

// Sampling allocates nothing in steady state, on every path.
func TestZeroAllocs(t *testing.T) {
	n := 32000
	logits := benchLogits(n)
	hist := benchHistory(n)
	cases := map[string]func(*Options){
		"default":   func(o *Options) { o.RepeatPenalty = 1.1 },
		"greedy":    func(o *Options) { o.Temperature = 0; o.RepeatPenalty = 1.1 },
		"no top-k":  func(o *Options) { o.TopK = 0 },
		"typical":   func(o *Options) { o.TypicalP = 0.9 },
		"xtc":       func(o *Options) { o.XTCProbability = 0.5 },
		"sigma":     func(o *Options) { o.TopNSigma = 1 },
		"dry":       func(o *Options) { o.DRYMultiplier = 0.8; o.DRYSequenceBreakers = nil },
		"dynatemp":  func(o *Options) { o.DynamicTempRange = 0.5 },
		"mirostat1": func(o *Options) { o.Mirostat = 1 },
		"mirostat2": func(o *Options) { o.Mirostat = 2 },
		"bias":      func(o *Options) { o.LogitBias = map[engine.Token]float64{5: 2, 7: math.Inf(-1)} },
		"hf order":  func(o *Options) { o.Order = GenerationConfigDefaults().Order; o.Temperature = 0.7 },
	}
	for name, f := range cases {
		o := DefaultOptions()
		o.Seed = 1
		f(&o)
		s := mustNew(t, o, n)
		s.AddHistory(hist)
		s.Sample(logits) // warm up
		allocs := testing.AllocsPerRun(50, func() {
			if _, err := s.Sample(logits); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per token", name, allocs)
		}
	}
}

// The penalties follow the window as tokens come and go.
func TestPenaltyWindow(t *testing.T) {
	o := DefaultOptions()
	o.RepeatLastN, o.RepeatPenalty, o.FrequencyPenalty = 3, 2, 0.5
	s := mustNew(t, o, 10)
	s.AddHistory([]engine.Token{1, 1, 2, 3, 1})
	// window: 2 3 1
	want := map[int32]int32{1: 1, 2: 1, 3: 1}
	for id := range int32(10) {
		if s.pen.counts[id] != want[id] {
			t.Errorf("count of %d: %d, want %d", id, s.pen.counts[id], want[id])
		}
	}
	if len(s.pen.distinct) != 3 {
		t.Errorf("distinct %v", s.pen.distinct)
	}
	s.Reset()
	if len(s.pen.distinct) != 0 || s.pen.counts[1] != 0 {
		t.Error("Reset left counts")
	}
}
