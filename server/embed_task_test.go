package server_test

import (
	"context"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/internal/testmodel"
)

// TestEmbedTask: /v1/embeddings and /api/embed take a task (Jina's
// embeddings API field) and embed for it as Pipeline.EmbedWith does,
// counting the instruction's tokens; an unknown task is a 400 naming the
// field.
func TestEmbedTask(t *testing.T) {
	model, _ := testmodel.StoriesWithTask(t, "tasked", "query", "Represent the query: ")
	p, err := llm.New(context.Background(), model, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.EmbedWith(context.Background(), llm.EmbedOptions{Task: "query"}, "The dog ran.")
	p.Close()
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.Models = []string{model}
	_, url := start(t, cfg)
	type openAI struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	near := func(got []float64) bool {
		if len(got) != len(want[0]) {
			return false
		}
		for i := range got {
			if math.Abs(got[i]-float64(want[0][i])) > 1e-5 {
				return false
			}
		}
		return true
	}
	resp, body := post(t, url+"/v1/embeddings", map[string]any{"model": "tasked", "input": "The dog ran.", "task": "query"})
	task := decode[openAI](t, body)
	if resp.StatusCode != http.StatusOK || len(task.Data) != 1 || !near(task.Data[0].Embedding) {
		t.Errorf("/v1/embeddings with the task: %d %.300s", resp.StatusCode, body)
	}
	_, body = post(t, url+"/v1/embeddings", map[string]any{"model": "tasked", "input": "The dog ran."})
	plain := decode[openAI](t, body)
	if len(plain.Data) != 1 || near(plain.Data[0].Embedding) || task.Usage.PromptTokens <= plain.Usage.PromptTokens {
		t.Errorf("without the task: the same embedding, or %d tokens with the instruction, %d without", task.Usage.PromptTokens, plain.Usage.PromptTokens)
	}
	resp, body = post(t, url+"/api/embed", map[string]any{"model": "tasked", "input": "The dog ran.", "task": "query"})
	ollama := decode[struct {
		Embeddings [][]float64 `json:"embeddings"`
	}](t, body)
	if resp.StatusCode != http.StatusOK || len(ollama.Embeddings) != 1 || !near(ollama.Embeddings[0]) {
		t.Errorf("/api/embed with the task: %d %.300s", resp.StatusCode, body)
	}
	for _, path := range []string{"/v1/embeddings", "/api/embed"} {
		resp, body = post(t, url+path, map[string]any{"model": "tasked", "input": "x", "task": "passage"})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "query") {
			t.Errorf("%s, an unknown task: %d %s", path, resp.StatusCode, body)
		}
	}
	if !strings.Contains(string(body), "passage") {
		t.Errorf("/api/embed's error does not name the task: %s", body)
	}
	// A task name that is not one is refused before any file is looked for.
	resp, body = post(t, url+"/v1/embeddings", map[string]any{"model": "tasked", "input": "x", "task": "/../../etc/passwd"})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"task"`) || strings.Contains(string(body), "lora-") {
		t.Errorf("a task name with a path: %d %s", resp.StatusCode, body)
	}
	// /api/embed cuts an input to the context with the instruction before
	// it (512 positions here).
	long := strings.Repeat("Once upon a time there was a little girl. ", 80)
	resp, body = post(t, url+"/api/embed", map[string]any{"model": "tasked", "input": long, "task": "query"})
	cut := decode[struct {
		PromptEvalCount int `json:"prompt_eval_count"`
	}](t, body)
	if resp.StatusCode != http.StatusOK || cut.PromptEvalCount > 512 || cut.PromptEvalCount < 500 {
		t.Errorf("/api/embed a long input with the task: %d, %d tokens (want 500 to 512) %.200s", resp.StatusCode, cut.PromptEvalCount, body)
	}
}
