package convert_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
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
			out := filepath.Join(t.TempDir(), "emb.gguf")
			if err := convert.Convert(context.Background(), dir, out, convert.Options{Type: "f32"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
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
				if err := c.ClearMemory(false); err != nil {
					t.Fatal(err)
				}
				b, err := engine.NewBatch(len(p.PromptIDs), 1)
				if err != nil {
					t.Fatal(err)
				}
				for i, id := range p.PromptIDs {
					if err := b.Add(engine.Token(id), engine.Pos(i), true); err != nil {
						t.Fatal(err)
					}
				}
				err = c.Decode(context.Background(), b)
				b.Close()
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.SequenceEmbeddings(0)
				if err != nil {
					t.Fatal(err)
				}
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
