package sampler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/csampler"
)

// The equivalence tests run each deterministic stage of the chain, alone
// and in chains, through a Sampler and through llama.cpp's sampler of the
// same name (internal/csampler) on the same logits, and require the same
// candidates with the same logits and the same probabilities.

const probTol = 1e-6

// logitKinds generate test rows: plain, with many ties, with -Inf entries.
var logitKinds = []struct {
	name string
	gen  func(r *rand.Rand, n int) []float32
}{
	{"normal", func(r *rand.Rand, n int) []float32 {
		l := make([]float32, n)
		for i := range l {
			l[i] = float32(r.NormFloat64() * 3)
		}
		return l
	}},
	{"ties", func(r *rand.Rand, n int) []float32 {
		l := make([]float32, n)
		for i := range l {
			l[i] = float32(math.Round(r.NormFloat64()*4)) / 2 // few distinct values
		}
		return l
	}},
	{"neginf", func(r *rand.Rand, n int) []float32 {
		l := make([]float32, n)
		for i := range l {
			if r.IntN(5) == 0 {
				l[i] = float32(math.Inf(-1))
			} else {
				l[i] = float32(r.NormFloat64()*2 + 1)
			}
		}
		l[r.IntN(n)] = 5 // at least one finite
		return l
	}},
	{"peaked", func(r *rand.Rand, n int) []float32 {
		l := make([]float32, n)
		for i := range l {
			l[i] = float32(r.NormFloat64())
		}
		for range 3 {
			l[r.IntN(n)] = float32(8 + r.Float64()*4)
		}
		return l
	}},
}

var vocabSizes = []int{2, 7, 64, 1000, 32000, 152064}

// equivCase is one configuration: the Go options and the same chain in C.
type equivCase struct {
	name  string
	opts  func(o *Options)
	chain func(c *csampler.Chain)
	// skipKinds lists logit kinds the case does not support.
	skipKinds map[string]bool
}

