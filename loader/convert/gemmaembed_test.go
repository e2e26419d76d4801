package convert_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
)

// The tiny EmbeddingGemma: the tiny Gemma 3's blocks (7 layers, layer 5
// global) saved as sentence-transformers saves Gemma3TextModel (no
// "model." prefix, no head), attending both ways, the sliding layers
// within a window of 8 (4 positions each side, shorter than the longer
// reference prompts), mean pooling, Dense 64→96 and 96→64.
const (
	geWindow = 8
	geDense  = 96
)

// gemmaEmbedFixture writes the tiny EmbeddingGemma; edit changes its
// config.json, modules edits modules.json's entries (nil: the released
// layout, Transformer, Pooling, Dense, Dense, Normalize).
func gemmaEmbedFixture(t *testing.T, edit func(map[string]any), modules func([]string) []string) string {
	t.Helper()
	dir := t.TempDir()
	copyHFFiles(t, "tiny-llama-st", dir, func(c map[string]any) {
		clear(c)
		for k, v := range g3TextConfig() {
			c[k] = v
		}
		c["architectures"], c["model_type"] = []string{"Gemma3TextModel"}, "gemma3_text"
		c["use_bidirectional_attention"], c["sliding_window"] = true, geWindow
		c["rope_theta"], c["rope_local_base_freq"], c["rms_norm_eps"] = g3Theta, g3Local, 1e-6
		c["hidden_activation"], c["final_logit_softcapping"], c["attn_logit_softcapping"] = "gelu_pytorch_tanh", nil, nil
		c["bos_token_id"], c["eos_token_id"], c["pad_token_id"] = 1, 2, 0
		if edit != nil {
			edit(c)
		}
	})
	gemmaTokenizer(t, dir)
	ts := gemma3Tensors()
	for i := range ts {
		ts[i].name = strings.TrimPrefix(ts[i].name, "model.")
	}
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	mods := []string{
		`{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"}`,
		`{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}`,
		`{"idx":2,"name":"2","path":"2_Dense","type":"sentence_transformers.models.Dense"}`,
		`{"idx":3,"name":"3","path":"3_Dense","type":"sentence_transformers.models.Dense"}`,
		`{"idx":4,"name":"4","path":"4_Normalize","type":"sentence_transformers.models.Normalize"}`,
	}
	if modules != nil {
		mods = modules(mods)
	}
	write := func(name, data string) {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("modules.json", "["+strings.Join(mods, ",")+"]")
	write("1_Pooling/config.json", `{"word_embedding_dimension": 64, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false, "pooling_mode_lasttoken": false, "include_prompt": true}`)
	w := randWeights{rand.New(rand.NewPCG(7, 7))}
	for _, d := range []struct {
		path    string
		in, out int64
	}{{"2_Dense", g3Hidden, geDense}, {"3_Dense", geDense, g3Hidden}} {
		write(d.path+"/config.json", `{"in_features": `+itoa(d.in)+`, "out_features": `+itoa(d.out)+`, "bias": false, "activation_function": "torch.nn.modules.linear.Identity"}`)
		if err := writeSafetensors(filepath.Join(dir, d.path, "model.safetensors"), []stTensor{w.mat("linear.weight", d.out, d.in)}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// geRef is the float64 EmbeddingGemma: the tiny Gemma 3's reference
// attending both ways, its sliding layers within half the window each
// side, and the sentence-transformers head.
type geRef struct {
	*refModel
	dense2, dense3 []float64
	noDense        bool
}

func loadGemmaEmbedRef(t *testing.T, dir string, half int) *geRef {
	t.Helper()
	root := t.TempDir()
	// The reference reads the Gemma3ForCausalLM names.
	r := openST(t, dir)
	var ts []stTensor
	for _, ti := range r.st.Tensors() {
		v, err := r.st.Float32s(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, f32Tensor("model."+ti.Name, ti.Shape, v))
	}
	if err := writeSafetensors(filepath.Join(root, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	m := loadGemma3Ref(t, root, g3Ref{global: defaultInvFreq(g3Theta, g3HeadDim), local: defaultInvFreq(g3Local, g3HeadDim)})
	m.bidir = true
	for i := range m.layers {
		if g3Sliding(i) {
			m.layers[i].symWindow = half
		}
	}
	return &geRef{refModel: m, dense2: openST(t, filepath.Join(dir, "2_Dense")).get("linear.weight"),
		dense3: openST(t, filepath.Join(dir, "3_Dense")).get("linear.weight")}
}

// embed is sentence-transformers' output before its normalisation: the
// mean of the final hidden states, through Dense 2 and Dense 3.
func (g *geRef) embed(ids []int) []float64 {
	states := g.states(ids)
	mean := make([]float64, g3Hidden)
	for _, s := range states {
		for i, v := range s {
			mean[i] += v / float64(len(states))
		}
	}
	if g.noDense {
		return mean
	}
	return matvec(g.dense3, matvec(g.dense2, mean, geDense), g3Hidden)
}

// TestGemmaEmbedding converts the tiny EmbeddingGemma and checks the keys
// llama.cpp's gemma-embedding reads and its pooled, projected embedding
// against the reference (2e-3: ggml's GELU goes through an F16 table),
// which would see the attention made causal, the window's width off by
// one or gone, and the Dense projections left out.
func TestGemmaEmbedding(t *testing.T) {
	dir := gemmaEmbedFixture(t, nil, nil)
	if err := convert.Check(dir); err != nil {
		t.Fatal(err)
	}
	out, f := convertDir(t, dir, "f32")
	if f.Architecture() != "gemma-embedding" {
		t.Fatalf("architecture %q", f.Architecture())
	}
	for k, v := range map[string]uint64{"attention.sliding_window": geWindow, "pooling_type": 1, "dense_2_feat_in": g3Hidden, "dense_2_feat_out": geDense,
		"dense_3_feat_in": geDense, "dense_3_feat_out": g3Hidden, "attention.key_length": g3HeadDim} {
		if got, ok := f.Uint("gemma-embedding." + k); !ok || got != v {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, v)
		}
	}
	for name, shape := range map[string][]uint64{"dense_2.weight": {g3Hidden, geDense}, "dense_3.weight": {geDense, g3Hidden}, "blk.6.post_ffw_norm.weight": {g3Hidden}} {
		if ti, ok := f.Tensor(name); !ok || !slices.Equal(ti.Shape, shape) {
			t.Errorf("%s: %+v (%v), want shape %v", name, ti, ok, shape)
		}
	}
	if _, ok := f.Tensor("output.weight"); ok {
		t.Error("output.weight written")
	}

	m := loadModel(t, out, engine.ModelOptions{})
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 256, Embeddings: true, Pooling: engine.PoolingMean,
		TypeK: "f32", TypeV: "f32", FlashAttention: engine.FlashAttentionOff, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prompts := readReference(t, "tiny-llama-st").Prompts
	got := make([][]float32, len(prompts))
	for i, p := range prompts {
		got[i] = pooledEmbedding(t, c, p.PromptIDs)
		want := loadGemmaEmbedRef(t, dir, geWindow/2).embed(p.PromptIDs)
		if re := relErr(got[i], want); !(re < 2e-3) {
			t.Errorf("%q: relative error %.3g", p.Text, re)
		} else {
			t.Logf("%q (%d tokens): relative error %.3g", p.Text, len(p.PromptIDs), re)
		}
	}
	// The longest prompt: longer than the window (4 positions each side).
	long := 0
	for i, p := range prompts {
		if len(p.PromptIDs) > len(prompts[long].PromptIDs) {
			long = i
		}
	}
	if len(prompts[long].PromptIDs) <= geWindow {
		t.Fatal("no prompt longer than the window")
	}
	for name, edit := range map[string]func(*geRef){
		"causal attention":   func(g *geRef) { g.bidir = false },
		"no window":          func(g *geRef) { g.setHalf(0) },
		"window one wider":   func(g *geRef) { g.setHalf(geWindow/2 + 1) },
		"no Dense":           func(g *geRef) { g.noDense = true },
		"global rope on all": func(g *geRef) { g.setLocal(defaultInvFreq(g3Theta, g3HeadDim)) },
	} {
		g := loadGemmaEmbedRef(t, dir, geWindow/2)
		edit(g)
		if d := relErr(got[long], g.embed(prompts[long].PromptIDs)); !(d > 2e-2) {
			t.Errorf("%s: the reference differs by only %.3g", name, d)
		} else {
			t.Logf("%s: %.3g from llama.cpp", name, d)
		}
	}
}

func (g *geRef) setHalf(n int) {
	for i := range g.layers {
		if g3Sliding(i) {
			g.layers[i].symWindow = n
		}
	}
}

func (g *geRef) setLocal(f []float64) {
	for i := range g.layers {
		if g3Sliding(i) {
			g.layers[i].invFreq = f
		}
	}
}

// TestGemmaEmbeddingRefused checks the EmbeddingGemma layouts llama.cpp's
// gemma-embedding cannot run are refused with the error kind.
func TestGemmaEmbeddingRefused(t *testing.T) {
	setModules := func(f func([]string) []string) func([]string) []string { return f }
	for name, tc := range map[string]struct {
		edit    func(map[string]any)
		modules func([]string) []string
		want    error
	}{
		"causal":           {func(c map[string]any) { c["use_bidirectional_attention"] = false }, nil, convert.ErrUnsupported},
		"no bidirectional": {func(c map[string]any) { delete(c, "use_bidirectional_attention") }, nil, convert.ErrUnsupported},
		"query scalar":     {func(c map[string]any) { c["query_pre_attn_scalar"] = 64 }, nil, convert.ErrUnsupported},
		"all global":       {func(c map[string]any) { c["sliding_window_pattern"] = 1 }, nil, convert.ErrUnsupported},
		"one Dense":        {nil, setModules(func(m []string) []string { return slices.Delete(slices.Clone(m), 3, 4) }), convert.ErrUnsupported},
		"Dense before pooling": {nil, setModules(func(m []string) []string {
			m = slices.Clone(m)
			m[1], m[2] = m[2], m[1]
			return m
		}), convert.ErrUnsupported},
		"an unknown module": {nil, setModules(func(m []string) []string {
			return append(slices.Clone(m), `{"idx":5,"name":"5","path":"5_X","type":"sentence_transformers.models.LayerNorm"}`)
		}), convert.ErrUnsupported},
	} {
		t.Run(name, func(t *testing.T) {
			dir := gemmaEmbedFixture(t, tc.edit, tc.modules)
			err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{})
			if !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			} else {
				t.Log(err)
			}
		})
	}
	// A Dense module with a bias, or an activation.
	for name, cfg := range map[string]string{
		"bias":       `{"in_features": 64, "out_features": 96, "bias": true, "activation_function": "torch.nn.modules.linear.Identity"}`,
		"activation": `{"in_features": 64, "out_features": 96, "bias": false, "activation_function": "torch.nn.modules.activation.Tanh"}`,
		"widths":     `{"in_features": 64, "out_features": 80, "bias": false, "activation_function": "torch.nn.modules.linear.Identity"}`,
	} {
		t.Run("Dense "+name, func(t *testing.T) {
			dir := gemmaEmbedFixture(t, nil, nil)
			if err := os.WriteFile(filepath.Join(dir, "2_Dense", "config.json"), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			err := convert.Check(dir)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
		})
	}
}
