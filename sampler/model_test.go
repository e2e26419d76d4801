package sampler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/csampler"
	"github.com/llm-go/llm/internal/shareddata"
)

func TestMain(m *testing.M) {
	// llama.cpp's warnings about the tiny test model are noise here.
	engine.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}

var (
	storiesOnce  sync.Once
	storiesModel *engine.Model
	storiesErr   error
)

// stories loads ../shared/models/stories260K.gguf once for the package's
// tests (a 512-token SPM vocabulary; skipped when ../shared is missing).
func stories(t *testing.T) *engine.Model {
	t.Helper()
	path := shareddata.Path(t, "models", "stories260K.gguf")
	storiesOnce.Do(func() {
		storiesModel, storiesErr = engine.LoadModel(context.Background(), path, engine.ModelOptions{})
	})
	if storiesErr != nil {
		t.Fatal(storiesErr)
	}
	return storiesModel
}

// DRY with sequence breakers matched against a real vocabulary, against
// llama.cpp's DRY with the same vocabulary.
func TestEquivalenceDRYBreakers(t *testing.T) {
	m := stories(t)
	n := m.VocabSize()
	r := rand.New(rand.NewPCG(11, 12))
	breakers := []string{"\n", ":", "\"", "*", " the", "ing"}
	comparisons := 0
	for _, cfg := range [][4]float32{{0.8, 1.75, 2, -1}, {1, 2, 1, 50}, {2, 1.5, 3, 200}} {
		o := DefaultOptions()
		o.Order = []Stage{StageDRY}
		o.DRYMultiplier, o.DRYBase, o.DRYAllowedLength, o.DRYLastN = float64(cfg[0]), float64(cfg[1]), int(cfg[2]), int(cfg[3])
		o.DRYSequenceBreakers = breakers
		o.ContextSize = 512
		s, err := New(o, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.dry.breakers) == 0 {
			t.Fatal("no breaker tokens found")
		}
		for rep := 0; rep < 30; rep++ {
			logits := logitKinds[rep%len(logitKinds)].gen(r, n)
			// A history over a small alphabet, with breaker tokens.
			hist := testHistory(r, n, 60+r.IntN(300))
			for i := range hist {
				if r.IntN(4) == 0 {
					hist[i] = engine.Token(r.IntN(n))
				}
			}
			s.Reset()
			s.AddHistory(hist)
			if _, err := s.chain(logits, false); err != nil {
				t.Fatal(err)
			}
			got := append([]Candidate(nil), s.c.d...)
			c := csampler.New(n)
			c.DRY(engine.VocabPointer(m), 512, cfg[0], cfg[1], int(cfg[2]), int(cfg[3]), breakers)
			for _, tok := range hist {
				c.Accept(int32(tok))
			}
			want := c.Apply(logits).Candidates
			c.Free()
			compareCands(t, fmt.Sprintf("dry %v rep %d", cfg, rep), got, want)
			comparisons++
		}
	}
	t.Logf("%d comparisons with sequence breakers %q", comparisons, breakers)
}

// generation is one constrained generation from the model.
type generation struct {
	tokens []engine.Token
	text   string
	reason string // "eog" or "length"
}

