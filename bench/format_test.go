package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixedSystem and fixedResults are a fixed set of results: two models, a
// prompt, a generation (one at a depth) and a combined test, one with a
// single repetition.
var fixedSystem = System{
	BuildCommit: "ec98e2002", CPUInfo: "AMD EPYC 7B13", Backends: "CPU", MemBandwidthGBps: 40,
}

func fixedResults() []Result {
	at := time.Date(2025, 11, 27, 21, 30, 0, 0, time.UTC)
	tiny := Model{Path: "/models/stories260K.gguf"}
	synth := Model{Path: "/cache/llm/synth/tinyllama-1.1b-Q4_0-seed1.gguf", Synthetic: "tinyllama-1.1b"}
	base := func(m Model, np, ng, d int) Instance {
		return Instance{Model: m, GPULayers: 99, Batch: 2048, UBatch: 512, TypeK: "f16", TypeV: "f16",
			FlashAttn: FlashAttnAuto, Threads: 2, Depth: d, NPrompt: np, NGen: ng}
	}
	small := Result{System: fixedSystem, ModelType: "llama ?B all F32", ModelSize: 1_185_280, ModelParams: 292_672,
		WeightBytesPerToken: 1_070_080, LoadMS: 3.25, PeakRSS: 52_428_800}
	big := Result{System: fixedSystem, ModelType: "llama 1B Q4_0", ModelSize: 635_990_016, ModelParams: 1_100_048_384,
		WeightBytesPerToken: 599_179_264, LoadMS: 412.5, PeakRSS: 712_572_928}
	mk := func(r Result, in Instance, kv uint64, prompt []uint64, ns ...uint64) Result {
		r.Instance, r.TestTime, r.SamplesNS, r.PromptNS, r.KVBytesPerToken = in, at, ns, prompt, kv
		return r
	}
	return []Result{
		mk(small, base(tiny, 64, 0, 0), 0, []uint64{2_000_000, 2_100_000, 1_900_000}, 2_000_000, 2_100_000, 1_900_000),
		mk(small, base(tiny, 0, 16, 0), 4_096, nil, 8_000_000, 8_500_000, 7_900_000),
		mk(big, base(synth, 512, 0, 0), 0, []uint64{9_876_543_210}, 9_876_543_210),
		mk(big, base(synth, 0, 128, 4096), 95_420_416, nil, 10_312_000_000, 10_540_000_000),
		mk(big, base(synth, 512, 128, 0), 8_650_752, []uint64{9_500_000_000, 9_700_000_000}, 19_800_000_000, 20_100_000_000),
	}
}

func fixedParams() Params {
	p := DefaultParams(Model{Path: "/models/stories260K.gguf"})
	p.Threads = []int{2}
	return p
}

func render(t *testing.T, format string, p Params, sys System, results []Result) string {
	t.Helper()
	var buf bytes.Buffer
	pr, err := NewPrinter(format, &buf, p, sys)
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Header(); err != nil {
		t.Fatal(err)
	}
	for i := range results {
		if err := pr.Print(&results[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := pr.Footer(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestFormatsGolden(t *testing.T) {
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			golden(t, "results."+format, render(t, format, fixedParams(), fixedSystem, fixedResults()))
		})
	}
	// Swept parameters add their markdown columns; a GPU backend shows ngl
	// and hides the default thread count.
	p := fixedParams()
	p.Threads = []int{DefaultThreads()}
	p.Batch, p.UBatch, p.TypeK, p.FlashAttn = []int{512, 2048}, []int{256}, []string{"f16", "q8_0"}, []int{0, 1}
	gpu := fixedSystem
	gpu.Backends, gpu.GPUInfo = "CUDA", "NVIDIA H100 80GB HBM3"
	res := fixedResults()
	for i := range res {
		res[i].System, res[i].GPUOffload = gpu, true
	}
	golden(t, "results_gpu_swept.md", render(t, "md", p, gpu, res))
}

func TestFormatsParse(t *testing.T) {
	res := fixedResults()
	names := append(LlamaBenchFields(), ExtraFields()...)

	// csv: a header and one record per result, llama-bench's fields first.
	recs, err := csv.NewReader(strings.NewReader(render(t, "csv", fixedParams(), fixedSystem, res))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], names) || len(recs) != len(res)+1 {
		t.Fatalf("csv header %v with %d records", recs[0], len(recs)-1)
	}
	if recs[1][slices.Index(names, "avg_ts")] != "32053.467001" { // the mean of the rates, not the rate of the mean time
		t.Errorf("avg_ts of pp64 = %q, want 32053.467001", recs[1][slices.Index(names, "avg_ts")])
	}

	// json and jsonl: valid, with typed values and nulls where an extra
	// does not apply.
	var arr []map[string]any
	if err := json.Unmarshal([]byte(render(t, "json", fixedParams(), fixedSystem, res)), &arr); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(render(t, "jsonl", fixedParams(), fixedSystem, res)), "\n")
	if len(arr) != len(res) || len(lines) != len(res) {
		t.Fatalf("%d json objects, %d jsonl lines for %d results", len(arr), len(lines), len(res))
	}
	for i, line := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("jsonl line %d: %v", i, err)
		}
		for _, k := range append(names, "samples_ns", "samples_ts") {
			if _, ok := obj[k]; !ok {
				t.Errorf("jsonl line %d has no %s", i, k)
			}
			if _, ok := arr[i][k]; !ok {
				t.Errorf("json object %d has no %s", i, k)
			}
		}
	}
	tg := arr[3]
	if tg["use_mmap"] != true || tg["n_depth"] != 4096.0 || tg["test_time"] != "2025-11-27T21:30:00Z" {
		t.Errorf("typed values: use_mmap %v n_depth %v test_time %v", tg["use_mmap"], tg["n_depth"], tg["test_time"])
	}
	if arr[0]["achieved_gbps"] != nil || arr[0]["ttft_ms"] == nil || tg["ttft_ms"] != nil || tg["achieved_gbps"] == nil {
		t.Errorf("nulls: pp achieved_gbps %v ttft %v; tg ttft %v achieved %v",
			arr[0]["achieved_gbps"], arr[0]["ttft_ms"], tg["ttft_ms"], tg["achieved_gbps"])
	}
}

