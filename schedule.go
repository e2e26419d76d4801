package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/sampler"
	"github.com/llm-go/llm/speculate"
)

// Stats is a snapshot of a pipeline's load.
type Stats struct {
	Parallel int // sequence slots (WithParallel)
	Running  int // requests holding a slot
	Waiting  int // requests queued for one
	Paused   int // running requests held back until their readers catch up
}

// Stats reports how many requests are running and waiting.
func (p *Pipeline) Stats() Stats {
	s := p.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Parallel: len(s.seqs), Running: s.running, Waiting: len(s.queue), Paused: s.paused}
}

// scheduler owns the pipeline's context and decodes every running request
// together, one batch per step (continuous batching). Only its goroutine
// touches the context, the batch and the sequences.
type scheduler struct {
	p     *Pipeline
	c     *engine.Context
	batch *engine.Batch
	// recurrent: the model's memory cannot drop its last tokens (Mamba,
	// RWKV, hybrids): sequences keep checkpoints to rewind to.
	recurrent bool
	seqs      []*sequence
	active    []*job
	history   []engine.Token  // scratch: a sequence's tokens, for drafting
	dm        *drafter        // the draft model (WithDraft), or nil
	dreqs     []*draftReq     // scratch: this step's draft requests, one per sequence
	exited    chan struct{}   // closed when loop returns
	ctx       context.Context // cancelled by Close, aborting a decode
	cancel    context.CancelFunc

	mu      sync.Mutex
	queue   []*job
	running int
	paused  int
	closed  bool          // the loop has ended: no more requests
	wake    chan struct{} // a request was queued (capacity 1)
}

// sequence is one sequence slot of the context.
type sequence struct {
	id     engine.SeqID
	tokens []engine.Token // what its KV memory holds
	busy   bool
	// ckpt, with a recurrent model, is its state after its first ckptLen
	// tokens (a recent prompt's all but its last token), to rewind to:
	// valid while tokens still begins with those it was taken after.
	ckpt    *engine.Checkpoint
	ckptLen int
}

// minCheckpoint is the fewest tokens a checkpoint is taken after: a
// shorter prompt costs less to decode again than the checkpoint (an extra
// decode step to stop before the prompt's last token, and a copy of the
// recurrent state).
const minCheckpoint = 32

// truncate keeps q's first n tokens (the memory past them already
// dropped), forgetting a checkpoint past them.
func (q *sequence) truncate(n int) {
	q.tokens = q.tokens[:n]
	if n < q.ckptLen {
		q.ckpt, q.ckptLen = nil, 0
	}
}

// job is one request. The fields above mail belong to the scheduler.
type job struct {
	ctx   context.Context
	ids   []engine.Token
	g     genConfig
	start time.Time

	seq        *sequence
	next       int // index in ids of the next prompt token to decode
	feed       engine.Token
	feeding    bool           // feed is to be decoded at the next step
	waits      bool           // this step: feeding, but its reader is behind
	draft      []engine.Token // guesses decoded after feed, to be checked (PromptLookup)
	unverified int            // draft tokens at the end of seq.tokens not yet accepted
	lookahead  int            // the most draft tokens of the next step
	row        int            // the batch row with this job's logits, or -1
	smp        *sampler.Sampler
	detok      *engine.Detokenizer
	stop       stopMatcher
	res        *Result
	stopped    bool // by a stop string
	prefillAt  time.Time
	generateAt time.Time

	mail mailbox
}

// mailbox carries a job's chunks from the scheduler to its caller without
// ever blocking the scheduler on a slow reader.
type mailbox struct {
	mu     sync.Mutex
	chunks []Chunk
	res    *Result
	err    error
	done   bool
	gone   bool          // the caller stopped reading
	wake   chan struct{} // something arrived (capacity 1)
}

func (m *mailbox) post(c Chunk) {
	m.mu.Lock()
	m.chunks = append(m.chunks, c)
	m.mu.Unlock()
	m.notify()
}

func (m *mailbox) finish(res *Result, err error) {
	m.mu.Lock()
	m.res, m.err, m.done = res, err, true
	m.mu.Unlock()
	m.notify()
}

