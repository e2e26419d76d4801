package server

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ttftBuckets are the upper bounds of the time-to-first-token histogram,
// in seconds.
var ttftBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// rateWindow is the span over which llm_generated_tokens_per_second is
// averaged.
const rateWindow = 10 * time.Second

// metrics counts what /metrics exposes. Gauges of the models' load are
// read from the manager when scraped.
type metrics struct {
	mu        sync.Mutex
	requests  map[[2]string]uint64 // endpoint, status → count
	prompt    map[string]uint64    // model → prompt tokens
	generated map[string]uint64    // model → generated tokens
	ttft      map[string]*histogram
	loads     map[string]uint64
	failures  map[string]uint64
	unloads   map[string]uint64
	loadSecs  map[string]float64
	recent    map[string]*tokenRate
}

func newMetrics() *metrics {
	return &metrics{requests: map[[2]string]uint64{}, prompt: map[string]uint64{}, generated: map[string]uint64{},
		ttft: map[string]*histogram{}, loads: map[string]uint64{}, failures: map[string]uint64{},
		unloads: map[string]uint64{}, loadSecs: map[string]float64{}, recent: map[string]*tokenRate{}}
}

// histogram is a Prometheus histogram with fixed buckets.
type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(ttftBuckets, v)
	if i < len(h.counts) {
		h.counts[i]++
	}
	h.sum += v
	h.n++
}

// tokenRate counts generated tokens in one-second slots over rateWindow.
type tokenRate struct {
	slots [int(rateWindow / time.Second)]struct {
		sec int64
		n   uint64
	}
}

func (r *tokenRate) add(now time.Time, n int) {
	sec := now.Unix()
	s := &r.slots[sec%int64(len(r.slots))]
	if s.sec != sec {
		s.sec, s.n = sec, 0
	}
	s.n += uint64(n)
}

// perSecond is the average over the last rateWindow.
func (r *tokenRate) perSecond(now time.Time) float64 {
	var total uint64
	for _, s := range r.slots {
		if now.Unix()-s.sec < int64(len(r.slots)) {
			total += s.n
		}
	}
	return float64(total) / rateWindow.Seconds()
}

// request counts one answered request.
func (m *metrics) request(endpoint string, status int) {
	m.mu.Lock()
	m.requests[[2]string{endpoint, strconv.Itoa(status)}]++
	m.mu.Unlock()
}

// generation records one generation's tokens and time to first token
// (ttft < 0 when no token came).
func (m *metrics) generation(model string, prompt, generated int, ttft time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prompt[model] += uint64(prompt)
	m.generated[model] += uint64(generated)
	if ttft >= 0 && generated > 0 {
		h := m.ttft[model]
		if h == nil {
			h = &histogram{counts: make([]uint64, len(ttftBuckets))}
			m.ttft[model] = h
		}
		h.observe(ttft.Seconds())
	}
}

// tokens records generated tokens as they are made, for the rate gauge.
func (m *metrics) tokens(model string, n int) {
	m.mu.Lock()
	r := m.recent[model]
	if r == nil {
		r = &tokenRate{}
		m.recent[model] = r
	}
	r.add(time.Now(), n)
	m.mu.Unlock()
}

func (m *metrics) loaded(model string, d time.Duration) {
	m.mu.Lock()
	m.loads[model]++
	m.loadSecs[model] += d.Seconds()
	m.mu.Unlock()
}

func (m *metrics) loadFailed(model string) {
	m.mu.Lock()
	m.failures[model]++
	m.mu.Unlock()
}

func (m *metrics) unloaded(model string) {
	m.mu.Lock()
	m.unloads[model]++
	m.mu.Unlock()
}

// handleMetrics writes the Prometheus text exposition format.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	s.metrics.write(&b, s.models.loaded(), s.models.admitted(), s.cfg)
	io.WriteString(w, b.String())
}

