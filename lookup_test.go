package llm_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/shareddata"
)

// sameUpToTie checks that got has want's tokens up to the first step
// where want's two most likely tokens were within tie of each other (in
// log-probability), from which rounding may change the choice. It returns
// how many tokens it compared.
func sameUpToTie(t *testing.T, name string, got, want *llm.Result, tie float64) int {
	t.Helper()
	n := len(want.Tokens)
	for i, lp := range want.Logprobs {
		if len(lp.Top) > 1 && lp.Top[0].Logprob-lp.Top[1].Logprob < tie {
			n = i + 1
			break
		}
	}
	if len(got.Tokens) < n || !slices.Equal(got.Tokens[:n], want.Tokens[:n]) {
		t.Errorf("%s: tokens %v\nwant %v (the first %d must match)", name, got.Tokens, want.Tokens, n)
	}
	return n
}

// TestPromptLookup: speculative decoding by prompt lookup gives the
// output of plain decoding (greedy, up to near-ties; seeded sampling; a
// token limit; streamed; several requests at once) while checking and
// accepting drafts; a cached prefix stays right after rejected drafts.
func TestPromptLookup(t *testing.T) {
	ctx := context.Background()
	p, err := llm.New(ctx, shareddata.Path(t, "models", "stories260K.gguf"), llm.WithThreads(1), llm.WithParallel(3))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	prompt := "Once upon a time, there was a little girl named Lily. She loved to play outside. One day, Lily"

	want, err := p.Generate(ctx, prompt, llm.Temperature(0), llm.MaxTokens(96), llm.Logprobs(2))
	if err != nil {
		t.Fatal(err)
	}
	for run := range 2 { // the second reuses the cached prompt
		got, err := p.Generate(ctx, prompt, llm.Temperature(0), llm.MaxTokens(96), llm.PromptLookup(8))
		if err != nil {
			t.Fatal(err)
		}
		n := sameUpToTie(t, fmt.Sprintf("greedy, run %d", run), got, want, 1e-3)
		tm := got.Timings
		if tm.DraftTokens == 0 || tm.DraftAccepted == 0 || tm.DraftAccepted > tm.DraftTokens {
			t.Errorf("run %d: %d draft tokens, %d accepted", run, tm.DraftTokens, tm.DraftAccepted)
		}
		t.Logf("run %d: %d tokens (%d compared), %d drafted, %d accepted", run, len(got.Tokens), n, tm.DraftTokens, tm.DraftAccepted)
	}
	if want.Timings.DraftTokens != 0 {
		t.Errorf("without PromptLookup: %d draft tokens", want.Timings.DraftTokens)
	}

	// Seeded sampling draws once per token, in order: the same text.
	sampled := func(opts ...llm.GenerateOption) *llm.Result {
		res, err := p.Generate(ctx, prompt, append([]llm.GenerateOption{llm.Temperature(0.8), llm.Seed(42), llm.MaxTokens(64)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if a, b := sampled(), sampled(llm.PromptLookup(6)); a.Text != b.Text {
		t.Errorf("seeded sampling: %q\nwith lookup %q", b.Text, a.Text)
	}
	// Log-probabilities come for every token, accepted drafts too, as
	// without a draft.
	withLP, err := p.Generate(ctx, prompt, llm.Temperature(0), llm.MaxTokens(96), llm.PromptLookup(8), llm.Logprobs(2))
	if err != nil || len(withLP.Logprobs) != len(withLP.Tokens) || withLP.Timings.DraftAccepted == 0 {
		t.Fatalf("with Logprobs: %v; %d logprobs for %d tokens", err, len(withLP.Logprobs), len(withLP.Tokens))
	}
	for i := range min(len(withLP.Logprobs), len(want.Logprobs)) {
		a, b := withLP.Logprobs[i], want.Logprobs[i]
		if a.Token != b.Token {
			break
		}
		// Decoded in a batch or one by one: rounding (flash attention
		// accumulates in F16 on the CPU) moves them by about 1e-3.
		if d := a.Logprob - b.Logprob; d > 1e-2 || d < -1e-2 {
			t.Errorf("token %d: logprob %v, without lookup %v", i, a.Logprob, b.Logprob)
			break
		}
	}
	// A token limit is kept exactly, and a stop string still ends it.
	if res, err := p.Generate(ctx, prompt, llm.Temperature(0), llm.MaxTokens(5), llm.PromptLookup(8)); err != nil || len(res.Tokens) != 5 {
		t.Errorf("MaxTokens(5): %v, %v", res, err)
	}
	if res, err := p.Generate(ctx, prompt, llm.Temperature(0), llm.MaxTokens(96), llm.PromptLookup(8), llm.Stop("Lily")); err != nil ||
		strings.Contains(res.Text, "Lily") || !strings.HasPrefix(want.Text, res.Text) {
		t.Errorf("Stop(Lily): %q, %v", res.Text, err)
	}
	// Streamed: the chunks make the text.
	var text strings.Builder
	var final *llm.Result
	for c, err := range p.Stream(ctx, prompt, llm.Temperature(0), llm.MaxTokens(96), llm.PromptLookup(8)) {
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(c.Text)
		if c.Result != nil {
			final = c.Result
		}
	}
	if final == nil || text.String() != final.Text {
		t.Errorf("streamed %q, result %+v", text.String(), final)
	}
	// Three at once, each with its own prompt, as each alone: the same
	// tokens, and the same drafts accepted (a draft depends only on its
	// own sequence).
	prompts := []string{prompt, "The cat sat on the mat. The cat sat on the", "Tom had a red ball. Tom liked the red ball. Tom"}
	alone := make([]*llm.Result, len(prompts))
	aloneLookup := make([]*llm.Result, len(prompts))
	for i, pr := range prompts {
		if alone[i], err = p.Generate(ctx, pr, llm.Temperature(0), llm.MaxTokens(48), llm.Logprobs(2)); err != nil {
			t.Fatal(err)
		}
		if aloneLookup[i], err = p.Generate(ctx, pr, llm.Temperature(0), llm.MaxTokens(48), llm.PromptLookup(8)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	together := make([]*llm.Result, len(prompts))
	for i, pr := range prompts {
		wg.Go(func() {
			res, err := p.Generate(ctx, pr, llm.Temperature(0), llm.MaxTokens(48), llm.PromptLookup(8))
			if err != nil {
				t.Error(err)
				return
			}
			together[i] = res
		})
	}
	wg.Wait()
	for i := range prompts {
		if together[i] == nil {
			continue
		}
		n := sameUpToTie(t, fmt.Sprintf("together, prompt %d", i), together[i], alone[i], 1e-3)
		if n == len(alone[i].Tokens) && together[i].Timings.DraftAccepted != aloneLookup[i].Timings.DraftAccepted {
			t.Errorf("prompt %d: %d drafts accepted together, %d alone", i, together[i].Timings.DraftAccepted, aloneLookup[i].Timings.DraftAccepted)
		}
	}
	if _, err := p.Generate(ctx, prompt, llm.PromptLookup(llm.MaxPromptLookup+1)); err == nil {
		t.Error("PromptLookup above the maximum was accepted")
	}

	// Through a full context: drafts never pass its end, and the window
	// shifts as without them.
	small, err := llm.New(ctx, shareddata.Path(t, "models", "stories260K.gguf"), llm.WithThreads(1), llm.WithContextLength(64))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	long := []llm.GenerateOption{llm.Temperature(0), llm.MaxTokens(200), llm.WithContextPolicy(llm.ShiftWindow)}
	plain, err := small.Generate(ctx, prompt, long...)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := small.Generate(ctx, prompt, append(long, llm.PromptLookup(8))...)
	if err != nil || len(spec.Tokens) != 200 || spec.Shifted == 0 || spec.Shifted != plain.Shifted {
		t.Fatalf("through a full context: %v; %d tokens, shifted %d (without lookup %d)", err, len(spec.Tokens), spec.Shifted, plain.Shifted)
	}
	t.Logf("through a full context: %d drafted, %d accepted; same tokens: %v", spec.Timings.DraftTokens, spec.Timings.DraftAccepted, slices.Equal(spec.Tokens, plain.Tokens))
}

// BenchmarkPromptLookup measures greedy generation's tokens per second
// with and without PromptLookup(8), on a prompt whose continuation copies
// it (a list the model goes on repeating). LLM_BENCH_MODEL names another
// GGUF (default stories260K), LLM_BENCH_THREADS the threads (default 1).
func BenchmarkPromptLookup(b *testing.B) {
	model := os.Getenv("LLM_BENCH_MODEL")
	if model == "" {
		model = shareddata.Path(b, "models", "stories260K.gguf")
	}
	threads, _ := strconv.Atoi(os.Getenv("LLM_BENCH_THREADS"))
	p, err := llm.New(context.Background(), model, llm.WithThreads(max(threads, 1)), llm.WithContextLength(1024), llm.WithGPULayers(0))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	prompt := strings.Repeat("One, two, three, four, five, six, seven, eight, nine, ten. ", 4)
	for _, n := range []int{0, 8} {
		b.Run(fmt.Sprintf("lookup=%d", n), func(b *testing.B) { benchGenerate(b, p, prompt, llm.PromptLookup(n)) })
	}
}

// benchGenerate generates 256 tokens greedily after prompt b.N times and
// reports tokens per second and the share of draft tokens accepted.
func benchGenerate(b *testing.B, p *llm.Pipeline, prompt string, opts ...llm.GenerateOption) {
	var tokens, drafted, accepted int
	start := time.Now()
	for range b.N {
		res, err := p.Generate(context.Background(), prompt, append([]llm.GenerateOption{llm.Temperature(0), llm.MaxTokens(256)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		tokens += len(res.Tokens)
		drafted += res.Timings.DraftTokens
		accepted += res.Timings.DraftAccepted
	}
	b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tokens/s")
	if drafted > 0 {
		b.ReportMetric(float64(accepted)/float64(drafted), "accepted/drafted")
	}
}
