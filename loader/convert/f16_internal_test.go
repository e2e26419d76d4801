package convert

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// TestF32ToF16 checks f32ToF16 against float16.Fromfloat32 for every BF16
// value and for random and boundary float32s.
func TestF32ToF16(t *testing.T) {
	check := func(w uint32) {
		got := f32ToF16(w)
		want := float16.Fromfloat32(math.Float32frombits(w)).Bits()
		if got != want {
			t.Fatalf("%#08x (%g): got %#04x, want %#04x", w, math.Float32frombits(w), got, want)
		}
	}
	for b := range uint32(1 << 16) {
		check(b << 16)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		check(r.Uint32())
	}
	// Around the F16 rounding boundaries of every exponent.
	for e := uint32(90); e < 160; e++ {
		for m := uint32(0); m < 1<<23; m += 1 << 11 {
			for _, d := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x17ff} {
				check(e<<23 | (m+d)&0x7fffff)
				check(0x80000000 | e<<23 | (m+d)&0x7fffff)
			}
		}
	}
}
