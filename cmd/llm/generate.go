package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/llm-go/llm/engine"
)

func init() {
	register(&command{
		name:    "generate",
		usage:   "-m MODEL.gguf [flags] [PROMPT]",
		summary: "generate text from a prompt (read from stdin when absent)",
		run:     runGenerate,
	})
}

// generateOptions are the settings of one generation.
type generateOptions struct {
	model   string
	predict int
	temp    float64
	seed    int64
	verbose bool
	run     modelFlags
}

func runGenerate(ctx context.Context, sio *stdio, args []string) error {
	var o generateOptions
	fs := newFlags("generate", &o.verbose)
	fs.StringVarP(&o.model, "model", "m", "", "GGUF model file")
	fs.IntVarP(&o.predict, "predict", "n", -1, "tokens to generate (-1: until end of generation or the context is full)")
	fs.Float64Var(&o.temp, "temp", 0.8, "sampling temperature (0: greedy)")
	fs.Int64Var(&o.seed, "seed", -1, "random seed (-1: random)")
	o.run.register(fs)
	cmd := commands["generate"]
	if err := parseFlags(fs, cmd, sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, o.verbose)
	switch {
	case o.model == "":
		return usagef("a model is required (-m MODEL.gguf)")
	case fs.NArg() > 1:
		return usagef("one prompt argument expected, got %d (quote the prompt)", fs.NArg())
	case o.temp < 0 || math.IsNaN(o.temp):
		return usagef("--temp must be 0 or more, got %v", o.temp)
	case o.predict < -1:
		return usagef("--predict must be -1 or more, got %d", o.predict)
	}
	if err := o.run.check(); err != nil {
		return err
	}
	prompt := ""
	if fs.NArg() == 1 {
		prompt = fs.Arg(0)
	} else {
		data, err := io.ReadAll(sio.in)
		if err != nil {
			return fmt.Errorf("reading the prompt from stdin: %w", err)
		}
		prompt = strings.TrimSuffix(string(data), "\n")
	}
	return generate(ctx, sio, o, prompt)
}

func generate(ctx context.Context, sio *stdio, o generateOptions, prompt string) error {
	start := time.Now()
	m, c, err := o.run.load(ctx, sio, o.model, o.verbose)
	if err != nil {
		return err
	}
	defer m.Close()
	defer c.Close()
	loaded := time.Since(start)

	ids, err := m.Tokenize(prompt, true, true)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("the prompt is empty and the model adds no BOS token: nothing to continue")
	}
	if len(ids) >= c.ContextLength() {
		return fmt.Errorf("the prompt is %d tokens but the context holds %d: use a shorter prompt or a larger --ctx-size", len(ids), c.ContextLength())
	}

	seed := uint64(o.seed)
	if o.seed < 0 {
		seed = rand.Uint64()
	}
	s := newSampler(o.temp, seed)

	b, err := engine.NewBatch(c.BatchSize(), 1)
	if err != nil {
		return err
	}
	defer b.Close()

	// The prompt, in batches of at most BatchSize tokens.
	promptStart := time.Now()
	for i := 0; i < len(ids); i += c.BatchSize() {
		b.Clear()
		end := min(i+c.BatchSize(), len(ids))
		for j := i; j < end; j++ {
			b.Add(ids[j], engine.Pos(j), j == len(ids)-1)
		}
		if err := c.Decode(ctx, b); err != nil {
			return interrupted(err)
		}
	}
	promptTime := time.Since(promptStart)

	detok := m.NewDetokenizer(false)
	genStart := time.Now()
	generated := 0
	pos := len(ids)
	reason := "end of generation"
	for {
		if o.predict >= 0 && generated >= o.predict {
			reason = "length"
			break
		}
		logits, err := c.Logits(b.Len() - 1)
		if err != nil {
			return err
		}
		tok := s.sample(logits)
		generated++
		if m.IsEOG(tok) {
			break
		}
		text, err := detok.Next(tok)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(sio.out, text); err != nil {
			return err
		}
		if pos >= c.ContextLength() {
			reason = "context full"
			break
		}
		b.Clear()
		b.Add(tok, engine.Pos(pos), true)
		pos++
		if err := c.Decode(ctx, b); err != nil {
			io.WriteString(sio.out, detok.Flush()+"\n")
			return interrupted(err)
		}
	}
	genTime := time.Since(genStart)
	fmt.Fprintln(sio.out, detok.Flush())

	if o.verbose {
		perSec := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
		fmt.Fprintf(sio.err, "load: %v (%s)\n", loaded.Round(time.Millisecond), m.Info().Description)
		fmt.Fprintf(sio.err, "prompt: %d tokens in %v (%.1f tokens/s)\n", len(ids), promptTime.Round(time.Millisecond), perSec(len(ids), promptTime))
		fmt.Fprintf(sio.err, "generate: %d tokens in %v (%.1f tokens/s), stopped by %s\n", generated, genTime.Round(time.Millisecond), perSec(generated, genTime), reason)
		fmt.Fprintf(sio.err, "sampling: temperature %g, seed %d\n", o.temp, seed)
	}
	return nil
}

// interrupted turns an aborted decode (Ctrl-C) into a short message.
func interrupted(err error) error {
	if errors.Is(err, engine.ErrAborted) {
		return errors.New("interrupted")
	}
	return err
}

// sampler picks the next token: the most likely one at temperature 0,
// otherwise one drawn from softmax(logits/temperature) with its own seeded
// random source, so a seed reproduces a generation.
type sampler struct {
	temp  float64
	rng   *rand.Rand
	probs []float64
}

func newSampler(temp float64, seed uint64) *sampler {
	return &sampler{temp: temp, rng: rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))}
}

func (s *sampler) sample(logits []float32) engine.Token {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	if s.temp == 0 {
		return engine.Token(best)
	}
	if cap(s.probs) < len(logits) {
		s.probs = make([]float64, len(logits))
	}
	p := s.probs[:len(logits)]
	top := float64(logits[best])
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp((float64(v) - top) / s.temp)
		sum += p[i]
	}
	r := s.rng.Float64() * sum
	for i, v := range p {
		r -= v
		if r < 0 {
			return engine.Token(i)
		}
	}
	return engine.Token(best)
}
