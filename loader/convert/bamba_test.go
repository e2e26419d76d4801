package convert_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/loader/convert"
)

// bambaBase is the Granite 4.0 layout a Bamba fixture is rewritten from:
// Mamba-2 mixers in one group, attention in layer 1, a dense MLP of 96,
// conv1d biases.
var bambaBase = g4Case{layers: []string{"mamba", "attention", "mamba", "mamba"}, groups: 1, rope: true, convBias: true}

// bambaFixture writes a Bamba checkpoint from the Granite 4.0 fixture in
// g4dir: Bamba's config (attn_layer_indices [1], half of each head of 16
// rotated, no multipliers), its tensor names (pre_ff_layernorm,
// feed_forward's gate, up and down split from the shared MLP,
// final_layernorm) and its own output matrix.
func bambaFixture(t *testing.T, g4dir string, edit func(map[string]any, []stTensor) []stTensor) string {
	t.Helper()
	cfg := bambaBase.config()
	for _, k := range []string{"layer_types", "embedding_multiplier", "residual_multiplier", "attention_multiplier", "logits_scaling",
		"shared_intermediate_size", "num_local_experts", "num_experts_per_tok", "position_embedding_type", "normalization_function"} {
		delete(cfg, k)
	}
	cfg["architectures"], cfg["model_type"] = []string{"BambaForCausalLM"}, "bamba"
	cfg["attn_layer_indices"], cfg["attn_rotary_emb"], cfg["intermediate_size"] = []int{1}, 8, 2*g4Shared
	cfg["tie_word_embeddings"], cfg["mamba_d_head"] = false, "auto"
	dir := t.TempDir()
	copyHFFiles(t, "tiny-llama-st", dir, func(m map[string]any) {
		clear(m)
		for k, v := range cfg {
			m[k] = v
		}
	})
	var ts []stTensor
	for _, s := range f32Tensors(t, g4dir, func(name string, shape []int64, v []float32) []stTensor {
		if p, ok := strings.CutSuffix(name, "shared_mlp.input_linear.weight"); ok {
			half := shape[0] / 2
			return []stTensor{f32Tensor(p+"feed_forward.gate_proj.weight", []int64{half, shape[1]}, v[:half*shape[1]]),
				f32Tensor(p+"feed_forward.up_proj.weight", []int64{half, shape[1]}, v[half*shape[1]:])}
		}
		return nil
	}) {
		switch {
		case strings.HasSuffix(s.name, "shared_mlp.input_linear.weight"):
			continue
		case s.name == "model.norm.weight":
			s.name = "model.final_layernorm.weight"
		}
		s.name = strings.Replace(s.name, "post_attention_layernorm", "pre_ff_layernorm", 1)
		s.name = strings.Replace(s.name, "shared_mlp.output_linear", "feed_forward.down_proj", 1)
		ts = append(ts, s)
	}
	w := randWeights{rand.New(rand.NewPCG(77, 1))}
	ts = append(ts, w.mat("lm_head.weight", g4Vocab, g4Hidden))
	return finishFixture(t, "tiny-llama-st", dir, cfg, ts, edit)
}

// bambaRef is the float64 reference of a Bamba fixture: the Granite 4.0
// reference of g4dir without multipliers, with half of each head rotated
// and the Bamba fixture's output matrix.
func bambaRef(t *testing.T, g4dir, dir string) *g4Ref {
	ref := bambaBase.reference(t, g4dir)
	ref.embScale, ref.residualScale, ref.attnScale, ref.logitDiv = 0, 0, 0, 0
	ref.invFreq = defaultInvFreq(10000, 8) // rotate_half over the first 8 of 16
	ref.out = openST(t, dir).get("lm_head.weight")
	return ref
}

// TestBamba converts Bamba checkpoints, with config.json as released
// (attn_rotary_emb) and as transformers saves it (partial_rotary_factor;
// BambaConfig's defaults for what it leaves out), to llama.cpp's
// granitehybrid and checks the keys and the logits against the float64
// reference, which would see the partial rope made whole (or left out), D
// or the gate left out.
func TestBamba(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		ctx  uint64
	}{
		"as released": {nil, 4096},
		"as transformers saves it": {func(cfg map[string]any, ts []stTensor) []stTensor {
			delete(cfg, "attn_rotary_emb")
			delete(cfg, "rms_norm_eps")
			delete(cfg, "max_position_embeddings")
			cfg["partial_rotary_factor"] = 0.5
			cfg["time_step_limit"] = []any{0.0, nil} // Python's [0.0, Infinity] as pyjson reads it
			return ts
		}, 262144},
	} {
		t.Run(name, func(t *testing.T) { testBamba(t, tc.edit, tc.ctx) })
	}
}

