package engine_test

import (
	"math"
	"testing"

	"github.com/llm-go/llm/engine"
)

// marginFloor is the smallest recorded top-1/top-2 logit margin at which a
// greedy step is compared token for token: below it, numerical noise (the
// SIMD level, llama.cpp's F16 KV cache) may legitimately pick the runner-up.
const marginFloor = 1e-3

// comparable returns how many leading steps of p must match exactly.
func comparable(p refPrompt) int {
	for i, s := range p.Steps {
		if s.Margin < marginFloor {
			return i
		}
	}
	return len(p.GeneratedIDs)
}

// relErr is max|got-want| / max|want|.
func relErr(got []float32, want []float64) float64 {
	var maxDiff, maxRef float64
	for i, w := range want {
		maxDiff = max(maxDiff, math.Abs(float64(got[i])-w))
		maxRef = max(maxRef, math.Abs(w))
	}
	return maxDiff / maxRef
}

func TestReferenceGreedy(t *testing.T) {
	cases := []struct {
		ref, model string
		// logitTol bounds the relative error of the logits after the prompt:
		// llama.cpp's F16 KV cache alone costs a few 1e-4; llama-2-tiny-random
		// also has F16 weights.
		logitTol float64
	}{
		{"stories260K_reference.json", "stories260K.gguf", 2e-3},
		{"llama-2-tiny-random_reference.json", "llama-2-tiny-random.gguf", 1e-2},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			ref := readReference(t, tc.ref)
			m := loadModel(t, engine.ModelOptions{}, "models", tc.model)
			c := newContext(t, m, engine.ContextOptions{ContextLength: 512})
			for _, p := range ref.Prompts {
				ids, err := m.Tokenize(p.Prompt, true, false)
				if err != nil {
					t.Fatal(err)
				}
				if !equalTokens(ids, tokens(p.PromptIDs)) {
					t.Errorf("%q tokenizes to %v, want %v", p.Prompt, ids, p.PromptIDs)
					continue
				}
				got, logits := greedy(t, c, ids, p.NPredict, true)
				want := tokens(p.GeneratedIDs)
				limit := comparable(p)
				matched := 0
				for matched < min(len(got), len(want)) && got[matched] == want[matched] {
					matched++
				}
				if matched < limit {
					t.Errorf("%q: greedy token %d is %d, want %d (the reference margin there is %.4g)",
						p.Prompt, matched, got[matched], want[matched], p.Steps[matched].Margin)
				}
				t.Logf("%q: %d/%d greedy tokens match (%d must, by margin ≥ %g)", p.Prompt, matched, len(want), limit, marginFloor)

				if limit == len(want) && matched == len(want) && p.Text != "" {
					// The reference text is the pieces as a stream prints them.
					d := m.NewDetokenizer(false)
					text := ""
					for _, tok := range got {
						s, err := d.Next(tok)
						if err != nil {
							t.Fatal(err)
						}
						text += s
					}
					text += d.Flush()
					if text != p.Text {
						t.Errorf("%q: text %q, want %q", p.Prompt, text, p.Text)
					}
				}
				switch {
				case p.LastLogits != nil:
					if e := relErr(logits, p.LastLogits); e > tc.logitTol {
						t.Errorf("%q: logits after the prompt differ by %.3g relative, tolerance %g", p.Prompt, e, tc.logitTol)
					} else {
						t.Logf("%q: logits relative error %.3g", p.Prompt, e)
					}
				case p.First16 != nil:
					if e := relErr(logits[:16], p.First16); e > tc.logitTol {
						t.Errorf("%q: first 16 logits differ by %.3g relative, tolerance %g", p.Prompt, e, tc.logitTol)
					} else {
						t.Logf("%q: first 16 logits relative error %.3g", p.Prompt, e)
					}
				}
				for _, tv := range p.Top20 {
					id, want := int(tv[0]), tv[1]
					if d := math.Abs(float64(logits[id]) - want); d > tc.logitTol*math.Abs(p.Top20[0][1]) {
						t.Errorf("%q: logit of token %d is %v, want %v", p.Prompt, id, logits[id], want)
					}
				}
			}
		})
	}
}

func TestReferenceTokenization(t *testing.T) {
	ref := readReference(t, "stories260K_reference.json")
	m := loadModel(t, engine.ModelOptions{VocabOnly: true}, "models", "stories260K.gguf")
	if len(ref.Tokenization) == 0 {
		t.Fatal("no tokenization cases in the reference")
	}
	for _, tc := range ref.Tokenization {
		got, err := m.Tokenize(tc.Text, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if !equalTokens(got, tokens(tc.IDs)) {
			t.Errorf("%q: %v, want %v", tc.Text, got, tc.IDs)
		}
	}
}

func equalTokens(a, b []engine.Token) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
