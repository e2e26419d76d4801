package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/testmodel"
)

// TestSuffix: Ollama's /api/generate and OpenAI's /v1/completions take a
// suffix and fill in the middle, giving the text llm.Suffix gives; a model
// without FIM tokens answers 400 naming the field, and so do token-id
// prompts with a suffix.
func TestSuffix(t *testing.T) {
	fim := testmodel.StoriesWithFIM(t, "coder")
	prefix, suffix := "Once upon a time, there was", " They were happy."
	p, err := llm.New(context.Background(), fim, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Generate(context.Background(), prefix, llm.Temperature(0), llm.MaxTokens(12), llm.Suffix(suffix))
	p.Close()
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.Models, cfg.MaxModels = append(cfg.Models, fim), 2
	_, url := start(t, cfg)
	resp, body := post(t, url+"/api/generate", map[string]any{"model": "coder", "prompt": prefix, "suffix": suffix,
		"stream": false, "options": greedyOllama(12)})
	if got := decode[struct{ Response string }](t, body); resp.StatusCode != http.StatusOK || got.Response != want.Text {
		t.Errorf("/api/generate with suffix: %d %s, want %q", resp.StatusCode, body, want.Text)
	}
	resp, body = post(t, url+"/v1/completions", map[string]any{"model": "coder", "prompt": prefix, "suffix": suffix,
		"temperature": 0, "max_tokens": 12})
	got := decode[struct{ Choices []struct{ Text string } }](t, body)
	if resp.StatusCode != http.StatusOK || len(got.Choices) != 1 || got.Choices[0].Text != want.Text {
		t.Errorf("/v1/completions with suffix: %d %s, want %q", resp.StatusCode, body, want.Text)
	}

	for _, tc := range []struct{ path, model string }{
		{"/api/generate", storiesName}, {"/v1/completions", storiesName},
	} {
		resp, body := post(t, url+tc.path, map[string]any{"model": tc.model, "prompt": prefix, "suffix": suffix, "stream": false})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "fill-in-the-middle") {
			t.Errorf("%s without FIM tokens: %d %s", tc.path, resp.StatusCode, body)
		}
	}
	resp, body = post(t, url+"/v1/completions", map[string]any{"model": "coder", "prompt": []int{1, 2, 3}, "suffix": suffix})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "suffix") {
		t.Errorf("token ids with a suffix: %d %s", resp.StatusCode, body)
	}
}
