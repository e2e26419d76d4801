package llm_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
)

// withExtraTokens writes a copy of the GGUF src with n user-defined tokens
// <x0>, <x1>, ... added to its vocabulary, with rows in the embeddings
// (copies of token 300's) and zero rows in the output: a chat fine-tune's
// added tokens.
func withExtraTokens(t *testing.T, src string, n int) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	scores, _ := f.Lookup("tokenizer.ggml.scores")
	types, _ := f.Lookup("tokenizer.ggml.token_type")
	sc, _ := scores.AsFloats()
	ty, _ := types.AsInts()
	sc32, ty32 := make([]float32, len(sc)+n), make([]int32, len(ty)+n)
	for i, x := range sc {
		sc32[i] = float32(x)
	}
	for i, x := range ty {
		ty32[i] = int32(x)
	}
	toks = slices.Clone(toks)
	for i := range n {
		toks = append(toks, fmt.Sprintf("<x%d>", i))
		ty32[len(ty)+i] = 4 // user-defined
	}
	return testmodel.Rewrite(t, src, func(w *gguf.Writer) {
		w.Set("tokenizer.ggml.tokens", gguf.Strings(toks))
		w.Set("tokenizer.ggml.scores", gguf.Float32s(sc32))
		w.Set("tokenizer.ggml.token_type", gguf.Int32s(ty32))
	}, func(ti gguf.TensorInfo, raw []byte) ([]uint64, []byte) {
		if ti.Name != "token_embd.weight" && ti.Name != "output.weight" {
			return ti.Shape, raw
		}
		if ti.Type != gguf.TypeF32 {
			t.Fatalf("%s is %v: only F32 rows are copied", ti.Name, ti.Type)
		}
		row := int(ti.Shape[0]) * 4
		for range n {
			if ti.Name == "token_embd.weight" {
				raw = append(raw, raw[300*row:301*row]...)
			} else {
				raw = append(raw, make([]byte, row)...)
			}
		}
		return []uint64{ti.Shape[0], ti.Shape[1] + uint64(n)}, raw
	})
}

// TestDraftVocabularyExtra: a model with tokens its draft lacks (a chat
// fine-tune's added tokens; up to 128 may differ) drafts for requests
// without them, also while a request with one runs beside, and decodes a
// request with one without drafts, as plain decoding would.
func TestDraftVocabularyExtra(t *testing.T) {
	ctx := context.Background()
	model := shareddata.Path(t, "models", "stories260K.gguf")
	ext := withExtraTokens(t, model, 4)
	plain, err := llm.New(ctx, ext, llm.WithThreads(1), llm.WithParallel(2))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	p, err := llm.New(ctx, ext, llm.WithThreads(1), llm.WithParallel(2), llm.WithDraft(model, 8))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	clean := "Once upon a time, there was a little girl named Lily. She loved to play outside. One day, Lily"
	odd := "Once upon a time <x1>, there was a little girl named Lily. She loved to play outside. One day, Lily"
	if ids, _ := p.Model().Tokenize(odd, true, false); !slices.Contains(ids, engine.Token(p.Model().VocabSize()-3)) {
		t.Fatalf("%q does not tokenize to <x1>: %v", odd, ids)
	}
	want := map[string]*llm.Result{}
	for _, pr := range []string{clean, odd} {
		if want[pr], err = plain.Generate(ctx, pr, llm.Temperature(0), llm.MaxTokens(48), llm.Logprobs(2)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]*llm.Result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, pr := range []string{clean, odd} {
		wg.Go(func() {
			res, err := p.Generate(ctx, pr, llm.Temperature(0), llm.MaxTokens(48))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[pr] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	for name, pr := range map[string]string{"clean": clean, "with <x1>": odd} {
		if got[pr] == nil {
			continue
		}
		sameUpToTie(t, name, got[pr], want[pr], 1e-3)
		t.Logf("%s: %d drafted, %d accepted", name, got[pr].Timings.DraftTokens, got[pr].Timings.DraftAccepted)
	}
	if r := got[clean]; r != nil && r.Timings.DraftAccepted == 0 {
		t.Error("the clean request drafted nothing beside the one with <x1>")
	}
	if r := got[odd]; r != nil && r.Timings.DraftTokens != 0 {
		t.Errorf("the request with <x1> drafted %d tokens", r.Timings.DraftTokens)
	}
}

// perturbed writes a copy of the GGUF src whose F32 weight matrices have
// Gaussian noise of sd times each tensor's RMS added: the same vocabulary,
// a model that mostly agrees with the original.
func perturbed(t *testing.T, src string, sd float64) string {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	return testmodel.Rewrite(t, src, nil, func(ti gguf.TensorInfo, raw []byte) ([]uint64, []byte) {
		if ti.Type != gguf.TypeF32 || len(ti.Shape) != 2 {
			return ti.Shape, raw
		}
		var ss float64
		for i := 0; i < len(raw); i += 4 {
			v := float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[i:])))
			ss += v * v
		}
		rms := math.Sqrt(ss / float64(len(raw)/4))
		for i := 0; i < len(raw); i += 4 {
			v := math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))
			binary.LittleEndian.PutUint32(raw[i:], math.Float32bits(v+float32(r.NormFloat64()*sd*rms)))
		}
		return ti.Shape, raw
	})
}

