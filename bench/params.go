package bench

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Model is one model to benchmark: a GGUF file, possibly a synthetic model
// made by package synth.
type Model struct {
	// Path is the GGUF file.
	Path string
	// Synthetic names the synth shape the file was made from ("" for a
	// real model); it is printed with the results.
	Synthetic string
}

// PG is a combined prompt-then-generate test (llama-bench's -pg).
type PG struct {
	Prompt, Gen int
}

// Flash attention settings, as llama-bench prints them in flash_attn.
const (
	FlashAttnAuto = -1
	FlashAttnOff  = 0
	FlashAttnOn   = 1
)

// Params holds the values to benchmark. Each field is a list; every
// combination of their values is run (see Instances).
type Params struct {
	Models    []Model
	NPrompt   []int    // prompt-processing tests (-p); 0 entries are skipped
	NGen      []int    // generation tests (-n); 0 entries are skipped
	PG        []PG     // combined tests (-pg)
	Depth     []int    // tokens in the KV cache before each test (-d)
	Batch     []int    // logical batch size (-b)
	UBatch    []int    // physical (micro) batch size (-ub)
	TypeK     []string // K cache types (-ctk), e.g. "f16", "q8_0"
	TypeV     []string // V cache types (-ctv)
	Threads   []int    // CPU threads (-t)
	GPULayers []int    // layers offloaded to GPUs (-ngl; 99: all)
	FlashAttn []int    // FlashAttnAuto, FlashAttnOff or FlashAttnOn (-fa)
	// Embeddings runs the tests in a context that computes embeddings
	// (-embd; llama-bench's embeddings field). An encoder (BERT, ...)
	// always does, whatever this says.
	Embeddings []bool

	// Repetitions is how many timed runs each test gets (-r).
	Repetitions int
	// NoWarmup skips the untimed warm-up run before the repetitions.
	NoWarmup bool
}

// DefaultParams returns llama-bench's defaults with the given models:
// -p 512 -n 128 -d 0 -b 2048 -ub 512 -ctk f16 -ctv f16 -ngl 99 -fa auto
// -r 5, and -t the number of physical CPU cores.
func DefaultParams(models ...Model) Params {
	return Params{
		Models:      models,
		NPrompt:     []int{512},
		NGen:        []int{128},
		Depth:       []int{0},
		Batch:       []int{2048},
		UBatch:      []int{512},
		TypeK:       []string{"f16"},
		TypeV:       []string{"f16"},
		Threads:     []int{DefaultThreads()},
		GPULayers:   []int{99},
		FlashAttn:   []int{FlashAttnAuto},
		Embeddings:  []bool{false},
		Repetitions: 5,
	}
}

// Instance is one test of one combination of parameters.
type Instance struct {
	Model     Model
	GPULayers int
	Batch     int
	UBatch    int
	TypeK     string
	TypeV     string
	FlashAttn int
	// Embeddings: the context computes embeddings (always, for an
	// encoder's results).
	Embeddings bool
	Threads    int
	Depth      int
	NPrompt    int
	NGen       int
}

// Name is the test's name as llama-bench prints it: pp512, tg128,
// pp512+tg128, with " @ d4096" for a depth.
func (in Instance) Name() string {
	var s string
	switch {
	case in.NPrompt > 0 && in.NGen == 0:
		s = fmt.Sprintf("pp%d", in.NPrompt)
	case in.NGen > 0 && in.NPrompt == 0:
		s = fmt.Sprintf("tg%d", in.NGen)
	default:
		s = fmt.Sprintf("pp%d+tg%d", in.NPrompt, in.NGen)
	}
	if in.Depth > 0 {
		s += fmt.Sprintf(" @ d%d", in.Depth)
	}
	return s
}

// ContextLength is the KV cache size the test needs: depth + prompt + gen.
func (in Instance) ContextLength() int { return in.Depth + in.NPrompt + in.NGen }

// Validate checks the values a run cannot work with.
func (p Params) Validate() error {
	if len(p.Models) == 0 {
		return fmt.Errorf("bench: no model")
	}
	if p.Repetitions < 1 {
		return fmt.Errorf("bench: repetitions must be at least 1, got %d", p.Repetitions)
	}
	lists := []struct {
		name string
		vals []int
		min  int
	}{
		{"n_prompt", p.NPrompt, 0}, {"n_gen", p.NGen, 0}, {"n_depth", p.Depth, 0},
		{"n_batch", p.Batch, 1}, {"n_ubatch", p.UBatch, 1}, {"n_threads", p.Threads, 1},
		{"n_gpu_layers", p.GPULayers, -1}, {"flash_attn", p.FlashAttn, -1},
	}
	for _, l := range lists {
		for _, v := range l.vals {
			if v < l.min {
				return fmt.Errorf("bench: %s %d must be at least %d", l.name, v, l.min)
			}
		}
	}
	for _, v := range p.FlashAttn {
		if v > 1 {
			return fmt.Errorf("bench: flash_attn %d must be -1 (auto), 0 or 1", v)
		}
	}
	for _, pg := range p.PG {
		if pg.Prompt < 0 || pg.Gen < 0 {
			return fmt.Errorf("bench: -pg %d,%d must not be negative", pg.Prompt, pg.Gen)
		}
	}
	for _, t := range append(append([]string(nil), p.TypeK...), p.TypeV...) {
		if _, err := cacheTypeBytes(t); err != nil {
			return err
		}
	}
	if len(p.Instances()) == 0 {
		return fmt.Errorf("bench: no test to run (every -p, -n and -pg value is 0)")
	}
	return nil
}

