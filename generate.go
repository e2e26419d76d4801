package llm

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
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
	// FinishToolCalls: the answer is tool calls (Result.ToolCalls).
	FinishToolCalls FinishReason = "tool_calls"
)

// Result is a finished generation.
type Result struct {
	Text         string         // the generated text (with Echo, the prompt first)
	Tokens       []engine.Token // the generated tokens
	FinishReason FinishReason
	Timings      Timings
	Model        string         // the model that answered (Generator.Name)
	Logprobs     []TokenLogprob // one per generated token, with the Logprobs option
	// ToolCalls are the calls a chat with Tools answered with, parsed from
	// Text (which keeps the model's own spelling of them) by
	// ParseToolCalls; FinishReason is then FinishToolCalls.
	ToolCalls []ToolCall
	// Thinking is a reasoning model's reasoning, with Think(true) or
	// SeparateThinking: the <think> block, out of Text.
	Thinking string
	Dropped  int // messages left out by DropOldestTurns
	Shifted  int // tokens discarded from the context by ShiftWindow
}

// TokenLogprob is the log-probability of one generated token under the
// model's distribution (the softmax of its raw logits, before any sampler
// stage), with the most likely alternatives at that step.
type TokenLogprob struct {
	Token   Token
	Text    string         // the token's text (may be part of a character)
	Logprob float64        // natural logarithm of its probability
	Top     []TokenLogprob // the most likely tokens at this step, most likely first
}

// Timings measure one generation.
type Timings struct {
	PromptTokens     int           // tokens in the prompt
	PromptEvaluated  int           // of those, decoded now (the rest were cached)
	PromptDuration   time.Duration // decoding the prompt
	TimeToFirstToken time.Duration // from the call to the first generated token
	GeneratedTokens  int
	GenerateDuration time.Duration
	// With PromptLookup: the draft tokens checked, and those accepted
	// (each accepted one saved a decode step).
	DraftTokens, DraftAccepted int
}

// Token is a token id of the model's vocabulary.
type Token = engine.Token

// Chunk is one piece of a streamed generation.
type Chunk struct {
	Text    string        // new text: may be empty when a token ends inside a character or a possible stop string
	Token   engine.Token  // the token that produced it (-1 for text flushed at the end)
	Logprob *TokenLogprob // with the Logprobs option, the token's log-probability
	// Thinking marks text of the reasoning, with Think(true) or
	// SeparateThinking.
	Thinking bool
	// Result, on the last chunk of a stream that finished (by a stop
	// condition, not by the reader leaving), is the whole generation, as
	// Generate would have returned it; that chunk has no text.
	Result *Result
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
	logprobs  int // -1: none; else how many alternatives to report
	private   bool
	suffix    *string // fill in the middle between the prompt and this
	// splitThinking separates a reasoning model's <think> block (Think,
	// SeparateThinking).
	splitThinking bool
	thinkLevel    string          // ThinkLevel's level, checked
	thinkVars     map[string]bool // the keys of extra set by Think or ThinkLevel
	lookup        int             // PromptLookup's most draft tokens per step
	// chat is set by Chat and ChatStream: a harmony reply is always
	// parsed.
	chat bool
	// harmony: the model's chat template speaks OpenAI's harmony format
	// (gpt-oss), so a prompt that opens an assistant message gets a
	// harmony reply.
	harmony bool
}

// ContextPolicy says what to do when a conversation or a generation does
// not fit in the context. The default is neither: an over-long prompt is an
// error (ErrPromptTooLong) and generation stops when the context is full.
// Nothing is ever truncated silently: Result.Dropped and Result.Shifted say
// what a policy did.
type ContextPolicy int

