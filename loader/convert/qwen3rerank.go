package convert

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/loader/safetensors"
)

// Qwen3-Reranker (Qwen3ForCausalLM, as released: Qwen3-Reranker-0.6B, 4B,
// 8B) scores a query and a document by the model's next-token
// probability of "yes" against "no" after its prompt. convert_hf_to_gguf.py
// tells it from a plain Qwen3 by its model card (README.md's heading
// "# Qwen3-Reranker"), and so does this package. It is written as a qwen3
// reranker llama.cpp runs with rank pooling: the head's "yes" and "no"
// rows as cls.output.weight (the head itself is left out: the
// embeddings stand in when llama.cpp wants one), classifier labels yes and
// no, pooling type rank, and the prompt of its model card as the "rerank"
// chat template. llama.cpp takes the last token's hidden state through
// that head and a softmax: the score is P(yes).

// qwen3RerankTemplate is Qwen3-Reranker's prompt (its model card's, with
// the default instruction), {query} and {document} filled in by the
// reranker; as convert_hf_to_gguf.py writes it.
const qwen3RerankTemplate = "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. " +
	"Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n<Instruct>: Given a web search query, " +
	"retrieve relevant passages that answer the query\n<Query>: {query}\n<Document>: {document}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

// isQwen3Reranker reports whether the Qwen3 checkpoint in dir is a
// Qwen3-Reranker, by its model card's heading or its directory's name.
func isQwen3Reranker(arch archSpec, dir string) bool {
	if arch.hf != "Qwen3ForCausalLM" {
		return false
	}
	if abs, err := filepath.Abs(dir); err == nil && strings.Contains(strings.ToLower(filepath.Base(abs)), "qwen3-reranker") {
		return true
	}
	raw, err := os.ReadFile(filepath.Join(dir, "README.md"))
	return err == nil && strings.Contains(strings.ToLower(string(raw)), "# qwen3-reranker")
}

// qwen3RerankKeys writes the reranker's keys.
func qwen3RerankKeys(w *gguf.Writer, a string) {
	w.Set(a+".pooling_type", gguf.Uint32(poolingRank))
	w.Set(a+".classifier.output_labels", gguf.Strings([]string{"yes", "no"}))
	w.Set("tokenizer.chat_template.rerank", gguf.String(qwen3RerankTemplate))
}

// qwen3RerankHead replaces the plan's head by the classifier: the head's
// (or, tied, the embeddings') rows of "yes" and "no", read alone when the
// file is written.
func qwen3RerankHead(plan []tensorPlan, st *safetensors.Model, voc *vocab, h hparams) ([]tensorPlan, error) {
	yes, no := slices.Index(voc.tokens, "yes"), slices.Index(voc.tokens, "no")
	if yes < 0 || no < 0 {
		return nil, fmt.Errorf("%w: a Qwen3-Reranker whose vocabulary has no \"yes\" or \"no\" token", ErrMismatch)
	}
	head := ""
	for _, p := range plan {
		if p.ggufName == "output.weight" || head == "" && p.ggufName == "token_embd.weight" {
			head = p.hfName
		}
	}
	if head == "" {
		return nil, fmt.Errorf("%w: a Qwen3-Reranker without its head or embeddings", ErrMismatch)
	}
	plan = slices.DeleteFunc(plan, func(p tensorPlan) bool { return p.ggufName == "output.weight" })
	H := int64(h.hidden)
	return append(plan, tensorPlan{ggufName: "cls.output.weight", shape: []int64{2, H}, layer: -1,
		derive: func(*tensorWriter) ([]float32, error) {
			return readRows(st, head, int(H), yes, no)
		}}), nil
}

// readRows reads the given rows of the [rows, cols] tensor name.
func readRows(st *safetensors.Model, name string, cols int, rows ...int) ([]float32, error) {
	out := make([]float32, 0, len(rows)*cols)
	for _, i := range rows {
		row, err := readSpan(st, name, int64(i)*int64(cols), int64(cols))
		if err != nil {
			return nil, fmt.Errorf("%w (row %d)", err, i)
		}
		out = append(out, row...)
	}
	return out, nil
}
