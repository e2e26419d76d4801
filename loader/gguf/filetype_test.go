package gguf

import (
	"bytes"
	"os"
	"path/filepath"
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

// TestRewrite: a rewritten copy has the edited metadata and the same
// tensors, byte for byte.
func TestRewrite(t *testing.T) {
	src := shareddata.Path(t, "models", "stories260K.gguf")
	dst := filepath.Join(t.TempDir(), "copy.gguf")
	if err := Rewrite(dst, src, func(w *Writer) {
		w.Set("tokenizer.chat_template", String("{{ x }}"))
		w.Delete("general.name")
	}); err != nil {
		t.Fatal(err)
	}
	a, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := b.String("tokenizer.chat_template"); v != "{{ x }}" {
		t.Errorf("template %q", v)
	}
	if _, ok := b.Lookup("general.name"); ok {
		t.Error("general.name kept")
	}
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d tensors, want %d", len(b.Tensors), len(a.Tensors))
	}
	ra, _ := os.ReadFile(src)
	rb, _ := os.ReadFile(dst)
	for i, ta := range a.Tensors {
		tb := b.Tensors[i]
		da := ra[a.DataOffset+int64(ta.Offset) : a.DataOffset+int64(ta.Offset)+int64(ta.Size)]
		db := rb[b.DataOffset+int64(tb.Offset) : b.DataOffset+int64(tb.Offset)+int64(tb.Size)]
		if ta.Name != tb.Name || !bytes.Equal(da, db) {
			t.Errorf("tensor %s differs", ta.Name)
		}
	}
	if err := Rewrite(dst, filepath.Join(t.TempDir(), "missing.gguf"), func(*Writer) {}); err == nil {
		t.Error("a missing source was rewritten")
	}
}
