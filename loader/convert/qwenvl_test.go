package convert_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// vlFixture rewrites the text checkpoint in src as a Qwen VL one: its
// config (as text_config when nested, else at the top level, with the
// multimodal rope), its tensors under prefix, and a small vision tower.
func vlFixture(t *testing.T, src, base, arch string, nested bool, rope map[string]any, prefix string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var cfg map[string]any
	copyHFFiles(t, base, dir, func(m map[string]any) {
		clear(m)
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		text := m
		if nested {
			text = map[string]any{}
			for k, v := range m {
				text[k] = v
			}
			delete(text, "architectures")
			clear(m)
			m["text_config"], m["tie_word_embeddings"] = text, text["tie_word_embeddings"]
		}
		text["rope_scaling"] = rope
		m["architectures"], m["vision_config"] = []string{arch}, map[string]any{"depth": 1, "hidden_size": 16}
		cfg = m
	})
	var ts []stTensor
	for _, s := range f32Tensors(t, src, nil) {
		if strings.HasPrefix(s.name, "model.") {
			s.name = prefix + strings.TrimPrefix(s.name, "model.")
		}
		ts = append(ts, s)
	}
	ts = append(ts, f32Tensor("visual.blocks.0.attn.qkv.weight", []int64{48, 16}, make([]float32, 48*16)))
	return finishFixture(t, base, dir, cfg, ts, nil)
}

// sameGGUF fails unless a and b hold the same tensors, byte for byte.
func sameGGUF(t *testing.T, a, b string) {
	t.Helper()
	read := func(p string) (*gguf.File, []byte) {
		f, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return f, raw
	}
	fa, ra := read(a)
	fb, rb := read(b)
	if fa.Architecture() != fb.Architecture() || len(fa.Tensors) != len(fb.Tensors) {
		t.Fatalf("%s with %d tensors, want %s with %d", fa.Architecture(), len(fa.Tensors), fb.Architecture(), len(fb.Tensors))
	}
	for _, ti := range fb.Tensors {
		got, ok := fa.Tensor(ti.Name)
		if !ok || got.Type != ti.Type || !bytes.Equal(ra[fa.DataOffset+int64(got.Offset):][:got.Size], rb[fb.DataOffset+int64(ti.Offset):][:ti.Size]) {
			t.Errorf("%s differs (%v)", ti.Name, ok)
		}
	}
}

