package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/cref"
	"github.com/llm-go/llm/synth"
)

// benchModel returns the model the decode benchmarks run on:
// LLM_BENCH_MODEL if set, else a synthetic TinyLlama-1.1B in Q4_0, made once
// and kept in the user cache directory (about 600 MB; the first run writes a
// 2.2 GB F16 file and quantizes it, which takes a minute or two).
func benchModel(b *testing.B) string {
	if p := os.Getenv("LLM_BENCH_MODEL"); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "llm", "synth", "tinyllama-1.1b-Q4_0-seed1.gguf")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	b.Logf("creating %s", path)
	if err := synth.Create(context.Background(), path, synth.Shapes["tinyllama-1.1b"], "Q4_0", 1, 0); err != nil {
		b.Fatal(err)
	}
	return path
}

// lcg matches cref's token generator, so both loops decode the same tokens.
func lcg(state *uint32) uint32 {
	*state = *state*1664525 + 1013904223
	return *state >> 8
}

// goPrompt is llama-bench's prompt test through the engine: nPrompt random
// tokens in batches of nBatch, the logits of each batch's last token.
func goPrompt(c *engine.Context, b *engine.Batch, nPrompt, nBatch, nVocab, bos int, seed uint32) error {
	ctx := context.Background()
	if err := c.ClearMemory(false); err != nil {
		return err
	}
	for done := 0; done < nPrompt; {
		n := min(nPrompt-done, nBatch)
		b.Clear()
		for i := range n {
			tok := engine.Token(lcg(&seed) % uint32(nVocab))
			if done == 0 && i == 0 && bos >= 0 {
				tok = engine.Token(bos)
			}
			b.Add(tok, engine.Pos(done+i), i == n-1)
		}
		if err := c.Decode(ctx, b); err != nil {
			return err
		}
		if _, err := c.Logits(n - 1); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// goGen is llama-bench's generation test through the engine.
func goGen(c *engine.Context, b *engine.Batch, nGen, nVocab, bos int, seed uint32) error {
	ctx := context.Background()
	if err := c.ClearMemory(false); err != nil {
		return err
	}
	tok := engine.Token(bos)
	if bos < 0 {
		tok = engine.Token(lcg(&seed) % uint32(nVocab))
	}
	for i := range nGen {
		b.Clear()
		b.Add(tok, engine.Pos(i), true)
		if err := c.Decode(ctx, b); err != nil {
			return err
		}
		if _, err := c.Logits(0); err != nil {
			return err
		}
		tok = engine.Token(lcg(&seed) % uint32(nVocab))
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkGoVsC runs llama-bench's pp512 and tg128 tests through the Go
// binding and through a C loop calling llama_decode, on the same model and
// context with 2 threads, alternating the two sides every repetition (the
// machine's noise hits both alike). Each b.N iteration is one repetition of
// all four; it reports median tokens/s and the Go/C ratios.
//
//	go test -run '^$' -bench GoVsC -benchtime 5x ./engine
func BenchmarkGoVsC(b *testing.B) {
	const nPrompt, nGen, nBatch, threads = 512, 128, 512, 2
	m, err := engine.LoadModel(context.Background(), benchModel(b), engine.ModelOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 1024, BatchSize: nBatch, MicroBatchSize: nBatch, Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	batch, _ := engine.NewBatch(nBatch, 1)
	defer batch.Close()
	nVocab, bos := m.VocabSize(), int(m.SpecialTokens().BOS)
	ptr := engine.ContextPointer(c)

	type side struct {
		name string
		run  func() error
		took []time.Duration
	}
	sides := []*side{
		{name: "go-pp", run: func() error { return goPrompt(c, batch, nPrompt, nBatch, nVocab, bos, 1) }},
		{name: "c-pp", run: func() error { return cref.Prompt(ptr, nPrompt, nBatch, nVocab, bos, 1) }},
		{name: "go-tg", run: func() error { return goGen(c, batch, nGen, nVocab, bos, 1) }},
		{name: "c-tg", run: func() error { return cref.Generate(ptr, nGen, nVocab, bos, 1) }},
	}
	for _, s := range sides { // warm-up: page in the weights, allocate buffers
		if err := s.run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		order := []int{0, 1, 2, 3}
		if i%2 == 1 {
			order = []int{1, 0, 3, 2}
		}
		for _, k := range order {
			start := time.Now()
			if err := sides[k].run(); err != nil {
				b.Fatal(err)
			}
			sides[k].took = append(sides[k].took, time.Since(start))
		}
	}
	b.StopTimer()
	tps := func(s *side, n int) float64 { return float64(n) / median(s.took).Seconds() }
	goPP, cPP := tps(sides[0], nPrompt), tps(sides[1], nPrompt)
	goTG, cTG := tps(sides[2], nGen), tps(sides[3], nGen)
	b.ReportMetric(goPP, "go-pp512-tok/s")
	b.ReportMetric(cPP, "c-pp512-tok/s")
	b.ReportMetric(goPP/cPP, "pp-go/c")
	b.ReportMetric(goTG, "go-tg128-tok/s")
	b.ReportMetric(cTG, "c-tg128-tok/s")
	b.ReportMetric(goTG/cTG, "tg-go/c")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkTokenize measures tokenization of a paragraph with the 32000-token
// Llama-2 vocabulary.
func BenchmarkTokenize(b *testing.B) {
	m := loadModel(b, engine.ModelOptions{VocabOnly: true}, "models", "llama-2-tiny-random.gguf")
	const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. "
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := m.Tokenize(text, true, false); err != nil {
			b.Fatal(err)
		}
	}
}
