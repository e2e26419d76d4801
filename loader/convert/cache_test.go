package convert

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/gguf"
)

func TestCachedConvertsOnce(t *testing.T) {
	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	cache := t.TempDir()
	ctx := context.Background()
	a, err := Cached(ctx, dir, cache, "", "")
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(a)
	b, err := Cached(ctx, dir, cache, "", "f16")
	if err != nil || b != a {
		t.Fatalf("second call: %q %v, first %q", b, err, a)
	}
	st2, _ := os.Stat(b)
	if !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("the conversion was redone")
	}
	h, err := gguf.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	if ft, _ := h.Uint("general.file_type"); ft != 1 {
		t.Errorf("file type %d, want 1 (F16)", ft)
	}
	if c, err := Cached(ctx, dir, cache, "org/repo@abc", "f32"); err != nil || filepath.Base(c) != "org-repo-abc-f32.gguf" {
		t.Errorf("keyed conversion: %q %v", c, err)
	}
}

func TestToTypeQuantized(t *testing.T) {
	dir := shareddata.Path(t, "models", "hf", "tiny-qwen2-st")
	out := filepath.Join(t.TempDir(), "q.gguf")
	if err := ToType(context.Background(), dir, out, "q8_0", 2, nil); err != nil {
		t.Fatal(err)
	}
	h, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if ft, _ := h.Uint("general.file_type"); ft != 7 {
		t.Errorf("file type %d, want 7 (Q8_0)", ft)
	}
	leftovers, _ := filepath.Glob(out + ".*")
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	if err := ToType(context.Background(), dir, out, "q9_z", 2, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown type: %v", err)
	}
}