func (m *mailbox) notify() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// leave tells the scheduler the caller is no longer reading.
func (m *mailbox) leave() {
	m.mu.Lock()
	m.gone = true
	m.mu.Unlock()
}

// backlog is how many chunks wait for the caller.
func (m *mailbox) backlog() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.chunks)
}

// maxBacklog is how many chunks a request may have waiting for a slow
// reader before its sequence pauses (the others go on).
const maxBacklog = 256

func (m *mailbox) left() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gone
}

func newScheduler(p *Pipeline, c *engine.Context) (*scheduler, error) {
	if p.cfg.parallel > c.BatchSize() {
		c.Close()
		return nil, fmt.Errorf("WithParallel(%d): more sequences than a batch holds (%d)", p.cfg.parallel, c.BatchSize())
	}
	b, err := engine.NewBatch(c.BatchSize(), 1)
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &scheduler{p: p, c: c, batch: b, exited: make(chan struct{}), wake: make(chan struct{}, 1), recurrent: p.model.IsRecurrent()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for i := range p.cfg.parallel {
		s.seqs = append(s.seqs, &sequence{id: engine.SeqID(i)})
	}
	return s, nil
}

// run queues a generation of ids and passes its text to yield as the
// scheduler makes it. When yield returns false the request ends at the
// next step and run returns what was made so far.
func (p *Pipeline) run(ctx context.Context, ids []engine.Token, opts []GenerateOption, yield func(Chunk, error) bool) (*Result, error) {
	start := time.Now()
	g, err := p.genConfig(opts)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("llm: the model adds no BOS token: %w", ErrEmptyPrompt)
	}
	if len(ids) >= p.nCtx {
		return nil, fmt.Errorf("llm: the prompt is %d tokens, the context holds %d: %w", len(ids), p.nCtx, ErrPromptTooLong)
	}
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	j := &job{ctx: ctx, ids: ids, g: g, start: start, row: -1}
	j.mail.wake = make(chan struct{}, 1)
	s := p.sched
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.queue = append(s.queue, j)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}

	var pending []Chunk
	for {
		select {
		case <-j.mail.wake:
		case <-ctx.Done():
			j.mail.leave()
			s.poke()
			return nil, ctx.Err()
		}
		j.mail.mu.Lock()
		pending, j.mail.chunks = append(pending[:0], j.mail.chunks...), j.mail.chunks[:0]
		done, res, err := j.mail.done, j.mail.res, j.mail.err
		j.mail.mu.Unlock()
		if len(pending) >= maxBacklog {
			s.poke() // a paused sequence may go on
		}
		for _, c := range pending {
			if !yield(c, nil) {
				j.mail.leave()
				s.poke()
				return nil, nil
			}
		}
		if done {
			return res, err
		}
	}
}

// poke wakes the scheduler if it is idle, so that it notices a departure.
func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop is the scheduler's goroutine: it admits queued requests to free
// sequences and decodes one batch per step until the pipeline closes.
func (s *scheduler) loop() {
	defer close(s.exited)
	for {
		select {
		case <-s.p.done:
			s.closeAll()
			return
		default:
		}
		s.admit()
		if len(s.active) == 0 {
			select {
			case <-s.wake:
			case <-s.p.done:
			}
			continue
		}
		s.step()
	}
}

// closeAll ends every request with ErrClosed.
func (s *scheduler) closeAll() {
	for _, j := range s.active {
		s.end(j, ErrClosed)
	}
	for _, q := range s.seqs {
		q.ckpt, q.ckptLen = nil, 0
	}
	s.mu.Lock()
	q := s.queue
	s.queue, s.closed = nil, true // run queues nothing more
	s.mu.Unlock()
	for _, j := range q {
		j.mail.finish(nil, ErrClosed)
	}
}

// admit drops queued requests whose callers left and gives free sequences
// to the oldest waiting ones.
func (s *scheduler) admit() {
	s.mu.Lock()
	q := s.queue[:0]
	var gone []*job
	for _, j := range s.queue {
		if j.ctx.Err() != nil || j.mail.left() {
			gone = append(gone, j)
		} else {
			q = append(q, j)
		}
	}
	s.queue = q
	var admitted []*job
	for len(s.queue) > 0 && len(s.active)+len(admitted) < len(s.seqs) {
		admitted = append(admitted, s.queue[0])
		s.queue = s.queue[1:]
	}
	s.running = len(s.active) + len(admitted)
	s.mu.Unlock()
	for _, j := range gone {
		j.mail.finish(nil, context.Cause(j.ctx))
	}
	for _, j := range admitted {
		if err := s.start(j); err != nil {
			j.mail.finish(nil, err)
			s.setRunning()
			continue
		}
		s.active = append(s.active, j)
	}
}

