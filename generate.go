package llm

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/sampler"
)

// FinishReason says why generation ended.
type FinishReason string

// Finish reasons, as OpenAI's API names them.
const (
	FinishStop   FinishReason = "stop"   // an end-of-generation token or a stop string
	FinishLength FinishReason = "length" // MaxTokens reached, or the context is full
)

// Result is a finished generation.
type Result struct {
	Text         string         // the generated text (with Echo, the prompt first)
	Tokens       []engine.Token // the generated tokens
	FinishReason FinishReason
	Timings      Timings
	Dropped      int // messages left out by DropOldestTurns
	Shifted      int // tokens discarded from the context by ShiftWindow
}

// Timings measure one generation.
type Timings struct {
	PromptTokens     int           // tokens in the prompt
	PromptEvaluated  int           // of those, decoded now (the rest were cached)
	PromptDuration   time.Duration // decoding the prompt
	TimeToFirstToken time.Duration // from the call to the first generated token
	GeneratedTokens  int
	GenerateDuration time.Duration
}

// Token is a token id of the model's vocabulary.
type Token = engine.Token

// Chunk is one piece of a streamed generation.
type Chunk struct {
	Text  string       // new text: may be empty when a token ends inside a character or a possible stop string
	Token engine.Token // the token that produced it
}

// genConfig is what GenerateOptions set.
type genConfig struct {
	maxTokens int
	sampling  sampler.Options
	stops     []string
	echo      bool
	tools     []any
	extra     map[string]any
	policy    ContextPolicy
}

// ContextPolicy says what to do when a conversation or a generation does
// not fit in the context. The default is neither: an over-long prompt is an
// error (ErrPromptTooLong) and generation stops when the context is full.
// Nothing is ever truncated silently: Result.Dropped and Result.Shifted say
// what a policy did.
type ContextPolicy int

// Context policies.
const (
	// ContextStrict is the default: an error or a stop, never a cut.
	ContextStrict ContextPolicy = iota
	// DropOldestTurns makes Chat leave out the oldest turns, keeping a
	// leading system message and the last message, until the prompt fits.
	DropOldestTurns
	// ShiftWindow lets generation go on when the context is full: the older
	// half of the tokens after the first (the BOS) is discarded and the rest
	// shifted down, as llama.cpp's context shift does.
	ShiftWindow
)

// WithContextPolicy chooses a ContextPolicy for this call.
func WithContextPolicy(p ContextPolicy) GenerateOption { return func(g *genConfig) { g.policy = p } }

// GenerateOption configures Generate, Stream and Chat.
type GenerateOption func(*genConfig)

// MaxTokens limits the generated tokens (default: until an end-of-generation
// token or the context is full).
func MaxTokens(n int) GenerateOption { return func(g *genConfig) { g.maxTokens = n } }

// Sampling sets all sampling options (default: sampler.DefaultOptions()).
func Sampling(o sampler.Options) GenerateOption { return func(g *genConfig) { g.sampling = o } }

// Temperature sets the sampling temperature; 0 is greedy.
func Temperature(t float64) GenerateOption {
	return func(g *genConfig) { g.sampling.Temperature = t }
}

// Seed makes sampling reproducible.
func Seed(s int64) GenerateOption { return func(g *genConfig) { g.sampling.Seed = s } }

// Stop ends generation at the first of these strings, which is not part of
// the output.
func Stop(s ...string) GenerateOption { return func(g *genConfig) { g.stops = append(g.stops, s...) } }

// Tools passes tool definitions to the chat template (Chat only).
func Tools(tools ...any) GenerateOption {
	return func(g *genConfig) { g.tools = append(g.tools, tools...) }
}

// TemplateVars passes extra variables to the chat template, such as
// enable_thinking (Chat only; apply_chat_template's **kwargs).
func TemplateVars(vars map[string]any) GenerateOption {
	return func(g *genConfig) { g.extra = vars }
}

