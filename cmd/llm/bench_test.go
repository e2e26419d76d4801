package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm/bench"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/shareddata"
)

// benchCache returns a cache directory holding a bandwidth measurement, so
// that tests do not measure it.
func benchCache(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	data, _ := json.Marshal(bench.Bandwidth{CPU: bench.CPUModel(), GBps: 20, Threads: 2, BufferBytes: 1 << 30})
	if err := os.WriteFile(filepath.Join(dir, "bandwidth.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBenchMarkdown(t *testing.T) {
	model := benchModel(t)
	cache := benchCache(t)
	plot := filepath.Join(t.TempDir(), "bench.png")
	code, out, stderr := run(t, "", "bench", "-m", model, "-p", "16", "-n", "8", "-pg", "8,4", "-r", "2", "-t", "1,2",
		"--cache-dir", cache, "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "| model ") || !strings.Contains(lines[0], "| threads |") || !strings.Contains(lines[0], "GB/s") {
		t.Errorf("header %q", lines[0])
	}
	var tests []string
	for _, l := range lines[2:] {
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(l, "|")
		tests = append(tests, strings.TrimSpace(cells[len(cells)-5])+"/"+strings.TrimSpace(cells[5]))
		if !strings.Contains(l, " ± ") {
			t.Errorf("row without mean ± deviation: %q", l)
		}
	}
	if want := []string{"pp16/1", "tg8/1", "pp8+tg4/1", "pp16/2", "tg8/2", "pp8+tg4/2"}; !slices.Equal(tests, want) {
		t.Errorf("tests %v, want %v", tests, want)
	}
	if !strings.Contains(out, "build: ec98e2002") || !strings.Contains(out, "20.00 GB/s") {
		t.Errorf("footer: %q", out)
	}
	if st, err := os.Stat(plot); err != nil || st.Size() < 1000 {
		t.Errorf("plot: %v", err)
	}
}

func TestBenchRecordsAndAliases(t *testing.T) {
	model := benchModel(t)
	cache := benchCache(t)
	code, out, stderr := run(t, "", "bench", "-m", model, "-p", "8", "-n", "4", "-r", "1", "-t", "1",
		"-ngl", "0", "-fa=0", "-b", "16", "-ub", "8", "-ctk", "f16", "-ctv", "f16", "-d", "0,8", "-o", "json", "--cache-dir", cache)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res []map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res) != 4 {
		t.Fatalf("%d results, want 4", len(res))
	}
	r := res[3]
	if r["n_gpu_layers"] != 0.0 || r["flash_attn"] != 0.0 || r["n_batch"] != 16.0 || r["n_ubatch"] != 8.0 ||
		r["n_depth"] != 8.0 || r["n_gen"] != 4.0 || r["mem_bandwidth_gbps"] != 20.0 || r["achieved_gbps"] == nil {
		t.Errorf("result %v", r)
	}
	for _, format := range []string{"csv", "jsonl", "sql"} {
		code, out, stderr := run(t, "", "bench", "-m", model, "-p", "8", "-n", "0", "-r", "1", "-t", "1", "-o", format,
			"--no-bandwidth", "--cache-dir", cache)
		if code != 0 || !strings.Contains(out, "build_commit") {
			t.Errorf("-o %s: exit %d, %q, %s", format, code, out, stderr)
		}
	}
}

// cancelWriter cancels a context once a markdown result row is written,
// as Ctrl-C during a run.
type cancelWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel func()
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte(" ± ")) {
		w.cancel()
	}
	return w.buf.Write(p)
}

func TestBenchInterruptPrintsResultsSoFar(t *testing.T) {
	model := benchModel(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelWriter{cancel: cancel}
	var errb bytes.Buffer
	code := runMain(ctx, &stdio{in: strings.NewReader(""), out: out, err: &errb},
		[]string{"bench", "-m", model, "-p", "16", "-n", "8", "-r", "2", "-t", "1,2", "--no-bandwidth", "--cache-dir", t.TempDir()})
	if code != 1 || !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("exit %d, stderr %q; want 1 and interrupted", code, errb.String())
	}
	text := out.buf.String()
	if rows := strings.Count(text, " ± "); rows != 1 || !strings.Contains(text, "build: ") {
		t.Errorf("printed %d results and the footer %v:\n%s", rows, strings.Contains(text, "build:"), text)
	}
}

