package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llm-go/llm/engine"
)

// Test is one timed workload: NPrompt prompt tokens in batches of Batch,
// then NGen generated tokens, after Depth tokens already in the KV cache.
type Test struct {
	NPrompt, NGen, Depth, Batch int
}

// Timing is what RunTest measured, one entry per repetition.
type Timing struct {
	// SamplesNS is each repetition's time (prompt and generation, not the
	// depth fill).
	SamplesNS []uint64
	// PromptNS is the prompt part of each repetition (empty without one).
	PromptNS []uint64
}

// Phases of a test, as RunTest reports them.
const (
	PhaseWarmup = "warm-up"
	PhaseDepth  = "depth"
	PhaseRun    = "run"
)

// RunTest runs t on d with llama-bench's semantics: a warm-up run (the
// prompt, then one generated token) unless warmup is false, then reps
// repetitions, each after clearing the KV memory and, for a depth, filling
// it with t.Depth tokens (once; later repetitions keep those positions and
// drop the rest, as llama-bench restores its saved state). Only the prompt
// and generation are timed. phase, when not nil, is called before each
// step with the 1-based repetition (0 for the warm-up).
//
// On error (ctx cancelled: the decoder's error wraps engine.ErrAborted) it
// returns the repetitions completed before it.
func RunTest(ctx context.Context, d Decoder, t Test, reps int, warmup bool, phase func(phase string, rep int)) (Timing, error) {
	var tm Timing
	report := func(p string, rep int) {
		if phase != nil {
			phase(p, rep)
		}
	}
	if warmup {
		report(PhaseWarmup, 0)
		if err := d.Clear(0); err != nil {
			return tm, err
		}
		if t.NPrompt > 0 {
			if err := d.Prompt(ctx, t.NPrompt, t.Batch); err != nil {
				return tm, fmt.Errorf("warm-up: %w", err)
			}
		}
		if t.NGen > 0 {
			if err := d.Generate(ctx, 1); err != nil {
				return tm, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	filled := false
	for rep := 1; rep <= reps; rep++ {
		if filled && d.Clear(t.Depth) != nil {
			filled = false
		}
		if !filled {
			if err := d.Clear(0); err != nil {
				return tm, err
			}
			if t.Depth > 0 {
				report(PhaseDepth, rep)
				if err := d.Prompt(ctx, t.Depth, t.Batch); err != nil {
					return tm, fmt.Errorf("depth: %w", err)
				}
				filled = true
			}
		}
		report(PhaseRun, rep)
		start := time.Now()
		if t.NPrompt > 0 {
			if err := d.Prompt(ctx, t.NPrompt, t.Batch); err != nil {
				return tm, err
			}
			tm.PromptNS = append(tm.PromptNS, uint64(time.Since(start)))
		}
		if t.NGen > 0 {
			if err := d.Generate(ctx, t.NGen); err != nil {
				return tm, err
			}
		}
		tm.SamplesNS = append(tm.SamplesNS, uint64(time.Since(start)))
	}
	return tm, nil
}

// Progress says where a run is, for a progress line.
type Progress struct {
	Test, Tests int // the test (1-based) and the number of tests
	Instance    Instance
	Model       string // the model's label, once loaded
	Phase       string // "loading", or one of RunTest's phases
	Rep, Reps   int    // the repetition (1-based; 0 in the warm-up)
}

// PhaseLoading is Progress.Phase while a model loads.
const PhaseLoading = "loading"

// String formats the progress as one line.
func (p Progress) String() string {
	model := p.Model
	if model == "" {
		model = p.Instance.Model.Path
	}
	s := fmt.Sprintf("llm bench: test %d/%d: %s %s t=%d", p.Test, p.Tests, model, p.Instance.Name(), p.Instance.Threads)
	switch p.Phase {
	case PhaseLoading:
		return s + ": loading the model"
	case PhaseWarmup:
		return s + ": warm-up"
	case PhaseDepth:
		return fmt.Sprintf("%s: filling %d tokens of depth (%d/%d)", s, p.Instance.Depth, p.Rep, p.Reps)
	}
	return fmt.Sprintf("%s: repetition %d/%d", s, p.Rep, p.Reps)
}

// Options configures Run.
type Options struct {
	// System is copied into every result (DetectSystem, with the measured
	// bandwidth).
	System System
	// OnResult, when set, is called with each result as its test ends (to
	// print it); an error stops the run.
	OnResult func(r *Result) error
	// Progress, when set, is called as the run moves on.
	Progress func(Progress)
	// OnError, when set, is called with the error of each test that fails
	// (and is skipped) as it happens; Run then returns a summary error
	// instead of the errors joined.
	OnError func(err error)
	// Seed seeds the random tokens (0: 1).
	Seed uint32
}

// loaded is the model Run holds between tests.
type loaded struct {
	model  *engine.Model
	path   string
	ngl    int
	loadMS float64
	facts  Facts
}

// Run runs every instance of p in order and returns the results. Tests that
// fail (a model that does not load, a context llama.cpp refuses) are
// skipped, their errors joined in the error returned with the other
// results. When ctx is cancelled (Ctrl-C) Run stops at once and returns the
// results gathered so far with an error wrapping ctx.Err().
func Run(ctx context.Context, p Params, o Options) ([]Result, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	insts := p.Instances()
	var (
		results []Result
		errs    []error
		skipped int
		cur     *loaded
		failed  = map[string]error{}
		facts   = map[string]Facts{}
	)
	defer func() {
		if cur != nil {
			cur.model.Close()
		}
	}()
	for i, in := range insts {
		if err := ctx.Err(); err != nil {
			return results, fmt.Errorf("bench: interrupted: %w", err)
		}
		prog := Progress{Test: i + 1, Tests: len(insts), Instance: in, Reps: p.Repetitions}
		notify := func(phase string, rep int) {
			if o.Progress != nil {
				prog.Phase, prog.Rep = phase, rep
				o.Progress(prog)
			}
		}
		fail := func(err error) {
			skipped++
			errs = append(errs, err)
			if o.OnError != nil {
				o.OnError(err)
			}
		}
		key := fmt.Sprintf("%s\x00%d", in.Model.Path, in.GPULayers)
		if _, bad := failed[key]; bad {
			skipped++
			continue
		}
		if cur == nil || cur.path != in.Model.Path || cur.ngl != in.GPULayers {
			if cur != nil {
				cur.model.Close()
				cur = nil
			}
			f, ok := facts[in.Model.Path]
			if !ok {
				var err error
				if f, err = FactsFromFile(in.Model.Path); err != nil {
					failed[key] = err
					fail(err)
					continue
				}
				facts[in.Model.Path] = f
			}
			notify(PhaseLoading, 0)
			ResetPeakRSS()
			start := time.Now()
			m, err := engine.LoadModel(ctx, in.Model.Path, engine.ModelOptions{GPULayers: in.GPULayers})
			if err != nil {
				if ctx.Err() != nil {
					return results, fmt.Errorf("bench: interrupted: %w", ctx.Err())
				}
				err = fmt.Errorf("bench: %w", err)
				failed[key] = err
				fail(err)
				continue
			}
			cur = &loaded{model: m, path: in.Model.Path, ngl: in.GPULayers,
				loadMS: float64(time.Since(start).Microseconds()) / 1e3, facts: f}
		}
		prog.Model = labelOf(in.Model, cur.model.Info().Description)
		r, err := runInstance(ctx, cur, in, p, o, notify)
		if err != nil {
			if ctx.Err() != nil {
				return results, fmt.Errorf("bench: interrupted: %w", ctx.Err())
			}
			fail(fmt.Errorf("bench: %s %s: %w", prog.Model, in.Name(), err))
			continue
		}
		results = append(results, r)
		if o.OnResult != nil {
			if err := o.OnResult(&results[len(results)-1]); err != nil {
				return results, err
			}
		}
	}
	if o.OnError != nil && skipped > 0 {
		return results, fmt.Errorf("bench: %d of %d tests failed", skipped, len(insts))
	}
	return results, errors.Join(errs...)
}

func labelOf(m Model, desc string) string {
	r := Result{Instance: Instance{Model: m}, ModelType: desc}
	return r.Label()
}

// ContextOptions are the settings of the context a test runs in, as
// llama-bench's: a KV cache of exactly depth + prompt + gen positions, the
// test's batch sizes, cache types and flash attention, and its thread count
// for both generation and batches.
func ContextOptions(in Instance) engine.ContextOptions {
	fa := map[int]engine.FlashAttention{
		FlashAttnAuto: engine.FlashAttentionAuto, FlashAttnOn: engine.FlashAttentionOn, FlashAttnOff: engine.FlashAttentionOff,
	}[in.FlashAttn]
	return engine.ContextOptions{
		ContextLength:  in.ContextLength(),
		BatchSize:      in.Batch,
		MicroBatchSize: min(in.UBatch, in.Batch),
		Threads:        in.Threads,
		BatchThreads:   in.Threads,
		FlashAttention: fa,
		TypeK:          engine.CacheType(in.TypeK),
		TypeV:          engine.CacheType(in.TypeV),
		Embeddings:     in.Embeddings,
	}
}

// ErrEncoder is wrapped by the error of a test an encoder cannot run: one
// that generates, or has a depth, or whose prompt does not fit one
// micro-batch (an encoder attends over its whole input at once).
var ErrEncoder = errors.New("the model is an encoder")

// encoderTest checks and adapts an encoder's test: a prompt alone, within
// one micro-batch, in a context that computes embeddings.
func encoderTest(in Instance) (Instance, error) {
	switch {
	case in.NGen > 0 || in.Depth > 0:
		return in, fmt.Errorf("%w (it embeds; it generates nothing and keeps no KV cache): benchmark it with -n 0 and no depth", ErrEncoder)
	case in.NPrompt > min(in.UBatch, in.Batch):
		return in, fmt.Errorf("%w: it attends over its whole input at once, so the prompt of %d tokens must fit the micro-batch (-ub %d, -b %d)",
			ErrEncoder, in.NPrompt, in.UBatch, in.Batch)
	}
	in.Embeddings = true
	return in, nil
}

// runInstance runs one test on the loaded model in a fresh context.
func runInstance(ctx context.Context, cur *loaded, in Instance, p Params, o Options, notify func(string, int)) (Result, error) {
	if cur.model.NonCausal() {
		var err error
		if in, err = encoderTest(in); err != nil {
			return Result{}, err
		}
	}
	c, err := cur.model.NewContext(ContextOptions(in))
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	d, err := NewEngineDecoder(c, o.Seed)
	if err != nil {
		return Result{}, err
	}
	defer d.Close()

	info := cur.model.Info()
	r := Result{
		Instance:            in,
		System:              o.System,
		ModelType:           info.Description,
		ModelSize:           info.SizeBytes,
		ModelParams:         info.Parameters,
		TestTime:            time.Now().UTC(),
		WeightBytesPerToken: cur.facts.BytesPerToken(),
		GPUOffload:          len(o.System.GPUs) > 0 && in.GPULayers != 0,
		LoadMS:              cur.loadMS,
	}
	if in.NGen > 0 {
		r.KVBytesPerToken = cur.facts.KVBytes(in.Depth+in.NPrompt+in.NGen/2, in.TypeK, in.TypeV)
	}
	t := Test{NPrompt: in.NPrompt, NGen: in.NGen, Depth: in.Depth, Batch: in.Batch}
	tm, err := RunTest(ctx, d, t, p.Repetitions, !p.NoWarmup, notify)
	if err != nil {
		return Result{}, err
	}
	r.SamplesNS, r.PromptNS = tm.SamplesNS, tm.PromptNS
	r.PeakRSS = PeakRSS()
	return r, nil
}
