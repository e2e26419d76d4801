package engine_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
)

// pieceToken finds a token whose piece is s.
func pieceToken(t *testing.T, m *engine.Model, s string) engine.Token {
	t.Helper()
	for id := range m.VocabSize() {
		if p, _ := m.TokenToPiece(engine.Token(id), false); string(p) == s {
			return engine.Token(id)
		}
	}
	t.Fatalf("no token for %q", s)
	return 0
}

func TestGrammar(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{VocabOnly: true}, "models", "stories260K.gguf")
	g, err := m.NewGrammar(`root ::= "4" [0-9]*`)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	four, seven := pieceToken(t, m, "4"), pieceToken(t, m, "7")
	eos := m.SpecialTokens().EOS
	if ok, _ := g.Allows(seven); ok {
		t.Error(`"7" allowed first`)
	}
	if ok, _ := g.Allows(eos); ok {
		t.Error("end of sequence allowed before anything")
	}
	if err := g.Accept(seven); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("Accept of a forbidden token: %v", err)
	}
	// Apply masks the whole vocabulary.
	cands := make([]engine.TokenData, m.VocabSize())
	for i := range cands {
		cands[i] = engine.TokenData{ID: engine.Token(i), Logit: 1}
	}
	if err := g.Apply(cands); err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for _, c := range cands {
		if !math.IsInf(float64(c.Logit), -1) {
			allowed++
			if p, _ := m.TokenToPiece(c.ID, false); string(p) != "4" {
				t.Errorf("token %d (%q) allowed first", c.ID, p)
			}
		}
	}
	if allowed == 0 {
		t.Error("no token allowed first")
	}
	if err := g.Accept(four); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []engine.Token{seven, eos} {
		if ok, err := g.Allows(tok); !ok || err != nil {
			t.Errorf("token %d after \"4\": %v, %v", tok, ok, err)
		}
	}
	if err := g.Reset(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := g.Allows(seven); ok {
		t.Error("Reset did not restart the grammar")
	}
	if err := g.Apply([]engine.TokenData{{ID: 100000}}); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("Apply with a token outside the vocabulary: %v", err)
	}
	if engine.VocabPointer(m) == nil {
		t.Error("VocabPointer is nil")
	}
	g.Close()
	g.Close()
	if _, err := g.Allows(four); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestGrammarInvalid(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{VocabOnly: true}, "models", "stories260K.gguf")
	for _, src := range []string{
		`root ::= [0-9`,
		`root ::= x`,
		`start ::= "a"`,
		`root ::= root "a" | "b"`,
		`root ::= "a"{9,3}`,
		`root ::= <notatoken>`,
		"",
	} {
		if g, err := m.NewGrammar(src); err == nil || !errors.Is(err, engine.ErrInvalidArgument) {
			if g != nil {
				g.Close()
			}
			t.Errorf("NewGrammar(%q): %v, want ErrInvalidArgument", src, err)
		}
	}
	// A token given by its text.
	g, err := m.NewGrammar(`root ::= </s>`)
	if err != nil {
		t.Fatalf("a special token reference: %v", err)
	}
	g.Close()
}

func TestGrammarAfterModelClose(t *testing.T) {
	m, err := engine.LoadModel(context.Background(), shareddata.Path(t, "models", "stories260K.gguf"), engine.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.NewGrammar(`root ::= "a"`)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := g.Allows(1); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Allows after the model closed: %v", err)
	}
	g.Close()
}
