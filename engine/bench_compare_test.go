package engine_test

import (
	"context"
	"testing"
	"unsafe"

	"github.com/llm-go/llm/bench"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/cref"
)

// crefDecoder is cref's C loops as a bench.Decoder (no depth: cref clears
// the memory itself).
type crefDecoder struct {
	ctx         unsafe.Pointer
	nVocab, bos int
}

func (d crefDecoder) Clear(int) error { return nil }
func (d crefDecoder) Prompt(_ context.Context, n, nBatch int) error {
	return cref.Prompt(d.ctx, n, nBatch, d.nVocab, d.bos, 1)
}
func (d crefDecoder) Generate(_ context.Context, n int) error {
	return cref.Generate(d.ctx, n, d.nVocab, d.bos, 1)
}

// BenchmarkLLMBenchVsC runs what "llm bench -p 512 -n 128 -t 2" runs against
// the C loops on the same contexts, alternated every repetition, and fails
// beyond 3%.
//
//	go test -run '^$' -bench LLMBenchVsC -benchtime 5x ./engine
func BenchmarkLLMBenchVsC(b *testing.B) {
	ctx := context.Background()
	m, err := engine.LoadModel(ctx, benchModel(b), engine.ModelOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	p := bench.DefaultParams(bench.Model{Path: m.Path()})
	p.Threads = []int{2}
	bos := -1
	if st := m.SpecialTokens(); st.AddBOS {
		bos = int(st.BOS)
	}
	for _, in := range p.Instances() { // pp512, tg128
		c, err := m.NewContext(bench.ContextOptions(in))
		if err != nil {
			b.Fatal(err)
		}
		goDec, err := bench.NewEngineDecoder(c, 1)
		if err != nil {
			b.Fatal(err)
		}
		cDec := crefDecoder{engine.ContextPointer(c), m.VocabSize(), bos}
		s, err := bench.Alternate(ctx, bench.Test{NPrompt: in.NPrompt, NGen: in.NGen, Batch: in.Batch}, b.N, goDec, cDec)
		goDec.Close()
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
		n := in.NPrompt + in.NGen
		g, cc := bench.MedianTS(n, s[0]), bench.MedianTS(n, s[1])
		b.ReportMetric(g, "go-"+in.Name()+"-t/s")
		b.ReportMetric(cc, "c-"+in.Name()+"-t/s")
		b.ReportMetric(g/cc, in.Name()+"-go/c")
		if r := g / cc; b.N >= 3 && (r < 0.97 || r > 1.03) {
			b.Errorf("%s: llm bench %.2f vs C %.2f t/s: %.1f%% apart", in.Name(), g, cc, 100*(r-1))
		}
	}
	b.ReportMetric(0, "ns/op")
}
