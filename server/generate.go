package server

import (
	"context"
	"fmt"
	"iter"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/llm-go/llm"
)

// genRequest is one generation, whatever API asked for it.
type genRequest struct {
	prompt    string        // a completion's prompt (with ids, their text)
	ids       []llm.Token   // a completion's prompt as token ids, run as they are
	messages  []llm.Message // a chat's conversation (nil for a completion)
	opts      []llm.GenerateOption
	maxTokens int // -1: no limit
	logprobs  int // alternatives per token; -1: no logprobs
	policy    llm.ContextPolicy
	n         int   // OpenAI's n: choices per prompt (0 or 1: one)
	seed      int64 // the sampling seed, for the choices of n; < 0: random
}

// genResult is a finished generation.
type genResult struct {
	text         string
	thinking     string         // the reasoning, with llm.Think(true)
	calls        []llm.ToolCall // the calls the library parsed (Result.ToolCalls)
	finish       llm.FinishReason
	promptTokens int
	tokens       int
	logprobs     []llm.TokenLogprob
	ttft         time.Duration // -1 when no token came
	promptDur    time.Duration
	genDur       time.Duration
}

// chunkFunc receives streamed text, marked thinking when it is a reasoning
// model's reasoning (with llm.Think(true)), and, with logprobs, each
// token's log-probability (text may then be empty). An error stops the
// generation.
type chunkFunc func(text string, thinking bool, lp *llm.TokenLogprob) error

// generate runs req on the lease's model. With onChunk nil it returns the
// whole result; otherwise it streams the text to onChunk as it is made.
func (s *Server) generate(ctx context.Context, l *lease, req genRequest, onChunk chunkFunc) (*genResult, error) {
	p := l.p
	opts := append([]llm.GenerateOption{llm.MaxTokens(req.maxTokens), llm.PromptLookup(s.cfg.PromptLookup)}, req.opts...)
	if req.logprobs >= 0 {
		opts = append(opts, llm.Logprobs(req.logprobs))
	}
	if req.policy != llm.ContextStrict {
		opts = append(opts, llm.WithContextPolicy(req.policy))
	}
	if onChunk == nil {
		var res *llm.Result
		var err error
		switch {
		case req.messages != nil:
			res, err = p.Chat(ctx, req.messages, opts...)
		case req.ids != nil:
			res, err = p.GenerateTokens(ctx, req.ids, opts...)
		default:
			res, err = p.Generate(ctx, req.prompt, opts...)
		}
		if err != nil {
			return nil, err
		}
		t := res.Timings
		out := &genResult{text: res.Text, thinking: res.Thinking, calls: res.ToolCalls, finish: res.FinishReason, promptTokens: t.PromptTokens, tokens: t.GeneratedTokens,
			logprobs: res.Logprobs, ttft: t.TimeToFirstToken, promptDur: t.PromptDuration, genDur: t.GenerateDuration}
		if out.tokens == 0 {
			out.ttft = -1
		}
		s.metrics.tokens(l.name, out.tokens)
		s.metrics.generation(l.name, out.promptTokens, out.tokens, out.ttft)
		return out, nil
	}
	return s.stream(ctx, l, req, opts, onChunk)
}

// stream runs a streamed generation, passing its text to onChunk; the
// stream's last chunk carries the Result, with the counts and timings.
func (s *Server) stream(ctx context.Context, l *lease, req genRequest, opts []llm.GenerateOption, onChunk chunkFunc) (*genResult, error) {
	p := l.p
	var seq iter.Seq2[llm.Chunk, error]
	switch {
	case req.messages != nil:
		seq = p.ChatStream(ctx, req.messages, opts...)
	case req.ids != nil:
		seq = p.StreamTokens(ctx, req.ids, opts...)
	default:
		seq = p.Stream(ctx, req.prompt, opts...)
	}
	var final *llm.Result
	for c, err := range seq {
		if err != nil {
			return nil, err
		}
		if c.Result != nil {
			final = c.Result
			continue
		}
		var lp *llm.TokenLogprob
		if req.logprobs >= 0 {
			lp = c.Logprob
		}
		if c.Text == "" && lp == nil {
			continue
		}
		if err := onChunk(c.Text, c.Thinking, lp); err != nil {
			return nil, fmt.Errorf("streaming to the client: %w: %w", context.Canceled, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if final == nil {
		return nil, fmt.Errorf("the generation ended without a result: %w", context.Canceled)
	}
	t := final.Timings
	res := &genResult{text: final.Text, thinking: final.Thinking, calls: final.ToolCalls, finish: final.FinishReason, promptTokens: t.PromptTokens, tokens: t.GeneratedTokens,
		logprobs: final.Logprobs, ttft: t.TimeToFirstToken, promptDur: t.PromptDuration, genDur: t.GenerateDuration}
	if res.tokens == 0 {
		res.ttft = -1
	}
	s.metrics.tokens(l.name, res.tokens)
	s.metrics.generation(l.name, res.promptTokens, res.tokens, res.ttft)
	return res, nil
}

// leaseFor bounds a request by the configured timeout and takes a lease on
// its model. On failure it writes the error with writeErr (each API's own
// shape) and returns false; else cancel ends the request's context.
func (s *Server) leaseFor(w http.ResponseWriter, r *http.Request, model string, writeErr func(http.ResponseWriter, error)) (ctx context.Context, l *lease, cancel context.CancelFunc, ok bool) {
	return s.leaseForN(w, r, model, 1, writeErr)
}

// leaseForN is leaseFor for a request that runs n generations together.
func (s *Server) leaseForN(w http.ResponseWriter, r *http.Request, model string, n int, writeErr func(http.ResponseWriter, error)) (ctx context.Context, l *lease, cancel context.CancelFunc, ok bool) {
	ctx, cancel = s.requestContext(r.Context())
	l, err := s.models.acquireN(ctx, model, max(n, 1))
	if err != nil {
		cancel()
		writeErr(w, err)
		return nil, nil, nil, false
	}
	return ctx, l, cancel, true
}

// requestContext bounds a request by the configured timeout.
func (s *Server) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.cfg.RequestTimeout > 0 {
		return context.WithTimeout(ctx, s.cfg.RequestTimeout)
	}
	return context.WithCancel(ctx)
}

// forChoice is the request of choice j of a prompt (OpenAI's n): with a
// fixed seed, choice j samples with seed+j (wrapping within the
// non-negative int64 range), so that the choices differ and each is
// reproducible; with a random seed each choice draws its own.
func (g genRequest) forChoice(j int) genRequest {
	if j == 0 || g.seed < 0 {
		return g
	}
	g.opts = append(slices.Clip(g.opts), llm.Seed(int64((uint64(g.seed)+uint64(j))&math.MaxInt64)))
	return g
}

// runChoices runs count generations, run(ctx, i) for i in 0..count-1, at
// most width at once and started in index order, so that the pipeline
// decodes them together (continuous batching). The first error cancels the
// others' context and is returned once every run has ended.
func runChoices(ctx context.Context, count, width int, run func(ctx context.Context, i int) error) error {
	if count == 1 || width <= 1 {
		for i := range count {
			if err := run(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	for range min(width, count) {
		wg.Go(func() {
			for {
				mu.Lock()
				if first != nil || next == count {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := run(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
