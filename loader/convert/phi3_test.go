package convert_test

import (
	"context"
	"errors"
	"io"
	"math"
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

// phi3Fixture writes a tiny Phi-3 checkpoint made from tiny-llama-st
// (hidden 64, 4 heads of 16, 2 KV heads, FFN 128, 2 layers, untied): the
// q/k/v projections fused, rows concatenated, into qkv_proj and gate/up
// into gate_up_proj, as Phi3ForCausalLM stores them. Phi-3 rotates q/k
// rotate_half style (NEOX), so the Llama rows need no permutation.
func phi3Fixture(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	copyHFFiles(t, "tiny-llama-st", dir, func(c map[string]any) {
		c["architectures"] = []string{"Phi3ForCausalLM"}
		c["model_type"] = "phi3"
		delete(c, "head_dim")
		delete(c, "mlp_bias")
		c["original_max_position_embeddings"] = 2048
		c["sliding_window"] = 2047
		if edit != nil {
			edit(c)
		}
	})
	st, err := safetensors.OpenDir(shareddata.Path(t, "models", "hf", "tiny-llama-st"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	read := func(name string) []byte {
		raw, err := st.ReadTensor(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	fuse := func(name string, parts ...string) stTensor {
		var raw []byte
		var rows int64
		var ti safetensors.TensorInfo
		for _, p := range parts {
			ti, _ = st.Tensor(p)
			raw = append(raw, read(p)...)
			rows += ti.Shape[0]
		}
		return stTensor{name: name, dtype: string(ti.DType), shape: []int64{rows, ti.Shape[1]},
			data: func(w io.Writer) error { _, err := w.Write(raw); return err }}
	}
	var ts []stTensor
	for _, ti := range st.Tensors() {
		p, suffix, _ := strings.Cut(ti.Name, "self_attn.")
		switch {
		case suffix == "q_proj.weight":
			ts = append(ts, fuse(p+"self_attn.qkv_proj.weight", ti.Name, p+"self_attn.k_proj.weight", p+"self_attn.v_proj.weight"))
		case strings.HasSuffix(ti.Name, "mlp.gate_proj.weight"):
			p := strings.TrimSuffix(ti.Name, "gate_proj.weight")
			ts = append(ts, fuse(p+"gate_up_proj.weight", ti.Name, p+"up_proj.weight"))
		case suffix == "k_proj.weight" || suffix == "v_proj.weight" || strings.HasSuffix(ti.Name, "mlp.up_proj.weight"):
		default:
			raw := read(ti.Name)
			ts = append(ts, stTensor{name: ti.Name, dtype: string(ti.DType), shape: ti.Shape,
				data: func(w io.Writer) error { _, err := w.Write(raw); return err }})
		}
	}
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadPhi3Ref reads a Phi-3 checkpoint of tiny-llama-st's shape into the
// float64 reference, splitting the fused projections: qkv_proj rows are
// q, then k, then v; gate_up_proj rows are the gate, then up (Phi3MLP's
// chunk(2)).
func loadPhi3Ref(t *testing.T, dir string, m refModel) *refModel {
	t.Helper()
	const H, q, kv, I = 64, 64, 32, 128
	r := openST(t, dir)
	m.emb, m.norm, m.out = r.get("model.embed_tokens.weight"), r.get("model.norm.weight"), r.get("lm_head.weight")
	for l := range 2 {
		p := layerPrefix(l)
		qkv, gu := r.get(p+"self_attn.qkv_proj.weight"), r.get(p+"mlp.gate_up_proj.weight")
		m.layers = append(m.layers, refLayer{
			attnNorm: r.get(p + "input_layernorm.weight"),
			wq:       qkv[:q*H], wk: qkv[q*H : (q+kv)*H], wv: qkv[(q+kv)*H:],
			wo:      r.get(p + "self_attn.o_proj.weight"),
			ffnNorm: r.get(p + "post_attention_layernorm.weight"),
			wg:      gu[:I*H], wu: gu[I*H:], wd: r.get(p + "mlp.down_proj.weight"),
			ffn: I,
		})
	}
	return &m
}

// TestPhi3 converts tiny Phi-3 checkpoints (full and half rotary) to F32
// and checks the tensors and keys llama.cpp's phi3 arch reads, and the
// logits after each reference prompt against the float64 reference.
func TestPhi3(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	for _, tc := range []struct {
		name    string
		partial float64
		ropeDim int
	}{{"full rotary", 0, 16}, {"half rotary", 0.5, 8}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := phi3Fixture(t, func(c map[string]any) {
				if tc.partial != 0 {
					c["partial_rotary_factor"] = tc.partial
				}
			})
			out, f := convertDir(t, dir, "f32")
			if f.Architecture() != "phi3" {
				t.Errorf("architecture %q, want phi3", f.Architecture())
			}
			// 2 layers × 6 + token_embd, output_norm, output.
			if len(f.Tensors) != 15 {
				t.Errorf("%d tensors, want 15", len(f.Tensors))
			}
			for name, shape := range map[string][]uint64{
				"blk.0.attn_qkv.weight":    {64, 128},
				"blk.1.ffn_up.weight":      {64, 256},
				"blk.1.ffn_down.weight":    {128, 64},
				"blk.0.attn_output.weight": {64, 64},
				"output.weight":            {64, 32000},
			} {
				if ti, ok := f.Tensor(name); !ok || !slices.Equal(ti.Shape, shape) {
					t.Errorf("%s: %v %v, want shape %v", name, ok, ti.Shape, shape)
				}
			}
			for key, want := range map[string]uint64{
				"phi3.rope.dimension_count":                 uint64(tc.ropeDim),
				"phi3.attention.head_count":                 4,
				"phi3.attention.head_count_kv":              2,
				"phi3.attention.sliding_window":             2047,
				"phi3.rope.scaling.original_context_length": 2048,
				"phi3.context_length":                       2048,
				"phi3.feed_forward_length":                  128,
			} {
				if v, ok := f.Uint(key); !ok || v != want {
					t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
				}
			}
			c := refContext(t, out)
			ref := loadPhi3Ref(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5,
				invFreq: defaultInvFreq(10000, tc.ropeDim)})
			checkRef(t, c, prompts, ref.forward, 1e-5)
		})
	}
}

// TestPhi3Refused checks Phi-3 checkpoints the phi3 arch cannot take.
func TestPhi3Refused(t *testing.T) {
	// Separate q/k/v projections: llama.cpp's phi3 reads a fused qkv.
	dir := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["architectures"] = []string{"Phi3ForCausalLM"}
	})
	err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "fused") {
		t.Errorf("split projections: got %v, want ErrUnsupported about fused weights", err)
	}
	for _, tc := range []struct {
		name    string
		edit    func(map[string]any)
		mention string
	}{
		{"head_dim", func(c map[string]any) { c["head_dim"] = 32 }, "hidden_size"},
		{"llama3", func(c map[string]any) { c["rope_scaling"] = llama3Scaling }, "rope_freqs"},
	} {
		dir := phi3Fixture(t, tc.edit)
		err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: got %v, want ErrUnsupported mentioning %s", tc.name, err, tc.mention)
		}
	}
}

