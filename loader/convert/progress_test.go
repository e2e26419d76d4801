package convert_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

// TestProgress checks that Options.Progress sees the tensor bytes written
// grow to the total, which is the sum of the GGUF's tensor sizes.
func TestProgress(t *testing.T) {
	for _, fixture := range []string{"tiny-llama-st-bf16", "tiny-random-gpt2"} {
		t.Run(fixture, func(t *testing.T) {
			dir := shareddata.Path(t, "models", "hf", fixture)
			out := filepath.Join(t.TempDir(), "x.gguf")
			var calls int
			var last, total int64
			opts := convert.Options{Type: "f16", Progress: func(done, tot int64) {
				if done <= last || done > tot || (total != 0 && tot != total) {
					t.Errorf("progress %d/%d after %d/%d", done, tot, last, total)
				}
				calls++
				last, total = done, tot
			}}
			if err := convert.Convert(context.Background(), dir, out, opts); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			var want int64
			for _, ti := range f.Tensors {
				want += int64(ti.Size)
			}
			if last != want || total != want {
				t.Errorf("progress ended at %d/%d, want %d/%d", last, total, want, want)
			}
			if calls < len(f.Tensors) {
				t.Errorf("%d progress calls for %d tensors", calls, len(f.Tensors))
			}
			t.Logf("%d calls, %d bytes", calls, last)
		})
	}
}

// TestCanceledMidway cancels the conversion from its first progress call,
// inside the first tensor: it stops with context.Canceled and leaves no
// output file.
func TestCanceledMidway(t *testing.T) {
	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	out := filepath.Join(t.TempDir(), "x.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls int
	err := convert.Convert(ctx, dir, out, convert.Options{Type: "f16", Progress: func(done, total int64) {
		calls++
		cancel()
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if calls > 2 {
		t.Errorf("%d progress calls after the cancellation", calls-1)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output file was written")
	}
	if _, err := os.Stat(out + ".tmp"); err == nil {
		t.Error("a temporary file was left")
	}
}