func TestSQLLoadsInSQLite(t *testing.T) {
	sqlite, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("no sqlite3")
	}
	script := render(t, "sql", fixedParams(), fixedSystem, fixedResults()) +
		"SELECT count(*), sum(bandwidth_pct IS NULL) FROM llama_bench;\n"
	cmd := exec.Command(sqlite, ":memory:")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "5|3" {
		t.Errorf("sqlite3: %v: %s", err, out)
	}
}

func TestStatsMatchLlamaBench(t *testing.T) {
	r := Result{Instance: Instance{NGen: 100}, SamplesNS: []uint64{1e9, 2e9, 4e9}}
	// Rates 100, 50, 25: mean 58.333…, sample deviation 38.188…
	if got := r.AvgTS(); got < 58.3333 || got > 58.3334 {
		t.Errorf("AvgTS = %v", got)
	}
	if got := r.StddevTS(); got < 38.1881 || got > 38.1882 {
		t.Errorf("StddevTS = %v", got)
	}
	if r.AvgNS() != 2333333333 || r.StddevNS() != 1527525231 {
		t.Errorf("AvgNS %d StddevNS %d", r.AvgNS(), r.StddevNS())
	}
	one := Result{Instance: Instance{NPrompt: 8}, SamplesNS: []uint64{1e6}}
	if one.StddevTS() != 0 || one.AvgTS() != 8000 {
		t.Errorf("one sample: %v ± %v", one.AvgTS(), one.StddevTS())
	}
	if (&Result{}).AvgTS() != 0 {
		t.Error("no samples should give 0")
	}
}

func TestExtras(t *testing.T) {
	res := fixedResults()
	tg := &res[3] // tg128 @ d4096 of the 1B model at 12.29 t/s
	g, ok := tg.AchievedGBps()
	want := float64(599_179_264+95_420_416) * tg.AvgTS() / 1e9
	if !ok || g != want {
		t.Errorf("AchievedGBps = %v, %v; want %v", g, ok, want)
	}
	if p, ok := tg.BandwidthPct(); !ok || p != 100*want/40 {
		t.Errorf("BandwidthPct = %v, %v", p, ok)
	}
	tg.GPUOffload = true
	if _, ok := tg.BandwidthPct(); ok {
		t.Error("a GPU run has no share of the host's bandwidth")
	}
	if _, ok := res[4].AchievedGBps(); ok {
		t.Error("a combined test has no achieved bandwidth")
	}
	if ms, ok := res[4].TTFTMS(); !ok || ms != 9600 {
		t.Errorf("TTFTMS = %v, %v; want 9600", ms, ok)
	}
}

func TestNewPrinterUnknownFormat(t *testing.T) {
	if _, err := NewPrinter("xml", &bytes.Buffer{}, fixedParams(), fixedSystem); err == nil || !strings.Contains(err.Error(), "jsonl") {
		t.Errorf("unknown format: %v", err)
	}
}