// TestDraftModel: speculative decoding with a draft model gives the output
// of plain decoding (greedy, up to near-ties; seeded sampling; token
// limits and stop strings; several requests at once; through a full
// context), with the model itself as its draft (every confident draft
// token kept) and with a perturbed copy (drafts rejected, the draft's
// memory resynchronised); a draft of another vocabulary is refused.
func TestDraftModel(t *testing.T) {
	ctx := context.Background()
	model := shareddata.Path(t, "models", "stories260K.gguf")
	plain, err := llm.New(ctx, model, llm.WithThreads(1), llm.WithParallel(3))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	prompts := []string{
		"Once upon a time, there was a little girl named Lily. She loved to play outside. One day, Lily",
		"The cat sat on the mat. The cat",
		"Tom had a red ball.",
	}
	want := make([]*llm.Result, len(prompts))
	for i, pr := range prompts {
		if want[i], err = plain.Generate(ctx, pr, llm.Temperature(0), llm.MaxTokens(64), llm.Logprobs(2)); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name  string
		draft string
		same  bool // the draft is the model: every confident proposal is kept
	}{
		{"itself", model, true},
		{"perturbed", perturbed(t, model, 0.3), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := llm.New(ctx, model, llm.WithThreads(1), llm.WithParallel(3), llm.WithDraft(tc.draft, 8))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var drafted, accepted int
			for run := range 2 { // the second reuses both memories' prefixes
				for i, pr := range prompts {
					got, err := p.Generate(ctx, pr, llm.Temperature(0), llm.MaxTokens(64))
					if err != nil {
						t.Fatal(err)
					}
					n := sameUpToTie(t, fmt.Sprintf("run %d, prompt %d", run, i), got, want[i], 1e-3)
					tm := got.Timings
					drafted, accepted = drafted+tm.DraftTokens, accepted+tm.DraftAccepted
					// With itself as draft, only the proposals past the
					// end (an end-of-generation token) go unaccepted.
					if tc.same && n == len(want[i].Tokens) && tm.DraftTokens-tm.DraftAccepted > 8 {
						t.Errorf("run %d, prompt %d: %d of %d drafts accepted from the model itself", run, i, tm.DraftAccepted, tm.DraftTokens)
					}
				}
			}
			t.Logf("%d drafted, %d accepted", drafted, accepted)
			if drafted == 0 || accepted == 0 || (!tc.same && accepted == drafted) {
				t.Errorf("%d drafted, %d accepted", drafted, accepted)
			}

			// Seeded sampling draws once per token, in order.
			sampled := func(q *llm.Pipeline) string {
				res, err := q.Generate(ctx, prompts[0], llm.Temperature(0.8), llm.Seed(42), llm.MaxTokens(48))
				if err != nil {
					t.Fatal(err)
				}
				return res.Text
			}
			if a, b := sampled(plain), sampled(p); a != b {
				t.Errorf("seeded sampling: %q\nwith a draft %q", b, a)
			}
			if res, err := p.Generate(ctx, prompts[0], llm.Temperature(0), llm.MaxTokens(5)); err != nil || len(res.Tokens) != 5 {
				t.Errorf("MaxTokens(5): %v, %v", res, err)
			}
			if res, err := p.Generate(ctx, prompts[0], llm.Temperature(0), llm.MaxTokens(64), llm.Stop("Lily")); err != nil ||
				strings.Contains(res.Text, "Lily") || !strings.HasPrefix(want[0].Text, res.Text) {
				t.Errorf("Stop(Lily): %q, %v", res.Text, err)
			}

			// Three at once, as each alone.
			var wg sync.WaitGroup
			together := make([]*llm.Result, len(prompts))
			for i, pr := range prompts {
				wg.Go(func() {
					res, err := p.Generate(ctx, pr, llm.Temperature(0), llm.MaxTokens(64))
					if err != nil {
						t.Error(err)
						return
					}
					together[i] = res
				})
			}
			wg.Wait()
			for i := range prompts {
				if together[i] != nil {
					sameUpToTie(t, fmt.Sprintf("together, prompt %d", i), together[i], want[i], 1e-3)
				}
			}
		})
	}

	// Through a full context: drafts never pass its end, and the window
	// shifts as without them (the draft's memory follows the shift).
	long := []llm.GenerateOption{llm.Temperature(0), llm.MaxTokens(200), llm.WithContextPolicy(llm.ShiftWindow)}
	small, err := llm.New(ctx, model, llm.WithThreads(1), llm.WithContextLength(64))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	smallDraft, err := llm.New(ctx, model, llm.WithThreads(1), llm.WithContextLength(64), llm.WithDraft(model, 8))
	if err != nil {
		t.Fatal(err)
	}
	defer smallDraft.Close()
	a, err := small.Generate(ctx, prompts[0], long...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := smallDraft.Generate(ctx, prompts[0], long...)
	if err != nil || len(b.Tokens) != 200 || b.Shifted == 0 || b.Shifted != a.Shifted {
		t.Fatalf("through a full context: %v; %d tokens, shifted %d (without a draft %d)", err, len(b.Tokens), b.Shifted, a.Shifted)
	}
	t.Logf("through a full context: %d drafted, %d accepted", b.Timings.DraftTokens, b.Timings.DraftAccepted)

	// Refused: another vocabulary, a token spelled otherwise, a draft
	// length out of range.
	h, err := gguf.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	toks, _ := h.Strings("tokenizer.ggml.tokens")
	toks = slices.Clone(toks)
	toks[300] = "<renamed>"
	renamed := testmodel.Rewrite(t, model, func(w *gguf.Writer) { w.Set("tokenizer.ggml.tokens", gguf.Strings(toks)) }, nil)
	if _, err := llm.New(ctx, model, llm.WithThreads(1), llm.WithDraft(renamed, 8)); !errors.Is(err, llm.ErrDraftIncompatible) || !strings.Contains(err.Error(), "token 300") {
		t.Errorf("a draft with token 300 renamed: %v, want ErrDraftIncompatible naming token 300", err)
	}
	_, err = llm.New(ctx, model, llm.WithThreads(1), llm.WithDraft(shareddata.Path(t, "models", "llama-2-tiny-random.gguf"), 8))
	if !errors.Is(err, llm.ErrDraftIncompatible) {
		t.Errorf("a draft of another vocabulary: %v, want ErrDraftIncompatible", err)
	}
	if _, err := llm.New(ctx, model, llm.WithDraft(model, llm.MaxDraftTokens+1)); err == nil || !strings.Contains(err.Error(), "draft tokens") {
		t.Errorf("WithDraft(%d): %v", llm.MaxDraftTokens+1, err)
	}
}

