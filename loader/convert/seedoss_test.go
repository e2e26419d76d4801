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

// seedOSSFixture writes tiny-llama-st as a Seed-OSS checkpoint: random
// q/k/v biases and, with headDim 32, random attention projections for 4
// heads of 32 (2 KV heads) over the hidden size of 64, as Seed-OSS-36B's
// heads × head_dim exceed its hidden size.
func seedOSSFixture(t *testing.T, headDim int, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		m["architectures"], m["model_type"], m["head_dim"] = []string{"SeedOssForCausalLM"}, "seed_oss", headDim
		m["attention_bias"], m["attention_out_bias"], m["mlp_bias"] = true, false, false
		cfg = m
	})
	w := randWeights{rand.New(rand.NewPCG(21, uint64(headDim)))}
	hd := int64(headDim)
	var ts []stTensor
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil) {
		p, proj, ok := strings.Cut(s.name, "self_attn.")
		ts = append(ts, w.wideHeads(s, headDim))
		if ok && proj == "q_proj.weight" {
			ts = append(ts, w.vec(p+"self_attn.q_proj.bias", 4*hd, 0, 0.5), w.vec(p+"self_attn.k_proj.bias", 2*hd, 0, 0.5),
				w.vec(p+"self_attn.v_proj.bias", 2*hd, 0, 0.5))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// TestSeedOSS converts Seed-OSS checkpoints (head_dim 16, and 32 with heads
// × head_dim twice the hidden size) to llama.cpp's seed_oss and checks the
// logits against the float64 reference, which would see the q/k/v biases
// or the rope on halves left out; an output or MLP bias is refused.
func TestSeedOSS(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, hd := range []int{16, 32} {
		dir := seedOSSFixture(t, hd, nil)
		out := filepath.Join(t.TempDir(), "seed.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.Tensor("blk.0.post_attention_norm.weight"); f.Architecture() != "seed_oss" || !ok {
			t.Errorf("arch %q, post_attention_norm %v", f.Architecture(), ok)
		}
		fresh := func() *refModel {
			m := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: hd, eps: 1e-5, invFreq: defaultInvFreq(10000, hd)}, 2)
			r := openST(t, dir)
			for l := range m.layers {
				p := layerPrefix(l)
				m.layers[l].bq, m.layers[l].bk, m.layers[l].bv = r.get(p+"self_attn.q_proj.bias"), r.get(p+"self_attn.k_proj.bias"), r.get(p+"self_attn.v_proj.bias")
			}
			return m
		}
		ctx := refContext(t, out)
		checkRef(t, ctx, prompts, fresh().forward, 1e-5)
		checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
			"biases": func(m *refModel) {
				for l := range m.layers {
					m.layers[l].bq, m.layers[l].bk, m.layers[l].bv = nil, nil, nil
				}
			},
			"rope on adjacent pairs": func(m *refModel) { m.ropePairs = true },
		})
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"mlp_bias": setConfig("mlp_bias", true),
		"an output bias": func(_ map[string]any, ts []stTensor) []stTensor {
			b := make([]float32, 64)
			b[1] = 1
			return append(ts, f32Tensor("model.layers.0.self_attn.o_proj.bias", []int64{64}, b))
		},
	} {
		err := convert.Convert(context.Background(), seedOSSFixture(t, 16, edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}