// Echo puts the prompt before the generated text in Result.Text
// (transformers' return_full_text).
func Echo() GenerateOption { return func(g *genConfig) { g.echo = true } }

func (p *Pipeline) genConfig(opts []GenerateOption) (genConfig, error) {
	g := genConfig{maxTokens: -1, sampling: sampler.DefaultOptions()}
	for _, o := range opts {
		o(&g)
	}
	for _, s := range g.stops {
		if s == "" {
			return g, errors.New("llm: an empty stop string")
		}
	}
	return g, nil
}

// Generate continues prompt. The prompt is tokenized with the model's
// BOS/EOS rules, and special-token text in it is parsed.
func (p *Pipeline) Generate(ctx context.Context, prompt string, opts ...GenerateOption) (*Result, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	ids, err := p.model.Tokenize(prompt, true, true)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	return p.collect(ctx, prompt, ids, opts)
}

// Stream continues prompt like Generate, yielding the text as it is made.
// Breaking out of the loop stops generation.
func (p *Pipeline) Stream(ctx context.Context, prompt string, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		if err := p.checkOpen(); err != nil {
			yield(Chunk{}, err)
			return
		}
		ids, err := p.model.Tokenize(prompt, true, true)
		if err != nil {
			yield(Chunk{}, fmt.Errorf("llm: %w", err))
			return
		}
		if _, err := p.run(ctx, ids, opts, yield); err != nil {
			yield(Chunk{}, err)
		}
	}
}

// collect runs a generation and gathers its chunks.
func (p *Pipeline) collect(ctx context.Context, prompt string, ids []engine.Token, opts []GenerateOption) (*Result, error) {
	var text strings.Builder
	res, err := p.run(ctx, ids, opts, func(c Chunk, _ error) bool {
		text.WriteString(c.Text)
		return true
	})
	if err != nil {
		return nil, err
	}
	res.Text = text.String()
	if g, _ := p.genConfig(opts); g.echo {
		res.Text = prompt + res.Text
	}
	return res, nil
}

// run decodes the prompt (reusing the context's cached prefix) and samples
// until a stop condition, passing text to yield.
func (p *Pipeline) run(ctx context.Context, ids []engine.Token, opts []GenerateOption, yield func(Chunk, error) bool) (*Result, error) {
	start := time.Now()
	g, err := p.genConfig(opts)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("llm: the prompt is empty and the model adds no BOS token")
	}
	s, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer p.release(s)
	nCtx := s.c.ContextLength()
	if len(ids) >= nCtx {
		return nil, fmt.Errorf("llm: the prompt is %d tokens, the context holds %d: %w", len(ids), nCtx, ErrPromptTooLong)
	}

	g.sampling.ContextSize = nCtx
	smp, err := sampler.New(g.sampling, p.model)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	defer smp.Close()
	if err := smp.AddHistory(ids); err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}

	res := &Result{Timings: Timings{PromptTokens: len(ids)}}
	if err := p.prefill(ctx, s, ids, &res.Timings); err != nil {
		return nil, err
	}

	detok := p.model.NewDetokenizer(false)
	stop := stopMatcher{stops: g.stops}
	genStart := time.Now()
	emit := func(tok engine.Token, text string) bool {
		return text == "" || yield(Chunk{Text: text, Token: tok}, nil)
	}
	res.FinishReason = FinishLength
	stoppedByString := false
	for g.maxTokens < 0 || len(res.Tokens) < g.maxTokens {
		logits, err := s.c.Logits(s.batch.Len() - 1)
		if err != nil {
			s.reset()
			return nil, fmt.Errorf("llm: %w", err)
		}
		tok, err := smp.Sample(logits)
		if err != nil {
			s.reset()
			return nil, fmt.Errorf("llm: %w", err)
		}
		if len(res.Tokens) == 0 {
			res.Timings.TimeToFirstToken = time.Since(start)
		}
		if p.model.IsEOG(tok) {
			res.FinishReason = FinishStop
			break
		}
		res.Tokens = append(res.Tokens, tok)
		piece, err := detok.Next(tok)
		if err != nil {
			s.reset()
			return nil, fmt.Errorf("llm: %w", err)
		}
		out, stopped := stop.push(piece)
		if !emit(tok, out) {
			return res, nil // the caller stopped reading
		}
		if stopped {
			res.FinishReason, stoppedByString = FinishStop, true
			break
		}
		if len(s.tokens) >= nCtx {
			if g.policy != ShiftWindow {
				break // the context is full
			}
			n, err := s.shift()
			if err != nil {
				s.reset()
				return nil, err
			}
			res.Shifted += n
		}
		s.batch.Clear()
		s.batch.Add(tok, engine.Pos(len(s.tokens)), true)
		if err := s.c.Decode(ctx, s.batch); err != nil {
			s.reset()
			return nil, fmt.Errorf("llm: %w", err)
		}
		s.tokens = append(s.tokens, tok)
	}
	if !stoppedByString {
		// Bytes held back for an unfinished character or a possible stop
		// string are text after all.
		out, stopped := stop.push(detok.Flush())
		if stopped {
			res.FinishReason = FinishStop
		} else {
			out += stop.flush()
		}
		emit(-1, out)
	}
	res.Timings.GeneratedTokens = len(res.Tokens)
	res.Timings.GenerateDuration = time.Since(genStart)
	return res, nil
}

