package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubtest"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/gguf"
)

type refPrompt struct {
	Prompt   string `json:"prompt"`
	NPredict int    `json:"n_predict"`
	Text     string `json:"generated_text"`
}

func references(t *testing.T) []refPrompt {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "stories260K_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []refPrompt `json:"prompts"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	return ref.Prompts
}

func open(t *testing.T, opts ...llm.Option) *llm.Pipeline {
	t.Helper()
	p, err := llm.New(context.Background(), shareddata.Path(t, "models", "stories260K.gguf"), append([]llm.Option{llm.WithThreads(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func greedy(n int) []llm.GenerateOption {
	return []llm.GenerateOption{llm.Temperature(0), llm.MaxTokens(n)}
}

// TestGenerateReference: every stories260K reference prompt gives its
// reference greedy text through the pipeline.
func TestGenerateReference(t *testing.T) {
	p := open(t)
	ctx := context.Background()
	for _, r := range references(t) {
		res, err := p.Generate(ctx, r.Prompt, greedy(r.NPredict)...)
		if err != nil {
			t.Fatal(err)
		}
		if res.Text != r.Text {
			t.Errorf("%q:\n got %q\nwant %q", r.Prompt, res.Text, r.Text)
		}
		if res.FinishReason != llm.FinishLength || len(res.Tokens) != r.NPredict {
			t.Errorf("%q: finish %q after %d tokens", r.Prompt, res.FinishReason, len(res.Tokens))
		}
	}
}

func TestStreamMatchesGenerate(t *testing.T) {
	p := open(t)
	ctx := context.Background()
	r := references(t)[0]
	var text strings.Builder
	var final *llm.Result
	chunks := 0
	for c, err := range p.Stream(ctx, r.Prompt, greedy(r.NPredict)...) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Result != nil {
			final = c.Result
			continue
		}
		if final != nil {
			t.Error("a chunk after the one with the Result")
		}
		text.WriteString(c.Text)
		chunks++
	}
	if text.String() != r.Text || chunks < r.NPredict/2 {
		t.Errorf("streamed %q in %d chunks, want %q", text.String(), chunks, r.Text)
	}
	// The last chunk carries the Result Generate would return.
	if final == nil || final.Text != r.Text || len(final.Tokens) != r.NPredict || final.FinishReason != llm.FinishLength ||
		final.Timings.PromptTokens == 0 || final.Timings.GeneratedTokens != r.NPredict {
		t.Errorf("final result %+v", final)
	}
	// Breaking out of the loop stops generation and frees the context.
	n := 0
	for range p.Stream(ctx, r.Prompt, greedy(r.NPredict)...) {
		if n++; n == 3 {
			break
		}
	}
	if res, err := p.Generate(ctx, r.Prompt, greedy(r.NPredict)...); err != nil || res.Text != r.Text {
		t.Errorf("after a broken stream: %v %q", err, res.Text)
	}
}

// TestStopStrings: generation ends before the first stop string, even one
// that spans tokens, and no part of it leaks, in Generate or Stream.
func TestStopStrings(t *testing.T) {
	p := open(t)
	ctx := context.Background()
	r := references(t)[0] // ", there was a little girl named Lily. She loved to play..."
	for _, stop := range []string{"Lily", " named Li", "girl", "ly. She"} {
		want := r.Text[:strings.Index(r.Text, stop)]
		res, err := p.Generate(ctx, r.Prompt, append(greedy(r.NPredict), llm.Stop("nonexistent", stop))...)
		if err != nil {
			t.Fatal(err)
		}
		if res.Text != want || res.FinishReason != llm.FinishStop {
			t.Errorf("stop %q: %q (%s), want %q", stop, res.Text, res.FinishReason, want)
		}
		var streamed strings.Builder
		for c, err := range p.Stream(ctx, r.Prompt, append(greedy(r.NPredict), llm.Stop(stop))...) {
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(streamed.String()+c.Text, stop) {
				t.Fatalf("stop %q leaked into the stream", stop)
			}
			streamed.WriteString(c.Text)
		}
		if streamed.String() != want {
			t.Errorf("stop %q streamed %q, want %q", stop, streamed.String(), want)
		}
	}
	// A stop string that never completes is not held back at the end.
	res, _ := p.Generate(ctx, r.Prompt, append(greedy(3), llm.Stop(" was a dragon"))...)
	if res.Text != ", there was" {
		t.Errorf("held-back text lost at the end: %q", res.Text)
	}
	if _, err := p.Generate(ctx, r.Prompt, llm.Stop("")); err == nil {
		t.Error("an empty stop string was accepted")
	}
}

func TestPromptTooLong(t *testing.T) {
	p := open(t, llm.WithContextLength(256))
	long := strings.Repeat("Lily and Tom went to the park. ", 40)
	_, err := p.Generate(context.Background(), long)
	if !errors.Is(err, llm.ErrPromptTooLong) || !strings.Contains(err.Error(), "context holds 256") {
		t.Errorf("oversized prompt: %v", err)
	}
}

// TestPrefixReuse: a prompt that extends the previous request decodes only
// its new tokens, and gives the same text as a cold start.
func TestPrefixReuse(t *testing.T) {
	p := open(t)
	ctx := context.Background()
	first, err := p.Generate(ctx, "Once upon a time", greedy(16)...)
	if err != nil {
		t.Fatal(err)
	}
	follow := "Once upon a time" + first.Text + " The end. Then"
	warm, err := p.Generate(ctx, follow, greedy(16)...)
	if err != nil {
		t.Fatal(err)
	}
	if warm.Timings.PromptEvaluated >= warm.Timings.PromptTokens/2 {
		t.Errorf("decoded %d of %d prompt tokens: the cached prefix was not reused", warm.Timings.PromptEvaluated, warm.Timings.PromptTokens)
	}
	cold, err := open(t).Generate(ctx, follow, greedy(16)...)
	if err != nil {
		t.Fatal(err)
	}
	if warm.Text != cold.Text {
		t.Errorf("with the cached prefix %q, cold %q", warm.Text, cold.Text)
	}
	t.Logf("prompt of %d tokens: %d decoded with the cache (%v), cold %v; time to first token %v vs %v",
		warm.Timings.PromptTokens, warm.Timings.PromptEvaluated, warm.Timings.PromptDuration, cold.Timings.PromptDuration,
		warm.Timings.TimeToFirstToken, cold.Timings.TimeToFirstToken)
}

func TestConcurrentRequests(t *testing.T) {
	p := open(t, llm.WithParallel(2))
	refs := references(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		r := refs[i%len(refs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Generate(context.Background(), r.Prompt, greedy(r.NPredict)...)
			if err == nil && res.Text != r.Text {
				err = errors.New("wrong text for " + r.Prompt + ": " + res.Text)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestChat renders a conversation with a model's chat template: a copy of
// stories260K given a template that turns the user's message into the
// story prompt must continue it as Generate does.
func TestChat(t *testing.T) {
	path := withTemplate(t, "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}")
	p, err := llm.New(context.Background(), path, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.HasChatTemplate() {
		t.Fatal("the template was not found")
	}
	r := references(t)[0]
	msgs := []llm.Message{{Role: "system", Content: "ignored"}, {Role: "user", Content: r.Prompt}}
	prompt, err := p.ChatPrompt(msgs)
	if err != nil || prompt != "<s>"+r.Prompt {
		t.Fatalf("chat prompt %q %v", prompt, err)
	}
	res, err := p.Chat(context.Background(), msgs, greedy(r.NPredict)...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != r.Text {
		t.Errorf("chat reply %q, want %q", res.Text, r.Text)
	}

	// Without a template the conversation becomes a plain prompt.
	plain := open(t)
	if plain.HasChatTemplate() {
		t.Fatal("stories260K has no template")
	}
	res, err = plain.Chat(context.Background(), []llm.Message{{Role: "user", Content: r.Prompt}}, greedy(r.NPredict)...)
	if err != nil || res.Text != r.Text {
		t.Errorf("plain chat: %v %q", err, res.Text)
	}
}

// TestNewFromHub pulls a model named on a (fake) Hub and generates with it.
func TestNewFromHub(t *testing.T) {
	srv := hubtest.Shared(t)
	env := hub.LoadEnv(func(k string) string {
		switch k {
		case "HF_ENDPOINT":
			return srv.URL
		case "HF_HUB_CACHE":
			return filepath.Join(t.TempDir(), "hub")
		}
		return ""
	})
	client, err := hub.NewClient(env)
	if err != nil {
		t.Fatal(err)
	}
	p, err := llm.New(context.Background(), "test/stories260K/stories260K.gguf", llm.WithHub(client), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := references(t)[0]
	res, err := p.Generate(context.Background(), r.Prompt, greedy(r.NPredict)...)
	if err != nil || res.Text != r.Text {
		t.Errorf("from the Hub: %v %q", err, res.Text)
	}
	// A safetensors repository is converted once and cached.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	for range 2 {
		g, err := llm.New(context.Background(), "test/tiny-random-gpt2", llm.WithHub(client), llm.WithThreads(1))
		if err != nil {
			t.Fatalf("a safetensors repo: %v", err)
		}
		res, err := g.Generate(context.Background(), "Hello world", greedy(4)...)
		g.Close()
		if err != nil || len(res.Tokens) != 4 {
			t.Fatalf("generating with the converted GPT-2: %v %+v", err, res)
		}
	}
	converted, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "llm", "converted", "*.gguf"))
	if len(converted) != 1 {
		t.Errorf("conversions in the cache: %v, want one", converted)
	}
}

// TestNewFromHFDirectory converts a local safetensors directory on the fly:
// the tiny Llama fixture's greedy tokens match its transformers reference.
func TestNewFromHFDirectory(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "tiny-llama-st_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []struct {
			Text   string `json:"text"`
			Greedy []int  `json:"greedy_ids"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	p, err := llm.New(context.Background(), shareddata.Path(t, "models", "hf", "tiny-llama-st"), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.HasChatTemplate() {
		t.Error("the converted model lost its chat template")
	}
	r := ref.Prompts[0]
	res, err := p.Generate(context.Background(), r.Text, greedy(16)...)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range res.Tokens {
		if int(tok) != r.Greedy[i] {
			t.Fatalf("%q: greedy token %d is %d, the reference %d", r.Text, i, tok, r.Greedy[i])
		}
	}
	if _, err := llm.New(context.Background(), t.TempDir()); err == nil {
		t.Error("an empty directory loaded")
	}
}

func TestClosed(t *testing.T) {
	p := open(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.Generate(context.Background(), "x"); !errors.Is(err, llm.ErrClosed) {
		t.Errorf("Generate after Close: %v", err)
	}
}

// TestEmbed: one unit-length vector of the model's width per text,
// identical for identical texts and different for different ones.
func TestEmbed(t *testing.T) {
	p := open(t)
	vs, err := p.Embed(context.Background(), "The little dog", "The little dog", "Lily and Tom went to the park")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("%d vectors", len(vs))
	}
	for i, v := range vs {
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		if len(v) != p.Model().Info().EmbeddingSize || n < 0.9999 || n > 1.0001 {
			t.Errorf("vector %d: %d values, squared norm %v", i, len(v), n)
		}
	}
	var same, diff float64
	for i := range vs[0] {
		same += float64(vs[0][i] * vs[1][i])
		diff += float64(vs[0][i] * vs[2][i])
	}
	if same < 0.99999 || diff > 0.999 {
		t.Errorf("cosine of identical texts %v, of different texts %v", same, diff)
	}
	// Texts embedded together (several sequences in one batch) are
	// embedded as each alone; 40 texts take three batches.
	texts := make([]string, 40)
	for i := range texts {
		texts[i] = fmt.Sprintf("Lily saw %d birds in the park and %d cats.", i, 40-i)
	}
	together, err := p.Embed(context.Background(), texts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 15, 16, 39} {
		alone, err := p.Embed(context.Background(), texts[i])
		if err != nil {
			t.Fatal(err)
		}
		var d float64
		for k := range alone[0] {
			d = max(d, math.Abs(float64(alone[0][k]-together[i][k])))
		}
		if d > 1e-5 {
			t.Errorf("text %d: embedded with others, it differs by %.3g from alone", i, d)
		}
	}
	long := strings.Repeat("word ", 5000)
	if _, err := p.Embed(context.Background(), "short", long); !errors.Is(err, llm.ErrPromptTooLong) || !strings.Contains(err.Error(), "text 1") {
		t.Errorf("an over-long text: %v", err)
	}
}

// TestContextPolicies: by default an over-long conversation is an error and
// generation stops when the context is full; DropOldestTurns and
// ShiftWindow keep going and say what they did.
func TestContextPolicies(t *testing.T) {
	p := open(t, llm.WithContextLength(256))
	ctx := context.Background()
	var msgs []llm.Message
	msgs = append(msgs, llm.Message{Role: "system", Content: "Stories."})
	for i := range 12 {
		msgs = append(msgs, llm.Message{Role: "user", Content: strings.Repeat("Lily and Tom went to the park. ", 2)},
			llm.Message{Role: "assistant", Content: "They played with a ball " + strings.Repeat("and laughed ", i%3)})
	}
	msgs = append(msgs, llm.Message{Role: "user", Content: "Once upon a time"})

	if _, err := p.Chat(ctx, msgs, greedy(8)...); !errors.Is(err, llm.ErrPromptTooLong) {
		t.Fatalf("an over-long conversation: %v", err)
	}
	res, err := p.Chat(ctx, msgs, append(greedy(8), llm.WithContextPolicy(llm.DropOldestTurns))...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped == 0 || res.Dropped >= len(msgs)-1 || len(res.Tokens) != 8 {
		t.Errorf("dropped %d of %d messages, generated %d tokens", res.Dropped, len(msgs), len(res.Tokens))
	}
	one := []llm.Message{{Role: "user", Content: strings.Repeat("Lily and Tom went to the park. ", 40)}}
	if _, err := p.Chat(ctx, one, llm.WithContextPolicy(llm.DropOldestTurns)); !errors.Is(err, llm.ErrPromptTooLong) {
		t.Errorf("a single message too long for the context: %v", err)
	}

	// Generation past the end of the context.
	res, err = p.Generate(ctx, "Once upon a time", greedy(400)...)
	if err != nil || res.FinishReason != llm.FinishLength || len(res.Tokens) >= 256 {
		t.Fatalf("strict: %v, %s after %d tokens", err, res.FinishReason, len(res.Tokens))
	}
	res, err = p.Generate(ctx, "Once upon a time", append(greedy(400), llm.WithContextPolicy(llm.ShiftWindow))...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tokens) != 400 || res.Shifted == 0 {
		t.Errorf("shift: %d tokens, %d shifted", len(res.Tokens), res.Shifted)
	}
	// The context still works afterwards.
	r := references(t)[0]
	if res, err := p.Generate(ctx, r.Prompt, greedy(r.NPredict)...); err != nil || res.Text != r.Text {
		t.Errorf("after a shift: %v %q", err, res.Text)
	}
}

// withTemplate writes a copy of stories260K with the chat template tmpl.
func withTemplate(t *testing.T, tmpl string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chat.gguf")
	err := gguf.Rewrite(path, shareddata.Path(t, "models", "stories260K.gguf"), func(w *gguf.Writer) {
		w.Set("tokenizer.chat_template", gguf.String(tmpl))
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBuiltinTemplateFallback: a template that is not Jinja we can run,
// but whose format llama.cpp recognises, is rendered by llama.cpp's
// built-in implementation; one that is neither is an error at New.
func TestBuiltinTemplateFallback(t *testing.T) {
	path := withTemplate(t, "{% for m in messages %}<|im_start|>{{ m.role }}{% frobnicate %}{% endfor %}")
	p, err := llm.New(context.Background(), path, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.HasChatTemplate() {
		t.Error("HasChatTemplate is false")
	}
	got, err := p.ChatPrompt([]llm.Message{{Role: "user", Content: "Hi"}})
	if want := "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"; err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	if _, err := p.Chat(context.Background(), []llm.Message{{Role: "user", Content: "Hi"}}, greedy(4)...); err != nil {
		t.Error(err)
	}
	if _, err := p.ChatPrompt([]llm.Message{{Role: "user", Content: "Hi"}}, llm.Tools(map[string]any{"type": "function"})); err == nil {
		t.Error("tools with a built-in format were accepted")
	}
	if _, err := llm.New(context.Background(), withTemplate(t, "{% frobnicate %}"), llm.WithThreads(1)); err == nil {
		t.Error("a template that is neither Jinja nor a known format was accepted")
	}
}

// TestCombinedPolicies: DropOldestTurns|ShiftWindow drops turns to fit the
// prompt and shifts the window to go on generating.
func TestCombinedPolicies(t *testing.T) {
	p := open(t, llm.WithContextLength(64))
	long := strings.Repeat("Lily and Tom played in the park. ", 6)
	msgs := []llm.Message{
		{Role: "user", Content: long}, {Role: "assistant", Content: long},
		{Role: "user", Content: "Once upon a time"},
	}
	res, err := p.Chat(context.Background(), msgs, llm.Temperature(0), llm.MaxTokens(100),
		llm.WithContextPolicy(llm.DropOldestTurns|llm.ShiftWindow))
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped == 0 || res.Shifted == 0 || len(res.Tokens) != 100 {
		t.Errorf("dropped %d turns, shifted %d tokens, made %d", res.Dropped, res.Shifted, len(res.Tokens))
	}
}

// TestGenerateTokens: a prompt given as token ids continues as its text
// does, streamed or not; ids outside the vocabulary are an error.
func TestGenerateTokens(t *testing.T) {
	p := open(t)
	ctx := context.Background()
	r := references(t)[0]
	ids, err := p.Model().Tokenize(r.Prompt, true, true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.GenerateTokens(ctx, ids, greedy(r.NPredict)...)
	if err != nil || res.Text != r.Text || res.Timings.PromptTokens != len(ids) {
		t.Fatalf("GenerateTokens: %v %+v", err, res)
	}
	var text strings.Builder
	for c, err := range p.StreamTokens(ctx, ids, greedy(r.NPredict)...) {
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(c.Text)
	}
	if text.String() != r.Text {
		t.Errorf("StreamTokens %q", text.String())
	}
	if res, err := p.GenerateTokens(ctx, ids, append(greedy(4), llm.Echo())...); err != nil || !strings.HasPrefix(res.Text, r.Prompt) {
		t.Errorf("with Echo: %v %+v", err, res)
	}
	for _, bad := range [][]llm.Token{{1, -1}, {1, llm.Token(p.Model().VocabSize())}} {
		if _, err := p.GenerateTokens(ctx, bad, greedy(2)...); !errors.Is(err, llm.ErrInvalidToken) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if _, err := p.GenerateTokens(ctx, nil, greedy(2)...); !errors.Is(err, llm.ErrEmptyPrompt) {
		t.Errorf("no ids: %v", err)
	}
}
