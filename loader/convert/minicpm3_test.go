package convert_test

import (
	"context"
	"errors"
	"maps"
	"math"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/loader/convert"
)

// miniCPM3Case is a tiny MiniCPM3: hidden 32, 4 heads with queries and
// keys of 8 + 4 rotated dimensions and values of 32/4, q_lora_rank 12,
// kv_lora_rank 16, eight dense layers of 48 (so that the residual scale
// is 1.4/sqrt(8)).
func miniCPM3Case() dsCase {
	return dsCase{layers: 8, hidden: 32, heads: 4, qLora: 12, kvLora: 16, nope: 8, rope: 4, vHead: 8, ffn: 48, dense: 8}
}

// miniCPM3Fixture writes the case with MiniCPM3-4B's scales; edit changes
// its config.
func miniCPM3Fixture(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	c := miniCPM3Case()
	cfg := map[string]any{"architectures": []string{"MiniCPM3ForCausalLM"}, "model_type": "minicpm3", "hidden_size": c.hidden,
		"num_hidden_layers": c.layers, "num_attention_heads": c.heads, "num_key_value_heads": c.heads, "q_lora_rank": c.qLora,
		"kv_lora_rank": c.kvLora, "qk_nope_head_dim": c.nope, "qk_rope_head_dim": c.rope, "intermediate_size": c.ffn,
		"scale_emb": 12, "scale_depth": 1.4, "dim_model_base": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
		"max_position_embeddings": 2048, "rope_scaling": nil, "vocab_size": dsVocab, "tie_word_embeddings": false,
		"attention_bias": false, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
	if edit != nil {
		edit(cfg)
	}
	return c.fixture(t, func(m map[string]any, ts []stTensor) []stTensor {
		clear(m)
		maps.Copy(m, cfg)
		return ts
	})
}

// TestMiniCPM3 converts a tiny MiniCPM3 to llama.cpp's minicpm3 and checks
// the attention sizes written and the logits against the float64
// reference of MiniCPM3's code (latent attention rotating halves, µP
// scales), which would see the rope's layout and each scale left out;
// then the refusals.
func TestMiniCPM3(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	c := miniCPM3Case()
	dir := miniCPM3Fixture(t, nil)
	out, f := convertDir(t, dir, "f32")
	for k, want := range map[string]float64{"attention.head_count_kv": 4, "attention.key_length": 12, "attention.value_length": 8,
		"attention.q_lora_rank": 12, "attention.kv_lora_rank": 16, "rope.dimension_count": 4} {
		if v, ok := f.Float("minicpm3." + k); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", k, v, ok, want)
		}
	}
	ref := func() *dsRef {
		m := c.reference(t, dir)
		m.invFreq, m.scale, m.halvesRope = defaultInvFreq(10000, c.rope), 1/math.Sqrt(12), true
		m.embScale, m.resScale, m.logitDiv = 12, 1.4/math.Sqrt(8), 32.0/256
		return m
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, ref().forward, 1e-5)
	checkSensitive(t, ctx, prompts, ref, map[string]func(*dsRef){
		"rope on pairs":   func(m *dsRef) { m.halvesRope = false },
		"embedding scale": func(m *dsRef) { m.embScale = 1 },
		"residual scale":  func(m *dsRef) { m.resScale = 1 },
		"logit scale":     func(m *dsRef) { m.logitDiv = 1 },
	})

	// MiniCPM3-4B's longrope at its original length: the short factors,
	// one per rotated pair.
	short, long := []float64{1.5, 3}, []float64{2, 4}
	lr := miniCPM3Fixture(t, func(c map[string]any) {
		c["rope_scaling"] = map[string]any{"type": "longrope", "short_factor": short, "long_factor": long, "original_max_position_embeddings": 2048}
	})
	lOut, _ := convertDir(t, lr, "f32")
	lrRef := func() *dsRef {
		m := c.reference(t, lr)
		m.invFreq, m.scale, m.halvesRope = divide(defaultInvFreq(10000, c.rope), short), 1/math.Sqrt(12), true
		m.embScale, m.resScale, m.logitDiv = 12, 1.4/math.Sqrt(8), 32.0/256
		return m
	}
	lctx := refContext(t, lOut)
	checkRef(t, lctx, prompts, lrRef().forward, 1e-5)
	checkSensitive(t, lctx, prompts, lrRef, map[string]func(*dsRef){
		"no factors": func(m *dsRef) { m.invFreq = defaultInvFreq(10000, c.rope) },
	})

	// tie_word_embeddings absent: tied, the checkpoint's lm_head unused.
	tied := miniCPM3Fixture(t, func(c map[string]any) { delete(c, "tie_word_embeddings") })
	tOut, tf := convertDir(t, tied, "f32")
	if _, ok := tf.Tensor("output.weight"); ok {
		t.Error("tied: output.weight written")
	}
	tiedRef := c.reference(t, tied)
	tiedRef.invFreq, tiedRef.scale, tiedRef.halvesRope = defaultInvFreq(10000, c.rope), 1/math.Sqrt(12), true
	tiedRef.embScale, tiedRef.resScale, tiedRef.logitDiv = 12, 1.4/math.Sqrt(8), 32.0/256
	tiedRef.out = tiedRef.emb
	checkRef(t, refContext(t, tOut), prompts, tiedRef.forward, 1e-5)

	for name, tc := range map[string]struct {
		edit func(map[string]any)
		want error
	}{
		"scale_emb 10":      {func(c map[string]any) { c["scale_emb"] = 10 }, convert.ErrUnsupported},
		"no dim_model_base": {func(c map[string]any) { delete(c, "dim_model_base") }, convert.ErrUnsupported},
		"no q_lora_rank":    {func(c map[string]any) { c["q_lora_rank"] = nil }, convert.ErrUnsupported},
		"attention biases":  {func(c map[string]any) { c["attention_bias"] = true }, convert.ErrUnsupported},
		"yarn": {func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512}
		}, convert.ErrUnsupported},
		"v_head_dim agreeing":    {func(c map[string]any) { c["v_head_dim"] = 8 }, nil},
		"v_head_dim disagreeing": {func(c map[string]any) { c["v_head_dim"] = 6 }, convert.ErrUnsupported},
	} {
		err := convert.Convert(context.Background(), miniCPM3Fixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
