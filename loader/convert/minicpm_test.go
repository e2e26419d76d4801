package convert_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/loader/convert"
)

// miniCPMFixture is tiny-llama-st as a MiniCPM: scale_emb 12, scale_depth
// 0.5, dim_model_base 16 (the logits divided by 64/16), its head untied.
func miniCPMFixture(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	return copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["architectures"] = []string{"MiniCPMForCausalLM"}
		c["model_type"] = "minicpm"
		c["scale_emb"], c["scale_depth"], c["dim_model_base"] = 12.0, 0.5, 16.0
		if edit != nil {
			edit(c)
		}
	})
}

// TestMiniCPM converts tiny-llama-st as a MiniCPM and checks the scales
// written and llama.cpp's logits against the float64 reference, which
// would see each scale left out; a tied head by PretrainedConfig's
// default; MiniCPM4's longrope with its short factors; and the refusals.
func TestMiniCPM(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := miniCPMFixture(t, nil)
	out, f := convertDir(t, dir, "f32")
	residual := 0.5 / math.Sqrt2
	for k, want := range map[string]float64{"minicpm.embedding_scale": 12, "minicpm.residual_scale": residual, "minicpm.logit_scale": 4} {
		if v, ok := f.Float(k); !ok || float32(v) != float32(want) {
			t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
		}
	}
	base := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
		embScale: 12, residualScale: residual, logitDiv: 4}
	ref := func() *refModel { return loadLlamaRef(t, dir, base, 2) }
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, ref().forward, 1e-5)
	checkSensitive(t, ctx, prompts, ref, map[string]func(*refModel){
		"embedding scale": func(m *refModel) { m.embScale = 1 },
		"residual scale":  func(m *refModel) { m.residualScale = 1 },
		"logit scale":     func(m *refModel) { m.logitDiv = 1 },
		"rope on pairs":   func(m *refModel) { m.ropePairs = true },
	})

	// tie_word_embeddings left out: the head is the embeddings, the
	// checkpoint's lm_head.weight unused.
	tied := miniCPMFixture(t, func(c map[string]any) { delete(c, "tie_word_embeddings") })
	tOut, tf := convertDir(t, tied, "f32")
	if _, ok := tf.Tensor("output.weight"); ok {
		t.Error("tied: output.weight written")
	}
	tiedRef := func() *refModel {
		m := loadLlamaRef(t, tied, base, 2)
		m.out = m.emb
		return m
	}
	tctx := refContext(t, tOut)
	checkRef(t, tctx, prompts, tiedRef().forward, 1e-5)
	checkSensitive(t, tctx, prompts, tiedRef, map[string]func(*refModel){
		"the checkpoint's head": func(m *refModel) { m.out = openST(t, tied).get("lm_head.weight") },
	})

	// MiniCPM4's longrope at its original length: the short factors.
	short := []float64{1, 1.5, 2, 3, 4, 6, 8, 12}
	long := []float64{2, 3, 4, 6, 8, 12, 16, 24}
	lr := miniCPMFixture(t, func(c map[string]any) {
		c["rope_scaling"] = map[string]any{"rope_type": "longrope", "short_factor": short, "long_factor": long, "original_max_position_embeddings": 2048}
		c["sparse_config"] = map[string]any{"dense_len": 8192}
	})
	lOut, _ := convertDir(t, lr, "f32")
	lrRef := func() *refModel {
		m := loadLlamaRef(t, lr, base, 2)
		m.invFreq = defaultInvFreq(10000, 16)
		for i := range m.invFreq {
			m.invFreq[i] /= short[i]
		}
		return m
	}
	lctx := refContext(t, lOut)
	checkRef(t, lctx, prompts, lrRef().forward, 1e-5)
	checkSensitive(t, lctx, prompts, lrRef, map[string]func(*refModel){
		"no factors": func(m *refModel) { m.invFreq = defaultInvFreq(10000, 16) },
		"long factors": func(m *refModel) {
			*m = *loadLlamaRef(t, lr, base, 2)
			m.invFreq = divide(defaultInvFreq(10000, 16), long)
		},
	})

	// MiniCPMConfig's defaults of 1 for absent scales.
	_, fd := convertDir(t, miniCPMFixture(t, func(c map[string]any) {
		delete(c, "scale_emb")
		delete(c, "dim_model_base")
	}), "f32")
	for k, want := range map[string]float64{"minicpm.embedding_scale": 1, "minicpm.logit_scale": 64} {
		if v, ok := fd.Float(k); !ok || v != want {
			t.Errorf("defaults: %s = %v (%v), want %v", k, v, ok, want)
		}
	}

	for name, tc := range map[string]struct {
		edit func(map[string]any)
		want error
	}{
		"scale_depth 0": {func(c map[string]any) { c["scale_depth"] = 0.0 }, convert.ErrMismatch},
		"use_mup false": {func(c map[string]any) { c["use_mup"] = false }, convert.ErrUnsupported},
		"experts":       {func(c map[string]any) { c["num_experts"] = 8 }, convert.ErrUnsupported},
		"longrope short of its length": {func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "longrope", "short_factor": short, "long_factor": long, "original_max_position_embeddings": 4096}
		}, convert.ErrUnsupported},
		"longrope past its length": {func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "longrope", "short_factor": short, "long_factor": long, "original_max_position_embeddings": 1024}
		}, convert.ErrUnsupported},
	} {
		err := convert.Convert(context.Background(), miniCPMFixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// divide returns a[i]/b[i].
func divide(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}
