package convert_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// The tiny synthetic Gemma 3: 7 layers, so that llama.cpp's pattern gives
// sliding-window layers 0-4 and 6 and a global layer 5; head_dim 32 with
// 4 heads (128) differs from hidden_size 64, as in gemma-3-1b, so the
// key/value lengths are written; the 4-token window is shorter than the
// longer reference prompts.
const (
	g3Hidden  = 64
	g3Heads   = 4
	g3KV      = 2
	g3HeadDim = 32
	g3FFN     = 128
	g3Layers  = 7
	g3Vocab   = 32000
	g3Window  = 4
	g3Theta   = 1e6 // the global layers' rope_theta (transformers' default)
	g3Local   = 1e4 // rope_local_base_freq
)

// g3Sliding reports whether layer i of the tiny model uses the sliding
// window: transformers' (i+1) % 6 != 0, llama.cpp's i % 6 < 5.
func g3Sliding(i int) bool { return (i+1)%6 != 0 }

// gemma3Tensors returns the tiny Gemma 3's weights under their
// Gemma3ForCausalLM names, F32, from a generator seeded by each name:
// matrices uniform with unit output variance, embeddings in ±0.5 and norm
// weights w in ±0.3 (Gemma scales by 1+w).
func gemma3Tensors() []stTensor {
	var ts []stTensor
	add := func(name string, scale float64, shape ...int64) {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		h := fnv.New64a()
		h.Write([]byte(name))
		r := rand.New(rand.NewPCG(h.Sum64(), 3))
		raw := make([]byte, 0, 4*n)
		for range n {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(float32(scale*(2*r.Float64()-1))))
		}
		ts = append(ts, stTensor{name: name, dtype: "F32", shape: shape,
			data: func(w io.Writer) error { _, err := w.Write(raw); return err }})
	}
	lin := func(in int) float64 { return math.Sqrt(3 / float64(in)) }
	add("model.embed_tokens.weight", 0.5, g3Vocab, g3Hidden)
	add("model.norm.weight", 0.3, g3Hidden)
	for l := range g3Layers {
		p := layerPrefix(l)
		for _, n := range []string{"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"} {
			add(p+n+".weight", 0.3, g3Hidden)
		}
		add(p+"self_attn.q_norm.weight", 0.3, g3HeadDim)
		add(p+"self_attn.k_norm.weight", 0.3, g3HeadDim)
		add(p+"self_attn.q_proj.weight", lin(g3Hidden), g3Heads*g3HeadDim, g3Hidden)
		add(p+"self_attn.k_proj.weight", lin(g3Hidden), g3KV*g3HeadDim, g3Hidden)
		add(p+"self_attn.v_proj.weight", lin(g3Hidden), g3KV*g3HeadDim, g3Hidden)
		add(p+"self_attn.o_proj.weight", lin(g3Heads*g3HeadDim), g3Hidden, g3Heads*g3HeadDim)
		add(p+"mlp.gate_proj.weight", lin(g3Hidden), g3FFN, g3Hidden)
		add(p+"mlp.up_proj.weight", lin(g3Hidden), g3FFN, g3Hidden)
		add(p+"mlp.down_proj.weight", lin(g3FFN), g3Hidden, g3FFN)
	}
	return ts
}

// g3TextConfig is the tiny model's Gemma3TextConfig, leaving out the
// fields whose transformers defaults it uses (rope_theta 1e6,
// rope_local_base_freq 1e4, rms_norm_eps 1e-6, tied embeddings,
// gelu_pytorch_tanh).
func g3TextConfig() map[string]any {
	return map[string]any{
		"model_type": "gemma3_text", "hidden_size": g3Hidden, "intermediate_size": g3FFN,
		"num_hidden_layers": g3Layers, "num_attention_heads": g3Heads, "num_key_value_heads": g3KV,
		"head_dim": g3HeadDim, "vocab_size": g3Vocab, "max_position_embeddings": 2048,
		"query_pre_attn_scalar": g3HeadDim, "sliding_window": g3Window,
	}
}

// Gemma3ForConditionalGeneration tensor layouts.
const (
	g3Text   = iota // Gemma3ForCausalLM: model.*
	g3VLM           // transformers before 4.52: language_model.model.*, vision_tower.*, multi_modal_projector.*
	g3VLMNew        // 4.52 and later: model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*, lm_head
)

