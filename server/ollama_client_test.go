package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ollama/ollama/api"
)

// TestOllamaClient drives the server with Ollama's own Go client: Generate
// and Chat streaming, Embed, List, Show and an error.
func TestOllamaClient(t *testing.T) {
	ref := reference(t)
	_, base := start(t, testConfig(t))
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(u, http.DefaultClient)
	ctx := context.Background()
	opts := map[string]any{"temperature": 0, "repeat_penalty": 1, "num_predict": ref.NPredict}

	var text strings.Builder
	var last api.GenerateResponse
	chunks := 0
	err = c.Generate(ctx, &api.GenerateRequest{Model: storiesName, Prompt: ref.Prompt, Options: opts}, func(r api.GenerateResponse) error {
		text.WriteString(r.Response)
		last = r
		chunks++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if text.String() != ref.Text || !last.Done || last.DoneReason != "length" || last.EvalCount != ref.NPredict ||
		last.PromptEvalCount != 5 || last.TotalDuration <= 0 || chunks < 10 {
		t.Errorf("generate: %q in %d chunks, last %+v", text.String(), chunks, last.Metrics)
	}

	text.Reset()
	var lastChat api.ChatResponse
	err = c.Chat(ctx, &api.ChatRequest{Model: storiesName, Messages: []api.Message{{Role: "user", Content: ref.Prompt}}, Options: opts},
		func(r api.ChatResponse) error {
			text.WriteString(r.Message.Content)
			lastChat = r
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if text.String() != ref.Text || !lastChat.Done || lastChat.Message.Role != "assistant" {
		t.Errorf("chat: %q, last %+v", text.String(), lastChat)
	}

	emb, err := c.Embed(ctx, &api.EmbedRequest{Model: storiesName, Input: []string{"The little dog", "Lily"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Embeddings) != 2 || len(emb.Embeddings[0]) != 64 || emb.Model != storiesName {
		t.Errorf("embed: %d vectors", len(emb.Embeddings))
	}

	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Models) != 1 || list.Models[0].Name != storiesName || list.Models[0].Details.Family != "llama" {
		t.Errorf("list: %+v", list.Models)
	}

	show, err := c.Show(ctx, &api.ShowRequest{Model: storiesName})
	if err != nil {
		t.Fatal(err)
	}
	if show.ModelInfo["general.architecture"] != "llama" || show.Details.Format != "gguf" || show.Details.ParameterSize != "292.80K" {
		t.Errorf("show: %+v %+v", show.Details, show.ModelInfo["general.architecture"])
	}

	ps, err := c.ListRunning(ctx)
	if err != nil || len(ps.Models) != 1 || ps.Models[0].Name != storiesName {
		t.Errorf("ps: %+v %v", ps, err)
	}
	if _, err := c.Version(ctx); err != nil {
		t.Errorf("version: %v", err)
	}

	err = c.Generate(ctx, &api.GenerateRequest{Model: "no-such-model", Prompt: "x"}, func(api.GenerateResponse) error { return nil })
	var se api.StatusError
	if !errorsAs(err, &se) || se.StatusCode != http.StatusNotFound || !strings.Contains(se.ErrorMessage, "no-such-model") {
		t.Errorf("unknown model: %v", err)
	}
}
