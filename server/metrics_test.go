package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestMetrics: /metrics counts requests by endpoint and status, tokens in
// and out, time to first token, and shows the queue, in valid Prometheus
// text format.
func TestMetrics(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	post(t, url+"/v1/chat/completions", map[string]any{"model": storiesName, "temperature": 0, "max_tokens": ref.NPredict,
		"messages": []map[string]any{{"role": "user", "content": ref.Prompt}}})
	post(t, url+"/api/generate", map[string]any{"model": storiesName, "prompt": ref.Prompt, "options": greedyOllama(ref.NPredict)})
	post(t, url+"/v1/chat/completions", map[string]any{"model": "nope", "messages": []map[string]any{{"role": "user", "content": "x"}}})

	resp, body := get(t, url+"/metrics")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		`llm_http_requests_total{endpoint="/v1/chat/completions",status="200"} 1`,
		`llm_http_requests_total{endpoint="/v1/chat/completions",status="404"} 1`,
		`llm_http_requests_total{endpoint="/api/generate",status="200"} 1`,
		`llm_prompt_tokens_total{model="stories260K"} 10`,
		`llm_generated_tokens_total{model="stories260K"} 128`,
		`llm_time_to_first_token_seconds_count{model="stories260K"} 2`,
		`llm_time_to_first_token_seconds_bucket{model="stories260K",le="+Inf"} 2`,
		`llm_queue_depth{model="stories260K"} 0`,
		`llm_requests_running{model="stories260K"} 0`,
		`llm_models_loaded 1`,
		`llm_model_loads_total{model="stories260K"} 1`,
		`# TYPE llm_time_to_first_token_seconds histogram`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	if v := metricValue(t, url, `llm_generated_tokens_per_second{model="stories260K"}`); v <= 0 {
		t.Errorf("tokens per second %v", v)
	}
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+)$`)
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if !sample.MatchString(line) {
			t.Errorf("not a sample line: %q", line)
		}
	}
}
