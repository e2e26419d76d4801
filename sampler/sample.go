package sampler

import (
	"fmt"

	"github.com/llm-go/llm/engine"
)

// Sample draws the next token from logits, one per token of the vocabulary
// (the engine's borrowed row: it is read, never kept or modified), and
// accepts it: the history, mirostat and the grammar move on. It returns
// ErrNoCandidates when no token can be drawn.
func (s *Sampler) Sample(logits []float32) (engine.Token, error) {
	if s.closed {
		return 0, ErrClosed
	}
	if len(logits) != s.nVocab {
		return 0, fmt.Errorf("sampler: %d logits for a vocabulary of %d tokens: %w", len(logits), s.nVocab, ErrVocabSize)
	}
	t, surprise, err := s.pick(logits, false)
	if s.grammar != nil {
		ok := false
		if err == nil {
			if ok, err = s.grammar.Allows(t); err != nil {
				return 0, err
			}
		}
		if !ok {
			// The chain's choice breaks the grammar: mask the vocabulary
			// with it and draw again.
			t, surprise, err = s.pick(logits, true)
			if err != nil {
				return 0, fmt.Errorf("sampler: the grammar allows no token here: %w", err)
			}
		}
		if err := s.grammar.Accept(t); err != nil {
			return 0, err
		}
	} else if err != nil {
		return 0, err
	}
	if s.mirostat != 0 && surprise >= 0 {
		s.mu -= s.eta * (surprise - s.tau)
	}
	s.record(t)
	return t, nil
}

// pick runs the chain on logits and draws a token. With masked, the
// grammar first sets the logits of the tokens it forbids to -Inf. surprise
// is the drawn token's surprise for mirostat, or -1.
func (s *Sampler) pick(logits []float32, masked bool) (t engine.Token, surprise float32, err error) {
	greedy, err := s.chain(logits, masked)
	if err != nil {
		return 0, -1, err
	}
	if greedy {
		return s.c.d[0].Token, -1, nil
	}
	if s.mirostat != 0 {
		if s.temp <= 0 {
			return s.greedyOf(&s.c)
		}
		s.c.temp(s.temp)
		var i int
		if s.mirostat == 1 {
			i, surprise, err = s.mirostatV1(&s.c)
		} else {
			i, surprise, err = s.mirostatV2(&s.c)
		}
		if err != nil {
			return 0, -1, err
		}
		return s.c.d[i].Token, surprise, nil
	}
	i, err := s.dist(&s.c)
	if err != nil {
		return 0, -1, err
	}
	return s.c.d[i].Token, -1, nil
}

// chain runs the stages of the chain on logits, leaving the candidates in
// s.c for the draw. greedy reports that the chain reduced to the largest
// logit, which s.c then holds alone.
func (s *Sampler) chain(logits []float32, masked bool) (greedy bool, err error) {
	s.ov.reset()
	defer s.ov.reset()

	// The logit bias, and the penalties and DRY at the head of the chain,
	// change a few logits: they become overrides.
	for _, b := range s.bias {
		s.ov.set(b.id, s.ov.value(b.id, logits)+b.bias)
	}
	head := 0
	dryReady := false
loop:
	for ; head < len(s.stages); head++ {
		switch s.stages[head] {
		case StagePenalties:
			s.pen.override(&s.ov, logits)
		case StageDRY:
			dryReady = true
			if s.dry.prepare(&s.hist) {
				s.dry.override(&s.ov, logits)
			}
		default:
			break loop
		}
	}
	rest := s.stages[head:]

	switch {
	case masked:
		s.materialize(logits)
		if err := s.grammar.Apply(asTokenData(s.c.d)); err != nil {
			return false, err
		}
	case s.greedyFast(rest) && 1+len(s.ov.ids) < s.nVocab:
		s.c = cands{d: s.topKFast(logits, 1), sorted: true}
		if s.c.d[0].Logit == negInf {
			return false, ErrNoCandidates
		}
		s.c.d[0].P = 1
		return true, nil
	case len(rest) > 0 && rest[0] == StageTopK && s.topK+len(s.ov.ids) < s.nVocab:
		s.c = cands{d: s.topKFast(logits, s.topK), sorted: true}
		rest = rest[1:]
	case len(rest) > 1 && rest[0] == StageTemperature && rest[1] == StageTopK && s.dynRange <= 0 && s.temp > 0 &&
		s.topK+len(s.ov.ids) < s.nVocab:
		// Dividing by a positive temperature keeps the order: select first.
		s.c = cands{d: s.topKFast(logits, s.topK), sorted: true}
		s.c.temp(s.temp)
		rest = rest[2:]
	default:
		s.materialize(logits)
	}
	for _, st := range rest {
		s.apply(st, &s.c, &dryReady)
	}
	return false, nil
}

// greedyFast reports whether the chain reduces to taking the largest logit
// after the overrides: the temperature is 0 and comes in the chain, and
// nothing before it can remove the largest logit (typical-p and XTC can).
func (s *Sampler) greedyFast(rest []Stage) bool {
	if s.temp > 0 || s.dynRange > 0 && s.mirostat == 0 {
		return false
	}
	if s.mirostat != 0 {
		return true
	}
	for _, st := range rest {
		switch st {
		case StageTemperature:
			return true
		case StageTypicalP, StageXTC, StagePenalties, StageDRY:
			return false
		}
	}
	return false
}

// greedyOf selects the largest logit of c.
func (s *Sampler) greedyOf(c *cands) (engine.Token, float32, error) {
	if len(c.d) == 0 {
		return 0, -1, ErrNoCandidates
	}
	best := 0
	for i := 1; i < len(c.d); i++ {
		if byLogitDesc(c.d[i], c.d[best]) < 0 {
			best = i
		}
	}
	if c.d[best].Logit == negInf {
		return 0, -1, ErrNoCandidates
	}
	for i := range c.d {
		c.d[i].P = 0
	}
	c.d[best].P = 1
	return c.d[best].Token, -1, nil
}

// materialize sets s.c to the whole vocabulary with the logits (NaN read as
// -Inf) and the overrides.
func (s *Sampler) materialize(logits []float32) {
	d := s.buf[:s.nVocab]
	for i, v := range logits {
		if v != v {
			v = negInf
		}
		d[i] = Candidate{Token: engine.Token(i), Logit: v}
	}
	for j, id := range s.ov.ids {
		d[id].Logit = s.ov.vals[j]
	}
	s.c = cands{d: d}
}

// apply runs one stage on c.
func (s *Sampler) apply(st Stage, c *cands, dryReady *bool) {
	switch st {
	case StagePenalties:
		s.pen.apply(c)
	case StageDRY:
		if !*dryReady {
			*dryReady = true
			s.dry.prepare(&s.hist)
		}
		s.dry.apply(c)
	case StageTopNSigma:
		c.topNSigma(s.nSigma)
	case StageTopK:
		c.topK(s.topK)
	case StageTypicalP:
		c.typical(s.typP, s.minKeep, s.scores, s.idx, s.tmp)
	case StageTopP:
		c.topP(s.topP, s.minKeep)
	case StageMinP:
		c.minP(s.minP, s.minKeep)
	case StageXTC:
		if xtcActive(s.xtcP, s.xtcT, len(c.d)) {
			c.xtc(s.xtcP, s.xtcT, s.minKeep, float32(s.rng.float64()))
		}
	case StageTemperature:
		c.tempExt(s.temp, s.dynRange, s.dynExp)
	}
}