func (s *scheduler) setRunning() {
	s.mu.Lock()
	s.running = len(s.active)
	if s.running == 0 {
		s.paused = 0
	}
	s.mu.Unlock()
}

// start gives j the free sequence whose memory shares the longest prefix
// with its prompt, and keeps that prefix; of sequences that keep as much,
// the one holding the fewest tokens, so that longer memories stay for
// later requests. A recurrent model's memory cannot drop its last tokens:
// there a sequence keeps its whole memory when that begins the prompt, or
// else rewinds to its checkpoint when the tokens before it begin the
// prompt (the same prompt again, or a conversation whose last answer came
// back other than it was written).
func (s *scheduler) start(j *job) error {
	var best *sequence
	bestKeep, rewind := -1, false
	recurrent := s.recurrent
	for _, q := range s.seqs {
		if q.busy {
			continue
		}
		k, r := commonPrefix(q.tokens, j.ids), false
		if recurrent && (k < len(q.tokens) || k >= len(j.ids)) {
			k = 0 // cleared below
			if q.ckpt != nil && q.ckptLen < len(j.ids) && commonPrefix(q.tokens[:q.ckptLen], j.ids) == q.ckptLen {
				k, r = q.ckptLen, true
			}
		}
		better := k > bestKeep || (k == bestKeep && len(q.tokens) < len(best.tokens))
		if k == 0 && bestKeep == 0 && (q.ckpt == nil) != (best.ckpt == nil) {
			better = q.ckpt == nil // a checkpoint kept for later is worth more than tokens
		}
		if better {
			best, bestKeep, rewind = q, k, r
		}
	}
	j.g.sampling.ContextSize = s.p.nCtx
	smp, err := sampler.New(j.g.sampling, s.p.model)
	if err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	if err := smp.AddHistory(j.ids); err != nil {
		smp.Close()
		return fmt.Errorf("llm: %w", err)
	}
	keep := bestKeep
	if keep == len(j.ids) {
		keep-- // the last prompt token is decoded again for its logits
	}
	var kept bool
	if rewind {
		err := s.c.RestoreCheckpoint(best.id, best.ckpt)
		if err != nil {
			slog.Debug("llm: checkpoint not restored", "seq", best.id, "err", err)
		}
		kept = err == nil
	} else {
		ok, err := s.c.RemoveTokens(best.id, engine.Pos(keep), -1)
		kept = ok && err == nil
	}
	if !kept {
		keep = 0
		if _, err := s.c.RemoveTokens(best.id, 0, -1); err != nil {
			smp.Close()
			return fmt.Errorf("llm: %w", err)
		}
	}
	best.truncate(keep)
	if recurrent && keep == len(j.ids)-1 && keep >= minCheckpoint && best.ckptLen != keep {
		s.checkpoint(best) // the kept memory ends just before the last prompt token
	}
	best.busy = true
	j.seq, j.next, j.smp = best, keep, smp
	j.lookahead = j.g.lookup
	if s.dm != nil {
		j.lookahead = s.dm.max
	}
	if recurrent {
		j.lookahead = 0 // its memory cannot drop a rejected draft
	}
	j.detok = s.p.model.NewDetokenizer(false)
	j.stop = stopMatcher{stops: j.g.stops}
	j.res = &Result{Model: s.p.name, Timings: Timings{PromptTokens: len(j.ids), PromptEvaluated: len(j.ids) - keep}}
	j.prefillAt = time.Now()
	return nil
}

