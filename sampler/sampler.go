package sampler

import (
	"fmt"
	"slices"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/sampler/gbnf"
)

// defaultContextSize is what RepeatLastN = -1 and DRYLastN = -1 mean without
// a model or ContextSize.
const defaultContextSize = 4096

// Sampler draws the next token from a row of logits with the chain that its
// Options describe (see the package documentation). It keeps the token
// history that the penalties, DRY, mirostat and a grammar need, and buffers
// sized to the vocabulary, so that sampling allocates nothing. A Sampler is
// not safe for concurrent use; use one per sequence.
type Sampler struct {
	opts   Options
	nVocab int
	seed   uint64
	rng    rng

	stages []Stage // the active stages between the logit bias and the draw, in order

	temp, dynRange, dynExp   float32
	topK, minKeep            int
	topP, minP, typP, nSigma float32
	xtcP, xtcT               float32
	mirostat, mirostatM      int
	tau, eta, mu             float32

	bias []biasEntry
	hist history
	pen  penalties
	dry  dry
	ov   overrides

	buf    []Candidate // the candidate array, one per token
	c      cands       // what the last Sample left
	scores []float32   // typical-p scratch
	idx    []int32
	tmp    []Candidate

	grammar *engine.Grammar
	closed  bool
}

type biasEntry struct {
	id   int32
	bias float32
}

// New returns a Sampler for model's vocabulary: Sample takes rows of
// model.VocabSize() logits. The model gives the grammar, JSON schema and
// JSON mode their vocabulary, DRY its sequence breakers, and the context
// size that RepeatLastN = -1 and DRYLastN = -1 mean when
// Options.ContextSize is 0 (the training context; pass the engine context's
// length instead where it is smaller). Close the Sampler when done with it
// if it has a grammar, to free llama.cpp's grammar state.
func New(opts Options, model *engine.Model) (*Sampler, error) {
	if model == nil {
		return nil, fmt.Errorf("sampler: New needs a model (NewForVocab takes a vocabulary size): %w", ErrNeedsModel)
	}
	ctx := opts.ContextSize
	if ctx == 0 {
		ctx = model.Info().TrainContext
	}
	return newSampler(opts, model, model.VocabSize(), ctx)
}

// NewForVocab returns a Sampler for logits of nVocab tokens without a
// model: grammars, JSON schemas, JSON mode and DRY sequence breakers are
// not available (ErrNeedsModel).
func NewForVocab(opts Options, nVocab int) (*Sampler, error) {
	if nVocab <= 0 || nVocab > 1<<28 {
		return nil, optErr("vocabulary size", nVocab, "must be in [1, 2^28]")
	}
	return newSampler(opts, nil, nVocab, opts.ContextSize)
}

func newSampler(opts Options, model *engine.Model, nVocab, ctx int) (*Sampler, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if ctx <= 0 {
		ctx = defaultContextSize
	}
	s := &Sampler{
		opts:      opts,
		nVocab:    nVocab,
		temp:      float32(opts.Temperature),
		dynRange:  float32(opts.DynamicTempRange),
		dynExp:    float32(opts.DynamicTempExponent),
		topK:      opts.TopK,
		minKeep:   opts.MinKeep,
		topP:      float32(opts.TopP),
		minP:      float32(opts.MinP),
		typP:      float32(opts.TypicalP),
		nSigma:    float32(opts.TopNSigma),
		xtcP:      float32(opts.XTCProbability),
		xtcT:      float32(opts.XTCThreshold),
		mirostat:  opts.Mirostat,
		mirostatM: opts.MirostatM,
		tau:       float32(opts.MirostatTau),
		eta:       float32(opts.MirostatEta),
		buf:       make([]Candidate, nVocab),
		ov:        newOverrides(nVocab),
	}
	for t, b := range opts.LogitBias {
		if int(t) >= nVocab {
			return nil, optErr("logit_bias", fmt.Sprintf("token %d", t), "token ids must be below the vocabulary size %d", nVocab)
		}
		s.bias = append(s.bias, biasEntry{int32(t), float32(b)})
	}
	slices.SortFunc(s.bias, func(a, b biasEntry) int { return int(a.id - b.id) })

	window := func(n int) int {
		if n == -1 {
			return ctx
		}
		return n
	}
	s.pen = penalties{lastN: window(opts.RepeatLastN), repeat: float32(opts.RepeatPenalty),
		freq: float32(opts.FrequencyPenalty), present: float32(opts.PresencePenalty)}
	s.dry = dry{mult: float32(opts.DRYMultiplier), base: float32(opts.DRYBase),
		allowed: opts.DRYAllowedLength, lastN: window(opts.DRYLastN), total: ctx}

	order := opts.Order
	if order == nil {
		order = DefaultOrder()
	}
	for _, st := range order {
		if s.stageActive(st) {
			s.stages = append(s.stages, st)
		}
	}
	histCap := 1
	if slices.Contains(s.stages, StagePenalties) {
		s.pen.init(nVocab)
		histCap = max(histCap, s.pen.lastN)
	}
	if slices.Contains(s.stages, StageDRY) {
		s.dry.lastN = min(s.dry.lastN, ctx)
		s.dry.init(nVocab)
		histCap = max(histCap, s.dry.lastN)
		if len(opts.DRYSequenceBreakers) > 0 {
			if model == nil {
				return nil, fmt.Errorf("sampler: DRY sequence breakers are matched against the vocabulary: %w", ErrNeedsModel)
			}
			b, err := cachedDryBreakers(model, opts.DRYSequenceBreakers)
			if err != nil {
				return nil, err
			}
			s.dry.breakers = b
		}
	}
	s.hist = newHistory(histCap)
	if slices.Contains(s.stages, StageTypicalP) {
		s.scores = make([]float32, nVocab)
		s.idx = make([]int32, nVocab)
		s.tmp = make([]Candidate, nVocab)
	}

	if opts.Seed < 0 {
		s.seed = randomSeed()
	} else {
		s.seed = uint64(opts.Seed)
	}
	s.rng.seed(s.seed)
	s.mu = 2 * s.tau

	src, err := grammarSource(opts)
	if err != nil {
		return nil, err
	}
	if src != "" {
		if model == nil {
			return nil, fmt.Errorf("sampler: a grammar works on the model's vocabulary: %w", ErrNeedsModel)
		}
		g, err := model.NewGrammar(src)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidGrammar, err)
		}
		s.grammar = g
	}
	return s, nil
}

