package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llm-go/llm/bench"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/synth"
)

func init() {
	register(&command{
		name:    "bench",
		usage:   "-m MODEL[,MODEL...] | --synthetic NAME -q TYPE [flags]",
		summary: "benchmark prompt processing and generation speed, as llama-bench",
		run:     runBench,
	})
}

// benchAliases are llama-bench's multi-letter single-dash flags, which
// pflag cannot declare as shorthands.
var benchAliases = map[string]string{
	"-pg": "--pg", "-ub": "--ubatch-size", "-ngl": "--n-gpu-layers",
	"-fa": "--flash-attn", "-ctk": "--cache-type-k", "-ctv": "--cache-type-v",
	"-embd": "--embeddings",
}

// rewriteBenchArgs turns llama-bench's -ngl 99 (and -ngl=99) into
// --n-gpu-layers 99, up to a "--".
func rewriteBenchArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, val, hasVal := strings.Cut(a, "=")
		if long, ok := benchAliases[name]; ok {
			if hasVal {
				a = long + "=" + val
			} else {
				a = long
			}
		}
		out = append(out, a)
	}
	return out
}

// benchFlags are the raw flag values of llm bench.
type benchFlags struct {
	models, synthetic, quants               []string
	prompt, gen, pg, depth, batch, ubatch   []string
	typeK, typeV, threads, ngl, flashAttn   []string
	embeddings                              []string
	reps                                    int
	output, plot, cacheDir                  string
	seed                                    uint64
	noWarmup, remeasure, noBandwidth, noFit bool
	progress, verbose                       bool
}

func runBench(ctx context.Context, sio *stdio, args []string) error {
	var f benchFlags
	fs := newFlags("bench", &f.verbose)
	fs.VarP(listOf(&f.models, "paths"), "model", "m", "GGUF model file(s), comma-separated or repeated")
	fs.Var(listOf(&f.synthetic, "shapes"), "synthetic", "synthetic model shape(s): "+strings.Join(shapeNames(), ", ")+
		", or explicit dimensions vocab=N,embd=N,ff=N,layers=N,heads=N,kv_heads=N[,head_dim=N,experts=N,experts_used=N,ctx=N,arch=gpt-oss|glm4moe|deepseek2|llama4,name=NAME]; glm4moe and deepseek2 take dense_layers, dense_ff, shared_experts, rope_dim, q_lora, kv_lora, qk_nope, qk_rope, v_head; llama4 moe_step and dense_ff")
	fs.VarP(listOf(&f.quants, "types"), "quant", "q", "llama.cpp type(s) of the synthetic models: Q4_0, Q4_K_M, Q5_K_M, Q8_0, F16, ... (default Q4_0)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the synthetic weights")
	fs.VarP(listOf(&f.prompt, "ints"), "n-prompt", "p", "prompt tokens of the pp tests (default 512)")
	fs.VarP(listOf(&f.gen, "ints"), "n-gen", "n", "generated tokens of the tg tests (default 128)")
	fs.Var(listOf(&f.pg, "p,g"), "pg", "combined test PROMPT,GEN (-pg; repeat for several)")
	fs.VarP(listOf(&f.depth, "ints"), "n-depth", "d", "tokens in the KV cache before each test (default 0)")
	fs.VarP(listOf(&f.batch, "ints"), "batch-size", "b", "batch size (default 2048)")
	fs.Var(listOf(&f.ubatch, "ints"), "ubatch-size", "micro-batch size (-ub; default 512)")
	fs.Var(listOf(&f.typeK, "type"), "cache-type-k", "K cache type (-ctk): f16, q8_0, q4_0, ... (default f16)")
	fs.Var(listOf(&f.typeV, "type"), "cache-type-v", "V cache type (-ctv; default f16)")
	fs.VarP(listOf(&f.threads, "ints"), "threads", "t", fmt.Sprintf("CPU threads (default %d, the physical cores)", bench.DefaultThreads()))
	fs.Var(listOf(&f.ngl, "ints"), "n-gpu-layers", "layers offloaded to GPUs (-ngl; 99: all; default 99)")
	fs.Var(listOf(&f.flashAttn, "0|1|auto"), "flash-attn", "flash attention (-fa): 0, 1 or auto (default auto)")
	fs.Var(listOf(&f.embeddings, "0|1"), "embeddings", "compute embeddings (-embd): 0 or 1 (default 0; an encoder always does, and runs pp tests only)")
	fs.IntVarP(&f.reps, "repetitions", "r", 5, "timed repetitions of each test")
	fs.BoolVar(&f.noWarmup, "no-warmup", false, "skip the warm-up run before each test")
	fs.StringVarP(&f.output, "output", "o", "md", "output format: "+strings.Join(bench.Formats, ", "))
	fs.StringVar(&f.plot, "plot", "", "draw tokens/s against the swept parameter to this file (.png, .svg, .pdf)")
	fs.BoolVar(&f.remeasure, "bandwidth", false, "measure the memory bandwidth again instead of using the cached value")
	fs.BoolVar(&f.noBandwidth, "no-bandwidth", false, "do not measure the memory bandwidth (no % of bandwidth column)")
	fs.BoolVar(&f.noFit, "no-fit-check", false, "load or create models even when they look too big for the memory")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "where synthetic models and the bandwidth are kept (default ~/.cache/llm)")
	fs.BoolVar(&f.progress, "progress", false, "print progress lines even when stderr is not a terminal")
	cmd := commands["bench"]
	if err := parseFlags(fs, cmd, sio, rewriteBenchArgs(args)); err != nil {
		return err
	}
	setupLogging(sio.err, f.verbose)
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (models go after -m)", fs.Arg(0))
	}
	p, shapes, quants, err := benchParams(&f)
	if err != nil {
		return err
	}
	if f.cacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("no cache directory (use --cache-dir): %w", err)
		}
		f.cacheDir = filepath.Join(dir, "llm")
	}
	if err := benchRun(ctx, sio, &f, p, shapes, quants); err != nil {
		return &benchError{err}
	}
	return nil
}

