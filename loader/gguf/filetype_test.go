package gguf

import (
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
)

func TestFileTypeName(t *testing.T) {
	for ft, want := range map[uint64]string{0: "F32", 15: "Q4_K_M", 32: "BF16", 99: "file type 99"} {
		if got := FileTypeName(ft); got != want {
			t.Errorf("FileTypeName(%d) = %q, want %q", ft, got, want)
		}
	}
	f, err := Open(shareddata.Path(t, "models", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if name, only := f.DominantType(); name != "F32" || !only {
		t.Errorf("stories260K: %q, only %v", name, only)
	}
}