// gemma3Fixture writes the tiny Gemma 3 checkpoint in layout with the
// tokenizer of tiny-llama-st made Gemma-like (gemmaTokenizer). The
// Gemma3ForCausalLM config is complete (sliding_window_pattern 6,
// rope_theta, rope_local_base_freq, ...); the
// Gemma3ForConditionalGeneration one nests the shorter g3TextConfig in
// text_config, with layer_types, beside a vision_config, and adds vision
// tower and projector tensors. edit changes the config (the text_config
// for the vision-language layouts).
func gemma3Fixture(t *testing.T, layout int, edit func(map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	copyHFFiles(t, "tiny-llama-st", dir, func(c map[string]any) {
		clear(c)
		text := g3TextConfig()
		if layout == g3Text {
			text["architectures"], text["model_type"] = []string{"Gemma3ForCausalLM"}, "gemma3_text"
			text["rope_theta"], text["rope_local_base_freq"] = g3Theta, g3Local
			text["rms_norm_eps"], text["hidden_activation"] = 1e-6, "gelu_pytorch_tanh"
			text["sliding_window_pattern"], text["tie_word_embeddings"] = 6, true
			text["bos_token_id"], text["eos_token_id"], text["pad_token_id"] = 1, 2, 0
			// As gemma-3-1b's config.json: the features off, as nulls.
			text["attn_logit_softcapping"], text["final_logit_softcapping"], text["rope_scaling"] = nil, nil, nil
			if edit != nil {
				edit(text)
			}
			for k, v := range text {
				c[k] = v
			}
			return
		}
		var lt []string
		for i := range g3Layers {
			lt = append(lt, map[bool]string{true: "sliding_attention", false: "full_attention"}[g3Sliding(i)])
		}
		text["layer_types"] = lt
		if edit != nil {
			edit(text)
		}
		c["architectures"], c["model_type"] = []string{"Gemma3ForConditionalGeneration"}, "gemma3"
		c["text_config"] = text
		c["vision_config"] = map[string]any{"model_type": "siglip_vision_model", "hidden_size": 8, "num_hidden_layers": 1,
			"image_size": 4, "patch_size": 2, "num_attention_heads": 1, "intermediate_size": 8}
		c["mm_tokens_per_image"], c["boi_token_index"], c["eoi_token_index"], c["image_token_index"] = 1, 3, 4, 5
		c["eos_token_id"] = []int{2, 1}
	})
	gemmaTokenizer(t, dir)
	ts := gemma3Tensors()
	if layout != g3Text {
		prefix, vision := "language_model.", ""
		if layout == g3VLMNew {
			prefix, vision = "model.language_model.", "model."
		}
		for i := range ts {
			if layout == g3VLM {
				ts[i].name = prefix + ts[i].name
			} else {
				ts[i].name = prefix + strings.TrimPrefix(ts[i].name, "model.")
			}
		}
		extra := []struct {
			name  string
			shape []int64
		}{
			{"vision_tower.vision_model.embeddings.patch_embedding.weight", []int64{8, 3, 2, 2}},
			{"vision_tower.vision_model.post_layernorm.weight", []int64{8}},
			{"multi_modal_projector.mm_input_projection_weight", []int64{8, g3Hidden}},
			{"multi_modal_projector.mm_soft_emb_norm.weight", []int64{8}},
		}
		for _, e := range extra {
			n := int64(4)
			for _, d := range e.shape {
				n *= d
			}
			ts = append(ts, stTensor{name: vision + e.name, dtype: "F32", shape: e.shape,
				data: func(w io.Writer) error { _, err := w.Write(make([]byte, n)); return err }})
		}
		if layout == g3VLMNew {
			// transformers 4.52+ saves the (tied) head at the top level.
			emb := ts[slices.IndexFunc(ts, func(s stTensor) bool { return strings.HasSuffix(s.name, "embed_tokens.weight") })]
			emb.name = "lm_head.weight"
			ts = append(ts, emb)
		}
	}
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// g3Ref describes the float64 reference of the tiny Gemma 3.
type g3Ref struct {
	global, local []float64            // rope frequencies of the global and sliding-window layers
	window        int                  // 0: no sliding window
	sliding       func(layer int) bool // nil: g3Sliding
	finalSoftcap  float64
}

// loadGemma3Ref reads a Gemma3ForCausalLM fixture into the float64
// reference, as transformers' modeling_gemma3 computes: embeddings scaled
// by sqrt(hidden), every RMS norm (q_norm and k_norm too) by 1+w, per-head
// q/k norms before rotate_half rope, attention scaled by
// query_pre_attn_scalar^-0.5 (head_dim here), the post-attention and
// post-MLP norms, tanh GELU, the tied head.
func loadGemma3Ref(t *testing.T, dir string, o g3Ref) *refModel {
	t.Helper()
	m := refModel{hidden: g3Hidden, heads: g3Heads, kvHeads: g3KV, headDim: g3HeadDim, eps: 1e-6,
		invFreq: o.global, embScale: math.Sqrt(g3Hidden), normOffset: 1, gelu: true,
		attnScale: 1 / math.Sqrt(g3HeadDim), finalSoftcap: o.finalSoftcap}
	sliding := o.sliding
	if sliding == nil {
		sliding = g3Sliding
	}
	r := openST(t, dir)
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	for l := range g3Layers {
		p := layerPrefix(l)
		L := refLayer{
			attnNorm: r.get(p + "input_layernorm.weight"),
			wq:       r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"),
			wv: r.get(p + "self_attn.v_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight"),
			qNorm: r.get(p + "self_attn.q_norm.weight"), kNorm: r.get(p + "self_attn.k_norm.weight"),
			postAttnNorm: r.get(p + "post_attention_layernorm.weight"),
			ffnNorm:      r.get(p + "pre_feedforward_layernorm.weight"),
			postFFNNorm:  r.get(p + "post_feedforward_layernorm.weight"),
			wg:           r.get(p + "mlp.gate_proj.weight"), wu: r.get(p + "mlp.up_proj.weight"), wd: r.get(p + "mlp.down_proj.weight"),
			ffn: g3FFN,
		}
		if sliding(l) {
			L.window, L.invFreq = o.window, o.local
		}
		m.layers = append(m.layers, L)
	}
	return &m
}

// scaledFreq returns theta's rope frequencies divided by factor (linear
// rope scaling).
func scaledFreq(theta, factor float64) []float64 {
	f := defaultInvFreq(theta, g3HeadDim)
	for i := range f {
		f[i] /= factor
	}
	return f
}

// g3Key reads a numeric key.
func g3Key(f *gguf.File, key string) (float64, bool) {
	if v, ok := f.Float(key); ok {
		return v, true
	}
	u, ok := f.Uint(key)
	return float64(u), ok
}

// TestGemma3 converts the tiny Gemma 3 to F32 and checks the tensors and
// keys llama.cpp's gemma3 arch reads and the logits after each reference
// prompt against the float64 reference (2e-3: ggml's CPU GELU goes
// through an F16 table). Each case also evaluates the reference with one
// feature taken away and checks that the engine's logits are far from it,
// so the comparison does see the feature: the sliding window, the local
// layers' own rope base, and the linear rope scaling being applied to the
// global layer only.
func TestGemma3(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	type variant struct {
		name   string
		ref    g3Ref
		minLen int // only prompts longer than this must differ (0: all)
	}
	for _, tc := range []struct {
		name     string
		edit     func(map[string]any)
		ref      g3Ref
		keys     map[string]float64
		absent   []string
		variants []variant
	}{
		{
			name: "default",
			ref:  g3Ref{global: defaultInvFreq(g3Theta, g3HeadDim), local: defaultInvFreq(g3Local, g3HeadDim), window: g3Window},
			keys: map[string]float64{
				"gemma3.attention.sliding_window": g3Window, "gemma3.rope.freq_base": g3Theta,
				"gemma3.attention.key_length": g3HeadDim, "gemma3.attention.value_length": g3HeadDim,
				"gemma3.attention.head_count": g3Heads, "gemma3.attention.head_count_kv": g3KV,
				"gemma3.block_count": g3Layers, "gemma3.attention.layer_norm_rms_epsilon": float64(float32(1e-6)),
				"gemma3.rope.dimension_count": g3HeadDim,
			},
			absent: []string{"gemma3.rope.scaling.type", "gemma3.final_logit_softcapping", "gemma3.attn_logit_softcapping"},
			variants: []variant{
				{"no sliding window", g3Ref{global: defaultInvFreq(g3Theta, g3HeadDim), local: defaultInvFreq(g3Local, g3HeadDim)}, g3Window},
				{"the global rope base on every layer", g3Ref{global: defaultInvFreq(g3Theta, g3HeadDim), local: defaultInvFreq(g3Theta, g3HeadDim), window: g3Window}, 1},
			},
		},
		{
			name: "linear scaling and final soft-cap",
			edit: func(c map[string]any) {
				c["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": 8.0}
				c["final_logit_softcapping"] = 3.0
			},
			ref:    g3Ref{global: scaledFreq(g3Theta, 8), local: defaultInvFreq(g3Local, g3HeadDim), window: g3Window, finalSoftcap: 3},
			keys:   map[string]float64{"gemma3.rope.scaling.factor": 8, "gemma3.final_logit_softcapping": 3, "gemma3.attention.sliding_window": g3Window},
			absent: []string{"gemma3.attn_logit_softcapping"},
			variants: []variant{
				{"the scaling on every layer", g3Ref{global: scaledFreq(g3Theta, 8), local: scaledFreq(g3Local, 8), window: g3Window, finalSoftcap: 3}, 1},
				{"no scaling", g3Ref{global: defaultInvFreq(g3Theta, g3HeadDim), local: defaultInvFreq(g3Local, g3HeadDim), window: g3Window, finalSoftcap: 3}, 1},
				{"no soft-cap", g3Ref{global: scaledFreq(g3Theta, 8), local: defaultInvFreq(g3Local, g3HeadDim), window: g3Window}, 0},
			},
		},
		{
			// sliding_window_pattern 1: every layer global, with rope_theta.
			name:   "no sliding layers",
			edit:   func(c map[string]any) { c["sliding_window_pattern"] = 1 },
			ref:    g3Ref{global: defaultInvFreq(g3Theta, g3HeadDim), sliding: func(int) bool { return false }},
			keys:   map[string]float64{"gemma3.rope.freq_base": g3Theta},
			absent: []string{"gemma3.attention.sliding_window"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := gemma3Fixture(t, g3Text, tc.edit)
			out, f := convertDir(t, dir, "f32")
			if f.Architecture() != "gemma3" {
				t.Errorf("architecture %q, want gemma3", f.Architecture())
			}
			if want := g3Layers*13 + 2; len(f.Tensors) != want {
				t.Errorf("%d tensors, want %d", len(f.Tensors), want)
			}
			if _, ok := f.Tensor("output.weight"); ok {
				t.Error("unexpected output.weight: the embeddings are tied")
			}
			for _, n := range []string{"blk.5.attn_q_norm.weight", "blk.5.attn_k_norm.weight", "blk.6.post_attention_norm.weight",
				"blk.6.ffn_norm.weight", "blk.6.post_ffw_norm.weight", "blk.0.attn_norm.weight"} {
				if _, ok := f.Tensor(n); !ok {
					t.Errorf("no %s", n)
				}
			}
			for key, want := range tc.keys {
				if v, ok := g3Key(f, key); !ok || v != want {
					t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
				}
			}
			for _, key := range tc.absent {
				if _, ok := f.Lookup(key); ok {
					t.Errorf("unexpected %s", key)
				}
			}
			if s, _ := f.String("gemma3.rope.scaling.type"); tc.keys["gemma3.rope.scaling.factor"] != 0 && s != "linear" {
				t.Errorf("rope.scaling.type %q, want linear", s)
			}
			if b, ok := f.Bool("tokenizer.ggml.add_space_prefix"); !ok || b {
				t.Errorf("add_space_prefix %v (%v), want false", b, ok)
			}
			// Every norm weight, the per-head ones too, is stored as 1 + w.
			for _, n := range [][2]string{
				{"model.layers.3.self_attn.q_norm.weight", "blk.3.attn_q_norm.weight"},
				{"model.layers.3.self_attn.k_norm.weight", "blk.3.attn_k_norm.weight"},
				{"model.layers.3.post_feedforward_layernorm.weight", "blk.3.post_ffw_norm.weight"},
				{"model.norm.weight", "output_norm.weight"},
			} {
				src, got := openST(t, dir).get(n[0]), tensorF32s(t, out, n[1])
				for i := range src {
					if float64(got[i]) != float64(float32(src[i]+1)) {
						t.Fatalf("%s[%d] = %v, want 1 + %v", n[1], i, got[i], src[i])
					}
				}
			}

			c := refContext(t, out)
			ref := loadGemma3Ref(t, dir, tc.ref)
			for _, p := range prompts {
				_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
				re := relErr(got, ref.forward(p.PromptIDs))
				if re > 2e-3 {
					t.Errorf("%q: relative logit error %.3g > 2e-3", p.Text, re)
				}
				t.Logf("%q: relative logit error %.3g", p.Text, re)
				for _, v := range tc.variants {
					if len(p.PromptIDs) <= v.minLen {
						continue
					}
					d := relErr(got, loadGemma3Ref(t, dir, v.ref).forward(p.PromptIDs))
					if d < 1e-2 {
						t.Errorf("%q: logits within %.3g of the model with %s", p.Text, d, v.name)
					}
					t.Logf("%q: %.3g from the model with %s", p.Text, d, v.name)
				}
			}
		})
	}
}

// TestGemma3Forms checks that the other ways of writing the same model
// convert to the same bytes: Gemma3ForConditionalGeneration in both
// tensor layouts (its text_config relying on the Gemma3TextConfig
// defaults and giving layer_types; the vision tower, projector and the
// tied lm_head are skipped), and transformers 5's rope_parameters with
// full_attention/sliding_attention objects in place of rope_theta,
// rope_scaling and rope_local_base_freq; and a tokenizer with an added
// token past vocab_size.
func TestGemma3Forms(t *testing.T) {
	convertTo := func(dir string) []byte {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "gemma3"}); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	base := convertTo(gemma3Fixture(t, g3Text, nil))
	for _, layout := range []int{g3VLM, g3VLMNew} {
		if got := convertTo(gemma3Fixture(t, layout, nil)); !bytes.Equal(got, base) {
			t.Errorf("Gemma3ForConditionalGeneration (layout %d): the GGUF differs from Gemma3ForCausalLM's", layout)
		}
	}

	// An added token past vocab_size (as <image_soft_token>, id 262144, in
	// gemma-3-1b's tokenizer, whose vocab_size is 262144) is dropped.
	dir := gemma3Fixture(t, g3Text, nil)
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tj map[string]any
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	tj["added_tokens"] = append(tj["added_tokens"].([]any), map[string]any{"id": g3Vocab, "content": "<image_soft_token>",
		"single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	if raw, err = json.Marshal(tj); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, dir, "tokenizer.json", raw)
	if got := convertTo(dir); !bytes.Equal(got, base) {
		t.Error("with an added token past vocab_size: the GGUF differs")
	}

	scaled := convertTo(gemma3Fixture(t, g3Text, func(c map[string]any) {
		c["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": 8.0}
	}))
	if bytes.Equal(scaled, base) {
		t.Fatal("rope scaling changed nothing")
	}
	for _, layout := range []int{g3Text, g3VLMNew} {
		got := convertTo(gemma3Fixture(t, layout, func(c map[string]any) {
			delete(c, "rope_theta")
			delete(c, "rope_local_base_freq")
			c["rope_parameters"] = map[string]any{
				"full_attention":    map[string]any{"rope_type": "linear", "factor": 8.0, "rope_theta": g3Theta},
				"sliding_attention": map[string]any{"rope_type": "default", "rope_theta": g3Local},
			}
		}))
		if !bytes.Equal(got, scaled) {
			t.Errorf("rope_parameters (layout %d): the GGUF differs from the rope_theta/rope_scaling one", layout)
		}
	}
}

// TestGemma3Refused checks the Gemma 3 configs llama.cpp's gemma3 arch
// cannot reproduce.
func TestGemma3Refused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		layout  int
		edit    func(map[string]any)
		mention string
	}{
		{"query scalar", g3Text, func(c map[string]any) { c["query_pre_attn_scalar"] = 64 }, "query_pre_attn_scalar 64"},
		{"query scalar default", g3Text, func(c map[string]any) { delete(c, "query_pre_attn_scalar") }, "query_pre_attn_scalar 256"},
		{"local rope base", g3Text, func(c map[string]any) { c["rope_local_base_freq"] = 20000.0 }, "rope_local_base_freq 20000"},
		{"local rope base per type", g3Text, func(c map[string]any) {
			c["rope_parameters"] = map[string]any{"full_attention": map[string]any{"rope_theta": g3Theta},
				"sliding_attention": map[string]any{"rope_type": "default", "rope_theta": 5e4}}
		}, "rope_local_base_freq 50000"},
		{"local rope scaling", g3Text, func(c map[string]any) {
			c["rope_parameters"] = map[string]any{"full_attention": map[string]any{"rope_theta": g3Theta},
				"sliding_attention": map[string]any{"rope_type": "linear", "factor": 2.0, "rope_theta": g3Local}}
		}, "sliding_attention type \"linear\""},
		{"pattern", g3Text, func(c map[string]any) { c["sliding_window_pattern"] = 2 }, "global (full_attention) layers [1 3 5]"},
		{"layer types", g3VLM, func(c map[string]any) {
			c["layer_types"] = []string{"full_attention", "sliding_attention", "sliding_attention", "sliding_attention",
				"sliding_attention", "sliding_attention", "sliding_attention"}
		}, "global (full_attention) layers [0]"},
		{"no sliding window", g3Text, func(c map[string]any) { c["sliding_window"] = nil }, "sliding_window null"},
		{"attention soft-cap", g3Text, func(c map[string]any) { c["attn_logit_softcapping"] = 50.0 }, "attn_logit_softcapping"},
		{"yarn", g3Text, func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512}
		}, "yarn rope scaling"},
		{"activation", g3Text, func(c map[string]any) { c["hidden_activation"] = "gelu" }, "hidden_activation \"gelu\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := gemma3Fixture(t, tc.layout, tc.edit)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("got %v, want ErrUnsupported mentioning %s", err, tc.mention)
			}
			t.Log(err)
		})
	}
	// An untied Gemma 3 needs its head.
	dir := gemma3Fixture(t, g3Text, func(c map[string]any) { c["tie_word_embeddings"] = false })
	err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrMismatch) || !strings.Contains(err.Error(), "output.weight") {
		t.Errorf("untied without lm_head.weight: got %v", err)
	}
}