// benchError drops the package prefix "bench: " that runMain's "llm bench: "
// already says.
type benchError struct{ err error }

func (e *benchError) Error() string { return strings.TrimPrefix(e.err.Error(), "bench: ") }
func (e *benchError) Unwrap() error { return e.err }

// listValue is a flag that may be repeated, collecting its values; typ
// names them in the help.
type listValue struct {
	vals *[]string
	typ  string
}

func listOf(vals *[]string, typ string) *listValue { return &listValue{vals, typ} }

func (l *listValue) String() string     { return strings.Join(*l.vals, ",") }
func (l *listValue) Set(s string) error { *l.vals = append(*l.vals, s); return nil }
func (l *listValue) Type() string       { return l.typ }

func shapeNames() []string {
	names := make([]string, 0, len(synth.Shapes))
	for n := range synth.Shapes {
		names = append(names, n)
	}
	return sortedCopy(names)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// benchParams turns the flags into parameters; synthetic models are
// returned apart, to be checked and created first.
func benchParams(f *benchFlags) (bench.Params, []synth.Shape, []string, error) {
	p := bench.DefaultParams()
	ints := func(name string, vals []string, dst *[]int) error {
		if len(vals) == 0 {
			return nil
		}
		v, err := bench.ParseInts(strings.Join(vals, ","))
		if err != nil {
			return usagef("--%s: %v", name, strings.TrimPrefix(err.Error(), "bench: "))
		}
		*dst = v
		return nil
	}
	for _, c := range []struct {
		name string
		vals []string
		dst  *[]int
	}{
		{"n-prompt", f.prompt, &p.NPrompt}, {"n-gen", f.gen, &p.NGen}, {"n-depth", f.depth, &p.Depth},
		{"batch-size", f.batch, &p.Batch}, {"ubatch-size", f.ubatch, &p.UBatch},
		{"threads", f.threads, &p.Threads}, {"n-gpu-layers", f.ngl, &p.GPULayers},
	} {
		if err := ints(c.name, c.vals, c.dst); err != nil {
			return p, nil, nil, err
		}
	}
	for _, s := range f.pg {
		pg, err := bench.ParsePG(s)
		if err != nil {
			return p, nil, nil, usagef("%s", strings.TrimPrefix(err.Error(), "bench: "))
		}
		p.PG = append(p.PG, pg)
	}
	if len(f.embeddings) > 0 {
		p.Embeddings = nil
		for _, s := range strings.Split(strings.Join(f.embeddings, ","), ",") {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return p, nil, nil, usagef("--embeddings %q: want 0 or 1", s)
			}
			p.Embeddings = append(p.Embeddings, b)
		}
	}
	if len(f.flashAttn) > 0 {
		fa, err := bench.ParseFlashAttn(strings.Join(f.flashAttn, ","))
		if err != nil {
			return p, nil, nil, usagef("%s", strings.TrimPrefix(err.Error(), "bench: "))
		}
		p.FlashAttn = fa
	}
	for _, c := range []struct {
		vals []string
		dst  *[]string
	}{{f.typeK, &p.TypeK}, {f.typeV, &p.TypeV}} {
		if len(c.vals) > 0 {
			t, err := bench.ParseCacheTypes(strings.Join(c.vals, ","))
			if err != nil {
				return p, nil, nil, usagef("%s", strings.TrimPrefix(err.Error(), "bench: "))
			}
			*c.dst = t
		}
	}
	p.Repetitions, p.NoWarmup = f.reps, f.noWarmup
	for _, m := range f.models {
		for _, path := range strings.Split(m, ",") {
			if path = strings.TrimSpace(path); path != "" {
				p.Models = append(p.Models, bench.Model{Path: path})
			}
		}
	}
	var shapes []synth.Shape
	for _, spec := range f.synthetic {
		s, err := bench.ParseSynthetic(spec)
		if err != nil {
			return p, nil, nil, usagef("--synthetic: %s", strings.TrimPrefix(strings.TrimPrefix(err.Error(), "bench: "), "synth: "))
		}
		shapes = append(shapes, s...)
	}
	var quants []string
	for _, q := range f.quants {
		for _, t := range strings.Split(q, ",") {
			quants = append(quants, strings.ToUpper(strings.TrimSpace(t)))
		}
	}
	switch {
	case len(shapes) == 0 && len(quants) > 0:
		return p, nil, nil, usagef("-q chooses the type of --synthetic models; it needs --synthetic")
	case len(shapes) > 0 && len(quants) == 0:
		quants = []string{"Q4_0"}
	}
	for _, q := range quants {
		if _, err := shapes[0].WeightBytes(q); err != nil {
			return p, nil, nil, usagef("-q: %s", strings.TrimPrefix(err.Error(), "synth: "))
		}
	}
	if len(p.Models) == 0 && len(shapes) == 0 {
		return p, nil, nil, usagef("a model is required (-m MODEL.gguf or --synthetic NAME)")
	}
	if !validFormat(f.output) {
		return p, nil, nil, usagef("-o %q: want one of %s", f.output, strings.Join(bench.Formats, ", "))
	}
	// Validate with a stand-in for the synthetic models, which do not exist
	// yet.
	check := p
	if len(check.Models) == 0 {
		check.Models = []bench.Model{{Path: "synthetic"}}
	}
	if err := check.Validate(); err != nil {
		return p, nil, nil, usagef("%s", strings.TrimPrefix(err.Error(), "bench: "))
	}
	return p, shapes, quants, nil
}

