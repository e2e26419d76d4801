package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
)

// recorder is a Decoder that records its calls.
type recorder struct {
	calls  []string
	cancel func() // called at the n-th Generate when set
	at     int
	gens   int
}

func (r *recorder) Clear(keep int) error {
	r.calls = append(r.calls, fmt.Sprintf("clear%d", keep))
	return nil
}

func (r *recorder) Prompt(ctx context.Context, n, nBatch int) error {
	r.calls = append(r.calls, fmt.Sprintf("p%d/%d", n, nBatch))
	return ctx.Err()
}

func (r *recorder) Generate(ctx context.Context, n int) error {
	r.gens++
	if r.cancel != nil && r.gens == r.at {
		r.cancel()
	}
	r.calls = append(r.calls, fmt.Sprintf("g%d", n))
	return ctx.Err()
}

func TestRunTestSemantics(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	var phases []string
	tm, err := RunTest(ctx, rec, Test{NPrompt: 8, NGen: 4, Depth: 16, Batch: 2}, 3, true,
		func(p string, rep int) { phases = append(phases, fmt.Sprintf("%s%d", p, rep)) })
	if err != nil {
		t.Fatal(err)
	}
	// A warm-up (prompt, one token), the depth filled once, then kept.
	want := []string{"clear0", "p8/2", "g1",
		"clear0", "p16/2", "p8/2", "g4",
		"clear16", "p8/2", "g4",
		"clear16", "p8/2", "g4"}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("calls %v\nwant  %v", rec.calls, want)
	}
	if !slices.Equal(phases, []string{"warm-up0", "depth1", "run1", "run2", "run3"}) {
		t.Errorf("phases %v", phases)
	}
	if len(tm.SamplesNS) != 3 || len(tm.PromptNS) != 3 {
		t.Errorf("%d samples, %d prompt times", len(tm.SamplesNS), len(tm.PromptNS))
	}

	// No warm-up, no depth: every repetition clears everything.
	rec = &recorder{}
	if _, err := RunTest(ctx, rec, Test{NGen: 4, Batch: 2}, 2, false, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"clear0", "g4", "clear0", "g4"}; !slices.Equal(rec.calls, want) {
		t.Errorf("calls %v, want %v", rec.calls, want)
	}

	// Cancelled during the second repetition: the first one is returned.
	cctx, cancel := context.WithCancel(ctx)
	rec = &recorder{cancel: cancel, at: 3}
	tm, err = RunTest(cctx, rec, Test{NGen: 4, Batch: 2}, 5, true, nil)
	if !errors.Is(err, context.Canceled) || len(tm.SamplesNS) != 1 {
		t.Errorf("cancelled: %v with %d samples, want context.Canceled with 1", err, len(tm.SamplesNS))
	}
}

func tinyModel(t *testing.T) string {
	return shareddata.Path(t, "models", "stories260K.gguf")
}

func TestRunOnRealModel(t *testing.T) {
	model := tinyModel(t)
	p := DefaultParams(Model{Path: model})
	p.NPrompt, p.NGen, p.PG = []int{16}, []int{8}, []PG{{8, 4}}
	p.Depth = []int{0, 16}
	p.Threads = []int{1}
	p.Batch, p.UBatch = []int{8}, []int{8}
	p.Repetitions = 2
	var printed int
	var progress []Progress
	sys := System{BuildCommit: "x", Backends: "CPU", MemBandwidthGBps: 10}
	res, err := Run(context.Background(), p, Options{
		System:   sys,
		OnResult: func(*Result) error { printed++; return nil },
		Progress: func(pr Progress) { progress = append(progress, pr) },
	})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(res))
	for i := range res {
		names[i] = res[i].Name()
	}
	if want := []string{"pp16", "tg8", "pp8+tg4", "pp16 @ d16", "tg8 @ d16", "pp8+tg4 @ d16"}; !slices.Equal(names, want) {
		t.Fatalf("tests %v, want %v", names, want)
	}
	if printed != len(res) {
		t.Errorf("OnResult called %d times for %d results", printed, len(res))
	}
	facts, err := FactsFromFile(model)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res {
		r := &res[i]
		if len(r.SamplesNS) != 2 || r.AvgTS() <= 0 || r.LoadMS <= 0 || r.ModelSize == 0 || r.ModelParams == 0 {
			t.Errorf("%s: samples %v t/s %v load %v size %d params %d", r.Name(), r.SamplesNS, r.AvgTS(), r.LoadMS, r.ModelSize, r.ModelParams)
		}
		if r.WeightBytesPerToken != facts.BytesPerToken() || r.ModelType == "" || r.BuildCommit != "x" {
			t.Errorf("%s: weight bytes %d, type %q, commit %q", r.Name(), r.WeightBytesPerToken, r.ModelType, r.BuildCommit)
		}
		if _, ok := r.TTFTMS(); ok != (r.NPrompt > 0) {
			t.Errorf("%s: has TTFT %v", r.Name(), ok)
		}
		if _, ok := r.BandwidthPct(); ok != (r.NPrompt == 0) {
			t.Errorf("%s: has bandwidth %% %v", r.Name(), ok)
		}
		if PeakRSS() > 0 && r.PeakRSS == 0 {
			t.Errorf("%s: no peak RSS", r.Name())
		}
	}
	// One load for all six tests, and a line for every step.
	loads := 0
	for _, pr := range progress {
		if pr.Phase == PhaseLoading {
			loads++
		}
		if s := pr.String(); !strings.Contains(s, "test ") || !strings.Contains(s, pr.Instance.Name()) {
			t.Errorf("progress line %q", s)
		}
	}
	if loads != 1 {
		t.Errorf("model loaded %d times", loads)
	}
}

