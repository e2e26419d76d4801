package bench

import (
	"fmt"
	"strconv"
	"time"
)

// Result is one test's outcome: llama-bench's fields, and this package's
// extras.
type Result struct {
	Instance

	// llama-bench's fields (besides the Instance's).
	System
	ModelType   string    // llama.cpp's description, e.g. "llama 1B Q4_0"
	ModelSize   uint64    // bytes of weights
	ModelParams uint64    // number of weights
	TestTime    time.Time // when the test started (UTC)
	SamplesNS   []uint64  // each repetition's time

	// Extras.

	// WeightBytesPerToken is the bytes of weights read to generate one
	// token (Facts.BytesPerToken).
	WeightBytesPerToken uint64
	// KVBytesPerToken is the mean bytes of KV cache read per generated
	// token of a generation test (its mean depth's K and V).
	KVBytesPerToken uint64
	// GPUOffload reports that layers ran on a GPU: bandwidth_pct, relative
	// to the host's memory, is then not printed.
	GPUOffload bool
	// LoadMS is the time the model took to load, in milliseconds.
	LoadMS float64
	// PromptNS is each repetition's time to process the prompt, which is
	// the time to the first token's logits (tests with a prompt only).
	PromptNS []uint64
	// PeakRSS is the process's peak resident memory after the test, since
	// the model was loaded.
	PeakRSS uint64
}

// AchievedGBps is the memory bandwidth that a generation test (tgN)
// achieved: (weight + KV bytes per token) × t/s, in GB/s. ok is false for
// other tests, whose speed is bound by computation more than memory.
func (r *Result) AchievedGBps() (gbps float64, ok bool) {
	if r.NPrompt != 0 || r.NGen == 0 || r.WeightBytesPerToken == 0 {
		return 0, false
	}
	return float64(r.WeightBytesPerToken+r.KVBytesPerToken) * r.AvgTS() / 1e9, true
}

// BandwidthPct is AchievedGBps as a percentage of the machine's measured
// memory-read bandwidth. ok is false when either is unknown or when layers
// ran on a GPU.
func (r *Result) BandwidthPct() (pct float64, ok bool) {
	g, ok := r.AchievedGBps()
	if !ok || r.MemBandwidthGBps <= 0 || r.GPUOffload {
		return 0, false
	}
	return 100 * g / r.MemBandwidthGBps, true
}

// TTFTMS is the mean time to the first token's logits in milliseconds: the
// prompt processing time of tests with a prompt. ok is false for
// generation-only tests.
func (r *Result) TTFTMS() (ms float64, ok bool) {
	if r.NPrompt == 0 || len(r.PromptNS) == 0 {
		return 0, false
	}
	m, _ := meanStd(toFloats(r.PromptNS))
	return m / 1e6, true
}

// Label names the model in tables and plots: llama.cpp's description, and
// the synthetic shape's name for a synthetic model.
func (r *Result) Label() string {
	if r.Model.Synthetic != "" {
		return r.ModelType + " (synth " + r.Model.Synthetic + ")"
	}
	return r.ModelType
}

// fieldKind is a field's type, as llama-bench's get_field_type.
type fieldKind int

const (
	kindString fieldKind = iota
	kindBool
	kindInt
	kindFloat
)

// field is one column of the csv, json, jsonl and sql formats. value
// returns its text as llama-bench's get_values writes it; ok false is a
// null (extras that do not apply to the test).
type field struct {
	name  string
	kind  fieldKind
	value func(r *Result) (v string, ok bool)
}

func str(s string) (string, bool) { return s, true }
func itoa(n int) (string, bool)   { return strconv.Itoa(n), true }
func utoa(n uint64) (string, bool) {
	return strconv.FormatUint(n, 10), true
}
func btoa(b bool) (string, bool) {
	if b {
		return "1", true
	}
	return "0", true
}

// ftoa formats like C++'s std::to_string(double): six decimals.
func ftoa(f float64) string { return fmt.Sprintf("%f", f) }