// generate decodes prompt and samples up to max tokens with s.
func generate(t *testing.T, c *engine.Context, s *Sampler, prompt []engine.Token, maxTokens int) generation {
	t.Helper()
	m := c.Model()
	if err := c.ClearMemory(true); err != nil {
		t.Fatal(err)
	}
	b, err := engine.NewBatch(max(len(prompt), 1), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tok := range prompt {
		b.Add(tok, engine.Pos(i), i == len(prompt)-1)
	}
	if err := c.Decode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	var g generation
	var text strings.Builder
	pos := len(prompt)
	for len(g.tokens) < maxTokens {
		logits, err := c.Logits(b.Len() - 1)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.Sample(logits)
		if err != nil {
			t.Fatalf("after %q: %v", text.String(), err)
		}
		if m.IsEOG(tok) {
			g.reason = "eog"
			break
		}
		g.tokens = append(g.tokens, tok)
		piece, err := m.TokenToPiece(tok, false)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(piece)
		if pos >= c.ContextLength() {
			break
		}
		b.Clear()
		b.Add(tok, engine.Pos(pos), true)
		pos++
		if err := c.Decode(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if g.reason == "" {
		g.reason = "length"
	}
	g.text = text.String()
	return g
}

func storiesContext(t *testing.T) *engine.Context {
	t.Helper()
	m := stories(t)
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 512, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A grammar that allows only digits yields only digits.
func TestGrammarDigits(t *testing.T) {
	c := storiesContext(t)
	m := c.Model()
	prompt, _ := m.Tokenize("Once upon a time", true, false)
	for seed := int64(1); seed <= 10; seed++ {
		o := DefaultOptions()
		o.Seed = seed
		o.Temperature = 1
		o.Grammar = `root ::= [0-9]+`
		s, err := New(o, m)
		if err != nil {
			t.Fatal(err)
		}
		g := generate(t, c, s, prompt, 40)
		s.Close()
		if g.text == "" || strings.Trim(g.text, "0123456789") != "" {
			t.Errorf("seed %d: %q is not digits only", seed, g.text)
		}
		if seed == 1 {
			t.Logf("digits: %q (%s)", g.text, g.reason)
		}
	}
}

const personSchema = `{
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 12},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "color": {"enum": ["red", "green", "blue"]},
    "address": {
      "type": "object",
      "properties": {
        "city": {"type": "string", "maxLength": 10},
        "zip": {"type": "string", "minLength": 5, "maxLength": 5}
      },
      "required": ["city", "zip"]
    },
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
    "active": {"type": "boolean"}
  },
  "required": ["name", "age", "color", "address"]
}`

// validatePerson checks a document against personSchema.
func validatePerson(doc string) error {
	var v map[string]any
	dec := json.NewDecoder(strings.NewReader(doc))
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	if dec.More() {
		return errors.New("data after the object")
	}
	allowed := map[string]bool{"name": true, "age": true, "color": true, "address": true, "tags": true, "active": true}
	for k := range v {
		if !allowed[k] {
			return fmt.Errorf("unexpected property %q", k)
		}
	}
	name, ok := v["name"].(string)
	if !ok || len([]rune(name)) < 1 || len([]rune(name)) > 12 {
		return fmt.Errorf("name %v", v["name"])
	}
	age, ok := v["age"].(float64)
	if !ok || age != float64(int(age)) || age < 0 || age > 120 {
		return fmt.Errorf("age %v", v["age"])
	}
	switch v["color"] {
	case "red", "green", "blue":
	default:
		return fmt.Errorf("color %v", v["color"])
	}
	addr, ok := v["address"].(map[string]any)
	if !ok {
		return fmt.Errorf("address %v", v["address"])
	}
	for k := range addr {
		if k != "city" && k != "zip" {
			return fmt.Errorf("unexpected address property %q", k)
		}
	}
	city, ok := addr["city"].(string)
	if !ok || len([]rune(city)) > 10 {
		return fmt.Errorf("city %v", addr["city"])
	}
	zip, ok := addr["zip"].(string)
	if !ok || len([]rune(zip)) != 5 {
		return fmt.Errorf("zip %v", addr["zip"])
	}
	if tags, ok := v["tags"]; ok {
		list, ok := tags.([]any)
		if !ok || len(list) > 3 {
			return fmt.Errorf("tags %v", tags)
		}
		for _, x := range list {
			if s, ok := x.(string); !ok || len([]rune(s)) > 6 {
				return fmt.Errorf("tag %v", x)
			}
		}
	}
	if a, ok := v["active"]; ok {
		if _, ok := a.(bool); !ok {
			return fmt.Errorf("active %v", a)
		}
	}
	return nil
}

// 50 generations under a JSON schema with required fields, a nested object
// and an enum all parse and validate.
func TestJSONSchemaGenerations(t *testing.T) {
	c := storiesContext(t)
	m := c.Model()
	prompt, _ := m.Tokenize("", true, false)
	longest := 0
	for seed := int64(1); seed <= 50; seed++ {
		o := DefaultOptions()
		o.Seed = seed
		o.JSONSchema = personSchema
		s, err := New(o, m)
		if err != nil {
			t.Fatal(err)
		}
		g := generate(t, c, s, prompt, c.ContextLength()-len(prompt))
		s.Close()
		longest = max(longest, len(g.tokens))
		if g.reason != "eog" {
			t.Errorf("seed %d: stopped by %s after %d tokens: %q", seed, g.reason, len(g.tokens), g.text)
			continue
		}
		if err := validatePerson(g.text); err != nil {
			t.Errorf("seed %d: %v: %q", seed, err, g.text)
		}
		if seed <= 2 {
			t.Logf("seed %d: %s", seed, g.text)
		}
	}
	t.Logf("longest generation: %d tokens", longest)
}

// JSON mode gives one JSON object.
func TestJSONMode(t *testing.T) {
	c := storiesContext(t)
	m := c.Model()
	prompt, _ := m.Tokenize("", true, false)
	for seed := int64(1); seed <= 5; seed++ {
		o := DefaultOptions()
		o.Seed, o.JSON = seed, true
		o.Temperature = 0.5
		s, err := New(o, m)
		if err != nil {
			t.Fatal(err)
		}
		g := generate(t, c, s, prompt, c.ContextLength()-len(prompt))
		s.Close()
		if g.reason != "eog" {
			continue // an object may legitimately outgrow the context
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(g.text), &v); err != nil {
			t.Errorf("seed %d: %v: %q", seed, err, g.text)
		}
	}
}

func TestGrammarErrors(t *testing.T) {
	m := stories(t)
	for _, tc := range []struct {
		name string
		opts func(*Options)
		err  error
		want string
	}{
		{"syntax", func(o *Options) { o.Grammar = `root ::= [0-9` }, ErrInvalidGrammar, "line 1"},
		{"undefined rule", func(o *Options) { o.Grammar = "root ::= digit+\n" }, ErrInvalidGrammar, `undefined rule "digit"`},
		{"no root", func(o *Options) { o.Grammar = `start ::= "a"` }, ErrInvalidGrammar, `no rule "root"`},
		{"left recursion", func(o *Options) { o.Grammar = "root ::= root \"a\" | \"b\"" }, ErrInvalidGrammar, "left-recursive"},
		{"bad repetition", func(o *Options) { o.Grammar = `root ::= "a"{5,2}` }, ErrInvalidGrammar, "below the minimum"},
		{"unknown token", func(o *Options) { o.Grammar = `root ::= <nosuchtoken>` }, ErrInvalidGrammar, "not one token"},
		{"schema not JSON", func(o *Options) { o.JSONSchema = `{"type": ` }, ErrInvalidSchema, "not JSON"},
		{"schema pattern", func(o *Options) { o.JSONSchema = `{"type": "string", "pattern": "^(a+$"}` }, ErrInvalidSchema, "pattern"},
		{"schema type", func(o *Options) { o.JSONSchema = `{"type": "decimal"}` }, ErrInvalidSchema, "unrecognized schema"},
		{"schema ref", func(o *Options) { o.JSONSchema = `{"$ref": "https://example.com/s.json"}` }, ErrInvalidSchema, "unsupported $ref"},
	} {
		o := DefaultOptions()
		tc.opts(&o)
		s, err := New(o, m)
		if err == nil {
			s.Close()
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v containing %q", tc.name, err, tc.err, tc.want)
		}
	}
}

// A forced token the grammar forbids is refused, and the grammar carries on.
func TestGrammarAccept(t *testing.T) {
	m := stories(t)
	o := DefaultOptions()
	o.Grammar = `root ::= [0-9]+`
	s, err := New(o, m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	letters, _ := m.Tokenize("abc", false, false)
	if err := s.Accept(letters[0]); !errors.Is(err, ErrNoCandidates) {
		t.Errorf("Accept of a letter under a digits grammar: %v", err)
	}
	eos := m.SpecialTokens().EOS
	if err := s.Accept(eos); err == nil {
		t.Error("end of sequence accepted before any digit")
	}
	seven := engine.Token(-1)
	for id := range m.VocabSize() {
		if p, _ := m.TokenToPiece(engine.Token(id), false); string(p) == "7" {
			seven = engine.Token(id)
			break
		}
	}
	if seven < 0 {
		t.Fatal("no token for \"7\"")
	}
	if err := s.Accept(seven); err != nil {
		t.Errorf("Accept of \"7\": %v", err)
	}
	if err := s.Accept(eos); err != nil {
		t.Errorf("end of sequence after a digit: %v", err)
	}
	s.Close()
	if _, err := s.Sample(make([]float32, m.VocabSize())); !errors.Is(err, ErrClosed) {
		t.Errorf("Sample after Close: %v", err)
	}
}
