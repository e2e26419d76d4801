package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/llm-go/llm"
)

// TestQueueFull: with one request running and no queue, another is
// refused at once: 429 with Retry-After on OpenAI routes, 503 with
// Retry-After on Ollama routes. A queue of one admits one more.
func TestQueueFull(t *testing.T) {
	for _, queue := range []int{-1, 1} {
		t.Run("queue "+strconv.Itoa(max(queue, 0)), func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			cfg := testConfig(t)
			cfg.Models, cfg.Parallel, cfg.Queue = nil, 1, queue
			// The first request holds the model while it loads: a
			// deterministic long-running request.
			cfg.Loader = func(ctx context.Context, name string, opts ...llm.Option) (*llm.Pipeline, error) {
				once.Do(func() { close(entered) })
				<-release
				return llm.New(ctx, name, opts...)
			}
			_, url := start(t, cfg)
			model := storiesPath(t)
			var wg sync.WaitGroup
			admitted := 1 + max(queue, 0)
			statuses := make(chan int, admitted)
			for i := range admitted {
				wg.Go(func() {
					resp, body := post(t, url+"/v1/completions", map[string]any{"model": model, "prompt": "Once", "max_tokens": 2})
					if resp.StatusCode != http.StatusOK {
						t.Errorf("admitted request %d: %d %s", i, resp.StatusCode, body)
					}
					statuses <- resp.StatusCode
				})
				if i == 0 {
					<-entered
				}
			}
			waitFor(t, "the queue to fill", func() bool {
				return metricValue(t, url, `llm_requests_admitted{model="`+model+`"}`) == float64(admitted)
			})
			resp, body := post(t, url+"/v1/chat/completions", map[string]any{"model": model, "messages": []map[string]any{{"role": "user", "content": "Hi"}}})
			e := decode[openAIError](t, body)
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
				e.Error.Type != "rate_limit_error" || *e.Error.Code != "rate_limit_exceeded" {
				t.Errorf("OpenAI route: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			resp, body = post(t, url+"/api/generate", map[string]any{"model": model, "prompt": "Once"})
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
				decode[ollamaResp](t, body).Error == "" {
				t.Errorf("Ollama route: %d %s", resp.StatusCode, body)
			}
			close(release)
			wg.Wait()
			resp, body = post(t, url+"/v1/completions", map[string]any{"model": model, "prompt": "Once", "max_tokens": 2})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("after the queue drained: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// metricValue reads one sample from /metrics (-1 when absent).
func metricValue(t *testing.T, url, series string) float64 {
	t.Helper()
	_, body := get(t, url+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

// TestClientDisconnect: a client that goes away mid-stream ends its
// request: the sequence is freed and the next request runs at once.
func TestClientDisconnect(t *testing.T) {
	cfg := testConfig(t)
	cfg.Parallel, cfg.Queue = 1, -1
	_, url := start(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Greedy stories260K with context shifting writes for tens of
	// thousands of tokens without an end-of-text token.
	body, _ := json.Marshal(map[string]any{"model": storiesName, "prompt": "Once upon a time",
		"options": map[string]any{"temperature": 0, "repeat_penalty": 1, "num_predict": 1000000}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/generate", bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for range 20 {
		if !sc.Scan() {
			t.Fatalf("the stream ended: %v", sc.Err())
		}
	}
	running := `llm_requests_running{model="stories260K"}`
	if v := metricValue(t, url, running); v != 1 {
		t.Fatalf("%s %v while streaming", running, v)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "the request to end", func() bool {
		return metricValue(t, url, running) == 0 && metricValue(t, url, `llm_requests_admitted{model="stories260K"}`) == 0
	})
	if resp, body := post(t, url+"/v1/completions", map[string]any{"model": storiesName, "prompt": "Once", "max_tokens": 2}); resp.StatusCode != http.StatusOK {
		t.Errorf("after the disconnect: %d %s", resp.StatusCode, body)
	}
}
