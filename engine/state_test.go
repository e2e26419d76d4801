package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/testmodel"
)

// TestSaveLoadSequence: a sequence saved after its prompt and loaded into
// another context goes on as the first would have: the same logits after
// its last token decoded again, the same greedy tokens.
func TestSaveLoadSequence(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // the key for saved sequences
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	opts := engine.ContextOptions{ContextLength: 128}
	prompt, err := m.Tokenize("Once upon a time, there was a little dog", true, false)
	if err != nil {
		t.Fatal(err)
	}
	c1 := newContext(t, m, opts)
	wantToks, wantLogits := greedy(t, c1, prompt, 12, false)
	// greedy leaves the prompt and 11 generated tokens in memory: keep the
	// prompt only, and save it.
	if ok, err := c1.RemoveTokens(0, engine.Pos(len(prompt)), -1); err != nil || !ok {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prompt.seq")
	if err := c1.SaveSequence(path, 0, prompt); err != nil {
		t.Fatal(err)
	}

	c2 := newContext(t, m, opts)
	got, err := c2.LoadSequence(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, prompt) {
		t.Fatalf("tokens %v, want %v", got, prompt)
	}
	// The last prompt token again, for its logits, then greedy on.
	if ok, err := c2.RemoveTokens(0, engine.Pos(len(prompt)-1), -1); err != nil || !ok {
		t.Fatal(err)
	}
	b := newBatch(t, 1, 1)
	var toks []engine.Token
	var first []float32
	tok, pos := prompt[len(prompt)-1], len(prompt)-1
	for range 12 {
		b.Clear()
		b.Add(tok, engine.Pos(pos), true)
		if err := c2.Decode(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		l, err := c2.Logits(0)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = slices.Clone(l)
		}
		tok, pos = argmax(l), pos+1
		toks = append(toks, tok)
	}
	if d := maxRelDiff(first, wantLogits); d > 1e-4 || !slices.Equal(toks, wantToks) {
		t.Errorf("after loading: logits within %.3g, tokens %v; want %v", d, toks, wantToks)
	}

	// Files that are not, or no longer, what was saved: errors, before
	// llama.cpp reads them.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := slices.Clone(data)
	flipped[len(flipped)-100] ^= 0x40
	other := loadModel(t, engine.ModelOptions{}, "models", "llama-2-tiny-random.gguf")
	for _, tc := range []struct {
		name string
		c    *engine.Context
		path string
		want string
	}{
		{"damaged", c2, write("flipped", flipped), "MAC disagrees"},
		{"truncated", c2, write("cut", data[:len(data)-10]), "bytes after the header"},
		{"not one", c2, write("text", []byte("hello, world, this is not a state")), "not a saved sequence"},
		{"another model", newContext(t, other, opts), path, "another model"},
		{"other cache types", newContext(t, m, engine.ContextOptions{ContextLength: 128, TypeK: "f32"}), path, ""},
	} {
		_, err := tc.c.LoadSequence(tc.path, 0)
		if !errors.Is(err, engine.ErrState) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := c2.LoadSequence(filepath.Join(t.TempDir(), "missing"), 0); err == nil {
		t.Error("a missing file loaded")
	}
	// A context with a LoRA adapter computes other states: a sequence
	// saved without it does not load there, nor the other way round.
	a, err := m.LoadAdapter(testmodel.StoriesLoRA(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	withLoRA := newContext(t, m, opts)
	if err := withLoRA.SetAdapter(a, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := withLoRA.LoadSequence(path, 0); !errors.Is(err, engine.ErrState) || !strings.Contains(err.Error(), "LoRA") {
		t.Errorf("loaded into a context with an adapter: %v", err)
	}
}