// longropeFactors returns n short and n long longrope factors, distinct
// from each other and from 1 at every frequency, the long ones larger.
func longropeFactors(n int) (short, long []float64) {
	for i := range n {
		short = append(short, 1.25+0.5*float64(i))
		long = append(long, 2+4*float64(i))
	}
	return short, long
}

// phi3Longrope edits a Phi-3 config into a 128k-style longrope one: the
// context 2048, the original context 256 (scale 8) and the factors for
// rotDim rotated dimensions.
func phi3Longrope(rotDim int) func(map[string]any) {
	return func(c map[string]any) {
		short, long := longropeFactors(rotDim / 2)
		c["max_position_embeddings"] = 2048
		c["original_max_position_embeddings"] = 256
		c["rope_scaling"] = map[string]any{"type": "longrope", "short_factor": short, "long_factor": long}
	}
}

// TestPhi3Longrope converts tiny Phi-3 checkpoints with longrope scaling
// (full rotary as Phi-3/3.5-mini, three quarters as Phi-4-mini) to F32,
// checks the keys and the rope factor tensors llama.cpp's phi3 arch reads,
// and the logits against the float64 reference in both of llama.cpp's
// regimes: a context of 256, not above the original context, rotates with
// the short factors; one of 512 with the long ones. Both scale cos and sin
// by the attention factor sqrt(1 + ln 8 / ln 256).
func TestPhi3Longrope(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	attn := math.Sqrt(1 + math.Log(8)/math.Log(256))
	for _, tc := range []struct {
		name    string
		partial float64
		rotDim  int
	}{{"full rotary", 0, 16}, {"partial rotary 0.75", 0.75, 12}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := phi3Fixture(t, func(c map[string]any) {
				if tc.partial != 0 {
					c["partial_rotary_factor"] = tc.partial
				}
				phi3Longrope(tc.rotDim)(c)
			})
			short, long := longropeFactors(tc.rotDim / 2)
			out, f := convertDir(t, dir, "f32")
			// 2 layers × 6 + token_embd, output_norm, output + 2 factors.
			if len(f.Tensors) != 17 {
				t.Errorf("%d tensors, want 17", len(f.Tensors))
			}
			for i, name := range []string{"rope_factors_long.weight", "rope_factors_short.weight"} {
				if f.Tensors[i].Name != name {
					t.Errorf("tensor %d is %s, want %s", i, f.Tensors[i].Name, name)
				}
			}
			for name, want := range map[string][]float64{"rope_factors_long.weight": long, "rope_factors_short.weight": short} {
				got := tensorF32s(t, out, name)
				if len(got) != len(want) {
					t.Fatalf("%s: %d values, want %d (rotated dimensions / 2)", name, len(got), len(want))
				}
				for i := range got {
					if got[i] != float32(want[i]) {
						t.Errorf("%s[%d] = %v, want %v", name, i, got[i], want[i])
					}
				}
			}
			for key, want := range map[string]uint64{
				"phi3.rope.dimension_count":                 uint64(tc.rotDim),
				"phi3.rope.scaling.original_context_length": 256,
				"phi3.context_length":                       2048,
			} {
				if v, ok := f.Uint(key); !ok || v != want {
					t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
				}
			}
			if v, ok := f.Float("phi3.rope.scaling.attn_factor"); !ok || float32(v) != float32(attn) {
				t.Errorf("phi3.rope.scaling.attn_factor = %v (%v), want %v", v, ok, float32(attn))
			}
			for _, k := range []string{"phi3.rope.scaling.type", "phi3.rope.scaling.factor"} {
				if _, ok := f.Lookup(k); ok {
					t.Errorf("unexpected key %s (llama.cpp would scale the frequencies by it)", k)
				}
			}

			m := loadModel(t, out, engine.ModelOptions{})
			base := refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, ropeAttn: attn}
			plain := loadPhi3Ref(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5,
				invFreq: defaultInvFreq(10000, tc.rotDim)})
			var regimes [][]float32
			for _, r := range []struct {
				name    string
				ctx     int
				factors []float64
			}{{"short (n_ctx 256)", 256, short}, {"long (n_ctx 512)", 512, long}} {
				c, err := m.NewContext(engine.ContextOptions{ContextLength: r.ctx, TypeK: "f32", TypeV: "f32",
					FlashAttention: engine.FlashAttentionOff, Threads: 1})
				if err != nil {
					t.Fatal(err)
				}
				inv := defaultInvFreq(10000, tc.rotDim)
				for i := range inv {
					inv[i] /= r.factors[i]
				}
				mr := base
				mr.invFreq = inv
				ref := loadPhi3Ref(t, dir, mr)
				for i, p := range prompts {
					_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
					re := relErr(got, ref.forward(p.PromptIDs))
					if re > 1e-5 {
						t.Errorf("%s, %q: relative logit error %.3g > 1e-5", r.name, p.Text, re)
					}
					// The scaling must show: the logits differ from plain
					// rope's, and the regimes from each other.
					d := relErr(got, plain.forward(p.PromptIDs))
					if d < 1e-3 {
						t.Errorf("%s, %q: logits within %.3g of unscaled rope", r.name, p.Text, d)
					}
					if i == 0 {
						regimes = append(regimes, got)
					}
					t.Logf("%s, %q: relative logit error %.3g (%.3g from unscaled rope)", r.name, p.Text, re, d)
				}
				c.Close()
			}
			if d := relErr(regimes[1], toF64(regimes[0])); d < 1e-3 {
				t.Errorf("the long and short regimes give logits within %.3g", d)
			}
		})
	}
}

