package engine_test

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
)

// maxRelDiff returns max|a-b| / max|b|.
func maxRelDiff(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = max(d, math.Abs(float64(a[i]-b[i])))
		m = max(m, math.Abs(float64(b[i])))
	}
	return d / m
}

// TestAdapterMatchesMerged: stories260K with a LoRA adapter applied gives
// the logits and greedy tokens of the model with the adapter merged into
// its weights (W + scale·alpha/rank·B·A), at scale 1 and 0.5; cleared, it
// gives the base model's again.
func TestAdapterMatchesMerged(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	a, err := m.LoadAdapter(testmodel.StoriesLoRA(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Tensors(), slices.Sorted(slices.Values(testmodel.LoRATargets))) || a.Alpha() != testmodel.LoRAAlpha {
		t.Errorf("adapter tensors %v, alpha %v", a.Tensors(), a.Alpha())
	}
	opts := engine.ContextOptions{ContextLength: 128, TypeK: "f32", TypeV: "f32", FlashAttention: engine.FlashAttentionOff}
	c := newContext(t, m, opts)
	prompt, err := m.Tokenize("Once upon a time", true, false)
	if err != nil {
		t.Fatal(err)
	}
	baseToks, baseLogits := greedy(t, c, prompt, 12, false)

	for _, scale := range []float32{1, 0.5} {
		merged, err := engine.LoadModel(context.Background(), testmodel.StoriesMerged(t, float64(scale)), engine.ModelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer merged.Close()
		wantToks, wantLogits := greedy(t, newContext(t, merged, opts), prompt, 12, false)
		if err := c.SetAdapter(a, scale); err != nil {
			t.Fatal(err)
		}
		gotToks, gotLogits := greedy(t, c, prompt, 12, false)
		if d := maxRelDiff(gotLogits, wantLogits); d > 1e-5 || !slices.Equal(gotToks, wantToks) {
			t.Errorf("scale %g: logits differ from the merged model's by %.3g; tokens %v, want %v", scale, d, gotToks, wantToks)
		} else {
			t.Logf("scale %g: logits within %.3g of the merged model's", scale, d)
		}
		if slices.Equal(gotToks, baseToks) {
			t.Errorf("scale %g: the adapter left the greedy tokens unchanged", scale)
		}
	}
	if err := c.ClearAdapters(); err != nil {
		t.Fatal(err)
	}
	if toks, logits := greedy(t, c, prompt, 12, false); !slices.Equal(toks, baseToks) || maxRelDiff(logits, baseLogits) > 1e-6 {
		t.Error("ClearAdapters did not give the base model back")
	}
	if err := c.SetAdapter(a, 0); err != nil {
		t.Fatal(err)
	}
	if toks, _ := greedy(t, c, prompt, 12, false); !slices.Equal(toks, baseToks) {
		t.Error("scale 0 changed the output")
	}
}

// TestAdapterErrors: adapters that do not fit the model, or are not LoRA
// adapters, are errors from Go's checks, never a llama.cpp abort (a
// general.type that is not a string aborts llama_adapter_lora_init);
// SetAdapter refuses another model's adapter and a non-finite scale.
func TestAdapterErrors(t *testing.T) {
	m := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	f32 := func(n int) func(w io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(make([]byte, 4*n)); return err }
	}
	tensor := func(name string, shape ...uint64) func(w *gguf.Writer) {
		return func(w *gguf.Writer) {
			n := 1
			for _, d := range shape {
				n *= int(d)
			}
			if err := w.AddTensor(name, gguf.TypeF32, shape, f32(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	set := func(key string, v gguf.Value) func(w *gguf.Writer) { return func(w *gguf.Writer) { w.Set(key, v) } }
	notGGUF := filepath.Join(t.TempDir(), "adapter.gguf")
	if err := os.WriteFile(notGGUF, []byte("not a gguf file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		want string
	}{
		{"general.type not a string", testmodel.StoriesLoRA(t, set("general.type", gguf.Uint32(1))), "general.type has type"},
		{"not an adapter", testmodel.StoriesLoRA(t, set("general.type", gguf.String("model"))), `not "adapter"`},
		{"another architecture", testmodel.StoriesLoRA(t, set("general.architecture", gguf.String("qwen2"))), `"qwen2", the model is "llama"`},
		{"a control vector", testmodel.StoriesLoRA(t, set("adapter.type", gguf.String("control_vector"))), `"control_vector"`},
		{"alpha as f64", testmodel.StoriesLoRA(t, set("adapter.lora.alpha", gguf.Float64(8))), "adapter.lora.alpha has type"},
		{"alora tokens not u32", testmodel.StoriesLoRA(t, set("adapter.alora.invocation_tokens", gguf.String("x"))), "invocation_tokens"},
		{"half a pair", testmodel.StoriesLoRA(t, tensor("blk.1.attn_k.weight.lora_a", 64, 4)), "blk.1.attn_k.weight has a lora_a or a lora_b but not both"},
		{"an unknown suffix", testmodel.StoriesLoRA(t, tensor("blk.1.attn_k.weight", 64, 32)), "neither a .lora_a nor a .lora_b"},
		{"a tensor the model lacks", testmodel.StoriesLoRA(t, func(w *gguf.Writer) {
			tensor("blk.9.attn_q.weight.lora_a", 64, 4)(w)
			tensor("blk.9.attn_q.weight.lora_b", 4, 64)(w)
		}), "changes blk.9.attn_q.weight, which the model does not have"},
		{"the wrong input width", testmodel.StoriesLoRA(t, func(w *gguf.Writer) {
			tensor("blk.1.attn_k.weight.lora_a", 128, 4)(w)
			tensor("blk.1.attn_k.weight.lora_b", 4, 32)(w)
		}), "the model's is [64 32]"},
		{"ranks that disagree", testmodel.StoriesLoRA(t, func(w *gguf.Writer) {
			tensor("blk.1.attn_k.weight.lora_a", 64, 4)(w)
			tensor("blk.1.attn_k.weight.lora_b", 8, 32)(w)
		}), "disagree on the rank"},
		{"a model, not an adapter", filepath.Join(filepath.Dir(m.Path()), "stories260K.gguf"), "needs general.type"},
		{"not GGUF", notGGUF, "not a GGUF file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.LoadAdapter(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
			if tc.name != "not GGUF" && !errors.Is(err, engine.ErrAdapter) {
				t.Errorf("%v does not wrap ErrAdapter", err)
			}
		})
	}

	other := loadModel(t, engine.ModelOptions{}, "models", "stories260K.gguf")
	a, err := other.LoadAdapter(testmodel.StoriesLoRA(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	c := newContext(t, m, engine.ContextOptions{ContextLength: 64})
	if err := c.SetAdapter(a, 1); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("another model's adapter: %v", err)
	}
	own, err := m.LoadAdapter(testmodel.StoriesLoRA(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetAdapter(own, float32(math.NaN())); !errors.Is(err, engine.ErrInvalidArgument) {
		t.Errorf("a NaN scale: %v", err)
	}
	if err := c.SetAdapter(own, 1); err != nil {
		t.Fatal(err)
	}
	// Closing the model frees its adapters after its contexts: the
	// context is closed, and using it is an error, not a crash.
	m.Close()
	if err := c.SetAdapter(own, 1); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