// BenchmarkDraftModel measures greedy generation's tokens per second with
// and without a draft model (WithDraft, 8 tokens). LLM_BENCH_MODEL names
// the model (default stories260K), LLM_BENCH_DRAFT the draft (default: the
// model itself, the upper bound of acceptance), LLM_BENCH_THREADS the
// threads (default 1) and LLM_BENCH_NGL the GPU layers (default 0).
func BenchmarkDraftModel(b *testing.B) {
	model := os.Getenv("LLM_BENCH_MODEL")
	if model == "" {
		model = shareddata.Path(b, "models", "stories260K.gguf")
	}
	draft := os.Getenv("LLM_BENCH_DRAFT")
	if draft == "" {
		draft = model
	}
	threads, _ := strconv.Atoi(os.Getenv("LLM_BENCH_THREADS"))
	ngl, _ := strconv.Atoi(os.Getenv("LLM_BENCH_NGL"))
	prompt := "Once upon a time, there was a little girl named Lily. She loved to play outside. One day, Lily"
	for _, withDraft := range []bool{false, true} {
		opts := []llm.Option{llm.WithThreads(max(threads, 1)), llm.WithContextLength(1024), llm.WithGPULayers(ngl)}
		if withDraft {
			opts = append(opts, llm.WithDraft(draft, 8))
		}
		p, err := llm.New(context.Background(), model, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("draft=%v", withDraft), func(b *testing.B) { benchGenerate(b, p, prompt) })
		p.Close()
	}
}
