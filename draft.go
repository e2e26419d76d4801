package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/llm-go/llm/engine"
)

// ErrDraftIncompatible is wrapped by New's error when WithDraft names a
// model whose vocabulary differs from the pipeline model's.
var ErrDraftIncompatible = errors.New("llm: the draft model's vocabulary differs from the model's")

// Defaults of WithDraft, as llama-server's --draft-max and --draft-p-min.
const (
	// DefaultDraftTokens is the most tokens a draft model proposes per
	// step when WithDraft is given 0.
	DefaultDraftTokens = 16
	// MaxDraftTokens is the most WithDraft accepts.
	MaxDraftTokens = 64
	// draftPMin: the draft model stops proposing at a token it gives less
	// than this probability.
	draftPMin = 0.75
)

// WithDraft makes the pipeline decode speculatively with a draft model
// (llama.cpp's --model-draft): a small model of the same vocabulary (a
// local GGUF, a safetensors directory or a Hub name, as New takes) that
// proposes up to maxTokens tokens (0: DefaultDraftTokens) greedily at each
// step, stopping early at a token it is less than 75% sure of; the
// pipeline's model checks them all in the step's one batch and keeps them
// for as long as each token it samples is the proposed one. The output is
// exactly what it would be without a draft (token for token with the same
// sampler and seed); the speed gained depends on how often the draft is
// right and on a batch of several tokens costing the model little more
// than one, as on GPUs (a 2-core CPU gains nothing). The draft model gets
// the pipeline's context length; its GPU offload is fitted to the free GPU
// memory left by the model (none when the model is kept on the CPU with
// WithGPULayers(0)) unless WithDraftGPULayers says otherwise. It applies
// to every request; PromptLookup is ignored where it is set. New refuses
// (ErrUnsupportedModel) a model or draft with a recurrent memory (Mamba,
// RWKV), which cannot drop a rejected draft, and a draft that is not a
// decoder; a request whose tokens include one the draft's vocabulary lacks
// (up to 128 may differ) decodes without drafts.
func WithDraft(model string, maxTokens int) Option {
	return func(c *config) { c.draft, c.draftMax = model, maxTokens }
}

// WithDraftGPULayers sets how many of the draft model's layers go to GPUs
// (llama.cpp's --n-gpu-layers-draft): a count, AllLayers or AutoLayers.
func WithDraftGPULayers(n int) Option {
	return func(c *config) { c.draftLayers, c.draftLayersSet = n, true }
}

// drafter is a draft model's context: one sequence per pipeline sequence,
// whose memory follows that sequence's tokens.
type drafter struct {
	m      *engine.Model
	c      *engine.Context
	b      *engine.Batch
	held   [][]engine.Token // per sequence: the tokens its memory holds
	hist   [][]engine.Token // per sequence: scratch for the history drafted from
	reqs   []draftReq       // per sequence: reused requests
	max    int
	vocab  int  // the pipeline model's vocabulary size: larger ids are never proposed
	dvocab int  // the draft's: a history with larger ids is not drafted for
	warned bool // a failed draft decode was logged
}

