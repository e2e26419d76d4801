package convert_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
			out := filepath.Join(t.TempDir(), "phi3.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
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
			for _, p := range prompts {
				_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
				re := relErr(got, ref.forward(p.PromptIDs))
				if re > 1e-5 {
					t.Errorf("%q: relative logit error %.3g > 1e-5", p.Text, re)
				}
				t.Logf("%q: relative logit error %.3g", p.Text, re)
			}
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
		{"longrope", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"type": "longrope", "long_factor": []float64{1}, "short_factor": []float64{1}}
		}, "longrope"},
		{"llama3", func(c map[string]any) { c["rope_scaling"] = llama3Scaling }, "rope_freqs"},
	} {
		dir := phi3Fixture(t, tc.edit)
		err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: got %v, want ErrUnsupported mentioning %s", tc.name, err, tc.mention)
		}
	}
}