// prefill brings the slot's KV memory to ids: it keeps the longest prefix it
// already holds, removes the rest, and decodes the remainder, leaving the
// logits of the last prompt token in the batch's last row.
func (p *Pipeline) prefill(ctx context.Context, s *slot, ids []engine.Token, t *Timings) error {
	keep := 0
	for keep < len(s.tokens) && keep < len(ids) && s.tokens[keep] == ids[keep] {
		keep++
	}
	if keep == len(ids) {
		keep-- // the last prompt token is decoded again for its logits
	}
	if ok, err := s.c.RemoveTokens(0, engine.Pos(keep), -1); err != nil || !ok {
		keep = 0
		if err := s.c.ClearMemory(false); err != nil {
			return fmt.Errorf("llm: %w", err)
		}
	}
	s.tokens = s.tokens[:keep]
	t.PromptEvaluated = len(ids) - keep
	start := time.Now()
	for i := keep; i < len(ids); {
		s.batch.Clear()
		end := min(i+s.batch.Cap(), len(ids))
		for j := i; j < end; j++ {
			s.batch.Add(ids[j], engine.Pos(j), j == len(ids)-1)
		}
		if err := s.c.Decode(ctx, s.batch); err != nil {
			s.reset()
			return fmt.Errorf("llm: %w", err)
		}
		s.tokens = append(s.tokens, ids[i:end]...)
		i = end
	}
	t.PromptDuration = time.Since(start)
	return nil
}

// shift discards the older half of the slot's tokens after the first and
// moves the rest down, freeing room to generate; it returns how many tokens
// were discarded.
func (s *slot) shift() (int, error) {
	const keep = 1
	discard := (len(s.tokens) - keep) / 2
	if ok, err := s.c.CanShift(); err != nil || !ok {
		return 0, fmt.Errorf("llm: this model's context cannot shift: %w", ErrPromptTooLong)
	}
	if _, err := s.c.RemoveTokens(0, keep, engine.Pos(keep+discard)); err != nil {
		return 0, fmt.Errorf("llm: %w", err)
	}
	if err := s.c.ShiftPositions(0, engine.Pos(keep+discard), -1, engine.Pos(-discard)); err != nil {
		return 0, fmt.Errorf("llm: %w", err)
	}
	s.tokens = append(s.tokens[:keep], s.tokens[keep+discard:]...)
	return discard, nil
}

// reset forgets the slot's memory after an error, so that the next request
// starts clean.
func (s *slot) reset() {
	s.c.ClearMemory(false)
	s.tokens = s.tokens[:0]
	s.batch.Clear()
}