func validFormat(f string) bool {
	for _, x := range bench.Formats {
		if f == x {
			return true
		}
	}
	return false
}

// synthModel is a synthetic model to create (or find in the cache).
type synthModel struct {
	shape synth.Shape
	quant string
	path  string
	facts bench.Facts
}

func (s synthModel) name() string { return s.shape.Name + " " + s.quant }

func benchRun(ctx context.Context, sio *stdio, f *benchFlags, p bench.Params, shapes []synth.Shape, quants []string) error {
	sys := bench.DetectSystem()
	synthDir := filepath.Join(f.cacheDir, "synth")
	var synths []synthModel
	for _, s := range shapes {
		for _, q := range quants {
			facts, err := bench.FactsFromShape(s, q)
			if err != nil {
				return err
			}
			sm := synthModel{shape: s, quant: q, path: synth.CachePath(synthDir, s, q, f.seed), facts: facts}
			synths = append(synths, sm)
			p.Models = append(p.Models, bench.Model{Path: sm.path, Synthetic: s.Name})
		}
	}

	// llama-bench runs GPU-layer tests on the CPU when there is no GPU and
	// says nothing; say it when -ngl was given, with the backends' reasons.
	if len(f.ngl) > 0 && !engine.HaveGPU() {
		for _, ngl := range p.GPULayers {
			if ngl != 0 {
				fmt.Fprintf(sio.err, "llm bench: -ngl %d asks for GPU layers, but there is no GPU device: those tests run on the CPU\n", ngl)
				for _, line := range engine.BackendProblems() {
					fmt.Fprintf(sio.err, "llm bench: %s\n", line)
				}
				break
			}
		}
	}

	// Refuse what cannot fit before writing or loading anything.
	if !f.noFit {
		if err := benchCheckFit(p, synths, sys, synthDir); err != nil {
			return err
		}
	}
	for _, sm := range synths {
		if _, err := os.Stat(sm.path); err == nil {
			continue
		}
		fmt.Fprintf(sio.err, "llm bench: creating synthetic %s in %s (once; an F16 model quantized with all CPU threads)...\n", sm.name(), synthDir)
		start := time.Now()
		if _, err := synth.Cached(ctx, synthDir, sm.shape, sm.quant, f.seed, 0); err != nil {
			return fmt.Errorf("creating synthetic %s: %w", sm.name(), err)
		}
		fmt.Fprintf(sio.err, "llm bench: created %s in %v\n", sm.path, time.Since(start).Round(time.Second))
	}

	if !f.noBandwidth {
		path := filepath.Join(f.cacheDir, "bandwidth.json")
		if _, err := os.Stat(path); err != nil || f.remeasure {
			fmt.Fprintf(sio.err, "llm bench: measuring the memory bandwidth (once; kept in %s)...\n", path)
		}
		bw, _, err := bench.CachedBandwidth(ctx, path, f.remeasure)
		if err != nil && bw.GBps == 0 {
			return err
		}
		sys.MemBandwidthGBps = bw.GBps
	}

	pr, err := bench.NewPrinter(f.output, sio.out, p, sys)
	if err != nil {
		return usagef("%v", err)
	}
	prog := newProgressLine(sio.err, f.progress)
	if err := pr.Header(); err != nil {
		return err
	}
	results, runErr := bench.Run(ctx, p, bench.Options{
		System: sys,
		OnResult: func(r *bench.Result) error {
			prog.clear()
			return pr.Print(r)
		},
		Progress: prog.show,
		OnError: func(err error) {
			prog.clear()
			fmt.Fprintf(sio.err, "llm bench: %s\n", strings.TrimPrefix(err.Error(), "bench: "))
		},
	})
	prog.clear()
	if err := pr.Footer(); err != nil {
		return err
	}
	if f.plot != "" && len(results) > 0 {
		if err := bench.Plot(results, f.plot); err != nil {
			return err
		}
		fmt.Fprintf(sio.err, "llm bench: plot written to %s\n", f.plot)
	}
	if runErr != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted: printed the %d results gathered", len(results))
	}
	return runErr
}