// loadDrafter loads the draft model of cfg for a pipeline whose model is
// target, with parallel sequences of nCtx tokens each.
func loadDrafter(ctx context.Context, cfg *config, target *engine.Model, nCtx int) (*drafter, error) {
	if cfg.draftMax < 0 || cfg.draftMax > MaxDraftTokens {
		return nil, fmt.Errorf("llm: WithDraft(%s, %d): 0 to %d draft tokens", cfg.draft, cfg.draftMax, MaxDraftTokens)
	}
	if cfg.draftLayersSet && cfg.draftLayers < AutoLayers {
		return nil, fmt.Errorf("llm: WithDraftGPULayers(%d): a layer count, AllLayers or AutoLayers", cfg.draftLayers)
	}
	// The cheap refusals first: before a download, a conversion or a load.
	if target.IsRecurrent() {
		return nil, fmt.Errorf("llm: WithDraft(%s): the model has a recurrent memory, which cannot drop a rejected draft: %w", cfg.draft, ErrUnsupportedModel)
	}
	path, err := resolve(ctx, cfg.draft, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w (the draft model)", err) // resolve's errors say "llm: " already
	}
	vocab, err := engine.LoadModel(ctx, path, engine.ModelOptions{VocabOnly: true})
	if err != nil {
		return nil, fmt.Errorf("llm: draft model %s: %w", cfg.draft, err)
	}
	err = draftCompatible(target, vocab)
	vocab.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDraftIncompatible, cfg.draft, err)
	}
	copts := engine.ContextOptions{ContextLength: nCtx * cfg.parallel, MaxSequences: cfg.parallel, Threads: cfg.threads,
		FlashAttention: cfg.flashAttn}
	mopts := cfg.split
	mopts.NoRepack = cfg.noRepack
	fit := engine.Fit{Auto: true}
	switch {
	case cfg.draftLayersSet:
		fit.Auto = cfg.draftLayers == AutoLayers
		mopts.GPULayers = max(cfg.draftLayers, AllLayers)
	case cfg.gpuLayersSet && cfg.gpuLayers == 0:
		fit.Auto, mopts.GPULayers = false, 0 // the model stays on the CPU: so does its draft
	}
	note := cfg.note
	if note == nil {
		note = func(s string) { slog.Info("llm: GPU offload: "+s, "draft", cfg.draft) }
	}
	fit.Note = func(s string) { note("draft model: " + s) }
	m, c, err := engine.LoadFitted(ctx, path, mopts, copts, fit)
	if err != nil {
		return nil, fmt.Errorf("llm: draft model %s: %w", cfg.draft, err)
	}
	fail := func(err error) (*drafter, error) {
		c.Close()
		m.Close()
		return nil, err
	}
	if m.IsRecurrent() {
		return fail(fmt.Errorf("llm: WithDraft(%s): the draft has a recurrent memory, which cannot drop a rejected draft: %w", cfg.draft, ErrUnsupportedModel))
	}
	if i := m.Info(); !i.HasDecoder || i.HasEncoder {
		return fail(fmt.Errorf("llm: WithDraft(%s): not a decoder-only model: %w", cfg.draft, ErrUnsupportedModel))
	}
	b, err := engine.NewBatch(c.BatchSize(), 1)
	if err != nil {
		return fail(fmt.Errorf("llm: draft model: %w", err))
	}
	d := &drafter{m: m, c: c, b: b, held: make([][]engine.Token, cfg.parallel), hist: make([][]engine.Token, cfg.parallel),
		reqs: make([]draftReq, cfg.parallel), max: cfg.draftMax, vocab: target.VocabSize(), dvocab: m.VocabSize()}
	if d.max == 0 {
		d.max = DefaultDraftTokens
	}
	return d, nil
}

// draftCompatible checks that a draft model's tokens mean the same as the
// target's, as llama.cpp's speculative decoding requires: the same kind of
// vocabulary, the same BOS/EOS use, sizes within 128 tokens and the same
// text for every token id both have past the first five.
func draftCompatible(target, draft *engine.Model) error {
	ti, di := target.Info(), draft.Info()
	if ti.VocabType != di.VocabType {
		return fmt.Errorf("vocabulary type %v, the model's is %v", di.VocabType, ti.VocabType)
	}
	ts, ds := target.SpecialTokens(), draft.SpecialTokens()
	if ts.AddBOS != ds.AddBOS || ts.AddEOS != ds.AddEOS || (ts.AddBOS && ts.BOS != ds.BOS) || ts.EOS != ds.EOS {
		return fmt.Errorf("BOS/EOS tokens or their use differ (draft BOS %d EOS %d, model BOS %d EOS %d)", ds.BOS, ds.EOS, ts.BOS, ts.EOS)
	}
	tn, dn := target.VocabSize(), draft.VocabSize()
	if d := tn - dn; d > 128 || d < -128 {
		return fmt.Errorf("%d tokens, the model has %d", dn, tn)
	}
	for id := 5; id < min(tn, dn); id++ {
		a, err := target.TokenText(engine.Token(id))
		if err != nil {
			return err
		}
		b, err := draft.TokenText(engine.Token(id))
		if err != nil {
			return err
		}
		if a != b {
			return fmt.Errorf("token %d is %q, the model's is %q", id, b, a)
		}
	}
	return nil
}

func (d *drafter) close() {
	d.b.Close()
	d.c.Close()
	d.m.Close()
}

// draftReq asks for up to n tokens to follow history in sequence seq.
type draftReq struct {
	seq     engine.SeqID
	history []engine.Token
	n       int
	job     *job // the scheduler's request it is for

	out     []engine.Token
	pending engine.Token // proposed, to be decoded for the next proposal
	hasPend bool
	row     int // this round's batch row with the request's logits, or -1
	done    bool
}

// request returns the (reused) request of sequence seq for up to n tokens
// after tokens and then next, or nil when the history holds a token the
// draft's vocabulary lacks.
func (d *drafter) request(seq engine.SeqID, tokens []engine.Token, next engine.Token, n int) *draftReq {
	h := append(append(d.hist[seq][:0], tokens...), next)
	d.hist[seq] = h
	for _, t := range h[commonPrefix(d.held[seq], h):] {
		if int(t) >= d.dvocab {
			return nil
		}
	}
	r := &d.reqs[seq]
	r.seq, r.history, r.n = seq, h, n
	return r
}