// Instances expands the parameters to their cross product, in llama-bench's
// order: by model, then GPU layers, embeddings, batch, micro-batch, K and V
// cache types, flash attention, threads and depth; for each combination the
// prompt tests, then the generation tests, then the combined ones. This
// order loads each model once per GPU-layer setting.
func (p Params) Instances() []Instance {
	var out []Instance
	for _, m := range p.Models {
		for _, ngl := range p.GPULayers {
			for _, embd := range orFalse(p.Embeddings) {
				for _, nb := range p.Batch {
					for _, nub := range p.UBatch {
						for _, tk := range p.TypeK {
							for _, tv := range p.TypeV {
								for _, fa := range p.FlashAttn {
									for _, nt := range p.Threads {
										for _, nd := range p.Depth {
											base := Instance{Model: m, GPULayers: ngl, Batch: nb, UBatch: nub,
												TypeK: tk, TypeV: tv, FlashAttn: fa, Threads: nt, Depth: nd, Embeddings: embd}
											out = append(out, base.tests(p)...)
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	return out
}

// tests are base's prompt tests, then its generation tests, then the
// combined ones.
func (base Instance) tests(p Params) []Instance {
	var out []Instance
	for _, n := range p.NPrompt {
		if n > 0 {
			in := base
			in.NPrompt = n
			out = append(out, in)
		}
	}
	for _, n := range p.NGen {
		if n > 0 {
			in := base
			in.NGen = n
			out = append(out, in)
		}
	}
	for _, pg := range p.PG {
		if pg.Prompt > 0 || pg.Gen > 0 {
			in := base
			in.NPrompt, in.NGen = pg.Prompt, pg.Gen
			out = append(out, in)
		}
	}
	return out
}

// orFalse is bs, or just false when empty (Params made before Embeddings).
func orFalse(bs []bool) []bool {
	if len(bs) == 0 {
		return []bool{false}
	}
	return bs
}

var rangeRE = regexp.MustCompile(`^(-?\d+)(?:-(\d+)(?:([+*])(\d+))?)?$`)

// ParseInts parses a comma-separated list of integers, each a value or a
// range as llama-bench accepts them: first-last (step 1), first-last+step
// or first-last*factor. "1-4" is 1,2,3,4 and "1-16*2" is 1,2,4,8,16.
func ParseInts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		m := rangeRE.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("bench: %q is not an integer or a range first-last[+step|*factor]", part)
		}
		first, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("bench: %q: %w", part, err)
		}
		if m[2] == "" {
			out = append(out, first)
			continue
		}
		last, err1 := strconv.Atoi(m[2])
		step, op := 1, "+"
		var err2 error
		if m[3] != "" {
			op = m[3]
			step, err2 = strconv.Atoi(m[4])
		}
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bench: range %q is out of range", part)
		}
		for i := first; i <= last; {
			out = append(out, i)
			next := i + step
			if op == "*" {
				next = i * step
			}
			if next <= i {
				return nil, fmt.Errorf("bench: range %q does not increase", part)
			}
			if len(out) > 1<<16 {
				return nil, fmt.Errorf("bench: range %q has too many values", part)
			}
			i = next
		}
	}
	return out, nil
}

// ParsePG parses a -pg value "PROMPT,GEN".
func ParsePG(s string) (PG, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return PG{}, fmt.Errorf("bench: -pg %q: want PROMPT,GEN such as 512,128", s)
	}
	p, err1 := strconv.Atoi(strings.TrimSpace(a))
	g, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || p < 0 || g < 0 {
		return PG{}, fmt.Errorf("bench: -pg %q: want two non-negative integers PROMPT,GEN", s)
	}
	return PG{Prompt: p, Gen: g}, nil
}

// ParseFlashAttn parses a comma-separated list of flash attention settings:
// 0/off, 1/on, -1/auto.
func ParseFlashAttn(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(part)) {
		case "0", "off", "false", "disabled":
			out = append(out, FlashAttnOff)
		case "1", "on", "true", "enabled":
			out = append(out, FlashAttnOn)
		case "-1", "auto":
			out = append(out, FlashAttnAuto)
		default:
			return nil, fmt.Errorf("bench: flash attention %q: want 0/off, 1/on or auto", part)
		}
	}
	return out, nil
}

// ParseCacheTypes parses a comma-separated list of KV cache types (f32,
// f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1), lower-casing them.
func ParseCacheTypes(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		t := strings.ToLower(strings.TrimSpace(part))
		if _, err := cacheTypeBytes(t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
