package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadDuration is how long TestLoad runs: LLM_LOAD_SECONDS, else 60 s in
// CI and 5 s elsewhere.
func loadDuration(t *testing.T) time.Duration {
	if s := os.Getenv("LLM_LOAD_SECONDS"); s != "" {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n <= 0 {
			t.Fatalf("LLM_LOAD_SECONDS=%q: a positive number of seconds", s)
		}
		return time.Duration(n * float64(time.Second))
	}
	if os.Getenv("CI") == "true" {
		return 60 * time.Second
	}
	return 5 * time.Second
}

// rssBytes reads VmRSS of this process (the server runs in it), after
// returning freed memory to the system.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	debug.FreeOSMemory()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestLoad runs 32 streaming clients against one model (4 sequences, a
// queue of 8) for loadDuration: every stream must complete, or be refused
// with a deliberate 429/503, and the memory must stay flat.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const clients = 32
	cfg := testConfig(t)
	cfg.Parallel, cfg.Queue = 4, 8
	_, url := start(t, cfg)
	// Warm up, then measure.
	post(t, url+"/v1/completions", map[string]any{"model": storiesName, "prompt": "Once", "max_tokens": 8})
	rss0 := rssBytes(t)
	var completed, refused, tokens atomic.Int64
	deadline := time.Now().Add(loadDuration(t))
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for i := 0; time.Now().Before(deadline); i++ {
				n, err := loadRequest(url, rng, c%2 == 0)
				switch {
				case err == errRefused:
					refused.Add(1)
					time.Sleep(time.Duration(20+rng.IntN(30)) * time.Millisecond)
				case err != nil:
					t.Errorf("client %d, request %d: %v", c, i, err)
					return
				default:
					completed.Add(1)
					tokens.Add(int64(n))
				}
			}
		})
	}
	wg.Wait()
	rss1 := rssBytes(t)
	elapsed := loadDuration(t)
	t.Logf("%d clients for %v: %d streams completed, %d refused (429/503), %d tokens (%.0f tokens/s); RSS %.1f MB → %.1f MB",
		clients, elapsed, completed.Load(), refused.Load(), tokens.Load(), float64(tokens.Load())/elapsed.Seconds(),
		float64(rss0)/1e6, float64(rss1)/1e6)
	if completed.Load() == 0 {
		t.Error("no stream completed")
	}
	if growth := rss1 - rss0; growth > 200<<20 {
		t.Errorf("RSS grew by %.1f MB", float64(growth)/1e6)
	}
	if v := metricValue(t, url, `llm_requests_admitted{model="stories260K"}`); v != 0 {
		t.Errorf("%v requests still admitted after the load", v)
	}
}

var errRefused = fmt.Errorf("refused")

// loadRequest streams one generation (OpenAI chat or Ollama generate) and
// checks the stream; it returns the tokens generated.
func loadRequest(url string, rng *rand.Rand, openAI bool) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	maxTokens := 16 + rng.IntN(48)
	var body map[string]any
	path := "/api/generate"
	if openAI {
		path = "/v1/chat/completions"
		body = map[string]any{"model": storiesName, "stream": true, "max_tokens": maxTokens, "temperature": rng.Float64(),
			"seed": rng.IntN(1000), "stream_options": map[string]any{"include_usage": true},
			"messages": []map[string]any{{"role": "user", "content": "Once upon a time"}}}
	} else {
		body = map[string]any{"model": storiesName, "prompt": "Lily and Tom", "options": map[string]any{"num_predict": maxTokens, "seed": rng.IntN(1000)}}
	}
	data, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" {
			return 0, fmt.Errorf("%d without Retry-After", resp.StatusCode)
		}
		return 0, errRefused
	default:
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b.String())
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var last string
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			last = l
			if strings.Contains(l, `"error"`) {
				return 0, fmt.Errorf("error event %s", l)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if openAI {
		if last != "data: [DONE]" {
			return 0, fmt.Errorf("the stream ended with %q", last)
		}
		return maxTokens, nil // an upper bound: the usage chunk has the count
	}
	var final struct {
		Done      bool `json:"done"`
		EvalCount int  `json:"eval_count"`
	}
	if err := json.Unmarshal([]byte(last), &final); err != nil || !final.Done {
		return 0, fmt.Errorf("the stream ended with %q", last)
	}
	return final.EvalCount, nil
}
