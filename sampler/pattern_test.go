package sampler

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/sampler/gbnf"
)

// TestSchemaPattern: a string schema with a pattern accepts, through
// llama.cpp's grammar engine, exactly the JSON strings whose content the
// pattern matches (unanchored patterns match anywhere, as JSON schema says).
func TestSchemaPattern(t *testing.T) {
	m := stories(t)
	// One token per byte: the vocabulary's byte-fallback tokens.
	byteTok := map[byte]engine.Token{}
	for id := range m.VocabSize() {
		piece, err := m.TokenToPiece(engine.Token(id), true)
		text, _ := m.TokenText(engine.Token(id))
		if err == nil && len(piece) == 1 && strings.HasPrefix(text, "<0x") {
			byteTok[piece[0]] = engine.Token(id)
		}
	}
	if len(byteTok) < 200 {
		t.Fatalf("only %d byte tokens", len(byteTok))
	}
	eos := m.SpecialTokens().EOS
	accepts := func(g *engine.Grammar, doc string) bool {
		if err := g.Reset(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(doc); i++ {
			tok := byteTok[doc[i]]
			if ok, err := g.Allows(tok); err != nil || !ok {
				return false
			}
			if err := g.Accept(tok); err != nil {
				return false
			}
		}
		ok, err := g.Allows(eos)
		return err == nil && ok
	}
	for _, c := range []struct {
		pattern string
		yes, no []string
	}{
		{`^[a-z]{2,3}-\d+$`, []string{"ab-1", "xyz-2024"}, []string{"a-1", "abcd-1", "ab-", "AB-1", "xab-1 "}},
		{`^(cat|dog)s?$`, []string{"cat", "dogs"}, []string{"cow", "cats!", ""}},
		{`^\w+@\w+\.com$`, []string{"me@example.com", "a_1@b.com"}, []string{"me@example.org", "@x.com"}},
		{`^.{3}$`, []string{"abc", "a b"}, []string{"ab", "abcd"}},
		{`^(?i)yes$`, []string{"yes", "YeS"}, []string{"yess", "no"}},
		{`^[^a-c]*$`, []string{"xyz", "", "!?"}, []string{"xaz"}},
		{`^say "hi"\\$`, []string{`say \"hi\"\\`}, []string{`say "hi"\`}},
		{`\d{4}`, []string{"1999", "in 2024 we", "0000x"}, []string{"199", "abc"}},
		{`^a?b*c+$`, []string{"c", "abbc", "bccc"}, []string{"ab", "aac"}},
	} {
		schema, _ := json.Marshal(map[string]any{"type": "string", "pattern": c.pattern})
		src, err := gbnf.FromJSONSchema(schema)
		if err != nil {
			t.Errorf("%s: %v", c.pattern, err)
			continue
		}
		g, err := m.NewGrammar(src)
		if err != nil {
			t.Errorf("%s: llama.cpp rejects the grammar: %v\n%s", c.pattern, err, src)
			continue
		}
		for _, s := range c.yes {
			if !accepts(g, `"`+s+`"`) {
				t.Errorf("%s: %q rejected; grammar:\n%s", c.pattern, s, src)
			}
		}
		for _, s := range c.no {
			if accepts(g, `"`+s+`"`) {
				t.Errorf("%s: %q accepted; grammar:\n%s", c.pattern, s, src)
			}
		}
		g.Close()
	}
	for _, bad := range []string{`^(a`, `^a$b$`, `x{2000}`} {
		schema, _ := json.Marshal(map[string]any{"type": "string", "pattern": bad})
		if _, err := gbnf.FromJSONSchema(schema); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}