// checkpoint keeps q's recurrent state after the tokens it holds, in place
// of (and in the memory of) an older checkpoint; without one (llama.cpp
// gave no state) a later prompt is decoded from where start can keep.
func (s *scheduler) checkpoint(q *sequence) {
	cp, err := s.c.Checkpoint(q.id, q.ckpt)
	switch {
	case err != nil:
		slog.Debug("llm: no checkpoint", "seq", q.id, "err", err)
		cp = nil
	case int(cp.Pos())+1 != len(q.tokens):
		slog.Debug("llm: no checkpoint: the state's position is not the sequence's", "seq", q.id, "pos", cp.Pos(), "tokens", len(q.tokens))
		cp = nil
	}
	q.ckpt, q.ckptLen = cp, 0
	if cp != nil {
		q.ckptLen = len(q.tokens)
	}
}

func commonPrefix(a, b []engine.Token) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// step decodes one batch: the next token of every generating request
// first, then prompt chunks of the others as far as the batch holds, and
// samples every request whose logits it computed.
func (s *scheduler) step() {
	// Requests whose callers left end here, within one step.
	s.active = slices.DeleteFunc(s.active, func(j *job) bool {
		if err := j.ctx.Err(); err != nil || j.mail.left() {
			s.release(j)
			j.mail.finish(nil, context.Cause(j.ctx))
			return true
		}
		return false
	})
	s.setRunning()
	if len(s.active) == 0 {
		return
	}
	b := s.batch
	b.Clear()
	type span struct {
		j    *job
		from int // first batch row of j's tokens
		n    int
	}
	var spans []span
	paused := 0
	// A slow reader's sequence waits a step; decided once per step, as
	// its reader may catch up meanwhile.
	feeds := 0 // generating requests still to be given a row
	for _, j := range s.active {
		j.row, j.waits = -1, j.feeding && j.mail.backlog() >= maxBacklog
		if j.feeding && !j.waits {
			feeds++
		}
	}
	// Drafts take at most half the batch, leaving room for prompts.
	draftRoom := b.Cap() / 2
	if s.dm != nil {
		s.propose(b.Cap(), feeds, draftRoom)
	}
	for _, j := range s.active {
		if j.waits {
			paused++
			continue
		}
		if j.feeding {
			feeds--
			pos := len(j.seq.tokens)
			if b.Add(j.feed, engine.Pos(pos), true, j.seq.id) != nil {
				continue // no room (cannot happen: a row is kept per feed)
			}
			j.row = b.Len() - 1
			if room := min(b.Cap()-b.Len()-feeds, draftRoom); s.dm == nil {
				j.draft = s.draft(j, room)
			} else if len(j.draft) > room {
				j.draft = j.draft[:room]
			}
			for i, t := range j.draft {
				if b.Add(t, engine.Pos(pos+1+i), true, j.seq.id) != nil {
					j.draft = j.draft[:i]
					break
				}
			}
			draftRoom -= len(j.draft)
			spans = append(spans, span{j, j.row, 1 + len(j.draft)})
		}
	}
	recurrent := s.recurrent
	for _, j := range s.active {
		if j.feeding || j.next >= len(j.ids) || b.Len() >= b.Cap() {
			continue
		}
		from := b.Len()
		end := min(len(j.ids), j.next+b.Cap()-from)
		if recurrent && j.next < len(j.ids)-1 && len(j.ids)-1 >= minCheckpoint {
			end = min(end, len(j.ids)-1) // a checkpoint before the last token
		}
		for i := j.next; i < end; i++ {
			b.Add(j.ids[i], engine.Pos(i), i == len(j.ids)-1, j.seq.id)
		}
		if end == len(j.ids) {
			j.row = b.Len() - 1
		}
		spans = append(spans, span{j, from, end - j.next})
	}
	s.mu.Lock()
	s.paused = paused
	s.mu.Unlock()
	if len(spans) == 0 {
		// Every running request waits for its reader: sleep until one
		// reads, leaves or a request comes.
		select {
		case <-s.wake:
		case <-s.p.done:
		}
		return
	}
	if err := s.c.Decode(s.ctx, b); err != nil {
		if errors.Is(err, engine.ErrAborted) && s.p.checkOpen() != nil {
			return // Close is ending everything
		}
		// The batch's sequences are in an unknown state: forget them and
		// fail their requests.
		for _, sp := range spans {
			s.c.RemoveTokens(sp.j.seq.id, 0, -1)
			sp.j.seq.truncate(0)
			sp.j.draft, sp.j.unverified = nil, 0
			s.end(sp.j, fmt.Errorf("llm: %w", err))
		}
		s.active = slices.DeleteFunc(s.active, func(j *job) bool { return j.res == nil })
		s.setRunning()
		return
	}
	for _, sp := range spans {
		j := sp.j
		if j.feeding && j.row == sp.from {
			j.seq.tokens = append(append(j.seq.tokens, j.feed), j.draft...)
			j.unverified = len(j.draft)
			j.feeding = false
		} else {
			j.seq.tokens = append(j.seq.tokens, j.ids[j.next:j.next+sp.n]...)
			j.next += sp.n
			if recurrent && j.next == len(j.ids)-1 && j.next >= minCheckpoint && j.seq.ckptLen != j.next {
				s.checkpoint(j.seq)
			}
			if j.next == len(j.ids) {
				j.generateAt = time.Now()
				j.res.Timings.PromptDuration = j.generateAt.Sub(j.prefillAt)
			}
		}
	}
	for _, j := range s.active {
		if j.row >= 0 {
			s.sample(j)
		}
	}
	s.active = slices.DeleteFunc(s.active, func(j *job) bool { return j.res == nil })
	s.setRunning()
}