func equivCases() []equivCase {
	var cs []equivCase
	add := func(c equivCase) { cs = append(cs, c) }
	for _, k := range []int{1, 5, 40, 300, 5000} {
		add(equivCase{name: fmt.Sprintf("top_k=%d", k),
			opts:  func(o *Options) { o.Order = []Stage{StageTopK}; o.TopK = k },
			chain: func(c *csampler.Chain) { c.TopK(k) }})
	}
	for _, p := range []float32{0, 0.5, 0.9, 0.95, 0.999} {
		for _, mk := range []int{0, 3} {
			add(equivCase{name: fmt.Sprintf("top_p=%g,min_keep=%d", p, mk),
				opts:  func(o *Options) { o.Order = []Stage{StageTopP}; o.TopP = float64(p); o.MinKeep = mk },
				chain: func(c *csampler.Chain) { c.TopP(p, mk) }})
		}
	}
	for _, p := range []float32{0.01, 0.05, 0.3, 1} {
		for _, mk := range []int{0, 5} {
			add(equivCase{name: fmt.Sprintf("min_p=%g,min_keep=%d", p, mk),
				opts:  func(o *Options) { o.Order = []Stage{StageMinP}; o.MinP = float64(p); o.MinKeep = mk },
				chain: func(c *csampler.Chain) { c.MinP(p, mk) }})
		}
	}
	for _, p := range []float32{0.2, 0.5, 0.95} {
		for _, mk := range []int{0, 2} {
			add(equivCase{name: fmt.Sprintf("typical_p=%g,min_keep=%d", p, mk),
				opts:  func(o *Options) { o.Order = []Stage{StageTypicalP}; o.TypicalP = float64(p); o.MinKeep = mk },
				chain: func(c *csampler.Chain) { c.Typical(p, mk) },
				// llama.cpp's entropy is NaN when a probability is 0.
				skipKinds: map[string]bool{"neginf": true}})
		}
	}
	for _, n := range []float32{0.5, 1, 2.5} {
		add(equivCase{name: fmt.Sprintf("top_n_sigma=%g", n),
			opts:  func(o *Options) { o.Order = []Stage{StageTopNSigma}; o.TopNSigma = float64(n) },
			chain: func(c *csampler.Chain) { c.TopNSigma(n) }})
	}
	for _, th := range []float32{0.05, 0.1, 0.3} {
		for _, mk := range []int{1, 4} {
			add(equivCase{name: fmt.Sprintf("xtc_threshold=%g,min_keep=%d", th, mk),
				opts: func(o *Options) {
					o.Order = []Stage{StageXTC}
					o.XTCProbability, o.XTCThreshold, o.MinKeep = 1, float64(th), mk
				},
				chain: func(c *csampler.Chain) { c.XTC(1, th, mk, 1234) }})
		}
	}
	for _, t := range []float32{0, 0.3, 0.8, 1.7} {
		add(equivCase{name: fmt.Sprintf("temperature=%g", t),
			opts:  func(o *Options) { o.Order = []Stage{StageTemperature}; o.Temperature = float64(t) },
			chain: func(c *csampler.Chain) { c.TempExt(t, 0, 1) }})
	}
	for _, dt := range [][3]float32{{0.8, 0.5, 1}, {1, 0.9, 2}, {0.2, 0.5, 0.5}} {
		add(equivCase{name: fmt.Sprintf("dynatemp=%v", dt),
			opts: func(o *Options) {
				o.Order = []Stage{StageTemperature}
				o.Temperature, o.DynamicTempRange, o.DynamicTempExponent = float64(dt[0]), float64(dt[1]), float64(dt[2])
			},
			chain:     func(c *csampler.Chain) { c.TempExt(dt[0], dt[1], dt[2]) },
			skipKinds: map[string]bool{"neginf": true}, // llama.cpp's entropy: 0·log 0 guarded, but max entropy counts -Inf tokens; same here
		})
	}
	add(equivCase{name: "logit_bias",
		opts: func(o *Options) {
			o.Order = []Stage{}
			o.LogitBias = map[engine.Token]float64{0: 3.5, 1: math.Inf(-1)}
		},
		chain: func(c *csampler.Chain) { c.LogitBias([]int32{0, 1}, []float32{3.5, float32(math.Inf(-1))}) }})
	// The default chain up to the draw (the fast top-k path with
	// overrides), and variations.
	add(equivCase{name: "default chain",
		opts: func(o *Options) {
			o.RepeatPenalty, o.FrequencyPenalty, o.PresencePenalty = 1.1, 0.2, 0.3
		},
		chain: func(c *csampler.Chain) {
			c.Penalties(64, 1.1, 0.2, 0.3).TopK(40).TopP(0.95, 0).MinP(0.05, 0).TempExt(0.8, 0, 1)
		}})
	add(equivCase{name: "bias+penalties+top_k+typical+xtc+temp",
		opts: func(o *Options) {
			o.LogitBias = map[engine.Token]float64{0: 2, 1: -1}
			o.RepeatPenalty, o.RepeatLastN = 1.3, 16
			o.TypicalP, o.XTCProbability, o.XTCThreshold, o.MinKeep = 0.9, 1, 0.05, 1
			o.TopK, o.TopP, o.MinP = 60, 1, 0
		},
		chain: func(c *csampler.Chain) {
			c.LogitBias([]int32{0, 1}, []float32{2, -1}).Penalties(16, 1.3, 0, 0).TopK(60).Typical(0.9, 1).XTC(1, 0.05, 1, 7).TempExt(0.8, 0, 1)
		},
		skipKinds: map[string]bool{"neginf": true}})
	add(equivCase{name: "top_n_sigma+top_k+top_p",
		opts: func(o *Options) {
			o.TopNSigma, o.TopK, o.TopP, o.MinP, o.Temperature = 1.5, 20, 0.9, 0, 1
		},
		chain: func(c *csampler.Chain) { c.TopNSigma(1.5).TopK(20).TopP(0.9, 0).TempExt(1, 0, 1) }})
	add(equivCase{name: "transformers order (temperature before top_k)",
		opts: func(o *Options) {
			o.Order = []Stage{StagePenalties, StageTemperature, StageTopK, StageTopP}
			o.RepeatPenalty, o.Temperature, o.TopK, o.TopP = 1.2, 0.7, 50, 0.9
		},
		chain: func(c *csampler.Chain) { c.Penalties(64, 1.2, 0, 0).TempExt(0.7, 0, 1).TopK(50).TopP(0.9, 0) }})
	add(equivCase{name: "penalties after top_k",
		opts: func(o *Options) {
			o.Order = []Stage{StageTopK, StagePenalties, StageMinP}
			o.RepeatPenalty, o.FrequencyPenalty, o.TopK, o.MinP = 1.5, 0.5, 30, 0.1
		},
		chain: func(c *csampler.Chain) { c.TopK(30).Penalties(64, 1.5, 0.5, 0).MinP(0.1, 0) }})
	for _, pen := range [][4]float32{{64, 1.1, 0, 0}, {16, 1.5, 0.3, 0.7}, {200, 0.8, -0.2, 0.1}} {
		add(equivCase{name: fmt.Sprintf("penalties=%v", pen),
			opts: func(o *Options) {
				o.Order = []Stage{StagePenalties}
				o.RepeatLastN, o.RepeatPenalty, o.FrequencyPenalty, o.PresencePenalty = int(pen[0]), float64(pen[1]), float64(pen[2]), float64(pen[3])
			},
			chain: func(c *csampler.Chain) { c.Penalties(int(pen[0]), pen[1], pen[2], pen[3]) }})
	}
	for _, d := range [][4]float32{{0.8, 1.75, 2, 0}, {1.5, 2, 1, 64}, {0.5, 1.1, 4, 100}} {
		add(equivCase{name: fmt.Sprintf("dry=%v", d),
			opts: func(o *Options) {
				o.Order = []Stage{StageDRY}
				o.DRYMultiplier, o.DRYBase, o.DRYAllowedLength, o.DRYLastN = float64(d[0]), float64(d[1]), int(d[2]), int(d[3])
				if d[3] == 0 {
					o.DRYLastN = -1
				}
				o.DRYSequenceBreakers = nil
				o.ContextSize = 512
			},
			chain: func(c *csampler.Chain) {
				lastN := int(d[3])
				if lastN == 0 {
					lastN = -1
				}
				c.DRY(nil, 512, d[0], d[1], int(d[2]), lastN, nil)
			}})
	}
	return cs
}

