package convert_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/loader/convert"
)

// deciLayer is one block of the DeciLM fixture: its attention's
// n_heads_in_group (0: a no-op; -1: replaced with a linear layer) and its
// MLP's ffn_mult (0: a no-op).
type deciLayer struct {
	group int
	mult  float64
}

// deciLayers prune a 64-wide, 4-head Llama five ways: 2 and 1 key/value
// heads, no attention, a block that does nothing, and a linear attention.
// The MLP widths are 2·mult·64/3 rounded up to 256: 256, 512, 256, 256.
var deciLayers = []deciLayer{{group: 2, mult: 1}, {group: 0, mult: 7}, {group: 4, mult: 2}, {}, {group: -1, mult: 1}}

// deciWidth is the MLP width of a layer, as deciFFN computes it.
func deciWidth(mult float64) int64 {
	n := int64(2 * mult * 64 / 3)
	if r := n % 256; r != 0 {
		n += 256 - r
	}
	return n
}

// deciFixture writes a tiny DeciLMForCausalLM (tiny-llama-st's tokenizer,
// llama3 rope scaling).
func deciFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var blocks []map[string]any
	for _, l := range deciLayers {
		attn := map[string]any{"n_heads_in_group": l.group, "no_op": l.group == 0, "replace_with_linear": l.group < 0, "sparsify": nil,
			"num_sink_tokens": nil, "use_prefill_window_in_sink_attention": false, "unshifted_sink": false, "window_length": nil}
		if l.group <= 0 {
			attn["n_heads_in_group"] = nil
		}
		ffn := map[string]any{"ffn_mult": l.mult, "no_op": l.mult == 0, "replace_with_linear": false, "sparsify": nil}
		if l.mult == 0 {
			ffn["ffn_mult"] = nil
		}
		blocks = append(blocks, map[string]any{"attention": attn, "ffn": ffn})
	}
	cfg := map[string]any{"architectures": []string{"DeciLMForCausalLM"}, "model_type": "nemotron-nas", "hidden_size": 64, "num_attention_heads": 4,
		"num_key_value_heads": nil, "intermediate_size": nil, "num_hidden_layers": len(deciLayers), "block_configs": blocks, "vocab_size": 32000,
		"rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": llama3Scaling, "max_position_embeddings": 512, "hidden_act": "silu",
		"tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(71, 6))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("model.norm.weight", 64, 1, 0.1), w.mat("lm_head.weight", 32000, 64)}
	for i, l := range deciLayers {
		p := layerPrefix(i)
		switch {
		case l.group > 0:
			kv := int64(4 / l.group * 16)
			ts = append(ts, w.vec(p+"input_layernorm.weight", 64, 1, 0.1), w.mat(p+"self_attn.q_proj.weight", 64, 64),
				w.mat(p+"self_attn.k_proj.weight", kv, 64), w.mat(p+"self_attn.v_proj.weight", kv, 64), w.mat(p+"self_attn.o_proj.weight", 64, 64))
		case l.group < 0:
			ts = append(ts, w.vec(p+"input_layernorm.weight", 64, 1, 0.1), w.mat(p+"self_attn.linear_attn.weight", 64, 64))
		}
		if l.mult > 0 {
			F := deciWidth(l.mult)
			ts = append(ts, w.vec(p+"post_attention_layernorm.weight", 64, 1, 0.1), w.mat(p+"mlp.gate_proj.weight", F, 64),
				w.mat(p+"mlp.up_proj.weight", F, 64), w.mat(p+"mlp.down_proj.weight", 64, F))
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// deciReference is DeciLM's modeling code of the fixture in dir, in
// float64; a linear attention is its matrix on the normed input.
func deciReference(t *testing.T, dir string) *refModel {
	t.Helper()
	r := openST(t, dir)
	m := &refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: hfLlama3InvFreq(10000, 16, 8, 1, 4, 64)}
	m.emb, m.out, m.norm = r.get("model.embed_tokens.weight"), r.get("lm_head.weight"), r.get("model.norm.weight")
	for i, l := range deciLayers {
		p := layerPrefix(i)
		L := refLayer{noAttn: l.group == 0, noMLP: l.mult == 0}
		switch {
		case l.group > 0:
			L.attnNorm, L.kvHeads = r.get(p+"input_layernorm.weight"), 4/l.group
			L.wq, L.wk, L.wv, L.wo = r.get(p+"self_attn.q_proj.weight"), r.get(p+"self_attn.k_proj.weight"), r.get(p+"self_attn.v_proj.weight"),
				r.get(p+"self_attn.o_proj.weight")
		case l.group < 0:
			norm, lin := r.get(p+"input_layernorm.weight"), r.get(p+"self_attn.linear_attn.weight")
			L.attnNorm = norm
			L.mixer = func(hs [][]float64) [][]float64 {
				out := make([][]float64, len(hs))
				for i, h := range hs {
					out[i] = matvec(lin, h, 64)
				}
				return out
			}
		}
		if l.mult > 0 {
			L.ffnNorm, L.ffn = r.get(p+"post_attention_layernorm.weight"), int(deciWidth(l.mult))
			L.wg, L.wu, L.wd = r.get(p+"mlp.gate_proj.weight"), r.get(p+"mlp.up_proj.weight"), r.get(p+"mlp.down_proj.weight")
		}
		m.layers = append(m.layers, L)
	}
	return m
}

// TestDeci converts a tiny DeciLM pruned five ways to llama.cpp's deci
// and checks the per-layer sizes and the logits against the float64
// reference, which would see the llama3 scaling and the rope's pairs; what
// llama.cpp's deci does not run is refused.
func TestDeci(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := deciFixture(t, nil)
	out, f := convertDir(t, dir, "f32")
	heads, _ := f.LayerUints("deci.attention.head_count", len(deciLayers))
	kv, _ := f.LayerUints("deci.attention.head_count_kv", len(deciLayers))
	ff, _ := f.LayerUints("deci.feed_forward_length", len(deciLayers))
	if !slices.Equal(heads, []uint64{4, 0, 4, 0, 4}) || !slices.Equal(kv, []uint64{2, 0, 1, 0, 0}) || !slices.Equal(ff, []uint64{256, 512, 256, 0, 256}) {
		t.Errorf("head_count %v, head_count_kv %v, feed_forward_length %v", heads, kv, ff)
	}
	if _, ok := f.Tensor("rope_freqs.weight"); f.Architecture() != "deci" || !ok {
		t.Errorf("arch %q, rope_freqs %v", f.Architecture(), ok)
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, deciReference(t, dir).forward, 1e-5)
	checkSensitive(t, ctx, prompts, func() *refModel { return deciReference(t, dir) }, map[string]func(*refModel){
		"no llama3 scaling": func(m *refModel) { m.invFreq = defaultInvFreq(10000, 16) },
		"rope on pairs":     func(m *refModel) { m.ropePairs = true },
	})
	setBlock := func(i int, part, key string, v any) func(map[string]any, []stTensor) []stTensor {
		return func(c map[string]any, ts []stTensor) []stTensor {
			c["block_configs"].([]map[string]any)[i][part].(map[string]any)[key] = v
			return ts
		}
	}
	for name, c := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"a linear MLP":                 {setBlock(0, "ffn", "replace_with_linear", true), convert.ErrUnsupported},
		"an MLP no-op after attention": {setBlock(2, "ffn", "no_op", true), convert.ErrUnsupported},
		"a sliding window":             {setBlock(0, "attention", "window_length", 128), convert.ErrUnsupported},
		"layer 0 without attention":    {setBlock(0, "attention", "no_op", true), convert.ErrUnsupported},
		"3 heads in a group":           {setBlock(2, "attention", "n_heads_in_group", 3), convert.ErrMismatch},
		"a wider MLP":                  {setBlock(1, "ffn", "ffn_mult", 13.0), convert.ErrMismatch},
		"a last block doing nothing": {func(c map[string]any, ts []stTensor) []stTensor {
			b := c["block_configs"].([]map[string]any)
			// Layers 3 and 4 swapped: the linear attention, then a block
			// doing nothing.
			b[3], b[4] = b[4], b[3]
			for i := range ts {
				ts[i].name = strings.Replace(ts[i].name, "model.layers.4.", "model.layers.3.", 1)
			}
			return ts
		}, convert.ErrUnsupported},
		"no block_configs": {func(c map[string]any, ts []stTensor) []stTensor {
			delete(c, "block_configs")
			return ts
		}, convert.ErrMismatch},
		"too few blocks": {func(c map[string]any, ts []stTensor) []stTensor {
			c["block_configs"] = c["block_configs"].([]map[string]any)[:4]
			return ts
		}, convert.ErrMismatch},
	} {
		err := convert.Convert(context.Background(), deciFixture(t, c.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestDeciLM7B converts a tiny DeciLM-7B (Llama's blocks whose key/value
// heads differ by layer, num_key_value_heads_per_layer) to llama.cpp's
// deci and checks the logits against the float64 reference.
func TestDeciLM7B(t *testing.T) {
	kvs := []int{2, 1, 4, 2}
	dir := t.TempDir()
	cfg := map[string]any{"architectures": []string{"DeciLMForCausalLM"}, "model_type": "deci", "hidden_size": 64, "num_attention_heads": 4,
		"num_key_value_heads_per_layer": kvs, "intermediate_size": 96, "num_hidden_layers": len(kvs), "vocab_size": 32000, "rms_norm_eps": 1e-5,
		"rope_theta": 10000.0, "rope_scaling": nil, "max_position_embeddings": 512, "hidden_act": "silu", "tie_word_embeddings": false,
		"bos_token_id": 1, "eos_token_id": 2}
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) { clear(m); maps.Copy(m, cfg) })
	r := rand.New(rand.NewPCG(79, 2))
	w := randWeights{r}
	ts := []stTensor{f32Tensor("model.embed_tokens.weight", []int64{32000, 64}, randn(r, 32000*64, 1)),
		w.vec("model.norm.weight", 64, 1, 0.1), w.mat("lm_head.weight", 32000, 64)}
	for i, kv := range kvs {
		p := layerPrefix(i)
		ts = append(ts, w.vec(p+"input_layernorm.weight", 64, 1, 0.1), w.mat(p+"self_attn.q_proj.weight", 64, 64),
			w.mat(p+"self_attn.k_proj.weight", int64(kv*16), 64), w.mat(p+"self_attn.v_proj.weight", int64(kv*16), 64), w.mat(p+"self_attn.o_proj.weight", 64, 64),
			w.vec(p+"post_attention_layernorm.weight", 64, 1, 0.1), w.mat(p+"mlp.gate_proj.weight", 96, 64), w.mat(p+"mlp.up_proj.weight", 96, 64),
			w.mat(p+"mlp.down_proj.weight", 64, 96))
	}
	finishFixture(t, "tiny-llama-st", dir, cfg, ts, nil)
	out, f := convertDir(t, dir, "f32")
	if kv, _ := f.LayerUints("deci.attention.head_count_kv", len(kvs)); !slices.Equal(kv, []uint64{2, 1, 4, 2}) {
		t.Errorf("head_count_kv %v", kv)
	}
	rd := openST(t, dir)
	m := &refModel{hidden: 64, heads: 4, kvHeads: 4, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16)}
	m.emb, m.out, m.norm = rd.get("model.embed_tokens.weight"), rd.get("lm_head.weight"), rd.get("model.norm.weight")
	for i, kv := range kvs {
		p := layerPrefix(i)
		m.layers = append(m.layers, refLayer{attnNorm: rd.get(p + "input_layernorm.weight"), kvHeads: kv, wq: rd.get(p + "self_attn.q_proj.weight"),
			wk: rd.get(p + "self_attn.k_proj.weight"), wv: rd.get(p + "self_attn.v_proj.weight"), wo: rd.get(p + "self_attn.o_proj.weight"),
			ffnNorm: rd.get(p + "post_attention_layernorm.weight"), wg: rd.get(p + "mlp.gate_proj.weight"), wu: rd.get(p + "mlp.up_proj.weight"),
			wd: rd.get(p + "mlp.down_proj.weight"), ffn: 96})
	}
	checkRef(t, refContext(t, out), readReference(t, "tiny-llama-st").Prompts, m.forward, 1e-5)
}

// TestConvertLoRADeci converts a PEFT adapter of the pruned DeciLM's
// attention: lora_B's k rows must be permuted with each layer's own
// key/value heads (2 in layer 0, 1 in layer 2), its q rows with the heads.
func TestConvertLoRADeci(t *testing.T) {
	base := deciFixture(t, nil)
	var modules []string
	for _, l := range []int{0, 2} {
		for _, m := range []string{"q_proj", "k_proj", "v_proj", "o_proj"} {
			modules = append(modules, fmt.Sprintf("model.layers.%d.self_attn.%s", l, m))
		}
	}
	adapter, merged := peftFixtureDir(t, base, "test/deci", modules, nil, linkBaseFiles(t, base))
	checkLoRA(t, base, adapter, merged, readReference(t, "tiny-llama-st").Prompts)
}
