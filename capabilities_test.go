package llm_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
)

// TestCapabilities: what Capabilities reads from a header: completion,
// embedding or rerank by the pooling, tools and thinking from the chat
// template, insert from the FIM tokens.
func TestCapabilities(t *testing.T) {
	qwen3, err := os.ReadFile(shareddata.Path(t, "testdata", "chat_templates", "jinja", "Qwen-Qwen3-0.6B.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	gptoss, err := os.ReadFile(shareddata.Path(t, "testdata", "chat_templates", "jinja", "openai-gpt-oss-120b.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	bert, _ := testmodel.BERT(t, false)
	reranker, _ := testmodel.BERT(t, true)
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"stories260K", shareddata.Path(t, "models", "stories260K.gguf"), []string{"completion"}},
		{"Qwen3's template", withTemplate(t, string(qwen3)), []string{"completion", "tools", "thinking"}},
		{"gpt-oss's template", withTemplate(t, string(gptoss)), []string{"completion", "tools", "thinking"}},
		{"FIM tokens", testmodel.StoriesWithFIM(t, "fim"), []string{"completion", "insert"}},
		{"BERT", bert, []string{"embedding"}},
		{"a reranker", reranker, []string{"rerank"}},
	} {
		h, err := gguf.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := llm.Capabilities(h); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// FIM tokens found by name, as llama.cpp finds them.
	named := filepath.Join(t.TempDir(), "named.gguf")
	if err := gguf.Rewrite(named, shareddata.Path(t, "models", "stories260K.gguf"), func(w *gguf.Writer) {
		src, _ := gguf.Open(shareddata.Path(t, "models", "stories260K.gguf"))
		tokens, _ := src.Strings("tokenizer.ggml.tokens")
		tokens = slices.Clone(tokens)
		tokens[3] = "<|fim_prefix|>"
		w.Set("tokenizer.ggml.tokens", gguf.Strings(tokens))
	}); err != nil {
		t.Fatal(err)
	}
	if h, err := gguf.Open(named); err != nil || !slices.Contains(llm.Capabilities(h), "insert") {
		t.Errorf("a token named <|fim_prefix|>: %v", err)
	}
}
