package llm_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/synth"
)

// recurrentShape is a tiny IBM Granite 4.0-H (llama.cpp's granitehybrid):
// Mamba-2 layers around one attention layer without positions, experts
// beside a shared MLP. Its own output matrix (the real models tie it to
// the embeddings) makes the random model write varied tokens that depend
// on what came before, so that a wrong memory shows in the output.
var recurrentShape = synth.Shape{Name: "tiny-granite", Arch: "granitehybrid", Vocab: 1000, Embd: 64, FF: 32, Layers: 4, Heads: 4, KVHeads: 2,
	Context: 512, RopeTheta: 10000, NormEps: 1e-5, Experts: 4, ExpertsUsed: 2, SharedFF: 64,
	AttnLayers: []int{1}, SSMHeads: 8, SSMState: 16, SSMGroups: 1, SSMConv: 4}

// recurrentModel writes the tiny Granite 4.0-H model (F32) for one test.
func recurrentModel(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "granite.gguf")
	if err := synth.Write(context.Background(), path, recurrentShape, synth.Options{F32: true, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	return path
}

// openRecurrent opens a pipeline of the model at path, on one thread,
// closed when the test ends.
func openRecurrent(t *testing.T, path string, opts ...llm.Option) *llm.Pipeline {
	t.Helper()
	p, err := llm.New(context.Background(), path, append([]llm.Option{llm.WithThreads(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if !p.Model().IsRecurrent() {
		t.Fatal("the granitehybrid model is not recurrent")
	}
	return p
}

// recGreedy continues ids greedily, at most n tokens.
func recGreedy(t *testing.T, p *llm.Pipeline, ids []llm.Token, n int, opts ...llm.GenerateOption) *llm.Result {
	t.Helper()
	res, err := p.GenerateTokens(context.Background(), ids, append([]llm.GenerateOption{llm.Temperature(0), llm.MaxTokens(n)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// recFresh is what a new pipeline makes of ids: the reference every reuse of
// a sequence's memory must give.
func recFresh(t *testing.T, path string, ids []llm.Token, n int, opts ...llm.GenerateOption) *llm.Result {
	t.Helper()
	p := openRecurrent(t, path)
	defer p.Close()
	return recGreedy(t, p, ids, n, opts...)
}

// recTokens makes a prompt: BOS, then n tokens from seed.
func recTokens(seed, n int) []llm.Token {
	ids := []llm.Token{1}
	for i := range n {
		ids = append(ids, llm.Token(260+(seed*131+i*37+i*i*7)%740))
	}
	return ids
}

func recSame(t *testing.T, what string, got, want *llm.Result) {
	t.Helper()
	if !slices.Equal(got.Tokens, want.Tokens) {
		t.Errorf("%s: tokens %v\nwant %v", what, got.Tokens, want.Tokens)
	}
}

func recCat(parts ...[]llm.Token) []llm.Token { return slices.Concat(parts...) }

// TestRecurrentMemoryReuse: a prompt gives on a pipeline that served other
// requests what it gives on a new one. A recurrent memory cannot drop the
// end of a sequence, so a sequence sharing only a prefix with the prompt
// (here its BOS) is cleared and the prompt decoded whole; one holding the
// whole prompt, whose last token must be decoded again for its logits,
// rewinds to its checkpoint after the prompt's other tokens.
func TestRecurrentMemoryReuse(t *testing.T) {
	path := recurrentModel(t)
	prompt, other := recTokens(1, 40), recTokens(2, 25)
	want := recFresh(t, path, prompt, 32)
	if len(want.Tokens) < 16 || len(slices.Compact(slices.Clone(want.Tokens))) < 4 {
		t.Fatalf("the model's output is too poor to test with: %v", want.Tokens)
	}

	p := openRecurrent(t, path)
	recGreedy(t, p, other, 20)
	got := recGreedy(t, p, prompt, 32)
	recSame(t, "after another prompt", got, want)
	if got.Timings.PromptEvaluated != len(prompt) {
		t.Errorf("after another prompt: %d of %d prompt tokens decoded, want all (only the BOS was shared)", got.Timings.PromptEvaluated, len(prompt))
	}
	// The same prompt again: the sequence holds it and more; it rewinds to
	// its checkpoint and decodes the last prompt token.
	again := recGreedy(t, p, prompt, 32)
	recSame(t, "the same prompt again", again, want)
	if again.Timings.PromptEvaluated != 1 {
		t.Errorf("the same prompt again: %d of %d prompt tokens decoded, want 1", again.Timings.PromptEvaluated, len(prompt))
	}
	// A sequence holding exactly the prompt (MaxTokens(0) decodes it and
	// stops): the same.
	if res := recGreedy(t, p, prompt, 0); len(res.Tokens) != 0 {
		t.Fatalf("MaxTokens(0): %v", res.Tokens)
	}
	exact := recGreedy(t, p, prompt, 32)
	recSame(t, "after the prompt alone", exact, want)
	if exact.Timings.PromptEvaluated != 1 {
		t.Errorf("after the prompt alone: %d of %d prompt tokens decoded, want 1", exact.Timings.PromptEvaluated, len(prompt))
	}
	// A sequence holding a prefix of the prompt, and nothing more, is kept:
	// only the rest is decoded.
	recGreedy(t, p, prompt[:20], 0)
	prefix := recGreedy(t, p, prompt, 32)
	recSame(t, "after a prefix of the prompt", prefix, want)
	if prefix.Timings.PromptEvaluated != len(prompt)-20 {
		t.Errorf("after a prefix: %d prompt tokens decoded, want %d", prefix.Timings.PromptEvaluated, len(prompt)-20)
	}

	// A reader that leaves mid-way: the sequence holds what was decoded
	// by then (the scheduler does not wait for readers: some or all of the
	// answer), which the next prompt extends or ends inside.
	read := 0
	for _, err := range p.StreamTokens(context.Background(), prompt, llm.Temperature(0), llm.MaxTokens(32)) {
		if err != nil {
			t.Fatal(err)
		}
		if read++; read == 5 {
			break
		}
	}
	longer := recCat(prompt, want.Tokens[:20])
	recSame(t, "extending a stream left mid-way", recGreedy(t, p, longer, 12), recFresh(t, path, longer, 12))

	// Text prompts, as Generate tokenizes them.
	text := "Once upon a time there was a granite hill"
	wantText, err := openRecurrent(t, path).Generate(context.Background(), text, llm.Temperature(0), llm.MaxTokens(24))
	if err != nil {
		t.Fatal(err)
	}
	for i, prev := range []string{"An unrelated story about the sea", text, "Once upon a time"} {
		if _, err := p.Generate(context.Background(), prev, llm.Temperature(0), llm.MaxTokens(10)); err != nil {
			t.Fatal(err)
		}
		res, err := p.Generate(context.Background(), text, llm.Temperature(0), llm.MaxTokens(24))
		if err != nil {
			t.Fatal(err)
		}
		recSame(t, fmt.Sprintf("text after %d", i), res, wantText)
		if res.Text != wantText.Text {
			t.Errorf("text after %d: %q, want %q", i, res.Text, wantText.Text)
		}
	}
}

// TestRecurrentMultiTurn: a prompt that extends what a sequence holds (the
// previous prompt and answer: the next turn of a conversation) decodes
// only its new tokens and gives what a new pipeline gives for the whole
// prompt; one that leaves the sequence in the middle (an edited
// conversation) is decoded from the sequence's checkpoint (the previous
// prompt but its last token) when it begins with what came before it, and
// whole otherwise, never continuing the state past the divergence.
func TestRecurrentMultiTurn(t *testing.T) {
	path := recurrentModel(t)
	p := openRecurrent(t, path)
	ids := recTokens(3, 24)
	var held int         // tokens the sequence's memory holds
	var last []llm.Token // the last prompt: the checkpoint is after all but its last token
	for turn := range 4 {
		last = ids
		res := recGreedy(t, p, ids, 12)
		recSame(t, fmt.Sprintf("turn %d", turn), res, recFresh(t, path, ids, 12))
		if want := len(ids) - held; turn > 0 && res.Timings.PromptEvaluated != want {
			t.Errorf("turn %d: %d prompt tokens decoded, want %d (the rest reused)", turn, res.Timings.PromptEvaluated, want)
		}
		if len(res.Tokens) == 0 {
			t.Fatalf("turn %d: no tokens", turn)
		}
		// The memory holds the prompt and the answer but its last token,
		// which was sampled and not decoded.
		held = len(ids) + len(res.Tokens) - 1
		ids = recCat(ids, res.Tokens, recTokens(10+turn, 5))
	}

	// Diverging in the middle of what the sequence holds: from the first
	// prompt's last token on, then in the last answer.
	for i := range 2 {
		at := 24
		if i == 1 {
			at = len(ids) - 8
		}
		edited := recCat(ids[:at], recTokens(20+at, 6)[1:])
		want := len(edited)
		if ck := len(last) - 1; ck >= 32 && ck < len(edited) && slices.Equal(last[:ck], edited[:ck]) {
			want -= ck // the checkpoint after the last prompt but its last token
		}
		res := recGreedy(t, p, edited, 12)
		recSame(t, fmt.Sprintf("diverging at %d", at), res, recFresh(t, path, edited, 12))
		if res.Timings.PromptEvaluated != want {
			t.Errorf("diverging at %d: %d of %d prompt tokens decoded, want %d", at, res.Timings.PromptEvaluated, len(edited), want)
		}
		last = edited
		ids = recCat(edited, res.Tokens[:len(res.Tokens)-1])
	}
	// A prompt that is a prefix of what the sequence holds.
	short := ids[:len(ids)-4]
	recSame(t, "a prefix of the sequence", recGreedy(t, p, short, 12), recFresh(t, path, short, 12))

	// Chats (no template: the contents joined by newlines), turn by turn.
	ctx := context.Background()
	msgs := []llm.Message{{Role: "user", Content: "Tell me about granite"}}
	for turn := range 3 {
		res, err := p.Chat(ctx, msgs, llm.Temperature(0), llm.MaxTokens(10))
		if err != nil {
			t.Fatal(err)
		}
		q := openRecurrent(t, path)
		want, err := q.Chat(ctx, msgs, llm.Temperature(0), llm.MaxTokens(10))
		q.Close()
		if err != nil {
			t.Fatal(err)
		}
		recSame(t, fmt.Sprintf("chat turn %d", turn), res, want)
		msgs = append(msgs, llm.Message{Role: "assistant", Content: res.Text}, llm.Message{Role: "user", Content: fmt.Sprintf("And %d more?", turn)})
	}
}

// TestRecurrentParallel: requests decoded together in one context, in
// sequences of a recurrent memory, each give what they give alone, with
// prompts of different lengths (the scheduler mixes prompt chunks with
// the next token of others) and sharing prefixes, over rounds that reuse
// the sequences.
func TestRecurrentParallel(t *testing.T) {
	path := recurrentModel(t)
	prompts := [][]llm.Token{recTokens(4, 10), recTokens(5, 40), recCat(recTokens(4, 10), recTokens(6, 7)[1:]), recTokens(7, 3), recTokens(8, 70)}
	alone := openRecurrent(t, path)
	want := make([]*llm.Result, len(prompts))
	for i, ids := range prompts {
		want[i] = recGreedy(t, alone, ids, 20+i)
	}
	for _, n := range []int{2, 3} {
		p := openRecurrent(t, path, llm.WithParallel(n))
		for round := range 2 {
			got := make([]*llm.Result, len(prompts))
			errs := make([]error, len(prompts))
			var wg sync.WaitGroup
			for i, ids := range prompts {
				wg.Go(func() {
					got[i], errs[i] = p.GenerateTokens(context.Background(), ids, llm.Temperature(0), llm.MaxTokens(20+i))
				})
			}
			wg.Wait()
			for i := range prompts {
				if errs[i] != nil {
					t.Fatalf("parallel %d, round %d, prompt %d: %v", n, round, i, errs[i])
				}
				recSame(t, fmt.Sprintf("parallel %d, round %d, prompt %d", n, round, i), got[i], want[i])
			}
		}
		p.Close()
	}
}

// TestRecurrentSpeculation: PromptLookup gives a recurrent model no draft
// (its memory cannot drop a rejected one) and the same output; WithDraft
// refuses it.
func TestRecurrentSpeculation(t *testing.T) {
	path := recurrentModel(t)
	p := openRecurrent(t, path, llm.WithParallel(2))
	// A prompt that repeats itself, where lookup would find drafts.
	ids := recCat(recTokens(9, 12), recTokens(9, 12)[1:], recTokens(9, 12)[1:])
	want := recGreedy(t, p, ids, 40)
	for run := range 2 {
		got := recGreedy(t, p, ids, 40, llm.PromptLookup(8))
		recSame(t, fmt.Sprintf("PromptLookup, run %d", run), got, want)
		if got.Timings.DraftTokens != 0 {
			t.Errorf("PromptLookup: %d draft tokens on a recurrent model", got.Timings.DraftTokens)
		}
	}
	// The output fed back as the prompt repeats: still none.
	loop := recCat(ids, want.Tokens, want.Tokens)
	got := recGreedy(t, p, loop, 20, llm.PromptLookup(8))
	recSame(t, "PromptLookup on a repeating prompt", got, recFresh(t, path, loop, 20))

	_, err := llm.New(context.Background(), path, llm.WithThreads(1), llm.WithDraft(path, 4))
	if !errors.Is(err, llm.ErrUnsupportedModel) || !strings.Contains(err.Error(), "recurrent") {
		t.Errorf("WithDraft on a recurrent model: %v, want ErrUnsupportedModel", err)
	}
}

// TestRecurrentStopAndContext: a stop string ends the output before it
// and the sequence stays usable; a full context ends generation
// (FinishLength) as for any model, with the tokens a longer context
// gives; a prompt that does not fit is ErrPromptTooLong. ShiftWindow
// cannot discard tokens of a recurrent memory, whose state keeps them: it
// ends with an error saying so (ErrPromptTooLong, as for a model whose
// context cannot shift), after the tokens that fitted.
func TestRecurrentStopAndContext(t *testing.T) {
	path := recurrentModel(t)
	ctx := context.Background()
	p := openRecurrent(t, path)
	prompt := "The granite hills stood over the valley"
	want, err := p.Generate(ctx, prompt, llm.Temperature(0), llm.MaxTokens(48))
	if err != nil {
		t.Fatal(err)
	}
	// A stop string of three letters from the middle of the output.
	stop := ""
	for i := len(want.Text) / 3; i+3 <= len(want.Text); i++ {
		if s := want.Text[i : i+3]; strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
			stop = s
			break
		}
	}
	if stop == "" {
		t.Fatalf("no stop string in %q", want.Text)
	}
	res, err := p.Generate(ctx, prompt, llm.Temperature(0), llm.MaxTokens(48), llm.Stop(stop))
	if err != nil {
		t.Fatal(err)
	}
	if cut := want.Text[:strings.Index(want.Text, stop)]; res.Text != cut || res.FinishReason != llm.FinishStop {
		t.Errorf("Stop(%q): %q (%s), want %q (stop)", stop, res.Text, res.FinishReason, cut)
	}
	ids := recTokens(11, 30)
	recSame(t, "after a stop string", recGreedy(t, p, ids, 20), recFresh(t, path, ids, 20))

	// A context of 48 tokens per sequence, two sequences.
	small := openRecurrent(t, path, llm.WithContextLength(48), llm.WithParallel(2))
	long := recTokens(12, 39) // 40 tokens
	full := recGreedy(t, small, long, -1)
	if full.FinishReason != llm.FinishLength || len(full.Tokens) != 48-40+1 {
		t.Errorf("context full: %d tokens (%s), want %d (length)", len(full.Tokens), full.FinishReason, 48-40+1)
	}
	wantLong := recFresh(t, path, long, 9)
	recSame(t, "context full", full, wantLong)
	if _, err := small.GenerateTokens(ctx, recTokens(13, 47), llm.MaxTokens(4)); !errors.Is(err, llm.ErrPromptTooLong) {
		t.Errorf("a prompt of 48 tokens in 48: %v, want ErrPromptTooLong", err)
	}
	shifted, err := small.GenerateTokens(ctx, long, llm.Temperature(0), llm.MaxTokens(30), llm.WithContextPolicy(llm.ShiftWindow))
	if !errors.Is(err, llm.ErrPromptTooLong) || !strings.Contains(err.Error(), "recurrent") {
		t.Errorf("ShiftWindow on a recurrent model: %v, %v; want ErrPromptTooLong saying why", shifted, err)
	}
	// The sequences go on serving requests rightly.
	for i := range 3 {
		ids := recTokens(14+i, 20+5*i)
		recSame(t, fmt.Sprintf("after the full context, prompt %d", i), recGreedy(t, small, ids, 12), recFresh(t, path, ids, 12))
	}
	recSame(t, "the long prompt again", recGreedy(t, small, long, -1), wantLong)
}

// TestRecurrentShiftEvidence shows why ShiftWindow refuses this model
// beside its recurrent state: Granite 4.0-H's attention has no positions,
// yet llama.cpp's K-shift rotates its cached keys as RoPE keys (the arch's
// rope type is NORM whatever rope.scaling.finetuned says), so shifted
// positions change the logits, where for a position-free attention
// removing the old tokens alone is the whole shift. The Mamba-2 layers'
// state, for its part, keeps what the removed tokens left in it.
func TestRecurrentShiftEvidence(t *testing.T) {
	path := recurrentModel(t)
	ctx := context.Background()
	m, err := engine.LoadModel(ctx, path, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	logits := func(shift bool) []float32 {
		c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, err := engine.NewBatch(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		for i, tk := range recTokens(15, 39) {
			b.Add(tk, engine.Pos(i), false, 0)
		}
		if err := c.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
		// Discard positions [1, 21), as the pipeline's shift does.
		if ok, err := c.RemoveTokens(0, 1, 21); err != nil || !ok {
			t.Fatalf("removing tokens: %v %v", ok, err)
		}
		pos := engine.Pos(40)
		if shift {
			if err := c.ShiftPositions(0, 21, -1, -20); err != nil {
				t.Fatal(err)
			}
			pos -= 20
		}
		b.Clear()
		b.Add(500, pos, true, 0)
		if err := c.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
		l, err := c.Logits(0)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(l)
	}
	kept, shifted := logits(false), logits(true)
	if !slices.Equal(kept, logits(false)) {
		t.Fatal("the same decode gave other logits: the comparison below means nothing")
	}
	var diff float64
	for i := range kept {
		diff = max(diff, math.Abs(float64(kept[i]-shifted[i])))
	}
	t.Logf("largest logit change from shifting the positions of a position-free attention: %.3g", diff)
	if diff == 0 {
		t.Skip("llama.cpp no longer rotates the keys of granitehybrid without rope on a shift; ShiftWindow's refusal stands for the recurrent state")
	}
}

// TestRecurrentSequenceChoice: with two sequences, a request that would
// have to clear the one holding a conversation (it shares a prefix with
// it, but a recurrent memory cannot drop the rest) goes to the empty one
// instead, and the next request goes to the sequence whose whole memory
// begins its prompt rather than to one sharing more that it would clear;
// the conversation is then continued from its memory.
func TestRecurrentSequenceChoice(t *testing.T) {
	path := recurrentModel(t)
	long := recTokens(1, 30)
	p := openRecurrent(t, path, llm.WithParallel(2))
	first := recGreedy(t, p, long, 8) // one sequence: long and its answer
	// long's first 10 tokens, decoded and no more: the empty sequence
	// takes them (the other would be cleared).
	if res := recGreedy(t, p, long[:10], 0); res.Timings.PromptEvaluated != 10 {
		t.Fatalf("long[:10]: %d prompt tokens decoded", res.Timings.PromptEvaluated)
	}
	// A prompt sharing long's first 20 tokens: the first sequence shares
	// more but holds more, the second holds exactly 10 of them.
	prompt := recCat(long[:20], recTokens(4, 12)[1:])
	want := recFresh(t, path, prompt, 16)
	got := recGreedy(t, p, prompt, 16)
	recSame(t, "the prompt", got, want)
	if got.Timings.PromptEvaluated != len(prompt)-10 {
		t.Errorf("%d of %d prompt tokens decoded, want all but the 10 the second sequence holds", got.Timings.PromptEvaluated, len(prompt))
	}
	// The first sequence was kept: long, its answer and more reuses it.
	next := recCat(long, first.Tokens, recTokens(5, 4)[1:])
	if res := recGreedy(t, p, next, 4); res.Timings.PromptEvaluated != 5 {
		t.Errorf("the first conversation continued: %d of %d prompt tokens decoded, want 5: the answer's last token (sampled, never decoded) and the 4 new ones", res.Timings.PromptEvaluated, len(next))
	}
}

// TestShiftWindowWithoutPositions: a Granite model whose attention has no
// positions (rope.scaling.finetuned false; here stories260K rewritten as
// one) is not recurrent, and llama.cpp would shift its context, rotating
// its keys as RoPE's: ShiftWindow refuses it, saying why, where the same
// model with rope shifts.
func TestShiftWindowWithoutPositions(t *testing.T) {
	granite := func(rope bool) string {
		return testmodel.AsArch(t, shareddata.Path(t, "models", "stories260K.gguf"), "granite", func(set func(string, gguf.Value)) {
			for _, k := range []string{"embedding_scale", "residual_scale", "logit_scale"} {
				set(k, gguf.Float32(1))
			}
			set("attention.scale", gguf.Float32(0.125))
			set("rope.scaling.finetuned", gguf.Bool(rope))
		})
	}
	ctx := context.Background()
	for _, rope := range []bool{true, false} {
		p, err := llm.New(ctx, granite(rope), llm.WithThreads(1), llm.WithContextLength(64))
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Generate(ctx, "Once upon a time", llm.Temperature(0), llm.MaxTokens(100), llm.WithContextPolicy(llm.ShiftWindow))
		p.Close()
		switch {
		case rope && (err != nil || res.Shifted == 0):
			t.Errorf("with rope: %v, shifted %d", err, res.Shifted)
		case !rope && (!errors.Is(err, llm.ErrPromptTooLong) || !strings.Contains(err.Error(), "no positions")):
			t.Errorf("without positions: %v, want ErrPromptTooLong saying why", err)
		}
	}
}

// TestRecurrentCheckpoint: a conversation whose last answer comes back
// other than it was written (a client re-rendering it, a template that
// drops its reasoning) leaves the sequence inside that answer; the
// sequence rewinds to its checkpoint, after the previous prompt but its
// last token, and decodes only from there, giving what a new pipeline
// gives. A prompt that leaves the previous one before its checkpoint is
// decoded whole.
func TestRecurrentCheckpoint(t *testing.T) {
	path := recurrentModel(t)
	p := openRecurrent(t, path)
	prompt := recTokens(9, 40)
	res := recGreedy(t, p, prompt, 12)
	if len(res.Tokens) < 4 {
		t.Fatalf("too short an answer to test with: %v", res.Tokens)
	}
	answer := slices.Clone(res.Tokens)
	answer[1] = 260 + (answer[1]+1)%740 // written back otherwise
	next := recCat(prompt, answer, recTokens(11, 6)[1:])
	got := recGreedy(t, p, next, 12)
	recSame(t, "the answer written back otherwise", got, recFresh(t, path, next, 12))
	if want := len(next) - (len(prompt) - 1); got.Timings.PromptEvaluated != want {
		t.Errorf("the answer written back otherwise: %d of %d prompt tokens decoded, want %d", got.Timings.PromptEvaluated, len(next), want)
	}
	// Its checkpoint is now after next but its last token: a prompt
	// diverging inside the first prompt goes back to the start.
	early := recCat(prompt[:10], recTokens(12, 8)[1:])
	got = recGreedy(t, p, early, 12)
	recSame(t, "diverging before the checkpoint", got, recFresh(t, path, early, 12))
	if got.Timings.PromptEvaluated != len(early) {
		t.Errorf("diverging before the checkpoint: %d of %d prompt tokens decoded, want all", got.Timings.PromptEvaluated, len(early))
	}
}

// TestRecurrentCheckpointParallel: two conversations in two sequences of
// one context, decoded together, each asked again: each rewinds its own
// sequence's checkpoint and decodes only its last prompt token, giving
// what a new pipeline gives. A prompt too short to be worth a checkpoint
// (under 32 tokens before its last) is decoded whole again.
func TestRecurrentCheckpointParallel(t *testing.T) {
	path := recurrentModel(t)
	p := openRecurrent(t, path, llm.WithParallel(2))
	prompts := [][]llm.Token{recTokens(13, 40), recTokens(14, 48)}
	want := []*llm.Result{recFresh(t, path, prompts[0], 10), recFresh(t, path, prompts[1], 10)}
	for round := range 2 {
		var wg sync.WaitGroup
		got := make([]*llm.Result, len(prompts))
		for i, ids := range prompts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := p.GenerateTokens(context.Background(), ids, llm.Temperature(0), llm.MaxTokens(10))
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = res
			}()
		}
		wg.Wait()
		for i, res := range got {
			if res == nil {
				continue
			}
			recSame(t, fmt.Sprintf("round %d, prompt %d", round, i), res, want[i])
			if wantEval := map[int]int{0: len(prompts[i]), 1: 1}[round]; res.Timings.PromptEvaluated != wantEval {
				t.Errorf("round %d, prompt %d: %d of %d prompt tokens decoded, want %d", round, i, res.Timings.PromptEvaluated, len(prompts[i]), wantEval)
			}
		}
	}
	short := recTokens(15, 20)
	recGreedy(t, p, short, 4)
	if res := recGreedy(t, p, short, 4); res.Timings.PromptEvaluated != len(short) {
		t.Errorf("a short prompt again: %d of %d prompt tokens decoded, want all (no checkpoint)", res.Timings.PromptEvaluated, len(short))
	}
}
