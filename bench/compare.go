package bench

import (
	"context"
	"fmt"
	"slices"
)

// Alternate runs test t on several decoders, typically two loops over the
// same context (the engine's and a C harness's), one repetition each in
// turn, reversing the order every round so that the machine's noise falls
// on all alike. Each decoder gets one warm-up first. It returns the
// per-repetition times of each decoder, in the order given.
func Alternate(ctx context.Context, t Test, reps int, decoders ...Decoder) ([][]uint64, error) {
	for i, d := range decoders {
		if _, err := RunTest(ctx, d, t, 0, true, nil); err != nil {
			return nil, fmt.Errorf("bench: decoder %d: %w", i, err)
		}
	}
	out := make([][]uint64, len(decoders))
	order := make([]int, len(decoders))
	for i := range order {
		order[i] = i
	}
	for rep := range reps {
		run := order
		if rep%2 == 1 {
			run = slices.Clone(order)
			slices.Reverse(run)
		}
		for _, i := range run {
			tm, err := RunTest(ctx, decoders[i], t, 1, false, nil)
			if err != nil {
				return out, fmt.Errorf("bench: decoder %d: %w", i, err)
			}
			out[i] = append(out[i], tm.SamplesNS...)
		}
	}
	return out, nil
}

// MedianTS returns the median rate in tokens per second of repetitions
// that took samples nanoseconds for n tokens each.
func MedianTS(n int, samples []uint64) float64 {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	mid := float64(s[len(s)/2])
	if len(s)%2 == 0 {
		mid = (float64(s[len(s)/2-1]) + float64(s[len(s)/2])) / 2
	}
	return 1e9 * float64(n) / mid
}