// sample draws j's next token from its logits row, and, where the step
// checked a draft, the tokens after it for as long as each sampled token is
// the drafted one (its memory is then already made); it decides whether
// the request goes on.
func (s *scheduler) sample(j *job) {
	draft := j.draft
	j.draft = nil
	for i := 0; ; i++ {
		tok, live := s.emit(j, j.row+i)
		if !live {
			return // finished: release dropped the unchecked draft
		}
		if i < len(draft) && tok == draft[i] {
			j.unverified--
			j.res.Timings.DraftAccepted++
			continue
		}
		if len(draft) > 0 && s.dm == nil {
			// As transformers' heuristic schedule: draft more after a
			// draft kept whole, less after one cut short.
			if i == len(draft) {
				j.lookahead = min(j.lookahead+2, j.g.lookup)
			} else {
				j.lookahead = max(j.lookahead-1, 1)
			}
		}
		if err := s.dropDraft(j); err != nil {
			s.end(j, err)
			return
		}
		s.next(j, tok)
		return
	}
}

// emit samples j's token from the logits of batch row row and passes it
// on: the text, its log-probability, and the end of the request at an
// end-of-generation token, a stop string or the token limit. live is false
// when the request ended.
func (s *scheduler) emit(j *job, row int) (tok engine.Token, live bool) {
	res := j.res
	if j.g.maxTokens >= 0 && len(res.Tokens) >= j.g.maxTokens {
		s.finish(j, FinishLength)
		return 0, false
	}
	logits, err := s.c.Logits(row)
	if err != nil {
		s.end(j, fmt.Errorf("llm: %w", err))
		return 0, false
	}
	tok, err = j.smp.Sample(logits)
	if err != nil {
		s.end(j, fmt.Errorf("llm: %w", err))
		return 0, false
	}
	if len(res.Tokens) == 0 {
		res.Timings.TimeToFirstToken = time.Since(j.start)
	}
	if s.p.model.IsEOG(tok) {
		s.finish(j, FinishStop)
		return 0, false
	}
	res.Tokens = append(res.Tokens, tok)
	piece, err := j.detok.Next(tok)
	if err != nil {
		s.end(j, fmt.Errorf("llm: %w", err))
		return 0, false
	}
	out, stopped := j.stop.push(piece)
	var lp *TokenLogprob
	if j.g.logprobs >= 0 {
		l := s.logprob(j, logits, tok)
		res.Logprobs = append(res.Logprobs, l)
		lp = &res.Logprobs[len(res.Logprobs)-1]
	}
	if out != "" || lp != nil {
		j.mail.post(Chunk{Text: out, Token: tok, Logprob: lp})
	}
	switch {
	case stopped:
		j.stopped = true
		s.finish(j, FinishStop)
		return 0, false
	case j.g.maxTokens >= 0 && len(res.Tokens) >= j.g.maxTokens:
		s.finish(j, FinishLength)
		return 0, false
	}
	return tok, true
}

