package llm_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
)

// TestEmbedPoolingKey: a model whose GGUF names its pooling in
// {arch}.pooling_type, on an arch whose llama.cpp graph does not read the
// key (llama: a decoder converted from a sentence-transformers model such
// as a Mistral-based embedding model), is pooled as the key says: last token, or mean; each
// compared with the per-token embeddings of the same text, pooled here.
func TestEmbedPoolingKey(t *testing.T) {
	src := shareddata.Path(t, "models", "stories260K.gguf")
	ctx := context.Background()
	const text = "Once upon a time, there was a little girl"
	m, err := engine.LoadModel(ctx, src, engine.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ids, err := m.Tokenize(text, true, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.NewContext(engine.ContextOptions{ContextLength: 128, Embeddings: true, Pooling: engine.PoolingNone, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := engine.NewBatch(len(ids), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, id := range ids {
		if err := b.Add(id, engine.Pos(i), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Decode(ctx, b); err != nil {
		t.Fatal(err)
	}
	var last, mean []float64
	for i := range ids {
		e, err := c.Embeddings(i)
		if err != nil {
			t.Fatal(err)
		}
		if mean == nil {
			mean = make([]float64, len(e))
		}
		last = make([]float64, len(e))
		for j, v := range e {
			mean[j] += float64(v) / float64(len(ids))
			last[j] = float64(v)
		}
	}
	for _, tc := range []struct {
		name    string
		pooling uint32
		want    []float64
	}{{"last", 3, last}, {"mean", 1, mean}} {
		t.Run(tc.name, func(t *testing.T) {
			path := testmodel.Rewrite(t, src, func(w *gguf.Writer) { w.Set("llama.pooling_type", gguf.Uint32(tc.pooling)) }, nil)
			p, err := llm.New(ctx, path, llm.WithThreads(1))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			vecs, err := p.Embed(ctx, text)
			if err != nil {
				t.Fatal(err)
			}
			var norm float64
			for _, v := range tc.want {
				norm += v * v
			}
			norm = math.Sqrt(norm)
			var maxd float64
			for j, v := range vecs[0] {
				maxd = max(maxd, math.Abs(float64(v)-tc.want[j]/norm))
			}
			if maxd > 1e-5 {
				t.Errorf("embedding differs from the %s token embedding by %.3g", tc.name, maxd)
			}
		})
	}
}

// TestEmbedDimensions: EmbedDimensions cuts each embedding to its first
// values and normalises them again; sizes outside 1 to the width are
// refused with ErrDimensions.
func TestEmbedDimensions(t *testing.T) {
	ctx := context.Background()
	p, err := llm.New(ctx, shareddata.Path(t, "models", "stories260K.gguf"), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	texts := []string{"Once upon a time", "a little dog"}
	full, err := p.Embed(ctx, texts...)
	if err != nil {
		t.Fatal(err)
	}
	cut, err := p.EmbedDimensions(ctx, 16, texts...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		var n float64
		for _, x := range full[i][:16] {
			n += float64(x) * float64(x)
		}
		if len(cut[i]) != 16 {
			t.Fatalf("%d values, want 16", len(cut[i]))
		}
		for j, x := range cut[i] {
			if d := math.Abs(float64(x) - float64(full[i][j])/math.Sqrt(n)); d > 1e-6 {
				t.Fatalf("text %d value %d: %g, want %g", i, j, x, float64(full[i][j])/math.Sqrt(n))
			}
		}
	}
	for _, d := range []int{0, 65} {
		if _, err := p.EmbedDimensions(ctx, d, texts...); !errors.Is(err, llm.ErrDimensions) {
			t.Errorf("dimensions %d: %v, want ErrDimensions", d, err)
		}
	}
}
