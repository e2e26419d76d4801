package convert_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/loader/convert"
)

// qwen3Forward evaluates transformers' modeling_qwen3 in float64 on the
// checkpoint in dir (tiny-qwen2-st's shape: hidden 64, 4 heads of 16, 2 KV
// heads, 2 layers, tied embeddings, rope theta 1e6): per-head q_norm and
// k_norm before rotate_half rope, no biases. It returns the logits after
// ids.
func qwen3Forward(t *testing.T, dir string, ids []int) []float64 {
	t.Helper()
	m := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6,
		invFreq: defaultInvFreq(1e6, 16)}, 2)
	return m.forward(ids)
}

// TestQwen3Reference checks the F32 conversion of the tiny Qwen3
// checkpoint against a float64 evaluation of modeling_qwen3 (per-head
// q_norm/k_norm before NEOX rope, no biases) with an F32 KV cache and
// without flash attention.
func TestQwen3Reference(t *testing.T) {
	dir := qwen3Fixture(t, 1)
	out := filepath.Join(t.TempDir(), "qwen3.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	// An F32 KV cache and no flash attention (whose CPU path rounds to
	// F16), so that only the engine's F32 rounding remains: the error is
	// about 5e-7, against 1e-3 to 2e-3 with the defaults.
	checkRef(t, refContext(t, out), readReference(t, "tiny-qwen2-st").Prompts,
		func(ids []int) []float64 { return qwen3Forward(t, dir, ids) }, 1e-5)
}
