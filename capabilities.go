package llm

import (
	"slices"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
)

// Capabilities of a model, as Ollama's /api/show names them (and "rerank"
// for rerankers).
const (
	CapCompletion = "completion" // generates text
	CapEmbedding  = "embedding"  // pools into sentence embeddings
	CapRerank     = "rerank"     // scores query-document pairs (Rerank)
	CapTools      = "tools"      // its chat template shows tools
	CapInsert     = "insert"     // fills in the middle (Suffix)
	CapThinking   = "thinking"   // reasons before answering (Think)
)

// encoderArchs are llama.cpp architectures that encode rather than
// generate.
var encoderArchs = []string{"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert", "neo-bert", "t5encoder", "gemma-embedding"}

// fimTokens are the token texts llama.cpp takes as the fill-in-the-middle
// prefix when the metadata names none.
var fimTokens = []string{"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>"}

// thinkingMarks are what a chat template that makes or lets a model reason
// mentions.
var thinkingMarks = []string{"enable_thinking", "<think>", "reasoning_content", "<|channel|>", "reasoning_effort"}

// Capabilities returns what the model whose GGUF header is h can do, read
// from its metadata without loading it: completion or embedding (or
// rerank), and tools, insert and thinking as its chat template and
// vocabulary show, in that order.
func Capabilities(h *gguf.File) []string {
	arch := h.Architecture()
	pooling, pooled := h.Uint(arch + ".pooling_type")
	var caps []string
	switch {
	case pooled && pooling == poolingRank:
		caps = append(caps, CapRerank)
	case pooled && pooling > 0 || slices.Contains(encoderArchs, arch):
		caps = append(caps, CapEmbedding)
	default:
		caps = append(caps, CapCompletion)
	}
	if caps[0] != CapCompletion {
		return caps
	}
	tmpl, _ := h.String("tokenizer.chat_template")
	if strings.Contains(tmpl, "tools") {
		caps = append(caps, CapTools)
	}
	if hasFIM(h) {
		caps = append(caps, CapInsert)
	}
	for _, m := range thinkingMarks {
		if strings.Contains(tmpl, m) {
			caps = append(caps, CapThinking)
			break
		}
	}
	return caps
}

// hasFIM reports whether the vocabulary has fill-in-the-middle tokens, by
// the metadata's ids or, as llama.cpp finds them, by name.
func hasFIM(h *gguf.File) bool {
	for _, k := range []string{"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"} {
		if _, ok := h.Uint(k); ok {
			return true
		}
	}
	tokens, _ := h.Strings("tokenizer.ggml.tokens")
	for _, s := range tokens {
		if slices.Contains(fimTokens, s) {
			return true
		}
	}
	return false
}
