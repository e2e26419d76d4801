package sampler

import (
	"cmp"
	"slices"
	"unsafe"

	"github.com/llm-go/llm/engine"
)

// Candidate is a token with its logit and probability, laid out as
// llama.cpp's llama_token_data (and engine.TokenData).
type Candidate struct {
	Token engine.Token
	Logit float32
	P     float32 // set by the stages that compute probabilities, and by the draw
}

// Candidate and engine.TokenData have the same layout: candidate arrays go
// to llama.cpp's grammar sampler as they are.
var _ [unsafe.Sizeof(Candidate{}) - unsafe.Sizeof(engine.TokenData{})]byte
var _ [unsafe.Sizeof(engine.TokenData{}) - unsafe.Sizeof(Candidate{})]byte
var _ [unsafe.Offsetof(Candidate{}.Logit) - unsafe.Offsetof(engine.TokenData{}.Logit)]byte
var _ [unsafe.Offsetof(Candidate{}.P) - unsafe.Offsetof(engine.TokenData{}.P)]byte

func asTokenData(d []Candidate) []engine.TokenData {
	if len(d) == 0 {
		return nil
	}
	return unsafe.Slice((*engine.TokenData)(unsafe.Pointer(&d[0])), len(d))
}

// cands is the candidate array the stages work on, as llama.cpp's
// llama_token_data_array: the data, whether it is sorted by descending
// logit.
type cands struct {
	d      []Candidate
	sorted bool
}

// byLogitDesc orders candidates by descending logit, then ascending token,
// so that every sort gives one order.
func byLogitDesc(a, b Candidate) int {
	if a.Logit != b.Logit {
		if a.Logit > b.Logit {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.Token, b.Token)
}

// sortDesc sorts d by descending logit.
func sortDesc(d []Candidate) {
	if len(d) <= 24 {
		// insertion sort: fewer comparisons through a function value
		for i := 1; i < len(d); i++ {
			c := d[i]
			j := i
			for ; j > 0 && byLogitDesc(c, d[j-1]) < 0; j-- {
				d[j] = d[j-1]
			}
			d[j] = c
		}
		return
	}
	slices.SortFunc(d, byLogitDesc)
}

// partialSort moves the k highest-logit candidates of d to its front,
// sorted; the rest follow in no order (llama.cpp's partial sort).
func partialSort(d []Candidate, k int) {
	if k >= len(d) {
		sortDesc(d)
		return
	}
	if k <= 0 {
		return
	}
	nthElement(d, k)
	sortDesc(d[:k])
}

// nthElement reorders d so that its first k elements are the k best by
// byLogitDesc, in no order (quickselect with a median-of-three pivot).
func nthElement(d []Candidate, k int) {
	lo, hi := 0, len(d)-1
	for hi > lo {
		if hi-lo < 16 {
			sortDesc(d[lo : hi+1])
			return
		}
		i, j := partition(d, lo, hi)
		// d[lo..j] rank before d[i..hi]; between them only the pivot
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// partition is one step of quickselect over d[lo..hi] (inclusive): it
// orders d[lo], the middle element and d[hi] (median of three), then
// partitions around the middle one's value (Hoare). Afterwards j < i, every
// element of d[lo..j] ranks before every element of d[i..hi], and the
// elements between them equal the pivot.
func partition(d []Candidate, lo, hi int) (i, j int) {
	mid := lo + (hi-lo)/2
	if before(&d[mid], &d[lo]) {
		d[mid], d[lo] = d[lo], d[mid]
	}
	if before(&d[hi], &d[lo]) {
		d[hi], d[lo] = d[lo], d[hi]
	}
	if before(&d[hi], &d[mid]) {
		d[hi], d[mid] = d[mid], d[hi]
	}
	pivot := d[mid]
	i, j = lo, hi
	for i <= j {
		for before(&d[i], &pivot) {
			i++
		}
		for before(&pivot, &d[j]) {
			j--
		}
		if i <= j {
			d[i], d[j] = d[j], d[i]
			i++
			j--
		}
	}
	return i, j
}

// maxLogit returns the largest logit of d (d must not be empty).
func maxLogit(d []Candidate) float32 {
	m := d[0].Logit
	for _, c := range d[1:] {
		if c.Logit > m {
			m = c.Logit
		}
	}
	return m
}

// softmax sets the probabilities of c's candidates from their logits, as
// llama_sampler_softmax_impl: sorting first when doSort (and c is not
// sorted), exponentials in float32, a float32 sum.
func (c *cands) softmax(doSort bool) {
	if doSort && !c.sorted {
		sortDesc(c.d)
		c.sorted = true
	}
	if len(c.d) == 0 {
		return
	}
	var maxL float32
	if c.sorted {
		maxL = c.d[0].Logit
	} else {
		maxL = maxLogit(c.d)
	}
	var sum float32
	for i := range c.d {
		p := exp32(c.d[i].Logit - maxL)
		c.d[i].P = p
		sum += p
	}
	for i := range c.d {
		c.d[i].P /= sum
	}
}