// Context policies. DropOldestTurns and ShiftWindow combine:
// DropOldestTurns|ShiftWindow does both, as Ollama's chat does.
const (
	// ContextStrict is the default: an error or a stop, never a cut.
	ContextStrict ContextPolicy = 0
	// DropOldestTurns makes Chat leave out the oldest turns, keeping a
	// leading system message and the last message, until the prompt fits.
	DropOldestTurns ContextPolicy = 1 << 0
	// ShiftWindow lets generation go on when the context is full: the older
	// half of the tokens after the first (the BOS) is discarded and the rest
	// shifted down, as llama.cpp's context shift does. A model whose memory
	// cannot do that (whose context cannot shift, or a recurrent model:
	// Mamba, RWKV, hybrids, whose state cannot discard tokens) ends the
	// request then with an error wrapping ErrPromptTooLong.
	ShiftWindow ContextPolicy = 1 << 1
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
	return func(g *genConfig) { g.extra, g.thinkVars = vars, nil }
}

// Private marks the request's input as private: a Router keeps it on the
// local model and never sends it to a remote one. A Pipeline ignores it.
func Private() GenerateOption { return func(g *genConfig) { g.private = true } }

// MaxTopLogprobs is the most alternatives Logprobs reports per token.
const MaxTopLogprobs = 20

// Logprobs reports the log-probability of every generated token, and the
// top most likely alternatives at each step (0 to MaxTopLogprobs), in
// Result.Logprobs and Chunk.Logprob (OpenAI's logprobs and top_logprobs).
// With it, Stream yields one chunk per token, even when its text is empty.
func Logprobs(top int) GenerateOption { return func(g *genConfig) { g.logprobs = top } }

// Echo puts the prompt before the generated text in Result.Text
// (transformers' return_full_text).
func Echo() GenerateOption { return func(g *genConfig) { g.echo = true } }

// PromptLookup turns on speculative decoding by prompt lookup: at each
// step, up to n tokens that followed an earlier occurrence of the last few
// tokens (in the prompt or the output) are decoded with the next token, in
// one batch, and kept as far as they match what the model samples (see
// package speculate). The output is what it would be without it, up to
// floating-point rounding in the batched decode; where the output copies
// the prompt or repeats itself it comes in fewer steps. Timings'
// DraftTokens and DraftAccepted say how it went. 0 turns it off (the
// default); at most MaxPromptLookup. Drafts take at most half of a step's
// batch; a recurrent model (Mamba, RWKV, hybrids), whose memory cannot
// drop a rejected draft, gets none.
func PromptLookup(n int) GenerateOption { return func(g *genConfig) { g.lookup = n } }

// MaxPromptLookup is the most draft tokens PromptLookup takes.
const MaxPromptLookup = 64

// Suffix makes Generate and Stream fill in the middle: the model writes
// what goes between the prompt and suffix, as code models do for an
// editor's cursor (Ollama's suffix, llama-server's /infill). The prompt is
// framed with the model's FIM tokens (prefix, suffix, middle); a model
// without them gives ErrNoFIM.
func Suffix(suffix string) GenerateOption { return func(g *genConfig) { g.suffix = &suffix } }

func (p *Pipeline) genConfig(opts []GenerateOption) (genConfig, error) {
	g, err := newGenConfig(p.defaults, opts)
	g.harmony = p.harmony
	return g, err
}

// newGenConfig applies defaults, then opts, to the defaults of every
// Generator, and checks the result. Nil options are skipped.
func newGenConfig(defaults, opts []GenerateOption) (genConfig, error) {
	g := genConfig{maxTokens: -1, sampling: sampler.DefaultOptions(), logprobs: -1}
	for _, list := range [][]GenerateOption{defaults, opts} {
		for _, o := range list {
			if o != nil {
				o(&g)
			}
		}
	}
	if g.logprobs > MaxTopLogprobs {
		return g, fmt.Errorf("llm: Logprobs(%d): at most %d alternatives", g.logprobs, MaxTopLogprobs)
	}
	for _, s := range g.stops {
		if s == "" {
			return g, errors.New("llm: an empty stop string")
		}
	}
	if g.lookup < 0 || g.lookup > MaxPromptLookup {
		return g, fmt.Errorf("llm: PromptLookup(%d): 0 to %d draft tokens", g.lookup, MaxPromptLookup)
	}
	switch g.thinkLevel {
	case "", ThinkLow, ThinkMedium, ThinkHigh:
	default:
		return g, fmt.Errorf("llm: ThinkLevel(%q): the levels are %q, %q and %q", g.thinkLevel, ThinkLow, ThinkMedium, ThinkHigh)
	}
	return g, nil
}

