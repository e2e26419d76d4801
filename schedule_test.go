package llm_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
)

// TestContinuousBatching: requests on a pipeline with four sequences run
// together (Stats sees them), and each gives the text it gives alone.
func TestContinuousBatching(t *testing.T) {
	p := open(t, llm.WithParallel(4))
	refs := references(t)
	// How many run at once is sampled from Stats; a loaded machine may
	// starve the sampler, so one of three rounds must see 2 to 4.
	var peak int64
	for round := 0; round < 3 && peak < 2; round++ {
		var maxRunning atomic.Int64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if n := int64(p.Stats().Running); n > maxRunning.Load() {
					maxRunning.Store(n)
				}
				time.Sleep(50 * time.Microsecond)
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, 12)
		for i := range 12 {
			r := refs[i%len(refs)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				text := ""
				for c, err := range p.Stream(context.Background(), r.Prompt, greedy(r.NPredict)...) {
					if err != nil {
						errs <- err
						return
					}
					text += c.Text
				}
				if text != r.Text {
					errs <- errors.New("wrong text for " + r.Prompt + ": " + text)
				}
			}()
		}
		wg.Wait()
		close(stop)
		<-sampled
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		peak = maxRunning.Load()
		if peak > 4 {
			t.Errorf("%d requests ran at once on 4 sequences", peak)
		}
	}
	if peak < 2 {
		t.Errorf("at most %d request ran at once in three rounds; want 2 to 4", peak)
	}
	if s := p.Stats(); s.Running != 0 || s.Waiting != 0 || s.Parallel != 4 {
		t.Errorf("after the requests: %+v", s)
	}
}

// TestLeavingFreesTheSequence: a reader that stops early, and a request
// cancelled while it waits, both free their place for the next request.
func TestLeavingFreesTheSequence(t *testing.T) {
	p := open(t)
	ctx := context.Background()
	n := 0
	for _, err := range p.Stream(ctx, "Once upon a time", llm.Temperature(0)) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	r := references(t)[0]
	done := make(chan error, 1)
	go func() {
		res, err := p.Generate(ctx, r.Prompt, greedy(r.NPredict)...)
		if err == nil && res.Text != r.Text {
			err = errors.New("wrong text after an early break: " + res.Text)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sequence was not freed after the reader left")
	}

	// Hold the only sequence with an endless request, queue a second with
	// a deadline: it must give up with the deadline's error.
	hold, cancel := context.WithCancel(ctx)
	started := make(chan struct{})
	go func() {
		first := true
		for range p.Stream(hold, "Once upon a time", llm.Temperature(0), llm.WithContextPolicy(llm.ShiftWindow)) {
			if first {
				close(started)
				first = false
			}
		}
	}()
	<-started
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := p.Generate(short, "Lily"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queued request past its deadline: %v", err)
	}
	if s := p.Stats(); s.Running != 1 {
		t.Errorf("while one request runs: %+v", s)
	}
	cancel()
	if _, err := p.Generate(ctx, r.Prompt, greedy(4)...); err != nil {
		t.Errorf("after cancelling the running request: %v", err)
	}
}

// TestCloseEndsRequests: Close ends running and waiting requests with
// ErrClosed and does not hang.
func TestCloseEndsRequests(t *testing.T) {
	p := open(t)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := p.Generate(context.Background(), "Once upon a time", llm.Temperature(0), llm.WithContextPolicy(llm.ShiftWindow))
			errs <- err
		}()
	}
	for p.Stats().Running == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, llm.ErrClosed) {
			t.Errorf("request during Close: %v", err)
		}
	}
}