// TestQwenVL converts the text models of Qwen2-VL/Qwen2.5-VL (config at the
// top level, both tensor layouts) and Qwen3-VL (text_config) to the same
// tensors as the Qwen2 and Qwen3 checkpoints they were made from: the
// multimodal rope is the plain one for text, and the vision tower is
// skipped. A multimodal rope elsewhere is refused.
func TestQwenVL(t *testing.T) {
	ctx := context.Background()
	conv := func(dir string) string {
		out := filepath.Join(t.TempDir(), "m.gguf")
		if err := convert.Convert(ctx, dir, out, convert.Options{Type: "f16", Name: "x"}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	qwen2 := shareddata.Path(t, "models", "hf", "tiny-qwen2-st")
	want2 := conv(qwen2)
	mrope := map[string]any{"type": "mrope", "mrope_section": []int{2, 3, 3}}
	for _, prefix := range []string{"model.", "model.language_model."} {
		for _, arch := range []string{"Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"} {
			sameGGUF(t, conv(vlFixture(t, qwen2, "tiny-qwen2-st", arch, false, mrope, prefix)), want2)
		}
	}
	qwen3 := qwen3Fixture(t, 1)
	imrope := map[string]any{"rope_type": "default", "mrope_section": []int{2, 3, 3}, "mrope_interleaved": true}
	sameGGUF(t, conv(vlFixture(t, qwen3, "tiny-qwen2-st", "Qwen3VLForConditionalGeneration", true, imrope, "model.language_model.")), conv(qwen3))

	dir := copyFixture(t, "tiny-qwen2-st", func(c map[string]any) { c["rope_scaling"] = mrope })
	err := convert.Convert(ctx, dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
	if !errors.Is(err, convert.ErrUnsupported) || !strings.Contains(err.Error(), "mrope") {
		t.Errorf("mrope on Qwen2: %v", err)
	}
}

// TestQwen3VLMoE converts the text model of Qwen3-VL-MoE, whose experts
// are fused per layer (gate_up_proj [experts, hidden, 2·ffn], gate then
// up; down_proj [experts, ffn, hidden]), to the same tensors as the
// Qwen3-MoE checkpoint with separate experts it was made from.
func TestQwen3VLMoE(t *testing.T) {
	ctx := context.Background()
	// Qwen3-MoE's case with experts of 48 over a hidden size of 64, so
	// that gate_up_proj [E, 64, 96] cannot be read transposed.
	c := moeCases[0]
	c.ffn, c.config = 48, maps.Clone(c.config)
	c.config["moe_intermediate_size"] = 48
	src := c.fixture(t, nil)
	const E, H, I = 4, 64, 48
	st := map[string][]float32{}
	var ts, perExpert []stTensor
	for _, s := range f32Tensors(t, src, nil) {
		var buf bytes.Buffer
		if err := s.data(&buf); err != nil {
			t.Fatal(err)
		}
		v := make([]float32, buf.Len()/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf.Bytes()[4*i:]))
		}
		st[s.name] = v
		renamed := f32Tensor(strings.Replace(s.name, "model.", "model.language_model.", 1), s.shape, v)
		perExpert = append(perExpert, renamed)
		if !strings.Contains(s.name, ".mlp.experts.") {
			ts = append(ts, renamed)
		}
	}
	for n := range 2 {
		p := layerPrefix(n)
		gateUp, down := make([]float32, E*H*2*I), make([]float32, E*I*H)
		for e := range E {
			g, u, d := st[p+c.expert(e, "gate")], st[p+c.expert(e, "up")], st[p+c.expert(e, "down")] // [I,H], [I,H], [H,I]
			for h := range H {
				for i := range I {
					gateUp[(e*H+h)*2*I+i] = g[i*H+h]
					gateUp[(e*H+h)*2*I+I+i] = u[i*H+h]
					down[(e*I+i)*H+h] = d[h*I+i]
				}
			}
		}
		q := strings.Replace(p, "model.", "model.language_model.", 1)
		ts = append(ts, f32Tensor(q+"mlp.experts.gate_up_proj", []int64{E, H, 2 * I}, gateUp), f32Tensor(q+"mlp.experts.down_proj", []int64{E, I, H}, down))
	}
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var text map[string]any
	if err := json.Unmarshal(raw, &text); err != nil {
		t.Fatal(err)
	}
	delete(text, "architectures")
	text["rope_scaling"] = map[string]any{"rope_type": "default", "mrope_section": []int{2, 3, 3}, "mrope_interleaved": true}
	cfg := map[string]any{"architectures": []string{"Qwen3VLMoeForConditionalGeneration"}, "text_config": text,
		"tie_word_embeddings": text["tie_word_embeddings"], "vision_config": map[string]any{"depth": 1}}
	vl := func(ts []stTensor) string {
		dir := t.TempDir()
		copyHFFiles(t, c.base, dir, func(m map[string]any) {
			clear(m)
			for k, v := range cfg {
				m[k] = v
			}
		})
		return finishFixture(t, c.base, dir, cfg, append(ts, f32Tensor("model.visual.patch_embed.proj.weight", []int64{16, 3}, make([]float32, 48))), nil)
	}
	conv := func(d string) (string, error) {
		out := filepath.Join(t.TempDir(), "m.gguf")
		return out, convert.Convert(ctx, d, out, convert.Options{Type: "f32", Name: "x"})
	}
	want, err := conv(src)
	if err != nil {
		t.Fatal(err)
	}
	fusedOnly := slices.Clone(ts[len(ts)-4:]) // the fused tensors of both layers, before vl sorts ts
	// Fused, and one tensor per expert (as some releases store them).
	for name, tensors := range map[string][]stTensor{"fused": ts, "per expert": perExpert} {
		got, err := conv(vl(slices.Clone(tensors)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameGGUF(t, got, want)
	}
	both := append(slices.Clone(perExpert), fusedOnly...)
	if _, err := conv(vl(both)); !errors.Is(err, convert.ErrMismatch) {
		t.Errorf("both layouts: %v, want ErrMismatch", err)
	}
}
