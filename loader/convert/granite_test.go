package convert_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// TestGraniteReference converts tiny-llama-st as a Granite model (Granite
// 3's multipliers: embeddings ×12, residual branches ×0.22, attention
// scores ×1/128, logits ÷8) to F32 and checks llama.cpp's logits against
// the float64 reference with them, and the keys llama.cpp requires; a
// config without them gets GraniteConfig's defaults of 1.
func TestGraniteReference(t *testing.T) {
	dir := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["architectures"] = []string{"GraniteForCausalLM"}
		c["model_type"] = "granite"
		c["embedding_multiplier"] = 12.0
		c["residual_multiplier"] = 0.22
		c["attention_multiplier"] = 0.0078125
		c["logits_scaling"] = 8.0
	})
	out := filepath.Join(t.TempDir(), "granite.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]float64{"granite.embedding_scale": 12, "granite.residual_scale": 0.22,
		"granite.attention.scale": 0.0078125, "granite.logit_scale": 8} {
		if v, ok := f.Float(key); !ok || float32(v) != float32(want) {
			t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
		}
	}
	ref := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
		embScale: 12, residualScale: 0.22, attnScale: 0.0078125, logitDiv: 8}, 2)
	checkRef(t, refContext(t, out), readReference(t, "tiny-llama-st").Prompts, ref.forward, 1e-5)

	zero := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["architectures"] = []string{"GraniteForCausalLM"}
		c["logits_scaling"] = 0.0
	})
	if err := convert.Convert(context.Background(), zero, out, convert.Options{}); !errors.Is(err, convert.ErrMismatch) || !strings.Contains(err.Error(), "logits_scaling") {
		t.Errorf("logits_scaling 0: %v", err)
	}

	plain := copyFixture(t, "tiny-llama-st", func(c map[string]any) { c["architectures"] = []string{"GraniteForCausalLM"} })
	if err := convert.Convert(context.Background(), plain, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil {
		t.Fatal(err)
	} else if v, ok := f.Float("granite.logit_scale"); !ok || v != 1 {
		t.Errorf("logit_scale without logits_scaling: %v (%v)", v, ok)
	}
}