// Generate continues prompt. The prompt is tokenized with the model's
// BOS/EOS rules, and special-token text in it is parsed.
func (p *Pipeline) Generate(ctx context.Context, prompt string, opts ...GenerateOption) (*Result, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	ids, err := p.promptTokens(prompt, opts)
	if err != nil {
		return nil, err
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
		ids, err := p.promptTokens(prompt, opts)
		if err != nil {
			yield(Chunk{}, err)
			return
		}
		p.streamRun(ctx, prompt, ids, opts, 0, yield)
	}
}

// errSuffixChat refuses Suffix in a chat.
var errSuffixChat = errors.New("llm: Suffix applies to Generate and Stream, not to chats")

// promptTokens tokenizes a text prompt with the model's BOS/EOS rules,
// parsing special-token text; with Suffix, as a fill-in-the-middle prompt
// (engine.Model.FIMPrompt).
func (p *Pipeline) promptTokens(prompt string, opts []GenerateOption) ([]engine.Token, error) {
	g, err := p.genConfig(opts)
	if err != nil {
		return nil, err
	}
	if g.suffix == nil {
		ids, err := p.model.Tokenize(prompt, true, true)
		if err != nil {
			return nil, engineErr(err)
		}
		return ids, nil
	}
	ids, err := p.model.FIMPrompt(prompt, *g.suffix)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	return ids, nil
}

// GenerateTokens continues a prompt given as token ids, used as they are
// (no BOS is added): for callers that tokenized the prompt themselves, as
// OpenAI's completions API allows. An id outside the vocabulary is an
// error (ErrInvalidToken). With Echo, Result.Text starts with the ids'
// text.
func (p *Pipeline) GenerateTokens(ctx context.Context, ids []Token, opts ...GenerateOption) (*Result, error) {
	prompt, err := p.tokensPrompt(ids, opts)
	if err != nil {
		return nil, err
	}
	return p.collect(ctx, prompt, slices.Clone(ids), opts)
}

// StreamTokens is GenerateTokens, yielding the text as it is made.
func (p *Pipeline) StreamTokens(ctx context.Context, ids []Token, opts ...GenerateOption) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		prompt, err := p.tokensPrompt(ids, opts)
		if err != nil {
			yield(Chunk{}, err)
			return
		}
		p.streamRun(ctx, prompt, slices.Clone(ids), opts, 0, yield)
	}
}

// tokensPrompt checks prompt ids against the vocabulary and, for Echo,
// returns their text.
func (p *Pipeline) tokensPrompt(ids []Token, opts []GenerateOption) (string, error) {
	if err := p.checkOpen(); err != nil {
		return "", err
	}
	n := p.model.VocabSize()
	for i, id := range ids {
		if id < 0 || int(id) >= n {
			return "", fmt.Errorf("llm: prompt token %d is id %d, the vocabulary has ids 0 to %d: %w", i, id, n-1, ErrInvalidToken)
		}
	}
	g, err := p.genConfig(opts)
	if err == nil && g.suffix != nil {
		err = errors.New("llm: Suffix applies to text prompts (Generate, Stream), not token ids")
	}
	if err != nil || !g.echo || len(ids) == 0 {
		return "", err
	}
	// Without its BOS, llama.cpp's detokenizer also drops the space that
	// SentencePiece adds before the first word.
	body := ids
	if sp := p.model.SpecialTokens(); sp.AddBOS && body[0] == sp.BOS {
		body = body[1:]
	}
	text, err := p.model.Detokenize(body, false, false)
	if err != nil {
		return "", engineErr(err)
	}
	return text, nil
}