// fieldsLlamaBench are llama-bench's fields, in its order, at the llama.cpp
// commit the engine is built from. The settings this package does not vary
// (cpu_mask, poll, split_mode, ...) have llama-bench's default values.
var fieldsLlamaBench = []field{
	{"build_commit", kindString, func(r *Result) (string, bool) { return str(r.BuildCommit) }},
	{"build_number", kindInt, func(r *Result) (string, bool) { return itoa(r.BuildNumber) }},
	{"cpu_info", kindString, func(r *Result) (string, bool) { return str(r.CPUInfo) }},
	{"gpu_info", kindString, func(r *Result) (string, bool) { return str(r.GPUInfo) }},
	{"backends", kindString, func(r *Result) (string, bool) { return str(r.Backends) }},
	{"model_filename", kindString, func(r *Result) (string, bool) { return str(r.Model.Path) }},
	{"model_type", kindString, func(r *Result) (string, bool) { return str(r.ModelType) }},
	{"model_size", kindInt, func(r *Result) (string, bool) { return utoa(r.ModelSize) }},
	{"model_n_params", kindInt, func(r *Result) (string, bool) { return utoa(r.ModelParams) }},
	{"n_batch", kindInt, func(r *Result) (string, bool) { return itoa(r.Batch) }},
	{"n_ubatch", kindInt, func(r *Result) (string, bool) { return itoa(r.UBatch) }},
	{"n_threads", kindInt, func(r *Result) (string, bool) { return itoa(r.Threads) }},
	{"cpu_mask", kindString, func(*Result) (string, bool) { return str("0x0") }},
	{"cpu_strict", kindBool, func(*Result) (string, bool) { return btoa(false) }},
	{"poll", kindInt, func(*Result) (string, bool) { return itoa(50) }},
	{"type_k", kindString, func(r *Result) (string, bool) { return str(r.TypeK) }},
	{"type_v", kindString, func(r *Result) (string, bool) { return str(r.TypeV) }},
	{"n_gpu_layers", kindInt, func(r *Result) (string, bool) { return itoa(r.GPULayers) }},
	{"n_cpu_moe", kindInt, func(*Result) (string, bool) { return itoa(0) }},
	{"split_mode", kindString, func(*Result) (string, bool) { return str("layer") }},
	{"main_gpu", kindInt, func(*Result) (string, bool) { return itoa(0) }},
	{"no_kv_offload", kindBool, func(*Result) (string, bool) { return btoa(false) }},
	{"flash_attn", kindInt, func(r *Result) (string, bool) { return itoa(r.FlashAttn) }},
	{"devices", kindString, func(*Result) (string, bool) { return str("auto") }},
	{"tensor_split", kindString, func(*Result) (string, bool) { return str("0.00") }},
	{"tensor_buft_overrides", kindString, func(*Result) (string, bool) { return str("none") }},
	{"use_mmap", kindBool, func(*Result) (string, bool) { return btoa(true) }},
	{"embeddings", kindBool, func(r *Result) (string, bool) { return btoa(r.Embeddings) }},
	{"no_op_offload", kindInt, func(*Result) (string, bool) { return itoa(0) }},
	{"no_host", kindBool, func(*Result) (string, bool) { return btoa(false) }},
	{"n_prompt", kindInt, func(r *Result) (string, bool) { return itoa(r.NPrompt) }},
	{"n_gen", kindInt, func(r *Result) (string, bool) { return itoa(r.NGen) }},
	{"n_depth", kindInt, func(r *Result) (string, bool) { return itoa(r.Depth) }},
	{"test_time", kindString, func(r *Result) (string, bool) { return str(r.TestTime.UTC().Format("2006-01-02T15:04:05Z")) }},
	{"avg_ns", kindInt, func(r *Result) (string, bool) { return utoa(r.AvgNS()) }},
	{"stddev_ns", kindInt, func(r *Result) (string, bool) { return utoa(r.StddevNS()) }},
	{"avg_ts", kindFloat, func(r *Result) (string, bool) { return ftoa(r.AvgTS()), true }},
	{"stddev_ts", kindFloat, func(r *Result) (string, bool) { return ftoa(r.StddevTS()), true }},
}

// fieldsExtra are this package's fields, printed after llama-bench's.
var fieldsExtra = []field{
	{"weight_bytes_per_token", kindInt, func(r *Result) (string, bool) { return utoa(r.WeightBytesPerToken) }},
	{"kv_bytes_per_token", kindInt, func(r *Result) (string, bool) {
		if r.NGen == 0 {
			return "", false
		}
		return utoa(r.KVBytesPerToken)
	}},
	{"achieved_gbps", kindFloat, func(r *Result) (string, bool) {
		g, ok := r.AchievedGBps()
		return ftoa(g), ok
	}},
	{"mem_bandwidth_gbps", kindFloat, func(r *Result) (string, bool) {
		return ftoa(r.MemBandwidthGBps), r.MemBandwidthGBps > 0
	}},
	{"bandwidth_pct", kindFloat, func(r *Result) (string, bool) {
		p, ok := r.BandwidthPct()
		return ftoa(p), ok
	}},
	{"load_ms", kindFloat, func(r *Result) (string, bool) { return ftoa(r.LoadMS), true }},
	{"ttft_ms", kindFloat, func(r *Result) (string, bool) {
		t, ok := r.TTFTMS()
		return ftoa(t), ok
	}},
	{"peak_rss_bytes", kindInt, func(r *Result) (string, bool) {
		return strconv.FormatUint(r.PeakRSS, 10), r.PeakRSS > 0
	}},
	{"synthetic", kindString, func(r *Result) (string, bool) { return str(r.Model.Synthetic) }},
}

// allFields are the columns of csv and sql, in order.
var allFields = append(append([]field(nil), fieldsLlamaBench...), fieldsExtra...)

// LlamaBenchFields returns the names of llama-bench's fields, in the order
// csv, json, jsonl and sql print them first.
func LlamaBenchFields() []string { return fieldNames(fieldsLlamaBench) }

// ExtraFields returns the names of the fields printed after llama-bench's:
// weight_bytes_per_token, kv_bytes_per_token, achieved_gbps,
// mem_bandwidth_gbps, bandwidth_pct, load_ms, ttft_ms, peak_rss_bytes and
// synthetic. Those that do not apply to a test are null (empty in csv).
func ExtraFields() []string { return fieldNames(fieldsExtra) }

func fieldNames(fs []field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}
