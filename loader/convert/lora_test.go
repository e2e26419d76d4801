package convert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
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

// peftTargets are the modules the test adapters adapt, per layer, with
// lm_head besides.
var peftTargets = []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}

const peftRank, peftAlpha = 4, 8

// peftFixture writes a PEFT LoRA adapter for the HF fixture base (random
// A and B for peftTargets of both layers and lm_head when the base has
// one), and the base's checkpoint with the adapter merged into its weights
// (W + alpha/r·B·A, as peft's merge_and_unload). It returns both
// directories.
func peftFixture(t *testing.T, base string, cfg map[string]any) (adapter, merged string) {
	return peftFixtureAs(t, base, cfg, func(map[string]any) {})
}

// peftFixtureAs is peftFixture with the merged checkpoint's config.json
// edited by baseEdit (the base then being copyFixture(base, baseEdit)).
func peftFixtureAs(t *testing.T, base string, cfg map[string]any, baseEdit func(map[string]any)) (adapter, merged string) {
	t.Helper()
	var modules []string
	for l := range 2 {
		for _, m := range peftTargets {
			modules = append(modules, fmt.Sprintf("model.layers.%d.%s", l, m))
		}
	}
	return peftFixtureDir(t, shareddata.Path(t, "models", "hf", base), "test/"+base, modules, cfg, func(dst string) { copyHFFiles(t, base, dst, baseEdit) })
}

