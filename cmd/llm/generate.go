package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/sampler"
)

func init() {
	register(&command{
		name:    "generate",
		usage:   "MODEL [flags] [PROMPT]  (or -m MODEL; or --remote URL [MODEL] [PROMPT])",
		summary: "generate text from a prompt (read from stdin when absent)",
		run:     runGenerate,
	})
}

// generateOptions are the settings of one generation.
type generateOptions struct {
	model       string
	suffix      string
	fim         bool // --suffix was given
	predict     int
	sampling    sampler.Options
	grammarFile string
	verbose     bool
	promptCache string // --prompt-cache: the prompt's memory, saved and reused
	cacheRO     bool   // --prompt-cache-ro: reuse it, never write it
	run         modelFlags
	remote      remoteFlags
}

func runGenerate(ctx context.Context, sio *stdio, args []string) error {
	var o generateOptions
	fs := newFlags("generate", &o.verbose)
	fs.StringVarP(&o.model, "model", "m", "", "GGUF model file or Hub name (instead of the first argument)")
	fs.IntVarP(&o.predict, "predict", "n", -1, "tokens to generate (-1: until end of generation or the context is full)")
	fs.StringVar(&o.suffix, "suffix", "", "fill in the middle: write what goes between PROMPT and this text (code models with FIM tokens)")
	fs.StringVar(&o.promptCache, "prompt-cache", "", "keep the prompt's evaluated state in this file, and reuse the part of it a later prompt starts with (llama-cli's --prompt-cache)")
	fs.BoolVar(&o.cacheRO, "prompt-cache-ro", false, "with --prompt-cache: reuse the file but do not update it")
	registerSamplingFlags(fs, &o.sampling, &o.grammarFile)
	o.run.register(fs)
	o.remote.register(fs)
	cmd := commands["generate"]
	if err := parseFlags(fs, cmd, sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, o.verbose)
	o.fim = fs.Changed("suffix")
	if err := o.remote.check(fs); err != nil {
		return err
	}
	if o.cacheRO && o.promptCache == "" {
		return usagef("--prompt-cache-ro needs --prompt-cache FILE")
	}
	if o.remote.url != "" {
		if o.promptCache != "" {
			return usagef("--prompt-cache applies to local models, not --remote")
		}
		return runGenerateRemote(ctx, sio, o, fs.Args())
	}
	rest := fs.Args()
	if o.model == "" && len(rest) > 0 {
		o.model, rest = rest[0], rest[1:]
	}
	switch {
	case o.model == "":
		return usagef("a model is required (llm generate MODEL [PROMPT], MODEL a GGUF file or a Hub name)")
	case len(rest) > 1:
		return usagef("one prompt argument expected, got %d (quote the prompt)", len(rest))
	case o.predict < -1:
		return usagef("--predict must be -1 or more, got %d", o.predict)
	}
	if st, err := lookupPreset(o.model); err != nil {
		return err
	} else if st != nil {
		// A preset: its model, with its parameters under the flags. A
		// raw completion uses neither its template nor its system prompt.
		if err := applyPreset(fs, st, presetFlags{&o.sampling, &o.predict, &o.run.ctxLen, &o.run.threads}); err != nil {
			return err
		}
		o.model = st.Model
		o.run.presetLoRA = st.Adapters
	}
	if err := o.run.check(); err != nil {
		return err
	}
	if err := checkSampling(&o.sampling, o.grammarFile); err != nil {
		return err
	}
	prompt := ""
	if len(rest) == 1 {
		prompt = rest[0]
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
	path, err := resolveModel(ctx, sio, o.model)
	if err != nil {
		return err
	}
	start := time.Now()
	m, c, err := o.run.load(ctx, sio, path, o.verbose)
	if err != nil {
		return err
	}
	defer m.Close()
	defer c.Close()
	loaded := time.Since(start)

	var ids []engine.Token
	if o.fim {
		ids, err = m.FIMPrompt(prompt, o.suffix)
	} else {
		ids, err = m.Tokenize(prompt, true, true)
	}
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("the prompt is empty and the model adds no BOS token: nothing to continue")
	}
	if len(ids) >= c.ContextLength() {
		return fmt.Errorf("the prompt is %d tokens but the context holds %d: use a shorter prompt or a larger --ctx-size", len(ids), c.ContextLength())
	}

	o.sampling.ContextSize = c.ContextLength()
	s, err := sampler.New(o.sampling, m)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.AddHistory(ids); err != nil { // the prompt counts for the penalties, as in llama.cpp
		return err
	}

	b, err := engine.NewBatch(c.BatchSize(), 1)
	if err != nil {
		return err
	}
	defer b.Close()

	// The prompt, in batches of at most BatchSize tokens, after what the
	// prompt cache already holds of it.
	promptStart := time.Now()
	reused := 0
	if o.promptCache != "" {
		reused = loadPromptCache(sio, c, o.promptCache, ids)
	}
	for i := reused; i < len(ids); i += c.BatchSize() {
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
	if o.promptCache != "" && !o.cacheRO && reused < len(ids)-1 {
		if err := c.SaveSequence(o.promptCache, 0, ids); err != nil {
			fmt.Fprintf(sio.err, "llm: --prompt-cache: %v\n", err)
		}
	}

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
		tok, err := s.Sample(logits)
		if err != nil {
			return err
		}
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
		fmt.Fprintf(sio.err, "load: %v (%s; %d layers on GPUs)\n", loaded.Round(time.Millisecond), m.Info().Description, m.GPULayers())
		fmt.Fprintf(sio.err, "prompt: %d tokens in %v (%.1f tokens/s)", len(ids), promptTime.Round(time.Millisecond), perSec(len(ids)-reused, promptTime))
		if o.promptCache != "" {
			fmt.Fprintf(sio.err, ", %d from the prompt cache", reused)
		}
		fmt.Fprintln(sio.err)
		fmt.Fprintf(sio.err, "generate: %d tokens in %v (%.1f tokens/s), stopped by %s\n", generated, genTime.Round(time.Millisecond), perSec(generated, genTime), reason)
		fmt.Fprintf(sio.err, "sampling: temperature %g, seed %d\n", o.sampling.Temperature, s.Seed())
	}
	return nil
}

