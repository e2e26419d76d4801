package bench

import (
	"math"

	"gonum.org/v1/gonum/stat"
)

// meanStd returns the mean and the sample standard deviation (divided by
// n−1, as llama-bench's stdev) of x; the deviation is 0 for fewer than two
// values and both are 0 for none.
func meanStd(x []float64) (mean, std float64) {
	switch len(x) {
	case 0:
		return 0, 0
	case 1:
		return x[0], 0
	}
	mean, std = stat.MeanStdDev(x, nil)
	if math.IsNaN(std) {
		std = 0
	}
	return mean, std
}

// AvgNS is the mean time of a repetition in nanoseconds, truncated like
// llama-bench's avg_ns.
func (r *Result) AvgNS() uint64 {
	m, _ := meanStd(toFloats(r.SamplesNS))
	return uint64(m)
}

// StddevNS is the sample standard deviation of the repetitions' times in
// nanoseconds, truncated like llama-bench's stddev_ns.
func (r *Result) StddevNS() uint64 {
	_, s := meanStd(toFloats(r.SamplesNS))
	return uint64(s)
}

// SamplesTS are the repetitions' rates in tokens per second:
// (n_prompt + n_gen) / time.
func (r *Result) SamplesTS() []float64 {
	n := float64(r.NPrompt + r.NGen)
	ts := make([]float64, len(r.SamplesNS))
	for i, ns := range r.SamplesNS {
		if ns > 0 {
			ts[i] = 1e9 * n / float64(ns)
		}
	}
	return ts
}

// AvgTS is the mean of the per-repetition rates (llama-bench's avg_ts, the
// t/s column's value).
func (r *Result) AvgTS() float64 {
	m, _ := meanStd(r.SamplesTS())
	return m
}

// StddevTS is the sample standard deviation of the per-repetition rates
// (llama-bench's stddev_ts, after ± in the t/s column).
func (r *Result) StddevTS() float64 {
	_, s := meanStd(r.SamplesTS())
	return s
}

func toFloats(x []uint64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
