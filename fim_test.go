package llm_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/gguf"
)

// withFIM returns a copy of stories260K whose vocabulary names three of
// its tokens as the fill-in-the-middle prefix, suffix and middle tokens.
func withFIM(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fim.gguf")
	err := gguf.Rewrite(path, shareddata.Path(t, "models", "stories260K.gguf"), func(w *gguf.Writer) {
		w.Set("tokenizer.ggml.fim_pre_token_id", gguf.Uint32(3))
		w.Set("tokenizer.ggml.fim_suf_token_id", gguf.Uint32(4))
		w.Set("tokenizer.ggml.fim_mid_token_id", gguf.Uint32(5))
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSuffixFillsInTheMiddle: Generate with Suffix runs the prompt framed
// as llama-server's /infill frames it, [BOS] PRE prefix SUF suffix MID,
// streamed or not; a model without FIM tokens, a chat and token-id prompts
// refuse Suffix.
func TestSuffixFillsInTheMiddle(t *testing.T) {
	ctx := context.Background()
	p, err := llm.New(ctx, withFIM(t), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m := p.Model()
	sp := m.SpecialTokens()
	if sp.FIMPre != 3 || sp.FIMSuf != 4 || sp.FIMMid != 5 {
		t.Fatalf("FIM tokens %d %d %d, want 3 4 5", sp.FIMPre, sp.FIMSuf, sp.FIMMid)
	}
	prefix, suffix := "Once upon a time, there was", " They were happy."
	pre, err := m.Tokenize(prefix, false, false)
	if err != nil {
		t.Fatal(err)
	}
	suf, err := m.Tokenize(suffix, false, false)
	if err != nil {
		t.Fatal(err)
	}
	ids := []engine.Token{sp.BOS, 3}
	ids = append(append(ids, pre...), 4)
	ids = append(append(ids, suf...), 5)
	want, err := p.GenerateTokens(ctx, ids, greedy(12)...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Generate(ctx, prefix, append(greedy(12), llm.Suffix(suffix))...)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != want.Text || got.Timings.PromptTokens != len(ids) {
		t.Errorf("Suffix: %q from %d prompt tokens, want %q from %d", got.Text, got.Timings.PromptTokens, want.Text, len(ids))
	}
	plain, err := p.Generate(ctx, prefix, greedy(12)...)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Text == got.Text {
		t.Errorf("the FIM prompt changed nothing: %q", plain.Text)
	}
	var streamed string
	for c, err := range p.Stream(ctx, prefix, append(greedy(12), llm.Suffix(suffix))...) {
		if err != nil {
			t.Fatal(err)
		}
		streamed += c.Text
	}
	if streamed != want.Text {
		t.Errorf("streamed %q, want %q", streamed, want.Text)
	}

	if _, err := p.Chat(ctx, []llm.Message{{Role: "user", Content: "hi"}}, llm.Suffix("x")); err == nil {
		t.Error("Chat with Suffix: no error")
	}
	if _, err := p.GenerateTokens(ctx, ids, llm.Suffix("x")); err == nil {
		t.Error("GenerateTokens with Suffix: no error")
	}
	noFIM := open(t)
	if _, err := noFIM.Generate(ctx, prefix, llm.Suffix(suffix)); !errors.Is(err, llm.ErrNoFIM) {
		t.Errorf("a model without FIM tokens: %v, want ErrNoFIM", err)
	}
}
