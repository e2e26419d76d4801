package convert_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// writeSentenceModules makes dir a sentence-transformers checkpoint:
// modules.json listing the model, a Pooling module of mode (and extra
// modules), and 1_Pooling/config.json.
func writeSentenceModules(t *testing.T, dir, mode string, extra ...string) {
	t.Helper()
	mods := `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},` +
		`{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},` +
		`{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}`
	for _, e := range extra {
		mods += `,{"idx":3,"name":"3","path":"3_X","type":"sentence_transformers.models.` + e + `"}`
		if err := os.MkdirAll(filepath.Join(dir, "3_X"), 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := `{"in_features": 64, "out_features": 64, "bias": false, "activation_function": "torch.nn.modules.linear.Identity"}`
		if err := os.WriteFile(filepath.Join(dir, "3_X", "config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.json"), []byte(mods+"]"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "1_Pooling"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := `{"word_embedding_dimension": 64, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": ` + boolJSON(mode == "mean") +
		`, "pooling_mode_max_tokens": false, "pooling_mode_lasttoken": ` + boolJSON(mode == "last") + `, "include_prompt": true}`
	if err := os.WriteFile(filepath.Join(dir, "1_Pooling", "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

func boolJSON(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestDecoderEmbeddingPooling converts a Qwen3 checkpoint that is a
// sentence-transformers embedding model (Qwen3-Embedding's layout:
// last-token pooling, or mean) and checks that the GGUF names the pooling
// and that llama.cpp's pooled embedding is the reference's: the final
// norm's output at the last token, or averaged over the tokens.
func TestDecoderEmbeddingPooling(t *testing.T) {
	prompts := readReference(t, "tiny-qwen2-st").Prompts
	for _, tc := range []struct {
		mode string
		want uint64
	}{{"last", 3}, {"mean", 1}} {
		t.Run(tc.mode, func(t *testing.T) {
			dir := qwen3Fixture(t, 1)
			writeSentenceModules(t, dir, tc.mode)
			if err := convert.Check(dir); err != nil {
				t.Fatal(err)
			}
			out, f := convertDir(t, dir, "f32")
			if got, ok := f.Uint("qwen3.pooling_type"); !ok || got != tc.want {
				t.Fatalf("pooling_type %d (%v), want %d", got, ok, tc.want)
			}
			ref := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: defaultInvFreq(1e6, 16)}, 2)
			ref.out = make([]float64, 64*64) // the identity: forward returns the normed hidden state
			for i := range 64 {
				ref.out[i*65] = 1
			}
			m := loadModel(t, out, engine.ModelOptions{})
			c, err := m.NewContext(engine.ContextOptions{ContextLength: 256, Embeddings: true, Pooling: engine.PoolingDefault,
				TypeK: "f32", TypeV: "f32", FlashAttention: engine.FlashAttentionOff, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, p := range prompts {
				got := pooledEmbedding(t, c, p.PromptIDs)
				want := ref.forward(p.PromptIDs)
				if tc.mode == "mean" {
					want = make([]float64, 64)
					for n := 1; n <= len(p.PromptIDs); n++ {
						for i, v := range ref.forward(p.PromptIDs[:n]) {
							want[i] += v / float64(len(p.PromptIDs))
						}
					}
				}
				if re := relErr(got, want); !(re < 1e-5) {
					t.Errorf("%q: relative error %.3g", p.Text, re)
				} else {
					t.Logf("%q: relative error %.3g", p.Text, re)
				}
				if tc.mode == "last" && len(p.PromptIDs) > 1 {
					// The mean differs: the comparison tells them apart.
					var mean []float64
					for n := 1; n <= len(p.PromptIDs); n++ {
						v := ref.forward(p.PromptIDs[:n])
						if mean == nil {
							mean = make([]float64, len(v))
						}
						for i := range v {
							mean[i] += v[i] / float64(len(p.PromptIDs))
						}
					}
					if d := relErr(got, mean); !(d > 1e-2) || math.IsNaN(d) {
						t.Errorf("%q: the mean is only %.3g from the last token's", p.Text, d)
					}
				}
			}
		})
	}
}

// TestSentenceModulesRefused: a sentence-transformers module llama.cpp
// does not run (a Dense projection) is refused, for a decoder and for
// BERT, by Check (before a pull fetches the weights) and by Convert.
func TestSentenceModulesRefused(t *testing.T) {
	dir := qwen3Fixture(t, 1)
	writeSentenceModules(t, dir, "last", "Dense")
	if err := convert.Check(dir); !errors.Is(err, convert.ErrUnsupported) {
		t.Errorf("Check: %v, want ErrUnsupported", err)
	}
	if err := convert.Convert(context.Background(), dir, filepath.Join(t.TempDir(), "x.gguf"), convert.Options{}); !errors.Is(err, convert.ErrUnsupported) {
		t.Errorf("Convert: %v, want ErrUnsupported", err)
	} else {
		t.Log(err)
	}
	bert := bertFixture(t, "", "mean")
	writeSentenceModules(t, bert, "mean", "Dense")
	if err := convert.Check(bert); !errors.Is(err, convert.ErrUnsupported) {
		t.Errorf("BERT with a Dense module: %v, want ErrUnsupported", err)
	}
	// A reranker's modules act on its scores: not refused.
	rr := qwen3Fixture(t, 1)
	if err := os.WriteFile(filepath.Join(rr, "README.md"), []byte("# Qwen3-Reranker-0.6B\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeSentenceModules(t, rr, "last", "LogitScore")
	if err := convert.Check(rr); err != nil {
		t.Errorf("a reranker with a LogitScore module: %v", err)
	}
	// Without modules.json, a decoder is no embedding model: no pooling.
	plain := qwen3Fixture(t, 1)
	out := filepath.Join(t.TempDir(), "x.gguf")
	if err := convert.Convert(context.Background(), plain, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil {
		t.Fatal(err)
	} else if v, ok := f.Uint("qwen3.pooling_type"); ok {
		t.Errorf("pooling_type %d written for a plain decoder", v)
	}
}

// TestQwen3Reranker converts a Qwen3 checkpoint whose model card is
// Qwen3-Reranker's as a reranker, and checks that llama.cpp's rank
// pooling gives the reference's P(yes) against "no" after the last token.
func TestQwen3Reranker(t *testing.T) {
	dir := qwen3Fixture(t, 1)
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("---\nlicense: apache-2.0\n---\n# Qwen3-Reranker-0.6B\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, f := convertDir(t, dir, "f32")
	if v, _ := f.Uint("qwen3.pooling_type"); v != 4 {
		t.Errorf("pooling_type %d, want 4 (rank)", v)
	}
	if tmpl, _ := f.String("tokenizer.chat_template.rerank"); !strings.Contains(tmpl, "{query}") || !strings.Contains(tmpl, "{document}") {
		t.Errorf("rerank template %q", tmpl)
	}
	if ti, ok := f.Tensor("cls.output.weight"); !ok || !slices.Equal(ti.Shape, []uint64{64, 2}) {
		t.Errorf("cls.output.weight: %+v (%v)", ti, ok)
	}
	if _, ok := f.Tensor("output.weight"); ok {
		t.Error("output.weight written")
	}
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	yes, no := slices.Index(toks, "yes"), slices.Index(toks, "no")
	ref := loadLlamaRef(t, dir, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: defaultInvFreq(1e6, 16)}, 2)
	m := loadModel(t, out, engine.ModelOptions{})
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 256, Embeddings: true, Pooling: engine.PoolingRank,
		TypeK: "f32", TypeV: "f32", FlashAttention: engine.FlashAttentionOff, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range readReference(t, "tiny-qwen2-st").Prompts {
		got := pooledEmbedding(t, c, p.PromptIDs)
		l := ref.forward(p.PromptIDs)
		pYes := 1 / (1 + math.Exp(l[no]-l[yes]))
		if len(got) != 2 || math.Abs(float64(got[0])-pYes) > 1e-5 || math.Abs(float64(got[1])-(1-pYes)) > 1e-5 {
			t.Errorf("%q: scores %v, want P(yes) %.6f", p.Text, got, pYes)
		} else {
			t.Logf("%q: P(yes) %.6f (reference %.6f)", p.Text, got[0], pYes)
		}
	}
	// Without the model card, a plain Qwen3.
	plain := qwen3Fixture(t, 1)
	out = filepath.Join(t.TempDir(), "q3.gguf")
	if err := convert.Convert(context.Background(), plain, out, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	if f, err := gguf.Open(out); err != nil {
		t.Fatal(err)
	} else if _, ok := f.Tensor("cls.output.weight"); ok {
		t.Error("cls.output.weight written for a plain Qwen3")
	}
}

// TestQwen3EmbeddingLayout converts a checkpoint laid out as
// Qwen3-Embedding-4B and 8B are: saved as the base model (no "model."
// prefix), untied without a head, last-token pooling, and a tokenizer whose
// post-processor appends a token other than its EOS (<|endoftext|> after
// <|im_end|>; here </s> after <unk>). The converter writes no head, makes
// the appended token the EOS (added) and the named one the end of turn,
// as gguf-py does; llama.cpp then pools the appended token's state, as
// sentence-transformers does.
func TestQwen3EmbeddingLayout(t *testing.T) {
	dir := qwen3Fixture(t, 1)
	writeSentenceModules(t, dir, "last")
	var ts []stTensor
	for _, s := range f32Tensors(t, dir, nil) {
		s.name = strings.TrimPrefix(s.name, "model.")
		ts = append(ts, s)
	}
	slices.SortStableFunc(ts, func(a, b stTensor) int { return strings.Compare(a.name, b.name) })
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	editJSON(t, filepath.Join(dir, "config.json"), func(c map[string]any) { c["tie_word_embeddings"] = false })
	editJSON(t, filepath.Join(dir, "tokenizer.json"), func(c map[string]any) {
		c["post_processor"] = map[string]any{"type": "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"pair": []any{}, "special_tokens": map[string]any{}}
	})
	editJSON(t, filepath.Join(dir, "tokenizer_config.json"), func(c map[string]any) {
		delete(c, "add_eos_token")
		c["eos_token"] = "<unk>"
	})
	editJSON(t, filepath.Join(dir, "special_tokens_map.json"), func(c map[string]any) { c["eos_token"] = "<unk>" })
	out, f := convertDir(t, dir, "f32")
	if _, ok := f.Tensor("output.weight"); ok {
		t.Error("output.weight written for a checkpoint without a head")
	}
	for k, want := range map[string]uint64{"tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.eot_token_id": 0, "qwen3.pooling_type": 3} {
		if got, ok := f.Uint(k); !ok || got != want {
			t.Errorf("%s = %d (%v), want %d", k, got, ok, want)
		}
	}
	if add, ok := f.Bool("tokenizer.ggml.add_eos_token"); !ok || !add {
		t.Errorf("add_eos_token %v (%v), want true", add, ok)
	}
	m := loadModel(t, out, engine.ModelOptions{})
	toks, err := m.Tokenize("The quick brown fox", true, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) < 3 || toks[0] != 1 || toks[len(toks)-1] != 2 {
		t.Fatalf("tokens %v: want <s> ... </s>", toks)
	}
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 256, Embeddings: true, TypeK: "f32", TypeV: "f32",
		FlashAttention: engine.FlashAttentionOff, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ids := make([]int, len(toks))
	for i, id := range toks {
		ids[i] = int(id)
	}
	got := pooledEmbedding(t, c, ids)
	root := t.TempDir() // the reference reads the prefixed names
	var prefixed []stTensor
	for _, s := range ts {
		s.name = "model." + s.name
		prefixed = append(prefixed, s)
	}
	if err := writeSafetensors(filepath.Join(root, "model.safetensors"), prefixed); err != nil {
		t.Fatal(err)
	}
	ref := loadLlamaRef(t, root, refModel{hidden: 64, heads: 4, kvHeads: 2, headDim: 16, eps: 1e-6, invFreq: defaultInvFreq(1e6, 16)}, 2)
	ref.out = make([]float64, 64*64)
	for i := range 64 {
		ref.out[i*65] = 1
	}
	if re := relErr(got, ref.forward(ids)); !(re < 1e-5) {
		t.Errorf("relative error %.3g", re)
	} else {
		t.Logf("tokens %v: relative error %.3g", ids, re)
	}
}

// checkEncoder pools each text's embedding with the encoder m (its
// tokenizer adding the special tokens) and compares it with want's at a
// relative error of 2e-3 (ggml's GELU and SiLU go through
// approximations); it returns the last text's embedding and ids.
func checkEncoder(t *testing.T, m *engine.Model, texts []string, want func(ids []int) []float64) ([]float32, []int) {
	t.Helper()
	return checkEncoderWith(t, m, nil, texts, want)
}

// checkEncoderWith is checkEncoder with the LoRA adapter a (nil: none)
// applied.
func checkEncoderWith(t *testing.T, m *engine.Model, a *engine.Adapter, texts []string, want func(ids []int) []float64) ([]float32, []int) {
	t.Helper()
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, BatchSize: 64, MicroBatchSize: 64, Threads: 1, Embeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a != nil {
		if err := c.SetAdapter(a, 1); err != nil {
			t.Fatal(err)
		}
	}
	var got []float32
	var ids []int
	for _, text := range texts {
		toks, err := m.Tokenize(text, true, false)
		if err != nil {
			t.Fatal(err)
		}
		ids = make([]int, len(toks))
		for i, id := range toks {
			ids[i] = int(id)
		}
		got = pooledEmbedding(t, c, ids)
		if re := relErr(got, want(ids)); !(re < 2e-3) {
			t.Errorf("%q: relative error %.3g", text, re)
		} else {
			t.Logf("%q (%d tokens): relative error %.3g", text, len(ids), re)
		}
	}
	return got, ids
}

// pooledEmbedding decodes ids as one sequence in the embeddings context c,
// its memory cleared first, and returns the sequence's pooled output.
func pooledEmbedding(t *testing.T, c *engine.Context, ids []int) []float32 {
	t.Helper()
	if err := c.ClearMemory(false); err != nil {
		t.Fatal(err)
	}
	b, err := engine.NewBatch(len(ids), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, id := range ids {
		if err := b.Add(engine.Token(id), engine.Pos(i), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Decode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	v, err := c.SequenceEmbeddings(0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
