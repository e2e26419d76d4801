package sampler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/csampler"
)

// The benchmark chain: llama.cpp's default chain with the repeat penalty on
// (Ollama's 1.1) over a history of 64 tokens: penalties(64), top-k 40,
// top-p 0.95, min-p 0.05, temperature 0.8, a random draw.
func benchOptions() Options {
	o := DefaultOptions()
	o.RepeatPenalty = 1.1
	o.Seed = 42
	return o
}

func benchChainC(c *csampler.Chain) {
	c.Penalties(64, 1.1, 0, 0).TopK(40).TopP(0.95, 0).MinP(0.05, 0).TempExt(0.8, 0, 1).Dist(42)
}

// benchLogits returns rows that look like a model's: a few strong tokens
// over a normal background.
func benchLogits(n int) []float32 {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64()*2 - 2)
	}
	for range 20 {
		l[r.IntN(n)] = float32(6 + r.Float64()*6)
	}
	return l
}

func benchHistory(n int) []engine.Token {
	r := rand.New(rand.NewPCG(9, 9))
	h := make([]engine.Token, 64)
	for i := range h {
		h[i] = engine.Token(r.IntN(n))
	}
	return h
}

// BenchmarkDefaultChain compares the Go chain with llama.cpp's C chain
// (filling the candidate array from the logits, as common_sampler does,
// applying the chain and accepting the token) on the same logits.
func BenchmarkDefaultChain(b *testing.B) {
	for _, n := range []int{32000, 152064} {
		logits := benchLogits(n)
		hist := benchHistory(n)
		b.Run(fmt.Sprintf("go/vocab=%d", n), func(b *testing.B) {
			s, err := NewForVocab(benchOptions(), n)
			if err != nil {
				b.Fatal(err)
			}
			s.AddHistory(hist)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Sample(logits); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("llama.cpp/vocab=%d", n), func(b *testing.B) {
			c := csampler.New(n)
			defer c.Free()
			benchChainC(c)
			for _, t := range hist {
				c.Accept(int32(t))
			}
			b.ResetTimer()
			for b.Loop() {
				if c.Sample(logits) < 0 {
					b.Fatal("no token")
				}
			}
		})
	}
}

// BenchmarkTopPOnlyChain is OpenAI's usual setting (no top-k: top-p 0.9 and
// temperature 1 over the whole vocabulary), in Go and in llama.cpp.
func BenchmarkTopPOnlyChain(b *testing.B) {
	n := 152064
	logits := benchLogits(n)
	b.Run("go", func(b *testing.B) {
		o := OpenAIDefaults()
		o.TopP, o.Seed = 0.9, 1
		s, err := NewForVocab(o, n)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Sample(logits); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("llama.cpp", func(b *testing.B) {
		c := csampler.New(n)
		defer c.Free()
		c.TopP(0.9, 0).Dist(1)
		for b.Loop() {
			c.Sample(logits)
		}
	})
}
