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

// TestToTypeQuantized converts to Q8_0 (written in Go) and to Q4_0
// (quantized from an F16 conversion through the engine), checking the file
// types and that no temporary file is left.
func TestToTypeQuantized(t *testing.T) {
	dir := shareddata.Path(t, "models", "hf", "tiny-qwen2-st")
	for _, tc := range []struct {
		typ      string
		fileType uint64
	}{{"q8_0", 7}, {"q4_0", 2}} {
		out := filepath.Join(t.TempDir(), "q.gguf")
		if err := ToType(context.Background(), dir, out, tc.typ, 2, nil); err != nil {
			t.Fatal(err)
		}
		h, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if ft, _ := h.Uint("general.file_type"); ft != tc.fileType {
			t.Errorf("%s: file type %d, want %d", tc.typ, ft, tc.fileType)
		}
		leftovers, _ := filepath.Glob(out + ".*")
		if len(leftovers) != 0 {
			t.Errorf("%s: temporary files left: %v", tc.typ, leftovers)
		}
		if err := ToType(context.Background(), dir, out, "q9_z", 2, nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("unknown type: %v", err)
		}
	}
}
