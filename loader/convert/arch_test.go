package convert_test

import (
	"context"
	"encoding/binary"
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

// promptLogits loads path and returns the logits after each reference
// prompt of fixture and its first 8 greedy tokens.
func promptLogits(t *testing.T, path, fixture string) ([][]float32, [][]engine.Token) {
	t.Helper()
	m := loadModel(t, path, engine.ModelOptions{})
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var logits [][]float32
	var toks [][]engine.Token
	for _, p := range readReference(t, fixture).Prompts {
		got, l := greedy(t, c, toTokens(p.PromptIDs), 8)
		logits = append(logits, l)
		toks = append(toks, got)
	}
	return logits, toks
}

// TestMistral converts tiny-llama-st relabelled as MistralForCausalLM
// (with a sliding_window, which llama.cpp's llama arch ignores) and checks
// that it is the Llama conversion: the same tensors and logits.
func TestMistral(t *testing.T) {
	dir := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["architectures"] = []string{"MistralForCausalLM"}
		c["model_type"] = "mistral"
		c["sliding_window"] = 4096
	})
	out := filepath.Join(t.TempDir(), "mistral.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	llama := convertFixture(t, "tiny-llama-st", "f32")
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := gguf.Open(llama)
	if err != nil {
		t.Fatal(err)
	}
	if f.Architecture() != "llama" {
		t.Errorf("architecture %q, want llama", f.Architecture())
	}
	if len(f.Tensors) != len(ref.Tensors) {
		t.Errorf("%d tensors, want %d", len(f.Tensors), len(ref.Tensors))
	}
	got, gotToks := promptLogits(t, out, "tiny-llama-st")
	want, wantToks := promptLogits(t, llama, "tiny-llama-st")
	for i := range got {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("prompt %d: logits differ from the Llama conversion", i)
		}
		if !slices.Equal(gotToks[i], wantToks[i]) {
			t.Errorf("prompt %d: greedy %v, Llama %v", i, gotToks[i], wantToks[i])
		}
		for _, v := range got[i] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("prompt %d: non-finite logit", i)
			}
		}
	}
}

// qwen3Fixture writes a tiny Qwen3 checkpoint made from tiny-qwen2-st: the
// q/k/v biases dropped and per-head q_norm/k_norm weights (head_dim 16)
// added, with values normScale × (1 + a small pattern).
func qwen3Fixture(t *testing.T, normScale float32) string {
	t.Helper()
	dir := t.TempDir()
	copyHFFiles(t, "tiny-qwen2-st", dir, func(c map[string]any) {
		c["architectures"] = []string{"Qwen3ForCausalLM"}
		c["model_type"] = "qwen3"
		c["head_dim"] = 16
		c["attention_bias"] = false
	})
	st, err := safetensors.OpenDir(shareddata.Path(t, "models", "hf", "tiny-qwen2-st"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ts []stTensor
	for _, ti := range st.Tensors() {
		if strings.HasSuffix(ti.Name, "_proj.bias") {
			continue
		}
		raw, err := st.ReadTensor(ti.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, stTensor{name: ti.Name, dtype: string(ti.DType), shape: ti.Shape,
			data: func(w io.Writer) error { _, err := w.Write(raw); return err }})
		if strings.HasSuffix(ti.Name, ".input_layernorm.weight") {
			prefix := strings.TrimSuffix(ti.Name, "input_layernorm.weight")
			for k, n := range []string{"self_attn.k_norm.weight", "self_attn.q_norm.weight"} {
				var f32 []byte
				for i := range 16 {
					v := normScale * (1 + 0.05*float32((i*7+k*3)%11-5))
					f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(v))
				}
				ts = append(ts, stTensor{name: prefix + n, dtype: "F32", shape: []int64{16},
					data: func(w io.Writer) error { _, err := w.Write(f32); return err }})
			}
		}
	}
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestQwen3 converts a tiny Qwen3 checkpoint and checks the tensors and
// keys llama.cpp's qwen3 arch reads, that llama.cpp loads and runs it with
// finite logits, and that the q_norm/k_norm weights reach the model
// (scaling them changes the logits).
func TestQwen3(t *testing.T) {
	var logits [][][]float32
	for _, scale := range []float32{1, 2} {
		dir := qwen3Fixture(t, scale)
		out := filepath.Join(t.TempDir(), "qwen3.gguf")
		if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f16"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Architecture() != "qwen3" {
			t.Errorf("architecture %q, want qwen3", f.Architecture())
		}
		// 2 layers × 11 + token_embd + output_norm (tied: no output).
		if len(f.Tensors) != 24 {
			t.Errorf("%d tensors, want 24", len(f.Tensors))
		}
		for _, ti := range f.Tensors {
			if strings.HasSuffix(ti.Name, ".bias") {
				t.Errorf("unexpected %s", ti.Name)
			}
		}
		for _, n := range []string{"blk.0.attn_q_norm.weight", "blk.1.attn_k_norm.weight"} {
			ti, ok := f.Tensor(n)
			if !ok || ti.Type != gguf.TypeF32 || !slices.Equal(ti.Shape, []uint64{16}) {
				t.Errorf("%s: %v %+v", n, ok, ti)
			}
		}
		for key, want := range map[string]uint64{
			"qwen3.attention.head_count":    4,
			"qwen3.attention.head_count_kv": 2,
			"qwen3.rope.dimension_count":    16,
			"qwen3.block_count":             2,
		} {
			if v, ok := f.Uint(key); !ok || v != want {
				t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
			}
		}
		l, toks := promptLogits(t, out, "tiny-qwen2-st")
		for i := range l {
			for _, v := range l[i] {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("prompt %d: non-finite logit", i)
				}
			}
			t.Logf("norm scale %g, prompt %d: greedy %v", scale, i, toks[i])
		}
		logits = append(logits, l)
	}
	if slices.Equal(logits[0][0], logits[1][0]) {
		t.Error("scaling q_norm/k_norm left the logits unchanged")
	}

	// Qwen3 has no attention biases in llama.cpp: a checkpoint with them
	// is refused rather than converted to a file llama.cpp would reject.
	dir := copyFixture(t, "tiny-qwen2-st", func(c map[string]any) {
		c["architectures"] = []string{"Qwen3ForCausalLM"}
	})
	err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "bias") {
		t.Errorf("Qwen3 with biases: got %v, want ErrUnsupported naming a bias tensor", err)
	}
}