// benchCheckFit checks every model with every GPU-layer setting against the
// free memory, and the synthetic models to create against the free disk.
func benchCheckFit(p bench.Params, synths []synthModel, sys bench.System, synthDir string) error {
	res, err := bench.AvailableResources(sys)
	if err != nil {
		return err
	}
	hasGPU := len(sys.GPUs) > 0
	var disk uint64
	for _, m := range p.Models {
		name := m.Path
		var facts bench.Facts
		var sm *synthModel
		for i := range synths {
			if synths[i].path == m.Path {
				sm = &synths[i]
			}
		}
		if sm != nil {
			name, facts = "synthetic "+sm.name(), sm.facts
		} else if facts, err = bench.FactsFromFile(m.Path); err != nil {
			return err
		}
		for _, ngl := range p.GPULayers {
			fp := bench.PeakFootprint(p, m, facts, ngl, hasGPU)
			if err := bench.CheckFit(name, fp, res); err != nil {
				return err
			}
		}
		if sm != nil {
			if _, err := os.Stat(sm.path); err != nil {
				n, err := sm.shape.DiskBytes(sm.quant)
				if err != nil {
					return err
				}
				disk += n
			}
		}
	}
	if disk > 0 {
		free, err := bench.DiskFree(synthDir)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(synths))
		for _, s := range synths {
			names = append(names, "synthetic "+s.name())
		}
		return bench.CheckDisk(strings.Join(names, ", "), synthDir, disk, free)
	}
	return nil
}

// progressLine shows the run's progress on stderr: one line rewritten in
// place on a terminal, or (with --progress) a line per step elsewhere.
type progressLine struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	lines    bool
	shown    bool
	last     string
}

func newProgressLine(w io.Writer, always bool) *progressLine {
	p := &progressLine{w: w, lines: always}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progressLine) show(pr bench.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := pr.String()
	switch {
	case p.terminal:
		if len(line) > 150 {
			line = line[:149] + "…"
		}
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		p.shown = true
	case p.lines && line != p.last:
		fmt.Fprintln(p.w, line)
	}
	p.last = line
}

// clear removes the progress line before a result is printed.
func (p *progressLine) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}