func TestRunInterruptedKeepsResults(t *testing.T) {
	p := DefaultParams(Model{Path: tinyModel(t)})
	p.NPrompt, p.NGen, p.Threads, p.Repetitions = []int{8}, []int{4}, []int{1}, 1
	p.Depth = []int{0, 8, 16}
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Run(ctx, p, Options{OnResult: func(r *Result) error {
		if r.Depth == 8 {
			cancel() // Ctrl-C during the run
		}
		return nil
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(res) != 3 {
		t.Errorf("%d results kept, want the 3 finished before the interrupt", len(res))
	}
}

func TestRunSkipsFailures(t *testing.T) {
	p := DefaultParams(Model{Path: "/nonexistent.gguf"}, Model{Path: tinyModel(t)})
	p.NPrompt, p.NGen, p.Threads, p.Repetitions = []int{8}, []int{0}, []int{1}, 1
	res, err := Run(context.Background(), p, Options{})
	if err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("err = %v", err)
	}
	if len(res) != 1 || !strings.HasSuffix(res[0].Model.Path, "stories260K.gguf") {
		t.Errorf("results %+v", res)
	}
}

func TestEngineDecoderPositions(t *testing.T) {
	m, err := engine.LoadModel(context.Background(), tinyModel(t), engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, BatchSize: 8, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := NewEngineDecoder(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	check := func(what string, lo, hi engine.Pos) {
		t.Helper()
		a, b, err := c.PositionRange(0)
		if err != nil || a != lo || b != hi {
			t.Errorf("%s: positions %d..%d (%v), want %d..%d", what, a, b, err, lo, hi)
		}
	}
	if err := d.Prompt(ctx, 20, 8); err != nil { // batches of 8, 8, 4
		t.Fatal(err)
	}
	if err := d.Generate(ctx, 4); err != nil {
		t.Fatal(err)
	}
	check("prompt + generation", 0, 23)
	if err := d.Clear(16); err != nil {
		t.Fatal(err)
	}
	check("kept depth", 0, 15)
	if err := d.Generate(ctx, 2); err != nil {
		t.Fatal(err)
	}
	check("after the depth", 0, 17)
	if err := d.Clear(0); err != nil {
		t.Fatal(err)
	}
	if err := d.Generate(ctx, 1); err != nil {
		t.Fatal(err)
	}
	check("cleared", 0, 0)
}

// TestRunEncoder: an encoder (a BERT) runs its prompt tests in a context
// that computes embeddings, reported so; its generation and depth tests,
// and a prompt longer than the micro-batch, fail with ErrEncoder. A
// decoder runs with -embd 1 too, reported so.
func TestRunEncoder(t *testing.T) {
	bert, _ := testmodel.BERT(t, false)
	p := DefaultParams(Model{Path: bert})
	p.NPrompt, p.NGen = []int{16, 48}, []int{4}
	p.Depth = []int{0, 8}
	p.Threads = []int{1}
	p.Batch, p.UBatch = []int{32}, []int{32}
	p.Repetitions = 1
	var errs []error
	res, err := Run(context.Background(), p, Options{OnError: func(err error) { errs = append(errs, err) }})
	if err == nil {
		t.Fatal("no error for the tests an encoder cannot run")
	}
	if len(res) != 1 || res[0].NPrompt != 16 || res[0].Depth != 0 || !res[0].Embeddings {
		t.Fatalf("results %+v, want pp16 alone, with embeddings", res)
	}
	// pp48 (over the micro-batch), tg4, and at depth 8 pp16, pp48 and tg4.
	if len(errs) != 5 {
		t.Errorf("%d failures, want 5: %v", len(errs), errs)
	}
	for _, e := range errs {
		if !errors.Is(e, ErrEncoder) {
			t.Errorf("%v, want ErrEncoder", e)
		}
	}

	p = DefaultParams(Model{Path: tinyModel(t)})
	p.NPrompt, p.NGen, p.Threads, p.Repetitions = []int{8}, []int{0}, []int{1}, 1
	p.Embeddings = []bool{false, true}
	res, err = Run(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Embeddings || !res[1].Embeddings {
		t.Errorf("results %+v, want embeddings false then true", res)
	}
}