// TestPhi3LongropeKeys checks how the original context and the attention
// factor are found: the top-level original_max_position_embeddings or the
// scaling's, the scaling's attention_factor when given (as transformers),
// the old type name "su", a scale of 1 (attention factor 1) and no
// original context at all (max_position_embeddings, as transformers).
func TestPhi3LongropeKeys(t *testing.T) {
	short, long := longropeFactors(8)
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		orig uint64
		attn float64
	}{
		{"top level", nil, 256, math.Sqrt(1 + math.Log(8)/math.Log(256))},
		{"su", func(c map[string]any) { c["rope_scaling"].(map[string]any)["type"] = "su" }, 256, math.Sqrt(1 + math.Log(8)/math.Log(256))},
		{"in rope_scaling", func(c map[string]any) {
			delete(c, "original_max_position_embeddings")
			c["rope_scaling"].(map[string]any)["original_max_position_embeddings"] = 512
		}, 512, math.Sqrt(1 + math.Log(4)/math.Log(512))},
		{"attention_factor", func(c map[string]any) { c["rope_scaling"].(map[string]any)["attention_factor"] = 1.5 }, 256, 1.5},
		{"scale 1", func(c map[string]any) { c["original_max_position_embeddings"] = 2048 }, 2048, 1},
		{"no original context", func(c map[string]any) { delete(c, "original_max_position_embeddings") }, 2048, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := phi3Fixture(t, func(c map[string]any) {
				phi3Longrope(16)(c)
				if tc.edit != nil {
					tc.edit(c)
				}
			})
			out := filepath.Join(t.TempDir(), "phi3.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := f.Uint("phi3.rope.scaling.original_context_length"); !ok || v != tc.orig {
				t.Errorf("original_context_length = %v (%v), want %v", v, ok, tc.orig)
			}
			if v, ok := f.Float("phi3.rope.scaling.attn_factor"); !ok || float32(v) != float32(tc.attn) {
				t.Errorf("attn_factor = %v (%v), want %v", v, ok, float32(tc.attn))
			}
			// F32 whatever the output type.
			for name, want := range map[string][]float64{"rope_factors_long.weight": long, "rope_factors_short.weight": short} {
				if got := tensorF32s(t, out, name); len(got) != len(want) || got[len(got)-1] != float32(want[len(want)-1]) {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		})
	}

	// Refusals: factor counts that are not half the rotated dimensions,
	// missing or non-positive factors, and longrope for an arch without
	// the factor tensors.
	for _, tc := range []struct {
		name    string
		fixture func(*testing.T, func(map[string]any)) string
		edit    func(map[string]any)
		want    error
		mention string
	}{
		{"too few", phi3Fixture, func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"type": "longrope", "long_factor": []float64{1}, "short_factor": []float64{1}}
		}, convert.ErrMismatch, "long_factor has 1 values"},
		{"partial rotary count", phi3Fixture, func(c map[string]any) {
			phi3Longrope(16)(c) // 8 factors where 0.5 rotates 8 dimensions: 4
			c["partial_rotary_factor"] = 0.5
		}, convert.ErrMismatch, "need 4"},
		{"no short_factor", phi3Fixture, func(c map[string]any) {
			phi3Longrope(16)(c)
			delete(c["rope_scaling"].(map[string]any), "short_factor")
		}, convert.ErrMismatch, "short_factor"},
		{"zero factor", phi3Fixture, func(c map[string]any) {
			phi3Longrope(16)(c)
			c["rope_scaling"].(map[string]any)["long_factor"].([]float64)[3] = 0
		}, convert.ErrMismatch, "long_factor[3]"},
		{"llama", func(t *testing.T, edit func(map[string]any)) string { return copyFixture(t, "tiny-llama-st", edit) },
			phi3Longrope(16), convert.ErrUnsupported, "rope_factors_long"},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			dir := tc.fixture(t, tc.edit)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("got %v, want %v mentioning %s", err, tc.want, tc.mention)
			}
			t.Log(err)
		})
	}
}