func (m *metrics) write(w io.Writer, loaded []loadedModel, admitted map[string]int, cfg Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()

	family(w, "llm_http_requests_total", "counter", "HTTP requests answered, by endpoint and status.")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	for _, k := range keys {
		fmt.Fprintf(w, "llm_http_requests_total{endpoint=%s,status=%s} %d\n", quote(k[0]), quote(k[1]), m.requests[k])
	}
	counter(w, "llm_prompt_tokens_total", "Prompt tokens of finished generations, by model.", m.prompt)
	counter(w, "llm_generated_tokens_total", "Generated tokens of finished generations, by model.", m.generated)
	counter(w, "llm_model_loads_total", "Models loaded.", m.loads)
	counter(w, "llm_model_load_failures_total", "Model loads that failed.", m.failures)
	counter(w, "llm_model_unloads_total", "Models unloaded.", m.unloads)
	family(w, "llm_model_load_seconds_total", "counter", "Seconds spent loading models.")
	for _, k := range sortedKeys(m.loadSecs) {
		fmt.Fprintf(w, "llm_model_load_seconds_total{model=%s} %s\n", quote(k), num(m.loadSecs[k]))
	}

	family(w, "llm_time_to_first_token_seconds", "histogram", "Time from a request's arrival at the model to its first generated token.")
	for _, k := range sortedKeys(m.ttft) {
		h := m.ttft[k]
		var cum uint64
		for i, le := range ttftBuckets {
			cum += h.counts[i]
			fmt.Fprintf(w, "llm_time_to_first_token_seconds_bucket{model=%s,le=%s} %d\n", quote(k), quote(num(le)), cum)
		}
		fmt.Fprintf(w, "llm_time_to_first_token_seconds_bucket{model=%s,le=\"+Inf\"} %d\n", quote(k), h.n)
		fmt.Fprintf(w, "llm_time_to_first_token_seconds_sum{model=%s} %s\n", quote(k), num(h.sum))
		fmt.Fprintf(w, "llm_time_to_first_token_seconds_count{model=%s} %d\n", quote(k), h.n)
	}

	family(w, "llm_generated_tokens_per_second", "gauge", fmt.Sprintf("Tokens generated per second by all requests of a model, averaged over the last %v.", rateWindow))
	for _, k := range sortedKeys(m.recent) {
		fmt.Fprintf(w, "llm_generated_tokens_per_second{model=%s} %s\n", quote(k), num(m.recent[k].perSecond(now)))
	}

	family(w, "llm_models_loaded", "gauge", "Models loaded now.")
	fmt.Fprintf(w, "llm_models_loaded %d\n", len(loaded))
	family(w, "llm_model_memory_bytes", "gauge", "Estimated memory of a loaded model: weights plus KV cache.")
	for _, l := range loaded {
		fmt.Fprintf(w, "llm_model_memory_bytes{model=%s} %d\n", quote(l.name), l.mem.Total())
	}
	family(w, "llm_requests_running", "gauge", "Requests decoding in a sequence of the model.")
	for _, l := range loaded {
		fmt.Fprintf(w, "llm_requests_running{model=%s} %d\n", quote(l.name), l.p.Stats().Running)
	}
	family(w, "llm_queue_depth", "gauge", "Requests admitted to a model and waiting for a sequence.")
	for _, l := range loaded {
		fmt.Fprintf(w, "llm_queue_depth{model=%s} %d\n", quote(l.name), l.p.Stats().Waiting)
	}
	family(w, "llm_requests_admitted", "gauge", "Generations holding a model (loaded or loading): running, waiting, or still answering; a request with n choices counts n.")
	for _, k := range sortedKeys(admitted) {
		fmt.Fprintf(w, "llm_requests_admitted{model=%s} %d\n", quote(k), admitted[k])
	}
	family(w, "llm_queue_capacity", "gauge", "Requests a model runs at once plus those that may wait; more are refused.")
	fmt.Fprintf(w, "llm_queue_capacity{kind=\"running\"} %d\nllm_queue_capacity{kind=\"waiting\"} %d\n", cfg.Parallel, cfg.Queue)
}

func family(w io.Writer, name, kind, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func counter[V uint64 | float64](w io.Writer, name, help string, m map[string]V) {
	family(w, name, "counter", help)
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(w, "%s{model=%s} %v\n", name, quote(k), m[k])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// quote writes a label value: quoted, with \, " and newlines escaped.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// num formats a sample value.
func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