// next makes tok, sampled but not yet in j's memory, the token j decodes
// at the next step, making room first when the context is full.
func (s *scheduler) next(j *job, tok engine.Token) {
	if len(j.seq.tokens) >= s.p.nCtx {
		if j.g.policy&ShiftWindow == 0 {
			s.finish(j, FinishLength) // the context is full
			return
		}
		n, err := s.shift(j.seq)
		if err != nil {
			s.end(j, err)
			return
		}
		j.res.Shifted += n
	}
	j.feed, j.feeding = tok, true
}

// draft returns the tokens j checks after its next one this step
// (PromptLookup), at most room, nor more than its context, its token limit
// or its lookahead allow.
func (s *scheduler) draft(j *job, room int) []engine.Token {
	n := s.draftLimit(j, room)
	if n <= 0 {
		return nil
	}
	s.history = append(append(s.history[:0], j.seq.tokens...), j.feed)
	// A copy: the draft is part of the scratch history, which the next
	// request's draft reuses.
	d := slices.Clone(speculate.Lookup{}.Draft(s.history, n))
	j.res.Timings.DraftTokens += len(d)
	return d
}

// draftLimit is the most draft tokens j may check this step: at most room,
// nor more than its context, its token limit or its lookahead allow.
func (s *scheduler) draftLimit(j *job, room int) int {
	n := min(j.lookahead, room, s.p.nCtx-1-len(j.seq.tokens))
	if j.g.maxTokens >= 0 {
		n = min(n, j.g.maxTokens-len(j.res.Tokens)-1)
	}
	return n
}

// propose has the draft model propose the drafts of every generating
// request that decodes this step, in the batch rows they may take (a
// batch of capacity rows, with feeds requests to be given a row and at
// most room draft tokens), as step lays them out.
func (s *scheduler) propose(rows, feeds, room int) {
	reqs := s.dreqs[:0]
	used := 0
	for _, j := range s.active {
		j.draft = nil
		if !j.feeding || j.waits {
			continue
		}
		feeds--
		used++
		n := s.draftLimit(j, min(rows-used-feeds, room))
		if n <= 0 {
			continue
		}
		used += n
		room -= n
		r := s.dm.request(j.seq.id, j.seq.tokens, j.feed, n)
		if r == nil {
			continue // a token the draft does not know
		}
		r.job = j
		reqs = append(reqs, r)
	}
	s.dreqs = reqs
	if len(reqs) == 0 {
		return
	}
	if err := s.dm.propose(s.ctx, reqs); err != nil && s.ctx.Err() == nil {
		if !s.dm.warned {
			slog.Warn("llm: the draft model failed; those requests go on without drafts", "error", err)
			s.dm.warned = true
		} else {
			slog.Debug("llm: the draft model failed", "error", err)
		}
	}
	for _, r := range reqs {
		j := r.job
		j.draft = slices.Clone(r.out)
		j.res.Timings.DraftTokens += len(j.draft)
		r.job = nil
	}
}

// dropDraft removes j's unaccepted draft tokens from its sequence's
// memory.
func (s *scheduler) dropDraft(j *job) error {
	n := j.unverified
	j.unverified = 0
	if n == 0 || j.seq == nil {
		return nil
	}
	q := j.seq
	from := len(q.tokens) - n
	if ok, err := s.c.RemoveTokens(q.id, engine.Pos(from), -1); err != nil || !ok {
		// A memory that cannot drop its last tokens (a recurrent model's):
		// forget the sequence.
		s.c.RemoveTokens(q.id, 0, -1)
		q.truncate(0)
		return fmt.Errorf("llm: PromptLookup needs a model whose memory can drop tokens: %w", ErrUnsupportedModel)
	}
	q.truncate(from)
	return nil
}

// logprob computes the log-probability of tok and the top alternatives.
func (s *scheduler) logprob(j *job, logits []float32, tok engine.Token) TokenLogprob {
	maxL := float32(math.Inf(-1))
	for _, l := range logits {
		maxL = max(maxL, l)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l - maxL))
	}
	norm := float64(maxL) + math.Log(sum)
	lp := TokenLogprob{Token: tok, Text: s.piece(tok), Logprob: float64(logits[tok]) - norm}
	if n := j.g.logprobs; n > 0 {
		top := make([]engine.Token, 0, n+1)
		for i, l := range logits {
			if len(top) == n && l <= logits[top[n-1]] {
				continue
			}
			at, _ := slices.BinarySearchFunc(top, l, func(t engine.Token, l float32) int {
				if logits[t] > l {
					return -1
				}
				return 1
			})
			top = slices.Insert(top, at, engine.Token(i))
			if len(top) > n {
				top = top[:n]
			}
		}
		for _, t := range top {
			lp.Top = append(lp.Top, TokenLogprob{Token: t, Text: s.piece(t), Logprob: float64(logits[t]) - norm})
		}
	}
	return lp
}

