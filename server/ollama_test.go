package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

type ollamaResp struct {
	Model     string    `json:"model"`
	CreatedAt time.Time `json:"created_at"`
	Response  string    `json:"response"`
	Message   *struct {
		Role      string `json:"role"`
		Content   string `json:"content"`
		ToolCalls []struct {
			Function struct {
				Name      string         `json:"name"`
				Arguments map[string]any `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"message"`
	Done               bool   `json:"done"`
	DoneReason         string `json:"done_reason"`
	TotalDuration      int64  `json:"total_duration"`
	PromptEvalCount    int    `json:"prompt_eval_count"`
	PromptEvalDuration int64  `json:"prompt_eval_duration"`
	EvalCount          int    `json:"eval_count"`
	EvalDuration       int64  `json:"eval_duration"`
	Error              string `json:"error"`
}

// greedyOllama are Ollama options for the reference's greedy decoding
// (Ollama's default repeat penalty 1.1 would change it).
func greedyOllama(n int) map[string]any {
	return map[string]any{"temperature": 0, "repeat_penalty": 1, "num_predict": n}
}

// TestOllamaGenerate: greedy text equals the reference, streamed (the
// default) and not; the final object has Ollama's counts and durations.
func TestOllamaGenerate(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	resp, body := post(t, url+"/api/generate", map[string]any{"model": storiesName, "prompt": ref.Prompt,
		"stream": false, "options": greedyOllama(ref.NPredict)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	r := decode[ollamaResp](t, body)
	if r.Response != ref.Text || !r.Done || r.DoneReason != "length" || r.EvalCount != ref.NPredict ||
		r.PromptEvalCount != 5 || r.TotalDuration <= 0 || r.EvalDuration <= 0 || r.Model != storiesName || r.CreatedAt.IsZero() {
		t.Errorf("generate: %s", body)
	}

	resp, body = post(t, url+"/api/generate", map[string]any{"model": storiesName, "prompt": ref.Prompt,
		"options": greedyOllama(ref.NPredict)})
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" {
		t.Fatalf("status %d, %s: %s", resp.StatusCode, ct, body)
	}
	lines := ndjsonLines(body)
	var text strings.Builder
	for i, l := range lines {
		c := decode[ollamaResp](t, []byte(l))
		text.WriteString(c.Response)
		if c.Done != (i == len(lines)-1) {
			t.Errorf("line %d of %d: done %v", i, len(lines), c.Done)
		}
	}
	last := decode[ollamaResp](t, []byte(lines[len(lines)-1]))
	if text.String() != ref.Text || last.DoneReason != "length" || last.EvalCount != ref.NPredict || last.PromptEvalCount != 5 {
		t.Errorf("streamed %q, last %s", text.String(), lines[len(lines)-1])
	}

	// stop and format.
	_, body = post(t, url+"/api/generate", map[string]any{"model": storiesName, "prompt": ref.Prompt, "stream": false,
		"options": map[string]any{"temperature": 0, "repeat_penalty": 1, "num_predict": 64, "stop": []string{"Lily"}}})
	if r := decode[ollamaResp](t, body); r.Response != ref.Text[:strings.Index(ref.Text, "Lily")] || r.DoneReason != "stop" {
		t.Errorf("stop: %s", body)
	}
	_, body = post(t, url+"/api/generate", map[string]any{"model": storiesName, "prompt": ref.Prompt, "stream": false,
		"format": "json", "options": greedyOllama(16)})
	if r := decode[ollamaResp](t, body); !strings.HasPrefix(strings.TrimSpace(r.Response), "{") {
		t.Errorf("format json: %s", body)
	}
}

// TestOllamaChat: a chat with a model without template is its messages
// joined, so the greedy reply to the reference prompt is the reference.
func TestOllamaChat(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	req := map[string]any{"model": storiesName, "messages": []map[string]any{{"role": "user", "content": ref.Prompt}},
		"stream": false, "options": greedyOllama(ref.NPredict)}
	resp, body := post(t, url+"/api/chat", req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	r := decode[ollamaResp](t, body)
	if r.Message == nil || r.Message.Role != "assistant" || r.Message.Content != ref.Text || r.DoneReason != "length" {
		t.Errorf("chat: %s", body)
	}
	delete(req, "stream")
	_, body = post(t, url+"/api/chat", req)
	var text strings.Builder
	lines := ndjsonLines(body)
	for _, l := range lines {
		text.WriteString(decode[ollamaResp](t, []byte(l)).Message.Content)
	}
	if text.String() != ref.Text || !decode[ollamaResp](t, []byte(lines[len(lines)-1])).Done {
		t.Errorf("streamed chat %q", text.String())
	}
}

// TestOllamaModels: tags, show, ps and version.
func TestOllamaModels(t *testing.T) {
	_, url := start(t, testConfig(t))
	resp, body := get(t, url+"/api/tags")
	tags := decode[struct {
		Models []struct {
			Name    string `json:"name"`
			Size    int64  `json:"size"`
			Digest  string `json:"digest"`
			Details struct {
				Format            string `json:"format"`
				Family            string `json:"family"`
				ParameterSize     string `json:"parameter_size"`
				QuantizationLevel string `json:"quantization_level"`
			} `json:"details"`
		} `json:"models"`
	}](t, body)
	if resp.StatusCode != http.StatusOK || len(tags.Models) != 1 {
		t.Fatalf("tags %s", body)
	}
	m := tags.Models[0]
	if m.Name != storiesName || m.Size != 1185376 || len(m.Digest) != 64 || m.Details.Format != "gguf" ||
		m.Details.Family != "llama" || m.Details.ParameterSize != "292.80K" || m.Details.QuantizationLevel != "F32" {
		t.Errorf("tag %+v", m)
	}

	resp, body = post(t, url+"/api/show", map[string]any{"model": storiesName})
	show := decode[struct {
		Details      map[string]any `json:"details"`
		ModelInfo    map[string]any `json:"model_info"`
		Capabilities []string       `json:"capabilities"`
		Parameters   string         `json:"parameters"`
	}](t, body)
	if resp.StatusCode != http.StatusOK || show.ModelInfo["general.architecture"] != "llama" ||
		show.ModelInfo["llama.block_count"] != float64(5) || show.ModelInfo["tokenizer.ggml.tokens"] != nil ||
		!strings.Contains(show.Parameters, "num_ctx 512") || !slices.Equal(show.Capabilities, []string{"completion"}) {
		t.Errorf("show %s", body)
	}
	if resp, body := post(t, url+"/api/show", map[string]any{"model": "nope"}); resp.StatusCode != http.StatusNotFound ||
		!strings.Contains(decode[ollamaResp](t, body).Error, `"nope"`) {
		t.Errorf("show nope: %d %s", resp.StatusCode, body)
	}

	_, body = get(t, url+"/api/ps")
	ps := decode[struct {
		Models []struct {
			Name          string    `json:"name"`
			Size          int64     `json:"size"`
			ExpiresAt     time.Time `json:"expires_at"`
			ContextLength int       `json:"context_length"`
		} `json:"models"`
	}](t, body)
	// KV: 2 bytes × 5 layers × 512 positions × 4 KV heads × (8 + 8).
	if len(ps.Models) != 1 || ps.Models[0].Name != storiesName || ps.Models[0].Size != 1185376+2*5*512*4*16 ||
		ps.Models[0].ContextLength != 512 || time.Until(ps.Models[0].ExpiresAt) < 4*time.Minute {
		t.Errorf("ps %s", body)
	}

	resp, body = get(t, url+"/api/version")
	if v := decode[map[string]string](t, body); resp.StatusCode != http.StatusOK || v["version"] == "" {
		t.Errorf("version %s", body)
	}
	resp, body = get(t, url+"/health")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("health %d %s", resp.StatusCode, body)
	}
}

// TestOllamaEmbed: /api/embed and the legacy /api/embeddings agree.
func TestOllamaEmbed(t *testing.T) {
	_, url := start(t, testConfig(t))
	resp, body := post(t, url+"/api/embed", map[string]any{"model": storiesName, "input": []string{"The little dog", "Lily"}})
	e := decode[struct {
		Model           string      `json:"model"`
		Embeddings      [][]float64 `json:"embeddings"`
		PromptEvalCount int         `json:"prompt_eval_count"`
	}](t, body)
	if resp.StatusCode != http.StatusOK || len(e.Embeddings) != 2 || len(e.Embeddings[0]) != 64 || e.PromptEvalCount == 0 {
		t.Fatalf("embed %s", body)
	}
	resp, body = post(t, url+"/api/embeddings", map[string]any{"model": storiesName, "prompt": "The little dog"})
	legacy := decode[struct {
		Embedding []float64 `json:"embedding"`
	}](t, body)
	if resp.StatusCode != http.StatusOK || len(legacy.Embedding) != 64 {
		t.Fatalf("embeddings %s", body)
	}
	for i, x := range legacy.Embedding {
		if d := x - e.Embeddings[0][i]; d > 1e-6 || d < -1e-6 {
			t.Fatalf("dimension %d: %g vs %g", i, x, e.Embeddings[0][i])
		}
	}
}

// TestOllamaEmbedTruncate: /api/embed cuts an input longer than the
// context to fit (truncate, the default), leaving short inputs as they
// are; truncate false refuses it (TestErrors).
func TestOllamaEmbedTruncate(t *testing.T) {
	_, url := start(t, testConfig(t))
	type embedResp struct {
		Embeddings      [][]float64 `json:"embeddings"`
		PromptEvalCount int         `json:"prompt_eval_count"`
		Error           string      `json:"error"`
	}
	long := strings.Repeat("Once upon a time there was a little girl. ", 80)
	_, body := post(t, url+"/api/embed", map[string]any{"model": storiesName, "input": "The little dog"})
	short := decode[embedResp](t, body)
	for _, truncate := range []any{nil, true} {
		req := map[string]any{"model": storiesName, "input": []string{"The little dog", long}}
		if truncate != nil {
			req["truncate"] = truncate
		}
		resp, body := post(t, url+"/api/embed", req)
		e := decode[embedResp](t, body)
		if resp.StatusCode != http.StatusOK || len(e.Embeddings) != 2 || len(e.Embeddings[1]) != 64 {
			t.Fatalf("truncate %v: %d %s", truncate, resp.StatusCode, body)
		}
		// The long input keeps as many of the 512 positions as a cut at a
		// character boundary allows.
		if n := e.PromptEvalCount - short.PromptEvalCount; n > 512 || n < 500 {
			t.Errorf("truncate %v: the long input counts %d tokens", truncate, n)
		}
		for i, x := range short.Embeddings[0] {
			if d := x - e.Embeddings[0][i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("truncate %v changed a short input: dimension %d: %g vs %g", truncate, i, e.Embeddings[0][i], x)
			}
		}
	}
}
