package bench

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// sweepResults are results of two models over threads and depth.
func sweepResults() []Result {
	var out []Result
	for mi, m := range []Model{{Path: "a.gguf"}, {Path: "b.gguf", Synthetic: "llama-3-8b"}} {
		for _, threads := range []int{1, 2, 4, 8} {
			for _, test := range []Instance{{NPrompt: 512}, {NGen: 128}, {NGen: 128, Depth: 4096}} {
				in := test
				in.Model, in.Threads, in.Batch, in.UBatch, in.TypeK, in.TypeV = m, threads, 2048, 512, "f16", "f16"
				rate := float64(threads) * 20 / float64(mi+1)
				if in.NGen > 0 {
					rate = 4 + float64(threads)/float64(mi+1)
				}
				if in.Depth > 0 {
					rate *= 0.8
				}
				n := float64(in.NPrompt + in.NGen)
				ns := uint64(n / rate * 1e9)
				out = append(out, Result{Instance: in, ModelType: []string{"llama 1B Q4_0", "llama 8B Q4_K - Medium"}[mi],
					SamplesNS: []uint64{ns, ns * 21 / 20, ns * 19 / 20}})
			}
		}
	}
	return out
}

// noSweep are the fixed results without their depth.
func noSweep() []Result {
	res := fixedResults()
	res[3].Depth = 0
	return res
}

func TestPlotRenders(t *testing.T) {
	dir := t.TempDir()
	for name, res := range map[string][]Result{
		"threads.png": sweepResults(),
		"single.png":  noSweep(), // nothing swept: tests on the x axis
		"depth.svg":   fixedResults()[3:4],
	} {
		path := filepath.Join(dir, name)
		if err := Plot(res, path); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, err := os.ReadFile(path)
		if err != nil || len(data) < 1000 {
			t.Fatalf("%s: %d bytes, %v", name, len(data), err)
		}
		if filepath.Ext(name) == ".png" {
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 300 {
				t.Errorf("%s: %v", name, b)
			}
		}
	}
	if err := Plot(nil, filepath.Join(dir, "x.png")); err == nil {
		t.Error("empty plot accepted")
	}
	if err := Plot(fixedResults(), filepath.Join(dir, "x.unknown")); err == nil {
		t.Error("unknown format accepted")
	}
	if dst := os.Getenv("BENCH_PLOT_DIR"); dst != "" { // to look at them
		for _, n := range []string{"threads.png", "single.png"} {
			data, _ := os.ReadFile(filepath.Join(dir, n))
			os.WriteFile(filepath.Join(dst, n), data, 0o644)
		}
	}
}
