package convert_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
)

// TestQ8_0SafePrefix converts each synthetic fixture to Q8_0 through the
// engine's quantizer and checks that each reference prompt's greedy tokens
// match the reference for its first q8_0_safe_prefix steps (the steps
// whose reference margin is at least 0.1 std, which Q8_0 rounding cannot
// flip; see testdata/README.md section 5).
func TestQ8_0SafePrefix(t *testing.T) {
	for _, fixture := range []string{"tiny-llama-st", "tiny-llama-st-bf16", "tiny-qwen2-st"} {
		t.Run(fixture, func(t *testing.T) {
			raw, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", fixture+"_reference.json"))
			if err != nil {
				t.Fatal(err)
			}
			var ref struct {
				Prompts []struct {
					Text       string `json:"text"`
					PromptIDs  []int  `json:"prompt_ids"`
					GreedyIDs  []int  `json:"greedy_ids"`
					SafePrefix *int   `json:"q8_0_safe_prefix"`
				} `json:"prompts"`
			}
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatal(err)
			}
			if len(ref.Prompts) == 0 {
				t.Fatal("no prompts")
			}
			out := filepath.Join(t.TempDir(), fixture+"-q8_0.gguf")
			dir := shareddata.Path(t, "models", "hf", fixture)
			if err := convert.ToType(context.Background(), dir, out, "q8_0", 2, nil); err != nil {
				t.Fatal(err)
			}
			m := loadModel(t, out, engine.ModelOptions{})
			c, err := m.NewContext(engine.ContextOptions{ContextLength: 512})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, p := range ref.Prompts {
				if p.SafePrefix == nil || *p.SafePrefix > len(p.GreedyIDs) {
					t.Fatalf("%q: bad q8_0_safe_prefix", p.Text)
				}
				safe := *p.SafePrefix
				got, _ := greedy(t, c, toTokens(p.PromptIDs), len(p.GreedyIDs))
				matched := 0
				for matched < len(got) && got[matched] == engine.Token(p.GreedyIDs[matched]) {
					matched++
				}
				if matched < safe {
					t.Errorf("%q: greedy %v, want %v (first %d must match)", p.Text, got, p.GreedyIDs, safe)
				}
				t.Logf("%q: Q8_0 greedy matches the reference for %d/%d steps (q8_0_safe_prefix %d)", p.Text, matched, len(got), safe)
			}
		})
	}
}