// history returns a token history with repetitions, for the penalties and
// DRY: random tokens with copies of earlier stretches.
func testHistory(r *rand.Rand, nVocab, n int) []engine.Token {
	h := make([]engine.Token, 0, n)
	alpha := min(nVocab, 40) // a small alphabet makes repeats
	for len(h) < n {
		if len(h) > 8 && r.IntN(3) == 0 {
			start := r.IntN(len(h) - 4)
			l := 2 + r.IntN(6)
			for i := 0; i < l && start+i < len(h) && len(h) < n; i++ {
				h = append(h, h[start+i])
			}
			continue
		}
		h = append(h, engine.Token(r.IntN(alpha)))
	}
	return h
}

func TestEquivalenceWithLlamaCpp(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	r := rand.New(rand.NewPCG(1, 2))
	type stat struct {
		vectors  int
		maxDiffP float64
		maxDiffL float64
	}
	stats := map[string]*stat{}
	total := 0
	for _, ec := range equivCases() {
		st := &stat{}
		stats[ec.name] = st
		for _, n := range vocabSizes {
			reps := 6
			if n >= 32000 {
				reps = 2
			}
			for _, kind := range logitKinds {
				if ec.skipKinds[kind.name] {
					continue
				}
				for rep := 0; rep < reps; rep++ {
					logits := kind.gen(r, n)
					hist := testHistory(r, n, 40+r.IntN(200))
					dl, dp := compareOne(t, ec, logits, hist, fmt.Sprintf("%s/n=%d/%s/%d", ec.name, n, kind.name, rep))
					st.vectors++
					st.maxDiffL = max(st.maxDiffL, dl)
					st.maxDiffP = max(st.maxDiffP, dp)
					total++
				}
			}
		}
	}
	names := make([]string, 0, len(stats))
	for n := range stats {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := stats[n]
		t.Logf("%-48s %4d vectors, max |Δlogit| %.2g, max |Δp| %.2g", n, s.vectors, s.maxDiffL, s.maxDiffP)
	}
	t.Logf("%d comparisons in all", total)
}

