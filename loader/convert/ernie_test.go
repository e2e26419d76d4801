package convert_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// ernieFixture writes tiny-llama-st as an ERNIE 4.5 checkpoint (whose
// rope turns interleaved pairs) with tied embeddings; with headDim 32 its
// attention projections are random ones for 4 heads of 32 over the hidden
// size of 64, as ERNIE-4.5-0.3B's heads × head_dim exceed its hidden size.
// edit changes it.
func ernieFixture(t *testing.T, headDim int, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		m["architectures"], m["model_type"], m["use_bias"], m["tie_word_embeddings"] = []string{"Ernie4_5ForCausalLM"}, "ernie4_5", false, true
		m["head_dim"] = headDim
		cfg = m
	})
	w := randWeights{rand.New(rand.NewPCG(9, 10))}
	var ts []stTensor
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil) {
		if s.name == "lm_head.weight" {
			continue
		}
		if headDim != 16 && strings.Contains(s.name, ".self_attn.") {
			p, proj, _ := strings.Cut(s.name, "self_attn.")
			hd := int64(headDim)
			switch proj {
			case "q_proj.weight":
				s = w.mat(s.name, 4*hd, 64)
			case "k_proj.weight", "v_proj.weight":
				s = w.mat(s.name, 2*hd, 64)
			case "o_proj.weight":
				s = w.mat(p+"self_attn.o_proj.weight", 64, 4*hd)
			}
		}
		ts = append(ts, s)
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// TestErnie45 converts ERNIE 4.5 checkpoints (head_dim 16, and 32 with
// heads × head_dim twice the hidden size) to llama.cpp's ernie4_5 and
// checks the logits against the float64 reference, which would see the
// rope on halves instead of interleaved pairs; use_bias is refused.
func TestErnie45(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, hd := range []int{16, 32} {
		dir := ernieFixture(t, hd, nil)
		out := filepath.Join(t.TempDir(), "ernie.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Architecture() != "ernie4_5" {
			t.Errorf("architecture %q", f.Architecture())
		}
		if v, ok := f.Uint("ernie4_5.attention.key_length"); (hd == 32) != ok || ok && v != 32 {
			t.Errorf("head_dim %d: key_length %d (%v)", hd, v, ok)
		}
		fresh := func() *refModel {
			return loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: hd, eps: 1e-5, invFreq: defaultInvFreq(10000, hd), ropePairs: true}, 2)
		}
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh().forward, 1e-5)
		checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
			"interleaved rope": func(m *refModel) { m.ropePairs = false },
		})
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"use_bias": setConfig("use_bias", true),
		"a q bias": func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.self_attn.q_proj.bias", []int64{64}, make([]float32, 64)))
		},
	} {
		err := convert.Convert(context.Background(), ernieFixture(t, 16, edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}
