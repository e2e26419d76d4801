package convert_test

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/safetensors"
)

// flashLayoutOf rewrites the XLM-RoBERTa checkpoint in dir in the layout of
// Jina's implementation (jina-reranker-v2-base-multilingual's): the
// embeddings' LayerNorm as emb_ln, query, key and value fused into
// mixer.Wqkv (rows in that order), out_proj, norm1, mlp.fc1, mlp.fc2,
// norm2; the classification head as it is.
func flashLayoutOf(t *testing.T, dir string) {
	t.Helper()
	st, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string][]float32{}
	shapes := map[string][]int64{}
	var names []string
	for _, ti := range st.Tensors() {
		v, err := st.Float32s(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		vals[ti.Name], shapes[ti.Name] = v, ti.Shape
		names = append(names, ti.Name)
	}
	st.Close()
	rename := strings.NewReplacer("embeddings.LayerNorm.", "emb_ln.", "encoder.layer.", "encoder.layers.",
		"attention.output.dense.", "mixer.out_proj.", "attention.output.LayerNorm.", "norm1.",
		"intermediate.dense.", "mlp.fc1.", "output.dense.", "mlp.fc2.", "output.LayerNorm.", "norm2.")
	var ts []stTensor
	for _, n := range names {
		if strings.Contains(n, "attention.self.") {
			if !strings.Contains(n, ".query.") {
				continue
			}
			for _, kind := range []string{"weight", "bias"} {
				if !strings.HasSuffix(n, kind) {
					continue
				}
				var fused []float32
				for _, p := range []string{"query", "key", "value"} {
					fused = append(fused, vals[strings.Replace(n, ".query.", "."+p+".", 1)]...)
				}
				shape := append([]int64{3 * shapes[n][0]}, shapes[n][1:]...)
				out := rename.Replace(strings.Replace(n, "attention.self.query.", "mixer.Wqkv.", 1))
				ts = append(ts, f32Tensor(out, shape, fused))
			}
			continue
		}
		ts = append(ts, f32Tensor(rename.Replace(n), shapes[n], vals[n]))
	}
	if err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
}

// TestXLMRobertaFlashLayout: an XLM-RoBERTa reranker in the layout of
// Jina's implementation (jina-reranker-v2-base-multilingual) converts to
// bert with a fused attn_qkv and scores as the same weights in
// transformers' layout do; so does the embedding model.
func TestXLMRobertaFlashLayout(t *testing.T) {
	ids := []int{0, 5, 6, 2, 2, 8, 7, 2}
	for _, reranker := range []bool{true, false} {
		t.Run(fmt.Sprint("reranker=", reranker), func(t *testing.T) {
			var outs [2][]float32
			for i, flash := range []bool{false, true} {
				dir := xlmrFixture(t, reranker, nil)
				if flash {
					flashLayoutOf(t, dir)
				}
				out, f := convertDir(t, dir, "f32")
				if _, ok := f.Tensor("blk.0.attn_qkv.weight"); ok != flash {
					t.Errorf("flash %v: attn_qkv %v", flash, ok)
				}
				if ti, ok := f.Tensor("position_embd.weight"); !ok || ti.Shape[1] != xlmrMaxPos-2 {
					t.Errorf("flash %v: position_embd %+v (%v), want %d rows", flash, ti, ok, xlmrMaxPos-2)
				}
				m := loadModel(t, out, engine.ModelOptions{})
				c, err := m.NewContext(engine.ContextOptions{ContextLength: 64, BatchSize: 64, MicroBatchSize: 64, Threads: 1, Embeddings: true})
				if err != nil {
					t.Fatal(err)
				}
				outs[i] = pooledEmbedding(t, c, ids)
				c.Close()
			}
			var d float64
			for i := range outs[0] {
				d = max(d, math.Abs(float64(outs[1][i]-outs[0][i])))
			}
			if len(outs[1]) != len(outs[0]) || d > 1e-5 {
				t.Errorf("the flash layout's output differs by %.3g (%d values, want %d)", d, len(outs[1]), len(outs[0]))
			} else {
				t.Logf("%d values, equal within %.3g", len(outs[0]), d)
			}
		})
	}
}