// loadPromptCache restores the prompt cache at path into sequence 0 of c
// and keeps the part of it that ids start with, all but ids' last token
// (decoded again for its logits); it returns how many tokens it kept. A
// cache that cannot be used (another model, damaged) is said on stderr and
// the prompt is evaluated in full.
func loadPromptCache(sio *stdio, c *engine.Context, path string, ids []engine.Token) int {
	cached, err := c.LoadSequence(path, 0)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(sio.err, "llm: --prompt-cache: %v; evaluating the whole prompt\n", err)
		}
		c.RemoveTokens(0, -1, -1)
		return 0
	}
	keep := 0
	for keep < len(cached) && keep < len(ids)-1 && cached[keep] == ids[keep] {
		keep++
	}
	if ok, err := c.RemoveTokens(0, engine.Pos(keep), -1); err != nil || !ok {
		c.RemoveTokens(0, -1, -1)
		return 0
	}
	return keep
}

// interrupted turns an aborted decode (Ctrl-C) into a short message.
func interrupted(err error) error {
	if errors.Is(err, engine.ErrAborted) {
		return errors.New("interrupted")
	}
	return err
}

// registerSamplingFlags adds the sampling flags, with llama.cpp's names and
// defaults, bound to o.
func registerSamplingFlags(fs *pflag.FlagSet, o *sampler.Options, grammarFile *string) {
	*o = sampler.DefaultOptions()
	fs.Float64Var(&o.Temperature, "temp", o.Temperature, "sampling temperature (0: greedy)")
	fs.IntVar(&o.TopK, "top-k", o.TopK, "keep the k most likely tokens (0: off)")
	fs.Float64Var(&o.TopP, "top-p", o.TopP, "nucleus sampling: keep the most likely tokens up to this probability (1: off)")
	fs.Float64Var(&o.MinP, "min-p", o.MinP, "drop tokens less likely than this fraction of the most likely (0: off)")
	fs.Float64Var(&o.TypicalP, "typical-p", o.TypicalP, "locally typical sampling (1: off)")
	fs.Float64Var(&o.RepeatPenalty, "repeat-penalty", o.RepeatPenalty, "penalise repeated tokens (1: off)")
	fs.IntVar(&o.RepeatLastN, "repeat-last-n", o.RepeatLastN, "tokens the penalties look back at (0: off, -1: the context)")
	fs.Float64Var(&o.PresencePenalty, "presence-penalty", o.PresencePenalty, "subtracted from tokens already present (0: off)")
	fs.Float64Var(&o.FrequencyPenalty, "frequency-penalty", o.FrequencyPenalty, "subtracted per occurrence (0: off)")
	fs.IntVar(&o.Mirostat, "mirostat", o.Mirostat, "mirostat sampling: 0 off, 1 mirostat, 2 mirostat 2.0")
	fs.Float64Var(&o.MirostatTau, "mirostat-tau", o.MirostatTau, "mirostat target surprise (bits)")
	fs.Float64Var(&o.MirostatEta, "mirostat-eta", o.MirostatEta, "mirostat learning rate")
	fs.Float64Var(&o.DRYMultiplier, "dry-multiplier", o.DRYMultiplier, "DRY repetition penalty (0: off)")
	fs.Float64Var(&o.XTCProbability, "xtc-probability", o.XTCProbability, "chance of XTC removing the top tokens (0: off)")
	fs.Float64Var(&o.XTCThreshold, "xtc-threshold", o.XTCThreshold, "XTC probability threshold (> 0.5: off)")
	fs.Int64Var(&o.Seed, "seed", -1, "random seed (-1: random)")
	fs.Var(orderValue{o}, "samplers", "the order of the sampling stages, ';'-separated, as llama.cpp's --samplers (penalties;dry;top_n_sigma;top_k;typ_p;top_p;min_p;xtc;temperature)")
	fs.StringVar(grammarFile, "grammar-file", "", "constrain the output to the GBNF grammar in this file")
	fs.StringVar(&o.JSONSchema, "json-schema", "", "constrain the output to JSON matching this JSON schema (inline JSON)")
}

