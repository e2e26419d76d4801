package main

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
)

// TestRerankCommand: llm rerank prints the documents most relevant first,
// with their scores and indexes, as the library scores them; a model that
// is not a reranker is an error.
func TestRerankCommand(t *testing.T) {
	path, _ := testmodel.BERT(t, true)
	docs := []string{"The cat sat on the mat.", "A dog ran in the park", "hello world!", "cats"}
	p, err := llm.New(context.Background(), path, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	scores, err := p.Rerank(context.Background(), "the cat", docs...)
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, strings.Join(docs, "\n")+"\n", "rerank", path, "the cat", "-t", "1", "--top-n", "3")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("exit %d (%s): %q", code, stderr, out)
	}
	prev := math.Inf(1)
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 3)
		s, err1 := strconv.ParseFloat(f[0], 64)
		i, err2 := strconv.Atoi(f[1])
		if len(f) != 3 || err1 != nil || err2 != nil || f[2] != docs[i] || math.Abs(s-scores[i]) > 1e-5 || s > prev {
			t.Errorf("line %q; scores %v", l, scores)
		}
		prev = s
	}
	if code, _, stderr := run(t, "", "rerank", shareddata.Path(t, "models", "stories260K.gguf"), "q", "a doc"); code != 1 || !strings.Contains(stderr, "not a reranker") {
		t.Errorf("a generative model: exit %d, %s", code, stderr)
	}
}