func testBamba(t *testing.T, edit func(map[string]any, []stTensor) []stTensor, ctxLen uint64) {
	prompts := readReference(t, "tiny-llama-st").Prompts
	g4dir := bambaBase.fixture(t, nil)
	dir := bambaFixture(t, g4dir, edit)
	out, f := convertG4(t, dir)
	if f.Architecture() != "granitehybrid" {
		t.Fatalf("architecture %q", f.Architecture())
	}
	for k, v := range map[string]uint64{"ssm.inner_size": 2 * g4Hidden, "ssm.group_count": 1, "ssm.time_step_rank": g4MHeads,
		"rope.dimension_count": 8, "feed_forward_length": 2 * g4Shared, "context_length": ctxLen} {
		if got, ok := f.Uint("granitehybrid." + k); !ok || got != v {
			t.Errorf("%s = %v (%v), want %v", k, got, ok, v)
		}
	}
	if rot, ok := f.Bool("granitehybrid.rope.scaling.finetuned"); !ok || !rot {
		t.Error("rope.scaling.finetuned not true: llama.cpp's granitehybrid would not rotate")
	}
	if v, ok := f.Lookup("granitehybrid.attention.head_count_kv"); !ok {
		t.Error("no head_count_kv")
	} else if kv, ok := v.AsUints(); !ok || !slices.Equal(kv, []uint64{0, g4KV, 0, 0}) {
		t.Errorf("head_count_kv %v", v)
	}
	for _, k := range []string{"embedding_scale", "residual_scale", "logit_scale", "attention.scale"} {
		if _, ok := f.Lookup("granitehybrid." + k); ok {
			t.Errorf("%s written: Bamba has no multipliers", k)
		}
	}
	fresh := func() *g4Ref { return bambaRef(t, g4dir, dir) }
	ctx := refContext(t, out)
	checkRef(t, ctx, prompts, fresh().forward, 1e-5)
	checkSensitive(t, ctx, prompts, fresh, map[string]func(*g4Ref){
		"rope over whole heads": func(m *g4Ref) { m.invFreq = defaultInvFreq(10000, 16) },
		"no rope": func(m *g4Ref) {
			for l := range m.layers {
				m.layers[l].noRope = true
			}
		},
		"D":    func(m *g4Ref) { m.mixers[0].noD, m.mixers[1].noD, m.mixers[2].noD = true, true, true },
		"gate": func(m *g4Ref) { m.mixers[0].noGate, m.mixers[1].noGate, m.mixers[2].noGate = true, true, true },
	})
	// Q8_0: the permuted rows quantized too.
	q8 := filepath.Join(t.TempDir(), "q8.gguf")
	if err := convert.Convert(context.Background(), dir, q8, convert.Options{Type: "q8_0", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	checkRef(t, refContext(t, q8), prompts, fresh().forward, 0.15)
}

// TestBambaRefused checks the Bamba configs llama.cpp cannot run, or that
// contradict their tensors, are refused with the error kind.
func TestBambaRefused(t *testing.T) {
	g4dir := bambaBase.fixture(t, nil)
	for name, tc := range map[string]struct {
		edit func(map[string]any, []stTensor) []stTensor
		want error
	}{
		"attention everywhere":     {setConfig("attn_layer_indices", []int{0, 1, 2, 3}), convert.ErrUnsupported},
		"index out of range":       {setConfig("attn_layer_indices", []int{1, 4}), convert.ErrMismatch},
		"index twice":              {setConfig("attn_layer_indices", []int{1, 1}), convert.ErrMismatch},
		"indices not a list":       {setConfig("attn_layer_indices", "1"), convert.ErrMismatch},
		"attention in layer 2":     {setConfig("attn_layer_indices", []int{2}), convert.ErrUnsupported},
		"attn_rotary_emb disagree": {setConfig("attn_rotary_emb", 16), convert.ErrMismatch},
		"mamba_expand 4":           {setConfig("mamba_expand", 4), convert.ErrUnsupported},
		"projection bias":          {setConfig("mamba_proj_bias", true), convert.ErrUnsupported},
		"attention bias":           {setConfig("attention_bias", true), convert.ErrUnsupported},
		"groups not dividing":      {setConfig("mamba_n_groups", 3), convert.ErrMismatch},
		"two groups":               {setConfig("mamba_n_groups", 2), convert.ErrUnsupported},
		"rope scaling":             {setConfig("rope_scaling", llama3Scaling), convert.ErrUnsupported},
		"time step clamped":        {setConfig("time_step_limit", []float64{0.001, 0.1}), convert.ErrUnsupported},
		"kernel of 5":              {setConfig("mamba_d_conv", 5), convert.ErrUnsupported},
		"no A_log":                 {dropTensor("model.layers.2.mamba.A_log"), convert.ErrMismatch},
		"no up_proj":               {dropTensor("model.layers.0.feed_forward.up_proj.weight"), convert.ErrMismatch},
	} {
		t.Run(name, func(t *testing.T) {
			err := convert.Convert(context.Background(), bambaFixture(t, g4dir, tc.edit), filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestConvertLoRABamba converts a PEFT adapter of a Bamba's attention (and
// head): lora_B's q/k rows must be permuted as the base's, half of each
// head, with the KV heads of the attention layers (head_count_kv is one
// per layer, 0 in the Mamba-2 layers).
func TestConvertLoRABamba(t *testing.T) {
	base := bambaFixture(t, bambaBase.fixture(t, nil), nil)
	var modules []string
	for _, m := range []string{"q_proj", "k_proj", "v_proj", "o_proj"} {
		modules = append(modules, "model.layers.1.self_attn."+m)
	}
	adapter, merged := peftFixtureDir(t, base, "test/bamba", modules, nil, linkBaseFiles(t, base))
	checkLoRA(t, base, adapter, merged, readReference(t, "tiny-llama-st").Prompts)
}

// linkBaseFiles returns a peftFixtureDir setup that links every file of
// the checkpoint base but its weights into the merged model's directory
// (its config and tokenizer).
func linkBaseFiles(t *testing.T, base string) func(dst string) {
	return func(dst string) {
		entries, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "model.safetensors" {
				if err := os.Symlink(filepath.Join(base, e.Name()), filepath.Join(dst, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
