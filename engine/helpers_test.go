package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
)

// loadModel loads a model from ../shared/models and closes it at the end of
// the test.
func loadModel(t testing.TB, opts engine.ModelOptions, elems ...string) *engine.Model {
	t.Helper()
	m, err := engine.LoadModel(context.Background(), shareddata.Path(t, elems...), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newContext creates a context, with one thread unless opts says otherwise:
// the test models are tiny, and ggml's spinning threads slow down badly when
// other test processes share the cores.
func newContext(t testing.TB, m *engine.Model, opts engine.ContextOptions) *engine.Context {
	t.Helper()
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	c, err := m.NewContext(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newBatch(t testing.TB, n, seqs int) *engine.Batch {
	t.Helper()
	b, err := engine.NewBatch(n, seqs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func argmax(l []float32) engine.Token {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return engine.Token(best)
}

// greedy decodes prompt into sequence 0 of c (whose memory it clears) and
// returns up to n greedy tokens, stopping after an end-of-generation token
// when stopAtEOG, and the logits after the prompt.
func greedy(t testing.TB, c *engine.Context, prompt []engine.Token, n int, stopAtEOG bool) ([]engine.Token, []float32) {
	t.Helper()
	ctx := context.Background()
	if err := c.ClearMemory(false); err != nil {
		t.Fatal(err)
	}
	b := newBatch(t, max(len(prompt), 1), 1)
	for i, tok := range prompt {
		if err := b.Add(tok, engine.Pos(i), i == len(prompt)-1); err != nil {
			t.Fatal(err)
		}
	}
	var out []engine.Token
	var first []float32
	pos := len(prompt)
	for len(out) < n {
		if err := c.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
		l, err := c.Logits(b.Len() - 1)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = append([]float32(nil), l...)
		}
		tok := argmax(l)
		out = append(out, tok)
		if stopAtEOG && c.Model().IsEOG(tok) {
			break
		}
		b.Clear()
		b.Add(tok, engine.Pos(pos), true)
		pos++
	}
	return out, first
}

// step is one recorded greedy step of a reference file.
type step struct {
	Token  int     `json:"token"`
	Margin float64 `json:"margin_to_second"`
}

type refPrompt struct {
	Prompt       string      `json:"prompt"`
	PromptIDs    []int       `json:"prompt_ids"`
	NPredict     int         `json:"n_predict"`
	GeneratedIDs []int       `json:"generated_ids"`
	Text         string      `json:"generated_text"`
	Steps        []step      `json:"steps"`
	LastLogits   []float64   `json:"last_prompt_position_logits"`
	First16      []float64   `json:"last_prompt_position_logits_first16"`
	Top20        [][]float64 `json:"last_prompt_position_top20"`
}

type reference struct {
	Model        string      `json:"model"`
	Prompts      []refPrompt `json:"prompts"`
	Tokenization []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids_with_bos"`
	} `json:"tokenization"`
}

func readReference(t testing.TB, name string) reference {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", name))
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func tokens(ids []int) []engine.Token {
	out := make([]engine.Token, len(ids))
	for i, id := range ids {
		out[i] = engine.Token(id)
	}
	return out
}