// compareOne runs one case on one row and history; it returns the largest
// logit and probability differences.
func compareOne(t *testing.T, ec equivCase, logits []float32, hist []engine.Token, label string) (float64, float64) {
	t.Helper()
	opts := DefaultOptions()
	opts.Seed = 1
	ec.opts(&opts)
	s, err := NewForVocab(opts, len(logits))
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if err := s.AddHistory(hist); err != nil {
		t.Fatal(err)
	}
	if _, err := s.chain(logits, false); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	got := append([]Candidate(nil), s.c.d...)

	c := csampler.New(len(logits))
	defer c.Free()
	ec.chain(c)
	for _, tok := range hist {
		c.Accept(int32(tok))
	}
	want := c.Apply(logits).Candidates
	return compareCands(t, label, got, want)
}

// compareCands requires the same candidates of probability > 0 (up to ties at a cut-off: a
// candidate kept on one side only must be matched by one of the same logit
// kept on the other side only), logits within a relative 1e-5, and the same
// softmax probabilities within probTol.
func compareCands(t *testing.T, label string, got []Candidate, want []csampler.TokenData) (float64, float64) {
	t.Helper()
	// A candidate with a logit of -Inf has probability 0: it is as good as
	// gone (the greedy path keeps only the winner, llama.cpp keeps the rest
	// at -Inf).
	got = slices.DeleteFunc(slices.Clone(got), func(c Candidate) bool { return math.IsInf(float64(c.Logit), -1) })
	want = slices.DeleteFunc(slices.Clone(want), func(c csampler.TokenData) bool { return math.IsInf(float64(c.Logit), -1) })
	if len(got) != len(want) {
		t.Errorf("%s: %d candidates, llama.cpp %d", label, len(got), len(want))
		return math.Inf(1), math.Inf(1)
	}
	wantBy := map[engine.Token]float32{}
	for _, w := range want {
		wantBy[engine.Token(w.ID)] = w.Logit
	}
	var onlyGot, onlyWant []float32
	gotBy := map[engine.Token]float32{}
	var maxDL float64
	for _, g := range got {
		gotBy[g.Token] = g.Logit
		w, ok := wantBy[g.Token]
		if !ok {
			onlyGot = append(onlyGot, g.Logit)
			continue
		}
		if d := logitDiff(g.Logit, w); d > 1e-5 {
			t.Errorf("%s: token %d: logit %g, llama.cpp %g", label, g.Token, g.Logit, w)
		} else {
			maxDL = max(maxDL, d)
		}
	}
	for _, w := range want {
		if _, ok := gotBy[engine.Token(w.ID)]; !ok {
			onlyWant = append(onlyWant, w.Logit)
		}
	}
	sort.Slice(onlyGot, func(i, j int) bool { return onlyGot[i] < onlyGot[j] })
	sort.Slice(onlyWant, func(i, j int) bool { return onlyWant[i] < onlyWant[j] })
	for i := range onlyGot {
		if logitDiff(onlyGot[i], onlyWant[i]) > 1e-5 {
			t.Errorf("%s: different candidates: only here logits %v, only in llama.cpp %v", label, head(onlyGot), head(onlyWant))
			break
		}
	}
	pg := softmax64(got, func(c Candidate) float32 { return c.Logit })
	pw := softmax64(want, func(c csampler.TokenData) float32 { return c.Logit })
	// Compare the sorted probability vectors (ties make ids ambiguous).
	sort.Float64s(pg)
	sort.Float64s(pw)
	var maxDP float64
	for i := range pg {
		d := math.Abs(pg[i] - pw[i])
		if math.IsNaN(pg[i]) && math.IsNaN(pw[i]) {
			d = 0
		}
		if d > probTol || math.IsNaN(d) {
			t.Errorf("%s: probability %g, llama.cpp %g", label, pg[i], pw[i])
			break
		}
		maxDP = max(maxDP, d)
	}
	return maxDL, maxDP
}

func head(x []float32) []float32 { return x[:min(len(x), 8)] }

func logitDiff(a, b float32) float64 {
	if a == b {
		return 0
	}
	d := math.Abs(float64(a) - float64(b))
	return d / max(1, math.Abs(float64(b)))
}

func softmax64[T any](d []T, logit func(T) float32) []float64 {
	out := make([]float64, len(d))
	m := math.Inf(-1)
	for _, x := range d {
		m = max(m, float64(logit(x)))
	}
	var sum float64
	for i, x := range d {
		out[i] = math.Exp(float64(logit(x)) - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}