// shift follows a context shift of sequence seq (see scheduler.shift):
// discard tokens after the first keep are dropped and the rest move back.
func (d *drafter) shift(seq engine.SeqID, keep, discard int) {
	h := d.held[seq]
	if len(h) <= keep+discard {
		d.held[seq] = h[:min(len(h), keep)]
		d.c.RemoveTokens(seq, engine.Pos(len(d.held[seq])), -1)
		return
	}
	ok, err := d.c.CanShift()
	if err == nil && ok {
		if _, err = d.c.RemoveTokens(seq, engine.Pos(keep), engine.Pos(keep+discard)); err == nil {
			err = d.c.ShiftPositions(seq, engine.Pos(keep+discard), -1, engine.Pos(-discard))
		}
	}
	if err != nil || !ok {
		d.c.RemoveTokens(seq, 0, -1)
		d.held[seq] = h[:0]
		return
	}
	d.held[seq] = append(h[:keep], h[keep+discard:]...)
}

// propose fills each request's out with the draft model's greedy
// continuation of its history: first the draft memory of each sequence is
// brought up to its history (keeping the prefix it already holds), then
// one token per request per decode, all requests in one batch, until each
// has n tokens or meets a token the draft is unsure of. On an error the
// draft memory of the requests' sequences is cleared and no request gets a
// draft.
func (d *drafter) propose(ctx context.Context, reqs []*draftReq) error {
	for _, r := range reqs {
		h := d.held[r.seq]
		k := commonPrefix(h, r.history)
		if k == len(r.history) {
			k-- // decoded again for its logits
		}
		if k < len(h) {
			if ok, err := d.c.RemoveTokens(r.seq, engine.Pos(k), -1); err != nil || !ok {
				if _, err := d.c.RemoveTokens(r.seq, 0, -1); err != nil {
					return d.fail(reqs, err)
				}
				k = 0
			}
		}
		d.held[r.seq] = h[:k]
		r.out, r.hasPend, r.done = r.out[:0], false, r.n <= 0
	}
	for pass := 0; ; pass++ {
		d.b.Clear()
		type added struct {
			r    *draftReq
			toks []engine.Token
		}
		var round []added
		for _, r := range reqs {
			r.row = -1
			if r.done || d.b.Len() >= d.b.Cap() {
				continue
			}
			held := len(d.held[r.seq])
			var toks []engine.Token
			if held < len(r.history) { // catching up with the history
				if pass > 0 {
					// One batch of catching up per step, as the model's own
					// prompts: the rest at the next steps, without drafts
					// meanwhile.
					r.done = true
					continue
				}
				end := min(len(r.history), held+d.b.Cap()-d.b.Len())
				toks = r.history[held:end]
			} else if r.hasPend {
				toks = []engine.Token{r.pending}
				r.hasPend = false
			} else {
				continue
			}
			for i, t := range toks {
				last := held+i == len(r.history)-1 || held+i >= len(r.history)
				if err := d.b.Add(t, engine.Pos(held+i), last, r.seq); err != nil {
					return d.fail(reqs, err)
				}
				if last {
					r.row = d.b.Len() - 1
				}
			}
			round = append(round, added{r, toks})
		}
		if len(round) == 0 {
			return nil
		}
		if err := d.c.Decode(ctx, d.b); err != nil {
			return d.fail(reqs, err)
		}
		for _, a := range round {
			d.held[a.r.seq] = append(d.held[a.r.seq], a.toks...)
			r := a.r
			if r.row < 0 {
				continue
			}
			logits, err := d.c.Logits(r.row)
			if err != nil {
				return d.fail(reqs, err)
			}
			tok, p := argmaxProb(logits)
			if p < draftPMin || int(tok) >= d.vocab {
				r.done = true
				continue
			}
			r.out = append(r.out, tok)
			if len(r.out) >= r.n {
				r.done = true
				continue
			}
			r.pending, r.hasPend = tok, true
		}
	}
}

// fail clears the draft memory of the requests' sequences and their
// drafts, and returns err.
func (d *drafter) fail(reqs []*draftReq, err error) error {
	for _, r := range reqs {
		d.c.RemoveTokens(r.seq, 0, -1)
		d.held[r.seq] = d.held[r.seq][:0]
		r.out, r.done = r.out[:0], true
	}
	return fmt.Errorf("llm: draft model: %w", err)
}

// argmaxProb returns the most likely token of logits and its probability
// among the ten most likely, as llama.cpp's draft sampler (top-k 10, then
// softmax) judges its confidence.
func argmaxProb(logits []float32) (engine.Token, float64) {
	const k = 10
	var top [k]int // indices of the k largest, in decreasing order
	n := 0
	for i, v := range logits {
		if n == k && v <= logits[top[k-1]] {
			continue
		}
		j := min(n, k-1)
		for j > 0 && logits[top[j-1]] < v {
			top[j] = top[j-1]
			j--
		}
		top[j] = i
		n = min(n+1, k)
	}
	mx := float64(logits[top[0]])
	var z float64
	for _, i := range top[:n] {
		z += math.Exp(float64(logits[i]) - mx)
	}
	return engine.Token(top[0]), 1 / z
}
