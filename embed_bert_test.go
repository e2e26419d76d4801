package llm_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/reference"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
)

// bertReference computes what sentence-transformers computes for a BERT
// model with mean pooling: the encoder's last hidden states averaged over
// the tokens (CLS and SEP included), normalised to unit length.
func bertReference(w testmodel.BERTWeights, ids []int) []float64 {
	return reference.Normalize(reference.Pool(bertModel(w).Forward(ids), false))
}

// f64 returns the float64 values of tensor name of w.
func f64(w testmodel.BERTWeights, name string) []float64 {
	out := make([]float64, len(w[name]))
	for i, v := range w[name] {
		out[i] = float64(v)
	}
	return out
}

// bertModel is the encoder of testmodel.BERT's weights w.
func bertModel(w testmodel.BERTWeights) *reference.BERT {
	f := func(name string) []float64 { return f64(w, name) }
	m := &reference.BERT{Hidden: testmodel.BERTEmbd, Heads: testmodel.BERTHeads, Eps: testmodel.BERTEps,
		WordEmb: f("token_embd.weight"), PosEmb: f("position_embd.weight"), TypeEmb: f("token_types.weight"),
		EmbNormW: f("token_embd_norm.weight"), EmbNormB: f("token_embd_norm.bias")}
	for l := range testmodel.BERTLayers {
		p := fmt.Sprintf("blk.%d.", l)
		m.Layers = append(m.Layers, reference.BERTLayer{
			WQ: f(p + "attn_q.weight"), BQ: f(p + "attn_q.bias"), WK: f(p + "attn_k.weight"), BK: f(p + "attn_k.bias"),
			WV: f(p + "attn_v.weight"), BV: f(p + "attn_v.bias"), WO: f(p + "attn_output.weight"), BO: f(p + "attn_output.bias"),
			AttnNormW: f(p + "attn_output_norm.weight"), AttnNormB: f(p + "attn_output_norm.bias"),
			WUp: f(p + "ffn_up.weight"), BUp: f(p + "ffn_up.bias"), WDown: f(p + "ffn_down.weight"), BDown: f(p + "ffn_down.bias"),
			OutNormW: f(p + "layer_output_norm.weight"), OutNormB: f(p + "layer_output_norm.bias"),
		})
	}
	return m
}

// TestEmbedBERT: Embed on a BERT-shaped encoder gives sentence-transformers'
// mean-pooled, normalised embedding, computed here independently.
func TestEmbedBERT(t *testing.T) {
	path, w := testmodel.BERT(t, false)
	p, err := llm.New(context.Background(), path, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	texts := []string{"The cat sat on the mat.", "Hello, world!", "A dog ran in the park", "cats"}
	vecs, err := p.Embed(context.Background(), texts...)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		ids, err := p.Model().Tokenize(text, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if ids[0] != 101 || ids[len(ids)-1] != 102 {
			t.Fatalf("%q: tokens %v do not open with [CLS] and end with [SEP]", text, ids)
		}
		ints := make([]int, len(ids))
		for j, id := range ids {
			ints[j] = int(id)
		}
		want := bertReference(w, ints)
		if len(vecs[i]) != len(want) {
			t.Fatalf("%q: %d dimensions, want %d", text, len(vecs[i]), len(want))
		}
		var maxDiff, dot float64
		for j := range want {
			maxDiff = max(maxDiff, math.Abs(float64(vecs[i][j])-want[j]))
			dot += float64(vecs[i][j]) * want[j]
		}
		if maxDiff > 5e-3 || dot < 0.9999 {
			t.Errorf("%q (%d tokens): max difference %.2g, cosine %.6f from the reference", text, len(ids), maxDiff, dot)
		}
		t.Logf("%q: %d tokens, max difference %.2g, cosine %.7f", text, len(ids), maxDiff, dot)
	}
	// Learned positions end at the training context: a longer text is an
	// error, never a read past the position table.
	if n := p.EmbedContextLength(); n != testmodel.BERTCtx {
		t.Errorf("EmbedContextLength %d, want the position table's %d", n, testmodel.BERTCtx)
	}
	long := ""
	for range testmodel.BERTCtx {
		long += "cat "
	}
	if _, err := p.Embed(context.Background(), long); !errors.Is(err, llm.ErrPromptTooLong) {
		t.Errorf("a text longer than the position table: %v", err)
	}
}

// BenchmarkEmbed measures texts embedded per second, 64 short texts a call,
// with stories260K (mean pooling over a causal model) and the tiny BERT;
// LLM_BENCH_MODEL names another GGUF for the first.
func BenchmarkEmbed(b *testing.B) {
	stories := os.Getenv("LLM_BENCH_MODEL")
	if stories == "" {
		stories = shareddata.Path(b, "models", "stories260K.gguf")
	}
	bert, _ := testmodel.BERT(b, false)
	texts := make([]string, 64)
	for i := range texts {
		texts[i] = fmt.Sprintf("the cat sat on the mat %d times, hello world", i)
	}
	for _, m := range []struct{ name, path string }{{"stories260K", stories}, {"tiny-bert", bert}} {
		b.Run(m.name, func(b *testing.B) {
			p, err := llm.New(context.Background(), m.path, llm.WithThreads(2))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			start := time.Now()
			for range b.N {
				if _, err := p.Embed(context.Background(), texts...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(texts))/time.Since(start).Seconds(), "texts/s")
		})
	}
}