// TestLogprobs: the reported log-probabilities are the log-softmax of the
// model's logits, computed here independently through the engine.
func TestLogprobs(t *testing.T) {
	p := open(t)
	ctx := context.Background()
	const prompt = "Once upon a time"
	res, err := p.Generate(ctx, prompt, append(greedy(3), llm.Logprobs(5))...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logprobs) != len(res.Tokens) {
		t.Fatalf("%d logprobs for %d tokens", len(res.Logprobs), len(res.Tokens))
	}
	for i, lp := range res.Logprobs {
		if lp.Token != res.Tokens[i] || len(lp.Top) != 5 || lp.Logprob > 0 {
			t.Fatalf("token %d: %+v", i, lp)
		}
		if lp.Top[0].Token != lp.Token || lp.Top[0].Logprob != lp.Logprob {
			t.Errorf("token %d: greedy choice %d is not the top alternative %d", i, lp.Token, lp.Top[0].Token)
		}
		for k := 1; k < len(lp.Top); k++ {
			if lp.Top[k].Logprob > lp.Top[k-1].Logprob {
				t.Errorf("token %d: alternatives out of order: %+v", i, lp.Top)
			}
		}
	}

	m := p.Model()
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ids, err := m.Tokenize(prompt, true, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.NewBatch(len(ids), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, id := range ids {
		b.Add(id, engine.Pos(i), i == len(ids)-1)
	}
	if err := c.Decode(ctx, b); err != nil {
		t.Fatal(err)
	}
	logits, err := c.Logits(len(ids) - 1)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l))
	}
	for _, alt := range res.Logprobs[0].Top {
		want := float64(logits[alt.Token]) - math.Log(sum)
		if math.Abs(alt.Logprob-want) > 1e-3 {
			t.Errorf("token %d: logprob %g, want %g", alt.Token, alt.Logprob, want)
		}
	}

	// Streaming with logprobs yields one chunk per token.
	n := 0
	for c, err := range p.Stream(ctx, prompt, append(greedy(3), llm.Logprobs(0))...) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Logprob != nil {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d chunks with logprobs for 3 tokens", n)
	}
	if _, err := p.Generate(ctx, prompt, llm.Logprobs(llm.MaxTopLogprobs+1)); err == nil {
		t.Error("Logprobs above the maximum accepted")
	}
	if res.Model != p.Name() || p.Name() == "" {
		t.Errorf("Result.Model %q, Name %q", res.Model, p.Name())
	}
}

// BenchmarkAggregateTokens measures the tokens per second of N clients
// generating at once on a pipeline with N sequences, against one client.
// LLM_BENCH_MODEL names another GGUF (default stories260K),
// LLM_BENCH_THREADS the threads (default 1) and LLM_BENCH_NGL the layers
// offloaded to GPUs (default 0, -1: all).
func BenchmarkAggregateTokens(b *testing.B) {
	model := os.Getenv("LLM_BENCH_MODEL")
	if model == "" {
		model = shareddata.Path(b, "models", "stories260K.gguf")
	}
	threads, _ := strconv.Atoi(os.Getenv("LLM_BENCH_THREADS"))
	ngl, _ := strconv.Atoi(os.Getenv("LLM_BENCH_NGL"))
	for _, clients := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			p, err := llm.New(context.Background(), model,
				llm.WithThreads(max(threads, 1)), llm.WithParallel(clients), llm.WithContextLength(512), llm.WithGPULayers(ngl))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var tokens atomic.Int64
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := p.Generate(context.Background(), "Once upon a time", llm.MaxTokens(128), llm.Seed(int64(c)))
						if err != nil {
							b.Error(err)
							return
						}
						tokens.Add(int64(len(res.Tokens)))
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(tokens.Load())/time.Since(start).Seconds(), "tokens/s")
		})
	}
}

// TestSlowReaderPauses: a reader that stops reading pauses its own
// sequence (its chunks wait, bounded), while another request runs to the
// end beside it; when it reads again it gets every token.
func TestSlowReaderPauses(t *testing.T) {
	p := open(t, llm.WithParallel(2))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int, 1)
	release := make(chan struct{})
	go func() {
		n := 0
		for c, err := range p.Stream(ctx, "Once upon a time", llm.Temperature(0), llm.MaxTokens(600), llm.Logprobs(0), llm.WithContextPolicy(llm.ShiftWindow)) {
			if err != nil {
				break
			}
			if c.Logprob != nil {
				n++
			}
			if n == 1 {
				<-release // stop reading for a while
			}
		}
		got <- n
	}()
	r := references(t)[0]
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Paused != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the unread request never paused: %+v", p.Stats())
		}
	}
	res, err := p.Generate(context.Background(), r.Prompt, greedy(r.NPredict)...)
	if err != nil || res.Text != r.Text {
		t.Fatalf("beside a paused reader: %v %q", err, res.Text)
	}
	if s := p.Stats(); s.Running != 1 || s.Paused != 1 {
		t.Errorf("the unread request should hold its sequence, paused: %+v", s)
	}
	close(release)
	if n := <-got; n != 600 {
		t.Errorf("the slow reader got %d tokens, want 600", n)
	}
}

// TestCloseRace: requests that arrive while Close runs all return, with a
// result or ErrClosed, never hang.
func TestCloseRace(t *testing.T) {
	for range 20 {
		p, err := llm.New(context.Background(), shareddata.Path(t, "models", "stories260K.gguf"), llm.WithThreads(1), llm.WithParallel(2))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				_, err := p.Generate(context.Background(), "Once upon a time", llm.MaxTokens(8))
				if err != nil && !errors.Is(err, llm.ErrClosed) {
					errs <- err
				}
			})
		}
		p.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a request hangs after Close")
		}
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
