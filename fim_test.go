package llm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/testmodel"
)

// TestSuffixFillsInTheMiddle: Generate with Suffix runs the prompt framed
// as llama-server's /infill frames it, [BOS] PRE prefix SUF suffix MID,
// streamed or not; a model without FIM tokens, a chat and token-id prompts
// refuse Suffix.
func TestSuffixFillsInTheMiddle(t *testing.T) {
	ctx := context.Background()
	p, err := llm.New(ctx, testmodel.StoriesWithFIM(t, "coder"), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m := p.Model()
	sp := m.SpecialTokens()
	if sp.FIMPre != testmodel.FIMPre || sp.FIMSuf != testmodel.FIMSuf || sp.FIMMid != testmodel.FIMMid {
		t.Fatalf("FIM tokens %d %d %d, want %d %d %d", sp.FIMPre, sp.FIMSuf, sp.FIMMid, testmodel.FIMPre, testmodel.FIMSuf, testmodel.FIMMid)
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
	ids := []engine.Token{sp.BOS, testmodel.FIMPre}
	ids = append(append(ids, pre...), testmodel.FIMSuf)
	ids = append(append(ids, suf...), testmodel.FIMMid)
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