// orderValue is the --samplers flag, bound to the options' stage order.
type orderValue struct{ o *sampler.Options }

func (v orderValue) String() string {
	if v.o == nil || v.o.Order == nil {
		return ""
	}
	parts := make([]string, len(v.o.Order))
	for i, st := range v.o.Order {
		parts[i] = string(st)
	}
	return strings.Join(parts, ";")
}

func (v orderValue) Set(s string) error {
	order, err := sampler.ParseOrder(s)
	if err != nil {
		return err
	}
	if len(order) == 0 {
		return errors.New("no sampling stage named")
	}
	v.o.Order = order
	return nil
}

func (v orderValue) Type() string { return "list" }

// samplingFlags maps the sampler's option names to the flags above.
var samplingFlags = map[string]string{
	"temperature": "--temp", "top_k": "--top-k", "top_p": "--top-p", "min_p": "--min-p",
	"typical_p": "--typical-p", "repeat_penalty": "--repeat-penalty", "repeat_last_n": "--repeat-last-n",
	"presence_penalty": "--presence-penalty", "frequency_penalty": "--frequency-penalty",
	"mirostat": "--mirostat", "mirostat_tau": "--mirostat-tau", "mirostat_eta": "--mirostat-eta",
	"dry_multiplier": "--dry-multiplier", "xtc_probability": "--xtc-probability",
	"xtc_threshold": "--xtc-threshold", "grammar": "--grammar-file", "json_schema": "--json-schema",
	"samplers": "--samplers",
}

// checkSampling reads the grammar file into o and validates the options,
// reporting a bad one by its flag.
func checkSampling(o *sampler.Options, grammarFile string) error {
	if grammarFile != "" {
		data, err := os.ReadFile(grammarFile)
		if err != nil {
			return usagef("--grammar-file: %v", err)
		}
		o.Grammar = string(data)
		if o.Grammar == "" {
			return usagef("--grammar-file: %s is empty", grammarFile)
		}
	}
	if o.Grammar != "" && o.JSONSchema != "" {
		return usagef("--grammar-file and --json-schema: use one")
	}
	if err := o.Validate(); err != nil {
		var oe *sampler.OptionError
		if errors.As(err, &oe) {
			name := oe.Name
			if f, ok := samplingFlags[name]; ok {
				name = f
			}
			if oe.Value == nil {
				return usagef("%s: %s", name, oe.Reason)
			}
			return usagef("%s %v: %s", name, oe.Value, oe.Reason)
		}
		return usagef("%v", err)
	}
	return nil
}
