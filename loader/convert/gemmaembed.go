package convert

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/llm-go/llm/loader/safetensors"
)

// EmbeddingGemma (Gemma3TextModel with use_bidirectional_attention, as
// sentence-transformers saves it: tensors without the "model." prefix, no
// head) → GGUF arch "gemma-embedding": Gemma 3's blocks (the norms written
// as 1+w, per-head q/k norms, tanh GELU, embeddings scaled by
// sqrt(hidden)), every layer attending both ways, the sliding layers
// within sliding_window/2 positions on each side (transformers keeps
// |i-j| < sliding_window//2 + 1; llama.cpp's symmetric window |i-j| ≤
// n_swa/2 with n_swa the config.json value, as convert_hf_to_gguf.py
// writes it). The sentence-transformers modules give the pooling (mean
// when there is none) and, after it, two Dense projections without bias
// or activation (in_features the hidden size, then back to it), written
// as dense_2.weight and dense_3.weight with their sizes: llama.cpp
// projects the pooled embedding by both, so one alone is refused.

// checkDense refuses the Dense modules arch cannot run: any but
// gemma-embedding's two, from the hidden size and back to it (llama.cpp
// asserts both), the second taking the first's output.
func checkDense(arch archSpec, h hparams, dense []denseModule) error {
	switch {
	case len(dense) == 0:
		return nil
	case !arch.gemmaEmbed:
		return fmt.Errorf("%w: a sentence-transformers Dense module (%s) for %s: llama.cpp projects the embeddings of gemma-embedding only", ErrUnsupported, dense[0].dir, arch.hf)
	case len(dense) != 2:
		return fmt.Errorf("%w: %d sentence-transformers Dense modules: llama.cpp's gemma-embedding projects by two (dense_2, dense_3) or none", ErrUnsupported, len(dense))
	case dense[0].in != h.hidden || dense[1].out != h.hidden || dense[0].out != dense[1].in:
		return fmt.Errorf("%w: Dense modules %d→%d and %d→%d: llama.cpp's gemma-embedding projects from the hidden size %d and back through one width",
			ErrMismatch, dense[0].in, dense[0].out, dense[1].in, dense[1].out, h.hidden)
	}
	return nil
}

// densePlans plans gemma-embedding's Dense projections, read from each
// module's model.safetensors (linear.weight [out, in]) as the file is
// written.
func densePlans(dir string) ([]tensorPlan, error) {
	st, err := readSentence(dir)
	if err != nil || len(st.dense) == 0 {
		return nil, err
	}
	var out []tensorPlan
	for i, d := range st.dense {
		m, err := safetensors.OpenDir(d.dir)
		if err != nil {
			return nil, fmt.Errorf("convert: Dense module %s: %w", d.dir, err)
		}
		names := make([]string, 0, 1)
		for _, t := range m.Tensors() {
			names = append(names, t.Name)
		}
		t, ok := m.Tensor("linear.weight")
		m.Close()
		switch {
		case !ok || len(names) != 1:
			return nil, fmt.Errorf("%w: Dense module %s has tensors %v; want linear.weight alone (no bias)", ErrMismatch, d.dir, names)
		case !slices.Equal(t.Shape, []int64{int64(d.out), int64(d.in)}):
			return nil, fmt.Errorf("%w: %s: linear.weight has shape %v, its config.json implies [%d %d]", ErrMismatch, d.dir, t.Shape, d.out, d.in)
		case !t.DType.Supported():
			return nil, fmt.Errorf("%w: %s: linear.weight has dtype %s; the converter reads F32, F16 and BF16", ErrUnsupported, d.dir, t.DType)
		}
		path := d.dir
		out = append(out, tensorPlan{ggufName: fmt.Sprintf("dense_%d.weight", i+2), shape: slices.Clone(t.Shape), layer: -1,
			derive: func(*tensorWriter) ([]float32, error) {
				m, err := safetensors.OpenDir(path)
				if err != nil {
					return nil, fmt.Errorf("convert: Dense module %s: %w", filepath.Base(path), err)
				}
				defer m.Close()
				return m.Float32s("linear.weight")
			}})
	}
	return out, nil
}
