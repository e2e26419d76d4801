// Package testmodel makes test models from the shared ones by editing their
// GGUF metadata, for tests of features the tiny shared models lack.
package testmodel

import (
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/gguf"
)

// FIM token ids that StoriesWithFIM gives stories260K: three of its byte
// tokens, named as the fill-in-the-middle prefix, suffix and middle.
const (
	FIMPre = 3
	FIMSuf = 4
	FIMMid = 5
)

// StoriesWithFIM writes a copy of stories260K whose vocabulary has
// fill-in-the-middle tokens, named name.gguf in a temporary directory, and
// returns its path.
func StoriesWithFIM(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".gguf")
	err := gguf.Rewrite(path, shareddata.Path(t, "models", "stories260K.gguf"), func(w *gguf.Writer) {
		w.Set("tokenizer.ggml.fim_pre_token_id", gguf.Uint32(FIMPre))
		w.Set("tokenizer.ggml.fim_suf_token_id", gguf.Uint32(FIMSuf))
		w.Set("tokenizer.ggml.fim_mid_token_id", gguf.Uint32(FIMMid))
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}