// grammarSource returns the GBNF that the options ask for, or "".
func grammarSource(o Options) (string, error) {
	switch {
	case o.Grammar != "":
		return o.Grammar, nil
	case o.JSONSchema != "":
		g, err := gbnf.FromJSONSchema([]byte(o.JSONSchema))
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalidSchema, err)
		}
		return g, nil
	case o.JSON:
		return gbnf.JSONObject, nil
	}
	return "", nil
}

// stageActive reports whether stage st changes anything with s's settings.
func (s *Sampler) stageActive(st Stage) bool {
	if s.mirostat != 0 {
		// Mirostat replaces the truncations; its own temperature comes
		// before it.
		return st == StagePenalties && s.pen.active() || st == StageDRY && s.dry.active()
	}
	switch st {
	case StagePenalties:
		return s.pen.active()
	case StageDRY:
		return s.dry.active()
	case StageTopNSigma:
		return s.nSigma > 0
	case StageTopK:
		return s.topK > 0
	case StageTypicalP:
		return s.typP < 1
	case StageTopP:
		return s.topP < 1
	case StageMinP:
		return s.minP > 0
	case StageXTC:
		return s.xtcP > 0 && s.xtcT <= 0.5
	case StageTemperature:
		return s.temp != 1 || s.dynRange > 0
	}
	return false
}

// Options returns the options the Sampler was made with.
func (s *Sampler) Options() Options { return s.opts }

// Seed returns the seed of the random draws: Options.Seed, or the one
// picked when it was negative.
func (s *Sampler) Seed() uint64 { return s.seed }

// VocabSize returns the number of logits Sample expects.
func (s *Sampler) VocabSize() int { return s.nVocab }

// Candidates returns the candidates that the last Sample drew from, with
// their logits after the chain and their probabilities, in no particular
// order. The slice is the Sampler's: it is valid until the next call.
func (s *Sampler) Candidates() []Candidate { return s.c.d }

// Accept records token t as the next token of the sequence without sampling
// it (a token forced by the caller): it goes into the history and advances
// the grammar. It fails with ErrNoCandidates if the grammar does not allow
// t. Sample accepts the tokens it returns by itself.
func (s *Sampler) Accept(t engine.Token) error {
	if s.closed {
		return ErrClosed
	}
	if t < 0 || int(t) >= s.nVocab {
		return fmt.Errorf("sampler: token %d outside the vocabulary [0, %d): %w", t, s.nVocab, ErrVocabSize)
	}
	if s.grammar != nil {
		if err := s.grammar.Accept(t); err != nil {
			return fmt.Errorf("sampler: the grammar does not allow token %d here: %w: %w", t, ErrNoCandidates, err)
		}
	}
	s.record(t)
	return nil
}

// AddHistory records tokens the model was given, such as the prompt, in the
// history that the repetition penalties and DRY look at (as llama.cpp's
// tools do). The grammar is not advanced. Tokens outside the vocabulary are
// an error.
func (s *Sampler) AddHistory(tokens []engine.Token) error {
	if s.closed {
		return ErrClosed
	}
	for _, t := range tokens {
		if t < 0 || int(t) >= s.nVocab {
			return fmt.Errorf("sampler: token %d outside the vocabulary [0, %d): %w", t, s.nVocab, ErrVocabSize)
		}
	}
	for _, t := range tokens {
		s.record(t)
	}
	return nil
}

func (s *Sampler) record(t engine.Token) {
	if s.pen.counts != nil {
		s.pen.accept(t, &s.hist)
	}
	s.hist.push(t)
}

// Reset forgets the history, restarts the grammar and mirostat, and reseeds
// the random draws with the same seed: the Sampler then repeats what it did
// from New.
func (s *Sampler) Reset() error {
	if s.closed {
		return ErrClosed
	}
	s.hist.clear()
	if s.pen.counts != nil {
		s.pen.clear()
	}
	s.mu = 2 * s.tau
	s.rng.seed(s.seed)
	s.c = cands{}
	if s.grammar != nil {
		return s.grammar.Reset()
	}
	return nil
}

// Close frees the grammar's llama.cpp state. The Sampler cannot be used
// afterwards. Closing twice is safe.
func (s *Sampler) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.grammar != nil {
		return s.grammar.Close()
	}
	return nil
}
