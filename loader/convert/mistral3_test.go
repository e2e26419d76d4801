package convert_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// mistral3Fixture writes tiny-llama-st as a Mistral3ForConditionalGeneration
// checkpoint: its config as text_config, its tensors under prefix (the
// layouts of transformers before and after 4.52) and a small vision tower
// and projector, which the converter skips. edit changes the config.
func mistral3Fixture(t *testing.T, prefix string, edit func(cfg map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		text := map[string]any{}
		for k, v := range m {
			text[k] = v
		}
		delete(text, "architectures")
		text["model_type"] = "mistral"
		clear(m)
		m["architectures"], m["model_type"], m["text_config"] = []string{"Mistral3ForConditionalGeneration"}, "mistral3", text
		m["vision_config"] = map[string]any{"model_type": "pixtral", "hidden_size": 16}
		if edit != nil {
			edit(m)
		}
		cfg = m
	})
	var ts []stTensor
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil) {
		switch {
		case s.name == "lm_head.weight" && prefix == "language_model.model.":
			s.name = "language_model.lm_head.weight"
		case strings.HasPrefix(s.name, "model."):
			s.name = prefix + strings.TrimPrefix(s.name, "model.")
		}
		ts = append(ts, s)
	}
	ts = append(ts,
		f32Tensor("vision_tower.transformer.layers.0.attention.q_proj.weight", []int64{16, 16}, make([]float32, 256)),
		f32Tensor("multi_modal_projector.linear_1.weight", []int64{64, 16}, make([]float32, 1024)))
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, nil)
}

// TestMistral3 converts the text model of Mistral3ForConditionalGeneration
// checkpoints (both tensor layouts) to the same bytes as the Llama
// checkpoint they were made from, and checks the logits against the
// float64 Llama reference; Ministral 3's attention temperature is refused.
func TestMistral3(t *testing.T) {
	ctx := context.Background()
	base := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	want := filepath.Join(t.TempDir(), "llama.gguf")
	if err := convert.Convert(ctx, base, want, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	wantFile, err := gguf.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"language_model.model.", "model.language_model."} {
		dir := mistral3Fixture(t, prefix, nil)
		out := filepath.Join(t.TempDir(), "m3.gguf")
		if err := convert.Convert(ctx, dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Architecture() != "llama" || len(f.Tensors) != len(wantFile.Tensors) {
			t.Errorf("%s: arch %q, %d tensors, want llama with %d", prefix, f.Architecture(), len(f.Tensors), len(wantFile.Tensors))
		}
		for _, ti := range wantFile.Tensors {
			if got, ok := f.Tensor(ti.Name); !ok || got.Size != ti.Size || got.Type != ti.Type {
				t.Errorf("%s: %s %v %+v, want %+v", prefix, ti.Name, ok, got, ti)
			}
		}
		m := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}
		checkRef(t, refContext(t, out), readReference(t, "tiny-llama-st").Prompts, loadLlamaRef(t, base, m, 2).forward, 1e-5)
	}
	dir := mistral3Fixture(t, "language_model.model.", func(cfg map[string]any) {
		cfg["text_config"].(map[string]any)["llama_4_scaling_beta"] = 0.1
	})
	err = convert.Convert(ctx, dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "llama_4_scaling_beta") {
		t.Errorf("Ministral 3: %v, want ErrUnsupported naming llama_4_scaling_beta", err)
	}
	dir = mistral3Fixture(t, "language_model.model.", func(cfg map[string]any) { delete(cfg, "text_config") })
	if err := convert.Convert(ctx, dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{}); !errors.Is(err, convert.ErrMismatch) {
		t.Errorf("no text_config: %v", err)
	}
}
