package synth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/loader/gguf"
)

func TestCachePathMatchesBenchmarkName(t *testing.T) {
	// engine's benchmark keeps its model under this exact name; Cached
	// must find it.
	got := CachePath("/c", Shapes["tinyllama-1.1b"], "q4_0", 1)
	if want := filepath.Join("/c", "tinyllama-1.1b-Q4_0-seed1.gguf"); got != want {
		t.Errorf("CachePath = %q, want %q", got, want)
	}
	if got := CachePath("/c", tiny, "", 7); filepath.Base(got) != "tiny-F16-seed7.gguf" {
		t.Errorf("CachePath for the default type = %q", got)
	}
}

func TestWeightBytesExactForSingleTypes(t *testing.T) {
	// The real file of tinyllama-1.1b in Q4_0 made by llama.cpp's quantizer
	// holds 635990016 bytes of tensors (Q4_0 matrices, a Q6_K output, F32
	// norms).
	if got, err := Shapes["tinyllama-1.1b"].WeightBytes("Q4_0"); err != nil || got != 635990016 {
		t.Errorf("tinyllama-1.1b Q4_0: %d, %v; want 635990016", got, err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	for _, q := range []string{"F32", "F16", "Q8_0", "Q4_0"} {
		path := filepath.Join(dir, q+".gguf")
		if err := Create(ctx, path, tiny, q, 1, 1); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var size uint64
		for _, ti := range f.Tensors {
			size += ti.Size
		}
		if got, err := tiny.WeightBytes(q); err != nil || got != size {
			t.Errorf("%s: WeightBytes %d, %v; the file holds %d", q, got, err, size)
		}
	}
}

func TestWeightBytesApproximateForMixes(t *testing.T) {
	// llama-3-8b Q4_K_M files are about 4.92 GB; llama-3-70b about 42.5 GB.
	for _, c := range []struct {
		shape, quant string
		want         float64
	}{
		{"llama-3-8b", "Q4_K_M", 4.92e9},
		{"llama-3-70b", "Q4_K_M", 42.5e9},
		{"llama-2-7b", "Q5_K_M", 4.78e9},
	} {
		got, err := Shapes[c.shape].WeightBytes(c.quant)
		if err != nil {
			t.Fatal(err)
		}
		if f := float64(got); f < c.want*0.95 || f > c.want*1.05 {
			t.Errorf("%s %s: %.3g bytes, want about %.3g", c.shape, c.quant, f, c.want)
		}
	}
	if _, err := tiny.WeightBytes("Q9_9"); err == nil || !strings.Contains(err.Error(), "Q4_K_M") {
		t.Errorf("unknown type: %v", err)
	}
	f16, _ := tiny.WeightBytes("F16")
	q, _ := tiny.WeightBytes("Q4_0")
	if d, err := tiny.DiskBytes("Q4_0"); err != nil || d != f16+q {
		t.Errorf("DiskBytes(Q4_0) = %d, %v; want the F16 temp + the output, %d", d, err, f16+q)
	}
	if d, _ := tiny.DiskBytes("F16"); d != f16 {
		t.Errorf("DiskBytes(F16) = %d, want %d", d, f16)
	}
}

func TestCachedCreatesOnceAndReuses(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache")
	path, err := Cached(ctx, dir, tiny, "q8_0", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if path != CachePath(dir, tiny, "Q8_0", 2) {
		t.Errorf("created %s, want %s", path, CachePath(dir, tiny, "Q8_0", 2))
	}
	if _, err := gguf.ValidateModel(path); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(path)
	again, err := Cached(ctx, dir, tiny, "Q8_0", 2, 1)
	if err != nil || again != path {
		t.Fatalf("second Cached: %s, %v", again, err)
	}
	st2, _ := os.Stat(path)
	if !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("the cached file was written again")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("cache holds %v, want only the model", names)
	}

	// A cancelled creation leaves nothing behind.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Cached(cctx, dir, tiny, "F16", 3, 1); err == nil {
		t.Error("cancelled Cached succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a cancelled creation left %d files", len(entries)-1)
	}
	if _, err := Cached(ctx, dir, tiny, "Q9_9", 1, 1); err == nil {
		t.Error("unknown type accepted")
	}
}