// streamRun runs a streamed generation, ending a finished one with a chunk
// that carries its Result.
func (p *Pipeline) streamRun(ctx context.Context, prompt string, ids []engine.Token, opts []GenerateOption, dropped int, yield func(Chunk, error) bool) {
	g, _ := p.genConfig(opts)
	var text strings.Builder
	stopped := false
	split := g.newSplitter(prompt)
	res, err := p.run(ctx, ids, opts, func(c Chunk, err error) bool {
		text.WriteString(c.Text)
		more := false
		if split != nil && err == nil {
			more = yieldPieces(c, split.push(c.Text), yield)
		} else {
			more = yield(c, err)
		}
		stopped = !more
		return more
	})
	if err == nil && split != nil && !stopped && !yieldPieces(Chunk{Token: -1}, split.flush(), yield) {
		stopped = true
	}
	switch {
	case err != nil:
		yield(Chunk{}, err)
	case res != nil && !stopped:
		res.Text = text.String()
		finishResult(res, g, prompt)
		res.Dropped = dropped
		yield(Chunk{Token: -1, Result: res}, nil)
	}
}

// yieldPieces yields the reasoning and answer pieces of chunk c's text as
// chunks, the first one carrying c's token and logprob; with no piece
// (text held back), c's token still comes, with no text. It reports
// whether the reader wants more.
func yieldPieces(c Chunk, pieces []piece, yield func(Chunk, error) bool) bool {
	if len(pieces) == 0 {
		if c.Token < 0 {
			return true
		}
		c.Text = ""
		return yield(c, nil)
	}
	for i, pc := range pieces {
		out := Chunk{Text: pc.text, Thinking: pc.thinking, Token: -1}
		if i == 0 {
			out.Token, out.Logprob = c.Token, c.Logprob
		}
		if !yield(out, nil) {
			return false
		}
	}
	return true
}

// replySplitter separates a reply's reasoning from its answer as it
// streams.
type replySplitter interface {
	// push takes the next text of the reply and returns what is known of
	// it.
	push(text string) []piece
	// flush returns what was held back, when the reply ends.
	flush() []piece
}

// newSplitter returns the splitter a reply needs, or nil: harmony's for a
// prompt that opens a harmony message (gpt-oss) in a chat or with
// Think/SeparateThinking, else the <think> splitter with those.
func (g genConfig) newSplitter(prompt string) replySplitter {
	if opened := harmonyOpened(prompt); g.harmony && opened != "" && (g.chat || g.splitThinking) {
		return newHarmonySplitter(opened)
	}
	if g.splitThinking {
		return newThinkSplitter(thinkOpened(prompt))
	}
	return nil
}

// finishResult completes a finished generation's Result from its text:
// the reasoning split out (Think, SeparateThinking, a harmony chat), tool
// calls, the prompt first with Echo.
func finishResult(res *Result, g genConfig, prompt string) {
	if split := g.newSplitter(prompt); split != nil {
		var thinking, answer strings.Builder
		for _, p := range append(split.push(res.Text), split.flush()...) {
			if p.thinking {
				thinking.WriteString(p.text)
			} else {
				answer.WriteString(p.text)
			}
		}
		res.Thinking, res.Text = thinking.String(), answer.String()
		if h, ok := split.(*harmonySplitter); ok && h.state != harmonyPlain {
			if len(h.calls) > 0 {
				res.ToolCalls, res.FinishReason = h.calls, FinishToolCalls
			}
			if g.echo {
				res.Text = prompt + res.Text
			}
			return
		}
	}
	findToolCalls(res, g)
	if g.echo {
		res.Text = prompt + res.Text
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
	g, _ := p.genConfig(opts)
	finishResult(res, g, prompt)
	return res, nil
}

// findToolCalls parses the tool calls of a chat that offered tools.
func findToolCalls(res *Result, g genConfig) {
	if len(g.tools) == 0 {
		return
	}
	if _, calls, ok := ParseToolCalls(res.Text, ToolNames(g.tools)); ok {
		res.ToolCalls, res.FinishReason = calls, FinishToolCalls
	}
}