// peftFixtureDir writes a PEFT LoRA adapter of the checkpoint in baseDir
// (named name) for modules (and lm_head when the base has one), and the
// checkpoint with it merged, whose other files copyFiles writes.
func peftFixtureDir(t *testing.T, baseDir, name string, modules []string, cfg map[string]any, copyFiles func(dst string)) (adapter, merged string) {
	t.Helper()
	st, err := safetensors.OpenDir(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(3, 4))
	if _, ok := st.Tensor("lm_head.weight"); ok {
		modules = append(slices.Clone(modules), "lm_head")
	}
	var lora, weights []stTensor
	delta := map[string][]float32{}
	for _, mod := range modules {
		ti, ok := st.Tensor(mod + ".weight")
		if !ok {
			t.Fatalf("%s has no %s", name, mod)
		}
		out, in := int(ti.Shape[0]), int(ti.Shape[1])
		a, b := randn(r, peftRank*in, 0.2), randn(r, out*peftRank, 0.2)
		lora = append(lora, f32Tensor("base_model.model."+mod+".lora_A.weight", []int64{peftRank, int64(in)}, a),
			f32Tensor("base_model.model."+mod+".lora_B.weight", []int64{int64(out), peftRank}, b))
		d := make([]float32, out*in)
		for o := range out {
			for i := range in {
				var s float64
				for k := range peftRank {
					s += float64(b[o*peftRank+k]) * float64(a[k*in+i])
				}
				d[o*in+i] = float32(s * peftAlpha / peftRank)
			}
		}
		delta[mod+".weight"] = d
	}
	for _, ti := range st.Tensors() {
		v, err := st.Float32s(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := delta[ti.Name]; ok {
			for i := range v {
				v[i] = float32(float64(v[i]) + float64(d[i]))
			}
		}
		weights = append(weights, f32Tensor(ti.Name, ti.Shape, v))
	}

	adapter = t.TempDir()
	if cfg == nil {
		cfg = map[string]any{}
	}
	full := map[string]any{"peft_type": "LORA", "r": peftRank, "lora_alpha": peftAlpha, "base_model_name_or_path": name,
		"target_modules": []string{"q_proj", "k_proj"}, "use_rslora": false, "use_dora": false, "rank_pattern": map[string]any{}}
	for k, v := range cfg {
		full[k] = v
	}
	raw, _ := json.Marshal(full)
	if err := os.WriteFile(filepath.Join(adapter, convert.AdapterConfigFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSafetensors(filepath.Join(adapter, convert.AdapterWeightsFile), lora); err != nil {
		t.Fatal(err)
	}
	merged = t.TempDir()
	copyFiles(merged)
	if err := writeSafetensors(filepath.Join(merged, "model.safetensors"), weights); err != nil {
		t.Fatal(err)
	}
	return adapter, merged
}

// TestConvertLoRA converts PEFT adapters of a Llama and a Granite (whose
// q/k rows the conversion permutes, and so must permute lora_B's) and a
// Qwen2 (no permutation): the base model with the converted adapter
// applied gives the logits of the merged checkpoint converted, within
// float32 rounding.
func TestConvertLoRA(t *testing.T) {
	granite := func(c map[string]any) {
		c["architectures"] = []string{"GraniteForCausalLM"}
		c["model_type"] = "granite"
	}
	for _, tc := range []struct {
		name, base string
		edit       func(map[string]any)
	}{
		{"tiny-llama-st", "tiny-llama-st", func(map[string]any) {}},
		{"granite", "tiny-llama-st", granite},
		{"tiny-qwen2-st", "tiny-qwen2-st", func(map[string]any) {}},
	} {
		base := tc.base
		t.Run(tc.name, func(t *testing.T) {
			adapterDir, mergedDir := peftFixtureAs(t, base, nil, tc.edit)
			checkLoRA(t, copyFixture(t, base, tc.edit), adapterDir, mergedDir, readReference(t, base).Prompts)
		})
	}
}

// checkLoRA converts the checkpoint in baseDir, the adapter in adapterDir
// and the merged checkpoint in mergedDir, and checks that the base with
// the adapter applied gives the merged model's logits, and that LoRAFile
// converts to F16 once and reuses the file.
func checkLoRA(t *testing.T, baseDir, adapterDir, mergedDir string, prompts []refPrompt) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	basePath, mergedPath := filepath.Join(dir, "base.gguf"), filepath.Join(dir, "merged.gguf")
	for src, out := range map[string]string{baseDir: basePath, mergedDir: mergedPath} {
		if err := convert.Convert(ctx, src, out, convert.Options{Type: "f32"}); err != nil {
			t.Fatal(err)
		}
	}
	header, err := gguf.ValidateModel(basePath)
	if err != nil {
		t.Fatal(err)
	}
	// F32 here, so that the comparison is not of F16 rounding.
	tensors, err := gguf.AllTensors(basePath, header)
	if err != nil {
		t.Fatal(err)
	}
	adapterPath := filepath.Join(dir, "adapter.gguf")
	if err := convert.ConvertLoRA(ctx, adapterDir, adapterPath, header, tensors, convert.Options{Type: "f32"}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(adapterPath)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := f.Float(gguf.KeyLoRAAlpha); a != peftAlpha || f.Architecture() != header.Architecture() {
		t.Errorf("alpha %v, architecture %q", a, f.Architecture())
	}
	// Each lora_b has the rank and its base matrix's rows; some are k's.
	keys := 0
	for _, ti := range f.Tensors {
		name, isB := strings.CutSuffix(ti.Name, ".lora_b")
		if !isB {
			continue
		}
		bt, ok := header.Tensor(name)
		if !ok || !slices.Equal(ti.Shape, []uint64{peftRank, bt.Shape[1]}) || ti.Type != gguf.TypeF32 {
			t.Errorf("%s: %+v for the base's %+v (%v)", ti.Name, ti, bt, ok)
		}
		if strings.HasSuffix(name, ".attn_k.weight") {
			keys++
		}
	}
	if keys == 0 {
		t.Error("the adapter has no attn_k lora_b")
	}

	opts := engine.ContextOptions{ContextLength: 256, TypeK: "f32", TypeV: "f32", FlashAttention: engine.FlashAttentionOff}
	m := loadModel(t, basePath, engine.ModelOptions{})
	a, err := m.LoadAdapter(adapterPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.NewContext(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetAdapter(a, 1); err != nil {
		t.Fatal(err)
	}
	want := loadModel(t, mergedPath, engine.ModelOptions{})
	wc, err := want.NewContext(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	for _, p := range prompts {
		_, got := greedy(t, c, toTokens(p.PromptIDs), 1)
		_, ref := greedy(t, wc, toTokens(p.PromptIDs), 1)
		ref64 := make([]float64, len(ref))
		for i, v := range ref {
			ref64[i] = float64(v)
		}
		if re := relErr(got, ref64); re > 1e-5 {
			t.Errorf("%q: relative logit error %.3g against the merged model", p.Text, re)
		} else {
			t.Logf("%q: relative logit error %.3g", p.Text, re)
		}
	}
	// LoRAFile converts to F16 once, then reuses the file.
	cache := t.TempDir()
	first, err := convert.LoRAFile(ctx, adapterDir, cache, basePath, header)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(first); err != nil || f.Tensors[0].Type != gguf.TypeF16 {
		t.Errorf("LoRAFile: %v", err)
	}
	if again, err := convert.LoRAFile(ctx, adapterDir, cache, basePath, header); err != nil || again != first {
		t.Errorf("the second LoRAFile: %q, %v; want the cached %q", again, err, first)
	}
}

// TestConvertLoRAErrors: adapters llama.cpp cannot apply as trained, or
// that do not fit the base, are refused with the reason.
func TestConvertLoRAErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	basePath := filepath.Join(dir, "base.gguf")
	if err := convert.Convert(ctx, shareddata.Path(t, "models", "hf", "tiny-llama-st"), basePath, convert.Options{Type: "f16"}); err != nil {
		t.Fatal(err)
	}
	header, err := gguf.ValidateModel(basePath)
	if err != nil {
		t.Fatal(err)
	}
	stories := shareddata.Path(t, "models", "stories260K.gguf")
	storiesHeader, err := gguf.ValidateModel(stories)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cfg    map[string]any
		base   string
		target error
		want   string
	}{
		{"DoRA", map[string]any{"use_dora": true}, basePath, convert.ErrUnsupported, "DoRA"},
		{"rsLoRA", map[string]any{"use_rslora": true}, basePath, convert.ErrUnsupported, "rsLoRA"},
		{"per-module ranks", map[string]any{"rank_pattern": map[string]any{"q_proj": 8}}, basePath, convert.ErrUnsupported, "rank_pattern"},
		{"another PEFT type", map[string]any{"peft_type": "IA3"}, basePath, convert.ErrUnsupported, "IA3"},
		{"r disagrees with the tensors", map[string]any{"r": 8}, basePath, convert.ErrMismatch, "r is 8"},
		{"another base model", nil, stories, convert.ErrMismatch, "does not fit the base model"},
		{"a falcon-h1 base", nil, "falcon-h1", convert.ErrUnsupported, "multipliers are folded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adapterDir, _ := peftFixture(t, "tiny-llama-st", tc.cfg)
			h := header
			switch tc.base {
			case stories:
				h = storiesHeader
			case "falcon-h1":
				// The base's header as a falcon-h1 model's (whose
				// multipliers llm convert folds into its weights).
				fh := *header
				fh.KV = slices.Clone(header.KV)
				for i := range fh.KV {
					if fh.KV[i].Key == "general.architecture" {
						fh.KV[i].Value = gguf.String("falcon-h1")
					}
				}
				h, tc.base = &fh, basePath
			}
			_, err := convert.LoRAFile(ctx, adapterDir, t.TempDir(), tc.base, h)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %v naming %q", err, tc.target, tc.want)
			}
		})
	}
	if _, err := convert.LoRAFile(ctx, t.TempDir(), t.TempDir(), basePath, header); !errors.Is(err, convert.ErrUnsupported) {
		t.Errorf("a directory without adapter_config.json: %v", err)
	}
}
