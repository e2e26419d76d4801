package convert_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// gemmaTokenizer rewrites a copy of tiny-llama-st's tokenizer.json as
// Gemma's is made: spaces replaced by "▁" but no "▁" prepended.
func gemmaTokenizer(t *testing.T, dir string) {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, "models", "hf", "tiny-llama-st", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tj map[string]any
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	tj["normalizer"] = map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}
	if raw, err = json.Marshal(tj); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, dir, "tokenizer.json", raw)
}

// gemmaFixture writes a tiny Gemma (gemma2 false) or Gemma 2 checkpoint
// made from tiny-llama-st (hidden 64, 4 heads of 16, 2 KV heads, FFN 128,
// 2 layers) with Gemma's tokenizer normalizer and tied embeddings. The
// Gemma one keeps an lm_head.weight (a copy of the embeddings, which
// llama.cpp's gemma arch does not load); the Gemma 2 one gets
// pre_feedforward_layernorm and post_feedforward_layernorm weights with a
// pattern around 0 (Gemma scales by 1+w).
func gemmaFixture(t *testing.T, gemma2 bool, edit func(map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	copyHFFiles(t, "tiny-llama-st", dir, func(c map[string]any) {
		c["architectures"], c["model_type"] = []string{"GemmaForCausalLM"}, "gemma"
		if gemma2 {
			c["architectures"], c["model_type"] = []string{"Gemma2ForCausalLM"}, "gemma2"
			c["query_pre_attn_scalar"] = 16
			c["attn_logit_softcapping"] = 1.0
			c["final_logit_softcapping"] = 2.0
			c["sliding_window"] = 4
		}
		c["tie_word_embeddings"] = true
		c["hidden_activation"] = "gelu_pytorch_tanh"
		delete(c, "mlp_bias")
		if edit != nil {
			edit(c)
		}
	})
	gemmaTokenizer(t, dir)
	st, err := safetensors.OpenDir(shareddata.Path(t, "models", "hf", "tiny-llama-st"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tensor := func(name, dtype string, shape []int64, raw []byte) stTensor {
		return stTensor{name: name, dtype: dtype, shape: shape,
			data: func(w io.Writer) error { _, err := w.Write(raw); return err }}
	}
	var ts []stTensor
	for _, ti := range st.Tensors() {
		raw, err := st.ReadTensor(ti.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ti.Name == "lm_head.weight" && gemma2:
			continue
		case ti.Name == "lm_head.weight":
			raw, err = st.ReadTensor("model.embed_tokens.weight", nil)
			if err != nil {
				t.Fatal(err)
			}
		case gemma2 && strings.HasSuffix(ti.Name, ".input_layernorm.weight"):
			p := strings.TrimSuffix(ti.Name, "input_layernorm.weight")
			for k, n := range []string{"pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight"} {
				var f32 []byte
				for i := range 64 {
					v := 0.1 * float32((i*7+k*5)%11-5)
					f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(v))
				}
				ts = append(ts, tensor(p+n, "F32", []int64{64}, f32))
			}
		}
		ts = append(ts, tensor(ti.Name, string(ti.DType), ti.Shape, raw))
	}
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadGemmaRef reads a gemmaFixture checkpoint into the float64
// reference: embeddings scaled by sqrt(hidden), norms by 1+w, tanh GELU,
// tied head and, for Gemma 2, the post norms, soft-capping and a sliding
// window on the even layers.
func loadGemmaRef(t *testing.T, dir string, gemma2 bool) *refModel {
	t.Helper()
	m := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
		embScale: 8, normOffset: 1, gelu: true}
	r := openST(t, dir)
	m.emb, m.norm = r.get("model.embed_tokens.weight"), r.get("model.norm.weight")
	m.out = m.emb
	if gemma2 {
		m.attnSoftcap, m.finalSoftcap = 1, 2
	}
	for l := range 2 {
		p := layerPrefix(l)
		L := refLayer{
			attnNorm: r.get(p + "input_layernorm.weight"),
			wq:       r.get(p + "self_attn.q_proj.weight"), wk: r.get(p + "self_attn.k_proj.weight"),
			wv: r.get(p + "self_attn.v_proj.weight"), wo: r.get(p + "self_attn.o_proj.weight"),
			wg: r.get(p + "mlp.gate_proj.weight"), wu: r.get(p + "mlp.up_proj.weight"), wd: r.get(p + "mlp.down_proj.weight"),
			ffn: 128,
		}
		if gemma2 {
			L.postAttnNorm = r.get(p + "post_attention_layernorm.weight")
			L.ffnNorm = r.get(p + "pre_feedforward_layernorm.weight")
			L.postFFNNorm = r.get(p + "post_feedforward_layernorm.weight")
			if l%2 == 0 {
				L.window = 4
			}
		} else {
			L.ffnNorm = r.get(p + "post_attention_layernorm.weight")
		}
		m.layers = append(m.layers, L)
	}
	return &m
}

// TestGemma converts tiny Gemma and Gemma 2 checkpoints to F32 and checks
// the tensors and keys llama.cpp's gemma and gemma2 archs read (norm
// weights shifted by 1, no output tensor), the tokenizer's
// add_space_prefix, and the logits after each reference prompt against
// the float64 reference. ggml's CPU GELU goes through an F16 table, so
// the tolerance is 2e-3. For Gemma 2 the soft-caps and the 4-token
// sliding window are small enough to change the logits, which the test
// checks by evaluating the reference without them.
func TestGemma(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, gemma2 := range []bool{false, true} {
		arch := map[bool]string{false: "gemma", true: "gemma2"}[gemma2]
		t.Run(arch, func(t *testing.T) {
			dir := gemmaFixture(t, gemma2, nil)
			out := filepath.Join(t.TempDir(), arch+".gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if f.Architecture() != arch {
				t.Errorf("architecture %q, want %s", f.Architecture(), arch)
			}
			wantTensors := 2*9 + 2
			if gemma2 {
				wantTensors += 2 * 2
			}
			if len(f.Tensors) != wantTensors {
				t.Errorf("%d tensors, want %d", len(f.Tensors), wantTensors)
			}
			if _, ok := f.Tensor("output.weight"); ok {
				t.Error("unexpected output.weight")
			}
			if b, ok := f.Bool("tokenizer.ggml.add_space_prefix"); !ok || b {
				t.Errorf("add_space_prefix %v (%v), want false", b, ok)
			}
			if gemma2 {
				for key, want := range map[string]float64{
					"gemma2.attn_logit_softcapping":   1,
					"gemma2.final_logit_softcapping":  2,
					"gemma2.attention.sliding_window": 4,
				} {
					v, ok := f.Float(key)
					if !ok {
						u, ok2 := f.Uint(key)
						v, ok = float64(u), ok2
					}
					if !ok || v != want {
						t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
					}
				}
				for _, n := range []string{"blk.0.post_attention_norm.weight", "blk.1.post_ffw_norm.weight", "blk.1.ffn_norm.weight"} {
					if _, ok := f.Tensor(n); !ok {
						t.Errorf("no %s", n)
					}
				}
			}
			// The norm weights are stored as 1 + w.
			src := openST(t, dir).get("model.layers.1.input_layernorm.weight")
			got := tensorF32s(t, out, "blk.1.attn_norm.weight")
			for i := range src {
				if float64(got[i]) != float64(float32(src[i]+1)) {
					t.Fatalf("attn_norm[%d] = %v, want 1 + %v", i, got[i], src[i])
				}
			}

			c := refContext(t, out)
			ref := loadGemmaRef(t, dir, gemma2)
			// Gemma 2's reference without the soft-caps, and without the
			// sliding window.
			noCap, noWindow := *ref, *ref
			noCap.attnSoftcap, noCap.finalSoftcap = 0, 0
			noWindow.layers = slices.Clone(ref.layers)
			for i := range noWindow.layers {
				noWindow.layers[i].window = 0
			}
			for _, p := range prompts {
				_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
				want := ref.forward(p.PromptIDs)
				re := relErr(got, want)
				if re > 2e-3 {
					t.Errorf("%q: relative logit error %.3g > 2e-3", p.Text, re)
				}
				t.Logf("%q: relative logit error %.3g", p.Text, re)
				if !gemma2 {
					continue
				}
				if d := relErr(got, noCap.forward(p.PromptIDs)); d < 1e-2 {
					t.Errorf("%q: logits within %.3g of the model without soft-caps", p.Text, d)
				}
				if len(p.PromptIDs) > 4 {
					if d := relErr(got, noWindow.forward(p.PromptIDs)); d < 1e-2 {
						t.Errorf("%q: logits within %.3g of the model without sliding window", p.Text, d)
					}
				}
			}

			// The tokenizer prepends no space: " Hello world" tokenizes
			// as the Llama tokenizer tokenizes "Hello world".
			m := loadModel(t, out, engine.ModelOptions{VocabOnly: true})
			llama := loadModel(t, convertFixture(t, "tiny-llama-st", "f32"), engine.ModelOptions{VocabOnly: true})
			a, err := m.Tokenize(" Hello world", false, false)
			if err != nil {
				t.Fatal(err)
			}
			b, err := llama.Tokenize("Hello world", false, false)
			if err != nil {
				t.Fatal(err)
			}
			nb, err := m.Tokenize("Hello world", false, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a, b) || slices.Equal(nb, b) {
				t.Errorf("tokens %v and %v, Llama's %v", a, nb, b)
			}
		})
	}
}

// TestGemmaRefused checks the Gemma checkpoints llama.cpp's archs cannot
// reproduce.
func TestGemmaRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gemma2  bool
		edit    func(map[string]any)
		mention string
	}{
		{"untied", false, func(c map[string]any) { c["tie_word_embeddings"] = false }, "tie_word_embeddings"},
		{"query scalar", true, func(c map[string]any) { c["query_pre_attn_scalar"] = 32 }, "query_pre_attn_scalar 32"},
		{"query scalar default", true, func(c map[string]any) { delete(c, "query_pre_attn_scalar") }, "query_pre_attn_scalar 256"},
		{"no final softcap", true, func(c map[string]any) { c["final_logit_softcapping"] = nil }, "final_logit_softcapping"},
		{"no sliding window", true, func(c map[string]any) { c["sliding_window"] = nil }, "sliding_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := gemmaFixture(t, tc.gemma2, tc.edit)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("got %v, want ErrUnsupported mentioning %s", err, tc.mention)
			}
			t.Log(err)
		})
	}
	// Gemma 2's extra norms are not Gemma's.
	dir := gemmaFixture(t, true, func(c map[string]any) { c["architectures"] = []string{"GemmaForCausalLM"} })
	err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "feedforward_layernorm") {
		t.Errorf("Gemma with Gemma 2 norms: got %v", err)
	}
}