func (s *scheduler) piece(t engine.Token) string {
	b, err := s.p.model.TokenToPiece(t, false)
	if err != nil {
		return ""
	}
	return string(b)
}

// finish ends j normally: text held back for an unfinished character or a
// possible stop string is flushed, unless a stop string ended it.
func (s *scheduler) finish(j *job, why FinishReason) {
	res := j.res
	res.FinishReason = why
	if !j.stopped {
		out, stopped := j.stop.push(j.detok.Flush())
		if stopped {
			res.FinishReason = FinishStop
		} else {
			out += j.stop.flush()
		}
		if out != "" {
			j.mail.post(Chunk{Text: out, Token: -1})
		}
	}
	res.Timings.GeneratedTokens = len(res.Tokens)
	if !j.generateAt.IsZero() {
		res.Timings.GenerateDuration = time.Since(j.generateAt)
	}
	s.release(j)
	j.res = nil
	j.mail.finish(res, nil)
}

// end fails j.
func (s *scheduler) end(j *job, err error) {
	s.release(j)
	j.res = nil
	j.mail.finish(nil, err)
}

// release frees j's sequence, keeping what its memory holds for reuse
// (without a draft it did not accept).
func (s *scheduler) release(j *job) {
	s.dropDraft(j)
	j.draft = nil
	if j.seq != nil {
		j.seq.busy = false
		j.seq = nil
	}
	if j.smp != nil {
		j.smp.Close()
		j.smp = nil
	}
}

// shift discards the older half of q's tokens after the first and moves
// the rest down, freeing room to generate; it returns how many tokens were
// discarded.
func (s *scheduler) shift(q *sequence) (int, error) {
	const keep = 1
	discard := (len(q.tokens) - keep) / 2
	if s.recurrent {
		// llama.cpp would shift the attention layers of a hybrid, but the
		// recurrent state keeps what the discarded tokens left in it (and
		// Granite 4.0-H's position-free keys would be rotated as RoPE's).
		return 0, fmt.Errorf("llm: this model's context cannot shift: its recurrent memory cannot discard tokens: %w", ErrPromptTooLong)
	}
	if positionFree(s.p.model) {
		return 0, fmt.Errorf("llm: this model's context cannot shift: its attention has no positions, and llama.cpp's shift would rotate its keys as RoPE's: %w", ErrPromptTooLong)
	}
	if ok, err := s.c.CanShift(); err != nil || !ok {
		return 0, fmt.Errorf("llm: this model's context cannot shift: %w", ErrPromptTooLong)
	}
	if _, err := s.c.RemoveTokens(q.id, keep, engine.Pos(keep+discard)); err != nil {
		return 0, fmt.Errorf("llm: %w", err)
	}
	if err := s.c.ShiftPositions(q.id, engine.Pos(keep+discard), -1, engine.Pos(-discard)); err != nil {
		return 0, fmt.Errorf("llm: %w", err)
	}
	q.tokens = append(q.tokens[:keep], q.tokens[keep+discard:]...)
	q.ckpt, q.ckptLen = nil, 0 // its tokens moved
	if s.dm != nil {
		s.dm.shift(q.id, keep, discard)
	}
	return discard, nil
}

// positionFree reports whether the model's attention has no positions (a
// Granite model with rope.scaling.finetuned false), whose cached keys
// llama.cpp's context shift would still rotate as RoPE keys (their arch's
// rope type), changing what they attend to.
func positionFree(m *engine.Model) bool {
	h := m.Header()
	arch := h.Architecture()
	if !strings.HasPrefix(arch, "granite") {
		return false
	}
	rope, ok := h.Bool(arch + ".rope.scaling.finetuned")
	return ok && !rope
}
