package convert_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// arceeFixture writes tiny-llama-st as an Arcee checkpoint: no gate
// projections, hidden_act relu2; edit changes it.
func arceeFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		m["architectures"], m["model_type"], m["hidden_act"] = []string{"ArceeForCausalLM"}, "arcee", "relu2"
		cfg = m
	})
	var ts []stTensor
	for _, s := range f32Tensors(t, shareddata.Path(t, "models", "hf", "tiny-llama-st"), nil) {
		if !strings.HasSuffix(s.name, "mlp.gate_proj.weight") {
			ts = append(ts, s)
		}
	}
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// TestArcee converts an Arcee checkpoint to llama.cpp's arcee (the Llama
// permutation, an ungated ReLU² MLP) and checks the logits against the
// float64 reference, which would see a SiLU or an unsquared ReLU; a gate or
// another activation is refused.
func TestArcee(t *testing.T) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	dir := arceeFixture(t, nil)
	out := filepath.Join(t.TempDir(), "arcee.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensor("blk.0.ffn_gate.weight"); f.Architecture() != "arcee" || ok {
		t.Errorf("arch %q, ffn_gate written %v", f.Architecture(), ok)
	}
	fresh := func() *refModel {
		return loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16), reluSq: true}, 2)
	}
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
		"the square": func(m *refModel) {
			m.reluSq = false
			for i := range m.layers {
				m.layers[i].wg = m.layers[i].wu // silu(up)·up: not ReLU²
			}
		},
	})
	// Without hidden_act: ArceeConfig's relu2.
	noAct := arceeFixture(t, func(cfg map[string]any, ts []stTensor) []stTensor { delete(cfg, "hidden_act"); return ts })
	if err := convert.Convert(context.Background(), noAct, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{}); err != nil {
		t.Errorf("no hidden_act: %v", err)
	}
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"silu": setConfig("hidden_act", "silu"),
		"attention bias": func(_ map[string]any, ts []stTensor) []stTensor {
			b := make([]float32, 64)
			b[0] = 1 // a zero bias would be left out
			return append(ts, f32Tensor("model.layers.0.self_attn.q_proj.bias", []int64{64}, b))
		},
		"a gate": func(_ map[string]any, ts []stTensor) []stTensor {
			return append(ts, f32Tensor("model.layers.0.mlp.gate_proj.weight", []int64{128, 64}, make([]float32, 128*64)))
		},
	} {
		err := convert.Convert(context.Background(), arceeFixture(t, edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
		if !errors.Is(err, convert.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}