// TestGemma3Untied converts a Gemma 3 with tie_word_embeddings false and
// its own lm_head.weight, which llama.cpp's gemma3 arch loads as
// output.weight, and checks the logits against the reference with that
// head.
func TestGemma3Untied(t *testing.T) {
	dir := gemma3Fixture(t, g3Text, func(c map[string]any) { c["tie_word_embeddings"] = false })
	ts := gemma3Tensors()
	head := slices.Clone(ts[:1])
	head[0].name = "lm_head.weight"
	// The embeddings reversed row by row, so the head is not the embeddings.
	raw := new(bytes.Buffer)
	if err := ts[0].data(raw); err != nil {
		t.Fatal(err)
	}
	rows := raw.Bytes()
	rev := make([]byte, 0, len(rows))
	for r := g3Vocab - 1; r >= 0; r-- {
		rev = append(rev, rows[r*4*g3Hidden:(r+1)*4*g3Hidden]...)
	}
	head[0].data = func(w io.Writer) error { _, err := w.Write(rev); return err }
	ts = append(ts, head...)
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	out, f := convertDir(t, dir, "f32")
	if _, ok := f.Tensor("output.weight"); !ok {
		t.Fatal("no output.weight")
	}
	ref := loadGemma3Ref(t, dir, g3Ref{global: defaultInvFreq(g3Theta, g3HeadDim), local: defaultInvFreq(g3Local, g3HeadDim), window: g3Window})
	tied := *ref
	ref.out = openST(t, dir).get("lm_head.weight")
	c := refContext(t, out)
	for _, p := range readReference(t, "tiny-llama-st").Prompts {
		_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
		re := relErr(got, ref.forward(p.PromptIDs))
		if re > 2e-3 {
			t.Errorf("%q: relative logit error %.3g > 2e-3", p.Text, re)
		}
		if d := relErr(got, tied.forward(p.PromptIDs)); d < 1e-2 {
			t.Errorf("%q: logits within %.3g of the tied model", p.Text, d)
		}
		t.Logf("%q: relative logit error %.3g", p.Text, re)
	}
}