func TestBenchRefuses70BWithoutAllocating(t *testing.T) {
	avail, err := bench.MemAvailable()
	if err != nil {
		t.Skip(err)
	}
	// F32 llama-3-70b is 282 GB: too big for any test machine.
	if avail > 250<<30 {
		t.Skipf("%d GiB available: a 70B F32 model would fit", avail>>30)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	before := bench.PeakRSS()
	code, out, stderr := run(t, "", "bench", "--synthetic", "llama-3-70b", "-q", "F32", "-p", "512", "-n", "128", "--cache-dir", cache)
	if code != 1 || !strings.Contains(stderr, "synthetic llama-3-70b F32 does not fit") || !strings.Contains(stderr, "GiB of RAM") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if out != "" {
		t.Errorf("printed %q", out)
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Errorf("the cache directory was created: %v", err)
	}
	if after := bench.PeakRSS(); after > before+(256<<20) {
		t.Errorf("peak RSS grew from %d to %d MiB", before>>20, after>>20)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	model := benchModel(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"bench"}, "a model is required"},
		{[]string{"bench", "-m", model, "-q", "Q4_0"}, "needs --synthetic"},
		{[]string{"bench", "--synthetic", "llama-9"}, "unknown shape"},
		{[]string{"bench", "--synthetic", "tinyllama-1.1b", "-q", "Q9"}, "unknown type"},
		{[]string{"bench", "-m", model, "-o", "xml"}, "-o"},
		{[]string{"bench", "-m", model, "-pg", "512"}, "PROMPT,GEN"},
		{[]string{"bench", "-m", model, "-t", "x"}, "--threads"},
		{[]string{"bench", "-m", model, "-fa", "2"}, "flash attention"},
		{[]string{"bench", "-m", model, "-ctk", "q3"}, "cache type"},
		{[]string{"bench", "-m", model, "-r", "0"}, "repetitions"},
		{[]string{"bench", "-m", model, "-p", "0", "-n", "0"}, "no test"},
		{[]string{"bench", "-m", model, "extra"}, "unexpected argument"},
	} {
		code, _, stderr := run(t, "", tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, %q; want 2 with %q", tc.args, code, stderr, tc.msg)
		}
	}
	if code, out, _ := run(t, "", "help", "bench"); code != 0 || !strings.Contains(out, "--synthetic") || !strings.Contains(out, "-ngl") {
		t.Errorf("help bench: %d %q", code, out)
	}
}

func TestRewriteBenchArgs(t *testing.T) {
	got := rewriteBenchArgs([]string{"-ngl", "99", "-fa=1", "-pg", "512,128", "-ub", "256", "-ctk", "q8_0", "-ctv", "q8_0", "-p", "512", "--", "-ngl"})
	want := []string{"--n-gpu-layers", "99", "--flash-attn=1", "--pg", "512,128", "--ubatch-size", "256",
		"--cache-type-k", "q8_0", "--cache-type-v", "q8_0", "-p", "512", "--", "-ngl"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func benchModel(t *testing.T) string {
	t.Helper()
	return shareddata.Path(t, "models", "stories260K.gguf")
}

// TestBenchSaysNoGPU: -ngl asked for on a machine without a GPU says that
// the tests run on the CPU (llama-bench says nothing); the default -ngl,
// not given, says nothing either.
func TestBenchSaysNoGPU(t *testing.T) {
	if engine.HaveGPU() {
		t.Skip("a GPU is here")
	}
	model := benchModel(t)
	cache := benchCache(t)
	args := []string{"bench", "-m", model, "-p", "8", "-n", "0", "-r", "1", "-t", "1", "--cache-dir", cache}
	code, _, stderr := run(t, "", append(args, "-ngl", "0,99")...)
	if code != 0 || !strings.Contains(stderr, "-ngl 99 asks for GPU layers, but there is no GPU device") {
		t.Errorf("-ngl 0,99: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := run(t, "", args...); code != 0 || strings.Contains(stderr, "GPU") {
		t.Errorf("default -ngl: exit %d, stderr %q", code, stderr)
	}
}
