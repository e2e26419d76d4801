package convert_test

import (
	"context"
	"errors"
	"math"
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
// float64 Llama reference.
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
	dir := mistral3Fixture(t, "language_model.model.", func(cfg map[string]any) { delete(cfg, "text_config") })
	if err := convert.Convert(ctx, dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{}); !errors.Is(err, convert.ErrMismatch) {
		t.Errorf("no text_config: %v", err)
	}
}

// ministral3Config makes a Llama config Ministral 3's: model_type
// "ministral3" and rope_parameters with yarn (×4 over an original
// context of 4, so that the 12-token prompt crosses two temperature
// steps; max_position_embeddings is their product, as in the released
// configs) and llama_4_scaling_beta 0.1.
func ministral3Config(m map[string]any) {
	delete(m, "rope_theta")
	delete(m, "rope_scaling")
	m["model_type"] = "ministral3"
	m["max_position_embeddings"] = 16
	m["rope_parameters"] = map[string]any{
		"rope_type": "yarn", "type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
		"original_max_position_embeddings": 4, "beta_fast": 32.0, "beta_slow": 1.0,
		"mscale": 1.0, "mscale_all_dim": 1.0, "llama_4_scaling_beta": 0.1,
	}
}

// TestMinistral3 converts Ministral 3, as Ministral3ForCausalLM and as the
// text model of Mistral3ForConditionalGeneration, to llama.cpp's mistral3
// arch, and checks the logits against the float64 reference with yarn
// (mscale over mscale_all_dim: magnitude 1) and the attention
// temperature; the reference would see either left out. Configs
// llama.cpp cannot follow are refused.
func TestMinistral3(t *testing.T) {
	ctx := context.Background()
	base := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	prompts := readReference(t, "tiny-llama-st").Prompts
	yarn, mag := hfYarn(10000, 16, 4, 4, 32, 1)
	fresh := func() *refModel {
		m := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: yarn, ropeAttn: 1, tempBeta: 0.1, tempOrig: 4}
		return loadLlamaRef(t, base, m, 2)
	}
	causal := func(edit func(map[string]any)) string {
		return copyFixture(t, "tiny-llama-st", func(m map[string]any) {
			ministral3Config(m)
			m["architectures"] = []string{"Ministral3ForCausalLM"}
			if edit != nil {
				edit(m)
			}
		})
	}
	vlm := func(edit func(map[string]any)) string {
		return mistral3Fixture(t, "model.language_model.", func(cfg map[string]any) {
			text := cfg["text_config"].(map[string]any)
			ministral3Config(text)
			if edit != nil {
				edit(text)
			}
		})
	}
	for name, dir := range map[string]string{"Ministral3ForCausalLM": causal(nil), "Mistral3ForConditionalGeneration": vlm(nil)} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m3.gguf")
			if err := convert.Convert(ctx, dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if a := f.Architecture(); a != "mistral3" {
				t.Fatalf("arch %q, want mistral3", a)
			}
			for k, want := range map[string]float64{
				"mistral3.attention.temperature_scale":          float64(float32(0.1)),
				"mistral3.rope.scaling.yarn_log_multiplier":     1,
				"mistral3.rope.scaling.original_context_length": 4,
				"mistral3.rope.scaling.factor":                  4,
			} {
				if v, ok := f.Float(k); !ok || v != want {
					t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
				}
			}
			if _, ok := f.Float("mistral3.rope.scaling.attn_factor"); ok {
				t.Error("rope.scaling.attn_factor written; the log multiplier makes llama.cpp's magnitude 1 already")
			}
			c := refContext(t, out)
			checkRef(t, c, prompts, fresh().forward, 1e-5)
			checkSensitive(t, c, prompts, fresh, map[string]func(*refModel){
				"no attention temperature": func(m *refModel) { m.tempBeta = 0 },
				"default yarn magnitude":   func(m *refModel) { m.ropeAttn = mag },
			})
		})
	}
	// mscale_all_dim other than mscale: llama.cpp's magnitude from the
	// log multiplier (mscale taken as 1) is transformers'.
	t.Run("mscale_all_dim 0.5", func(t *testing.T) {
		dir := causal(func(m map[string]any) { m["rope_parameters"].(map[string]any)["mscale_all_dim"] = 0.5 })
		out := filepath.Join(t.TempDir(), "m3.gguf")
		if err := convert.Convert(ctx, dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		m := fresh()
		m.ropeAttn = (0.1*math.Log(4) + 1) / (0.05*math.Log(4) + 1)
		checkRef(t, refContext(t, out), prompts, m.forward, 1e-5)
	})
	dir := vlm(func(m map[string]any) { m["model_type"] = "deepseek_v3" })
	if err := convert.Convert(ctx, dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{}); !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "deepseek_v3") {
		t.Errorf("another text model with llama_4_scaling_beta: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		want error
	}{
		{"no yarn", func(m map[string]any) {
			m["rope_parameters"] = map[string]any{"rope_type": "default", "rope_theta": 10000.0, "llama_4_scaling_beta": 0.1}
		}, convert.ErrMismatch},
		{"no beta", func(m map[string]any) {
			delete(m["rope_parameters"].(map[string]any), "llama_4_scaling_beta")
		}, convert.ErrMismatch},
		{"negative beta", func(m map[string]any) {
			m["rope_parameters"].(map[string]any)["llama_4_scaling_beta"] = -0.1
		}, convert.ErrMismatch},
	} {
		for _, dir := range []string{causal(tc.edit), vlm(tc.edit)} {
			err := convert.Convert(ctx, dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
	}
}

// TestLlava converts LlavaForConditionalGeneration's layout of tiny-llama-st
// (Pixtral 12B's and Apriel 1.5's: a Mistral text_config) to the same
// tensors as the Llama checkpoint, with its logits; a text model of
// another kind is refused.
func TestLlava(t *testing.T) {
	llava := func(cfg map[string]any) {
		cfg["architectures"], cfg["model_type"] = []string{"LlavaForConditionalGeneration"}, "llava"
	}
	base := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	for _, prefix := range []string{"language_model.model.", "model.language_model."} {
		out, f := convertDir(t, mistral3Fixture(t, prefix, llava), "f32")
		if f.Architecture() != "llama" {
			t.Errorf("%s: arch %q", prefix, f.Architecture())
		}
		m := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}
		checkRef(t, refContext(t, out), readReference(t, "tiny-llama-st").Prompts, loadLlamaRef(t, base, m, 2).forward, 1e-5)
	}
	qwen := mistral3Fixture(t, "model.language_model.", func(cfg map[string]any) {
		llava(cfg)
		cfg["text_config"].(map[string]any)["model_type"] = "qwen2"
	})
	err := convert.Convert(context.Background(), qwen, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "qwen2") {
		t.Errorf("a qwen2 text model: %v", err)
	}
}
