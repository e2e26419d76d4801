package convert_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// TestGraniteReference converts tiny-llama-st as a Granite model (Granite
// 3's multipliers: embeddings ×12, residual branches ×0.22, attention
// scores ×1/128, logits ÷8) to F32 and checks llama.cpp's logits against
// the float64 reference with them, and the keys llama.cpp requires; a
// config without them gets GraniteConfig's defaults of 1.
func TestGraniteReference(t *testing.T) {
	dir := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["architectures"] = []string{"GraniteForCausalLM"}
		c["model_type"] = "granite"
		c["embedding_multiplier"] = 12.0
		c["residual_multiplier"] = 0.22
		c["attention_multiplier"] = 0.0078125
		c["logits_scaling"] = 8.0
	})
	out, f := convertDir(t, dir, "f32")
	for key, want := range map[string]float64{"granite.embedding_scale": 12, "granite.residual_scale": 0.22,
		"granite.attention.scale": 0.0078125, "granite.logit_scale": 8} {
		if v, ok := f.Float(key); !ok || float32(v) != float32(want) {
			t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
		}
	}
	ref := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-5, invFreq: defaultInvFreq(10000, 16),
		embScale: 12, residualScale: 0.22, attnScale: 0.0078125, logitDiv: 8}, 2)
	checkRef(t, refContext(t, out), readReference(t, "tiny-llama-st").Prompts, ref.forward, 1e-5)

	zero := copyFixture(t, "tiny-llama-st", func(c map[string]any) {
		c["architectures"] = []string{"GraniteForCausalLM"}
		c["logits_scaling"] = 0.0
	})
	if err := convert.Convert(context.Background(), zero, out, convert.Options{}); !errors.Is(err, convert.ErrMismatch) || !strings.Contains(err.Error(), "logits_scaling") {
		t.Errorf("logits_scaling 0: %v", err)
	}

	plain := copyFixture(t, "tiny-llama-st", func(c map[string]any) { c["architectures"] = []string{"GraniteForCausalLM"} })
	if err := convert.Convert(context.Background(), plain, out, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil {
		t.Fatal(err)
	} else if v, ok := f.Float("granite.logit_scale"); !ok || v != 1 {
		t.Errorf("logit_scale without logits_scaling: %v (%v)", v, ok)
	}
}

// graniteMoEFixture writes the Mixtral case (experts of 48 over a hidden
// size of 64) as a GraniteMoE checkpoint with Granite's multipliers:
// each layer's experts fused into block_sparse_moe.input_linear [4, 96,
// 64] (gate rows, then up) and output_linear [4, 64, 48], the router
// renamed. It returns the Mixtral checkpoint too, the reference's source.
func graniteMoEFixture(t *testing.T, edit func(map[string]any, []stTensor) []stTensor) (granite, mixtral string) {
	t.Helper()
	c := moeCases[2]
	mixtral = c.fixture(t, nil)
	const E, H, I = 4, 64, 48
	vals := map[string][]float32{}
	var ts []stTensor
	for _, s := range f32Tensors(t, mixtral, nil) {
		var buf bytes.Buffer
		if err := s.data(&buf); err != nil {
			t.Fatal(err)
		}
		v := make([]float32, buf.Len()/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf.Bytes()[4*i:]))
		}
		vals[s.name] = v
		if strings.Contains(s.name, ".block_sparse_moe.") {
			continue
		}
		ts = append(ts, s)
	}
	for n := range 2 {
		p := layerPrefix(n)
		in, out := make([]float32, 0, E*2*I*H), make([]float32, 0, E*H*I)
		for e := range E {
			in = append(append(in, vals[p+c.expert(e, "gate")]...), vals[p+c.expert(e, "up")]...) // [I,H] then [I,H]
			out = append(out, vals[p+c.expert(e, "down")]...)                                     // [H,I]
		}
		ts = append(ts, f32Tensor(p+"block_sparse_moe.input_linear.weight", []int64{E, 2 * I, H}, in),
			f32Tensor(p+"block_sparse_moe.output_linear.weight", []int64{E, H, I}, out),
			f32Tensor(p+"block_sparse_moe.router.layer.weight", []int64{E, H}, vals[p+c.router]))
	}
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, c.base, dir, func(m map[string]any) {
		m["architectures"], m["model_type"] = []string{"GraniteMoeForCausalLM"}, "granitemoe"
		m["num_local_experts"], m["num_experts_per_tok"], m["intermediate_size"] = E, 2, I
		m["embedding_multiplier"], m["residual_multiplier"], m["attention_multiplier"], m["logits_scaling"] = 12.0, 0.22, 0.0078125, 8.0
		cfg = m
	})
	return finishFixture(t, c.base, dir, cfg, ts, edit), mixtral
}

// TestGraniteMoE converts a GraniteMoE checkpoint to llama.cpp's
// granitemoe and checks the logits against the float64 reference (the
// Mixtral experts it was fused from, Granite's multipliers), which would
// see the residual multiplier or the gate and up halves swapped; wrong fused shapes are refused.
func TestGraniteMoE(t *testing.T) {
	dir, mixtral := graniteMoEFixture(t, nil)
	out := filepath.Join(t.TempDir(), "gm.gguf")
	if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Architecture() != "granitemoe" {
		t.Errorf("architecture %q", f.Architecture())
	}
	for key, want := range map[string]uint64{"granitemoe.expert_count": 4, "granitemoe.expert_used_count": 2, "granitemoe.feed_forward_length": 48} {
		if v, ok := f.Uint(key); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
		}
	}
	if v, ok := f.Float("granitemoe.residual_scale"); !ok || float32(v) != 0.22 {
		t.Errorf("residual_scale %v (%v)", v, ok)
	}
	fresh := func() *refModel {
		m := moeCases[2].reference(t, mixtral)
		m.embScale, m.residualScale, m.attnScale, m.logitDiv = 12, 0.22, 0.0078125, 8
		return m
	}
	ctx := refContext(t, out)
	prompts := readReference(t, "tiny-llama-st").Prompts
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*refModel){
		"residual multiplier": func(m *refModel) { m.residualScale = 0 },
		"gate and up swapped": func(m *refModel) {
			for i := range m.layers {
				for e := range m.layers[i].experts {
					x := &m.layers[i].experts[e]
					x[0], x[1] = x[1], x[0]
				}
			}
		},
	})
	for name, edit := range map[string]func(map[string]any, []stTensor) []stTensor{
		"input_linear [in, out]": func(_ map[string]any, ts []stTensor) []stTensor {
			for i := range ts {
				if ts[i].name == "model.layers.1.block_sparse_moe.input_linear.weight" {
					ts[i].shape = []int64{4, 64, 96}
				}
			}
			return ts
		},
		"no output_linear": dropTensor("model.layers.0.block_sparse_moe.output_linear.weight"),
	} {
		d, _ := graniteMoEFixture(t, edit)
		if err := convert.Convert(context.Background(), d, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{}); !errors.Is(err, convert.ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", name, err)
		}
	}
}

// TestModelMaxLengthIgnored checks that a config.json model_max_length
// that is no integer (as tokenizer configs write 1e30) does not stop the
// conversion of an arch that does not read it.
func TestModelMaxLengthIgnored(t *testing.T) {
	dir := copyFixture(t, "tiny-llama-st", func(c map[string]any) { c["model_max_length"] = 1e30 })
	if err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{}); err != nil {
		t.Fatal(err)
	}
}
