package convert_test

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
)

// internlm2Fixture writes tiny-llama-st (4 heads of 16 over 2 key/value
// heads) in InternLM2's layout: its names, and q, k and v fused into wqkv
// per key/value head (its 2 query heads, its key, its value).
func internlm2Fixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	const D, g, kv = 16, 2, 2
	src := map[string][]float32{}
	var ts []stTensor
	rename := strings.NewReplacer("model.embed_tokens.", "model.tok_embeddings.", "lm_head.", "output.", "input_layernorm.", "attention_norm.",
		"post_attention_layernorm.", "ffn_norm.", "self_attn.o_proj.", "attention.wo.", "mlp.gate_proj.", "feed_forward.w1.",
		"mlp.up_proj.", "feed_forward.w3.", "mlp.down_proj.", "feed_forward.w2.")
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), func(name string, shape []int64, v []float32) []stTensor {
		src[name] = v
		return nil
	}) {
		if strings.Contains(s.name, ".self_attn.q_proj.") || strings.Contains(s.name, ".self_attn.k_proj.") || strings.Contains(s.name, ".self_attn.v_proj.") {
			continue
		}
		s.name = rename.Replace(s.name)
		ts = append(ts, s)
	}
	for l := range 2 {
		p := layerPrefix(l) + "self_attn."
		q, k, v := src[p+"q_proj.weight"], src[p+"k_proj.weight"], src[p+"v_proj.weight"]
		var qkv []float32
		rows := func(m []float32, head int) []float32 { return m[head*D*64 : (head+1)*D*64] }
		for j := range kv {
			for i := range g {
				qkv = append(qkv, rows(q, j*g+i)...)
			}
			qkv = append(qkv, rows(k, j)...)
			qkv = append(qkv, rows(v, j)...)
		}
		ts = append(ts, f32Tensor(layerPrefix(l)+"attention.wqkv.weight", []int64{(4 + 2*kv) * D, 64}, qkv))
	}
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		m["architectures"], m["model_type"], m["bias"] = []string{"InternLM2ForCausalLM"}, "internlm2", false
		cfg = maps.Clone(m)
	})
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// TestInternLM2 converts tiny-llama-st rewritten in InternLM2's layout and
// checks llama.cpp's logits against the Llama reference of the original
// checkpoint, which would see wqkv read as three blocks left out; InternLM2.5's
// dynamic rope scaling is dropped; the refusals.
func TestInternLM2(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	orig := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	dir := internlm2Fixture(t, nil)
	out, f := convertDir(t, dir, "f32")
	if f.Architecture() != "internlm2" {
		t.Fatalf("arch %q", f.Architecture())
	}
	base := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}
	ref := func() *refModel { return loadLlamaRef(t, orig, base, 2) }
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, ref().forward, 1e-5)
	checkSensitive(t, ctx, prompts, ref, map[string]func(*refModel){
		"wqkv as three blocks": func(m *refModel) {
			r := openST(t, dir)
			for l := range m.layers {
				qkv := r.get(layerPrefix(l) + "attention.wqkv.weight")
				m.layers[l].wq, m.layers[l].wk, m.layers[l].wv = qkv[:64*64], qkv[64*64:96*64], qkv[96*64:]
			}
		},
		"rope on pairs": func(m *refModel) { m.ropePairs = true },
	})

	// Tied: llama.cpp's internlm2 requires output.weight, written from
	// the embeddings.
	_, ft := convertDir(t, internlm2Fixture(t, func(c map[string]any, ts []stTensor) []stTensor {
		c["tie_word_embeddings"] = true
		return dropTensor("output.weight")(c, ts)
	}), "f32")
	if _, ok := ft.Tensor("output.weight"); !ok {
		t.Error("tied: no output.weight")
	}

	// InternLM2.5's dynamic scaling: nothing changes within the context.
	_, fd := convertDir(t, internlm2Fixture(t, setConfig("rope_scaling", map[string]any{"type": "dynamic", "factor": 2.0})), "f32")
	if s, ok := fd.String("internlm2.rope.scaling.type"); ok {
		t.Errorf("dynamic scaling written as %q", s)
	}

	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"bias true": {setConfig("bias", true), convert.ErrUnsupported},
		"bias left out": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "bias")
			return ts
		}, convert.ErrUnsupported},
		"a wqkv bias": {func(c map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor(layerPrefix(0)+"attention.wqkv.bias", []int64{128}, make([]float32, 128)))
		}, convert.ErrUnsupported},
		"wqkv of other heads": {setConfig("num_key_value_heads", 4), convert.ErrMismatch},
		"no wqkv":             {dropTensor(layerPrefix(1) + "attention.wqkv.weight"), convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), internlm2Fixture(t, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
