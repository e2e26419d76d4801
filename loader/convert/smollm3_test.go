package convert_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// smolLM3Fixture writes a 4-layer SmolLM3 checkpoint from tiny-llama-st:
// its layers 0 and 1, then again as 2 and 3 (layer 3 has no rotary
// embedding), with edit applied to config.json.
func smolLM3Fixture(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	copyHFFiles(t, "tiny-llama-st", dir, func(c map[string]any) {
		c["architectures"] = []string{"SmolLM3ForCausalLM"}
		c["model_type"] = "smollm3"
		c["num_hidden_layers"] = 4
		c["no_rope_layers"] = []int{1, 1, 1, 0}
		c["no_rope_layer_interval"] = 4
		if edit != nil {
			edit(c)
		}
	})
	ts := f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), func(name string, shape []int64, v []float32) []stTensor {
		for l := range 2 {
			if rest, ok := strings.CutPrefix(name, fmt.Sprintf("model.layers.%d.", l)); ok {
				return []stTensor{f32Tensor(fmt.Sprintf("model.layers.%d.%s", l+2, rest), shape, v)}
			}
		}
		return nil
	})
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSmolLM3Reference converts a SmolLM3 checkpoint to F32 and checks
// llama.cpp's logits against the float64 reference with no rotary
// embedding in layer 3 (and not against one with it everywhere: the
// comparison sees the difference); no_rope_layers other than llama.cpp's
// pattern are refused.
func TestSmolLM3Reference(t *testing.T) {
	dir := smolLM3Fixture(t, nil)
	out := filepath.Join(t.TempDir(), "smollm3.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil || f.Architecture() != "smollm3" {
		t.Fatalf("architecture: %v", err)
	}
	ref := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}, 4)
	ref.layers[3].noRope = true
	c := refContext(t, out)
	prompts := readReference(t, "tiny-llama-st").Prompts
	checkRef(t, c, prompts, ref.forward, 1e-5)

	withRope := *ref
	withRope.layers = slices.Clone(ref.layers)
	withRope.layers[3].noRope = false
	p := prompts[len(prompts)-1]
	_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
	if d := relErr(got, withRope.forward(p.PromptIDs)); d < 1e-3 {
		t.Errorf("%q: within %.3g of the model with a rotary embedding in every layer", p.Text, d)
	}

	bad := smolLM3Fixture(t, func(c map[string]any) { c["no_rope_layers"] = []int{1, 0, 1, 1} })
	err := convert.Convert(context.Background(), bad, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "no_rope_layers") {
		t.Errorf("another no_rope pattern: %v", err)
	}
	step3 := smolLM3Fixture(t, func(c map[string]any) { delete(c, "no_rope_layers"); c["no_rope_layer_interval"] = 3 })
	err = convert.Convert(context.Background(), step3, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "no_rope_layer_interval 3") {
		t.Errorf("no_rope_layer_interval 3: %v", err)
	}
}
