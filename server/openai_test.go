package server_test

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
)

type chatResp struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role      string  `json:"role"`
			Content   *string `json:"content"`
			ToolCalls []struct {
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
		Delta struct {
			Role             string  `json:"role"`
			Content          *string `json:"content"`
			ReasoningContent string  `json:"reasoning_content"`
			ToolCalls        []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		Text     string `json:"text"`
		Logprobs *struct {
			Content []struct {
				Token       string  `json:"token"`
				Logprob     float64 `json:"logprob"`
				TopLogprobs []struct {
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
				} `json:"top_logprobs"`
			} `json:"content"`
			Tokens        []string  `json:"tokens"`
			TokenLogprobs []float64 `json:"token_logprobs"`
		} `json:"logprobs"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// TestOpenAIChatGreedy: a greedy chat completion of the reference prompt is
// the reference text, with usage counted.
func TestOpenAIChatGreedy(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	resp, body := post(t, url+"/v1/chat/completions", map[string]any{
		"model": storiesName, "messages": []map[string]any{{"role": "user", "content": ref.Prompt}},
		"temperature": 0, "max_tokens": ref.NPredict,
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	r := decode[chatResp](t, body)
	if r.Object != "chat.completion" || r.Model != storiesName || !strings.HasPrefix(r.ID, "chatcmpl-") || len(r.Choices) != 1 {
		t.Fatalf("response %s", body)
	}
	c := r.Choices[0]
	if c.Message.Role != "assistant" || c.Message.Content == nil || *c.Message.Content != ref.Text {
		t.Errorf("content %v, want %q", c.Message.Content, ref.Text)
	}
	if c.FinishReason == nil || *c.FinishReason != "length" {
		t.Errorf("finish_reason %v, want length", c.FinishReason)
	}
	if r.Usage == nil || r.Usage.PromptTokens != 5 || r.Usage.CompletionTokens != ref.NPredict || r.Usage.TotalTokens != 5+ref.NPredict {
		t.Errorf("usage %+v, want 5 + %d", r.Usage, ref.NPredict)
	}
}

// TestOpenAIChatStream: streamed chunks add up to the reference text; the
// first carries the role, the last the finish reason, then the usage and
// [DONE].
func TestOpenAIChatStream(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	resp, body := post(t, url+"/v1/chat/completions", map[string]any{
		"model": storiesName, "messages": []map[string]any{{"role": "user", "content": ref.Prompt}},
		"temperature": 0, "max_completion_tokens": ref.NPredict, "stream": true,
		"stream_options": map[string]any{"include_usage": true},
	})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	events := sseEvents(t, body)
	if len(events) < 4 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %q", events)
	}
	var text strings.Builder
	var finish string
	for i, e := range events[:len(events)-2] {
		c := decode[chatResp](t, []byte(e))
		if c.Object != "chat.completion.chunk" || len(c.Choices) != 1 {
			t.Fatalf("chunk %d: %s", i, e)
		}
		d := c.Choices[0].Delta
		if (i == 0) != (d.Role == "assistant") {
			t.Errorf("chunk %d has role %q", i, d.Role)
		}
		if d.Content != nil {
			text.WriteString(*d.Content)
		}
		if f := c.Choices[0].FinishReason; f != nil {
			if i != len(events)-3 {
				t.Errorf("finish_reason in chunk %d of %d", i, len(events)-2)
			}
			finish = *f
		}
	}
	if text.String() != ref.Text || finish != "length" {
		t.Errorf("streamed %q (%s), want %q (length)", text.String(), finish, ref.Text)
	}
	u := decode[chatResp](t, []byte(events[len(events)-2]))
	if len(u.Choices) != 0 || u.Usage == nil || u.Usage.CompletionTokens != ref.NPredict || u.Usage.PromptTokens != 5 {
		t.Errorf("usage chunk %s", events[len(events)-2])
	}
}

// TestOpenAIChatOptions: stop strings, logprobs (matching the reference
// logits), response_format and seed.
func TestOpenAIChatOptions(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	chat := func(extra map[string]any) chatResp {
		t.Helper()
		req := map[string]any{"model": storiesName, "messages": []map[string]any{{"role": "user", "content": ref.Prompt}},
			"temperature": 0, "max_tokens": ref.NPredict}
		for k, v := range extra {
			req[k] = v
		}
		resp, body := post(t, url+"/v1/chat/completions", req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%v: status %d: %s", extra, resp.StatusCode, body)
		}
		return decode[chatResp](t, body)
	}

	cut := strings.Index(ref.Text, "Lily")
	for _, stop := range []any{"Lily", []string{"nothing like this", "Lily"}} {
		r := chat(map[string]any{"stop": stop})
		if got := *r.Choices[0].Message.Content; got != ref.Text[:cut] || *r.Choices[0].FinishReason != "stop" {
			t.Errorf("stop %v: %q (%s), want %q (stop)", stop, got, *r.Choices[0].FinishReason, ref.Text[:cut])
		}
	}

	r := chat(map[string]any{"logprobs": true, "top_logprobs": 3, "max_tokens": 4})
	lp := r.Choices[0].Logprobs
	if lp == nil || len(lp.Content) != 4 {
		t.Fatalf("logprobs %+v", lp)
	}
	first := lp.Content[0]
	want := ref.Steps[0].Logit - ref.LSE
	if first.Token != "," || math.Abs(first.Logprob-want) > 1e-3 || len(first.TopLogprobs) != 3 || first.TopLogprobs[0].Token != "," {
		t.Errorf("first token logprob %+v, want \",\" at %.5f", first, want)
	}

	r = chat(map[string]any{"response_format": map[string]any{"type": "json_object"}, "max_tokens": 24})
	if got := strings.TrimSpace(*r.Choices[0].Message.Content); !strings.HasPrefix(got, "{") {
		t.Errorf("json_object answer %q", got)
	}

	a := chat(map[string]any{"temperature": 1, "seed": 42, "max_tokens": 16})
	b := chat(map[string]any{"temperature": 1, "seed": 42, "max_tokens": 16})
	if *a.Choices[0].Message.Content != *b.Choices[0].Message.Content {
		t.Errorf("seed 42 gave %q and %q", *a.Choices[0].Message.Content, *b.Choices[0].Message.Content)
	}
}

// TestOpenAICompletions: greedy completion (plain, echo, streamed, with
// logprobs) and a batch of prompts.
func TestOpenAICompletions(t *testing.T) {
	ref := reference(t)
	_, url := start(t, testConfig(t))
	req := map[string]any{"model": storiesName, "prompt": ref.Prompt, "temperature": 0, "max_tokens": ref.NPredict}
	resp, body := post(t, url+"/v1/completions", req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	r := decode[chatResp](t, body)
	if r.Object != "text_completion" || r.Choices[0].Text != ref.Text || r.Usage.CompletionTokens != ref.NPredict {
		t.Errorf("completion %s", body)
	}

	req["echo"], req["logprobs"] = true, 2
	_, body = post(t, url+"/v1/completions", req)
	r = decode[chatResp](t, body)
	if r.Choices[0].Text != ref.Prompt+ref.Text {
		t.Errorf("echo: %q", r.Choices[0].Text)
	}
	if lp := r.Choices[0].Logprobs; lp == nil || len(lp.Tokens) != ref.NPredict || len(lp.TokenLogprobs) != ref.NPredict {
		t.Errorf("logprobs %+v", lp)
	}

	delete(req, "echo")
	delete(req, "logprobs")
	req["stream"] = true
	_, body = post(t, url+"/v1/completions", req)
	events := sseEvents(t, body)
	var text strings.Builder
	for _, e := range events[:len(events)-1] {
		text.WriteString(decode[chatResp](t, []byte(e)).Choices[0].Text)
	}
	if text.String() != ref.Text || events[len(events)-1] != "[DONE]" {
		t.Errorf("streamed %q", text.String())
	}

	req["stream"] = false
	req["prompt"] = []string{ref.Prompt, ref.Prompt}
	_, body = post(t, url+"/v1/completions", req)
	r = decode[chatResp](t, body)
	if len(r.Choices) != 2 || r.Choices[1].Index != 1 || r.Choices[1].Text != ref.Text || r.Usage.CompletionTokens != 2*ref.NPredict {
		t.Errorf("two prompts: %s", body)
	}
}

// TestOpenAIEmbeddingsAndModels: unit vectors of the model's width, as
// floats or base64; the model list names the configured model.
func TestOpenAIEmbeddingsAndModels(t *testing.T) {
	_, url := start(t, testConfig(t))
	type embResp struct {
		Data []struct {
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	resp, body := post(t, url+"/v1/embeddings", map[string]any{"model": storiesName, "input": []string{"The little dog", "Lily and Tom"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	r := decode[embResp](t, body)
	if len(r.Data) != 2 || r.Data[1].Index != 1 || r.Usage.PromptTokens == 0 {
		t.Fatalf("embeddings %s", body)
	}
	vec := decode[[]float64](t, r.Data[0].Embedding)
	var n float64
	for _, x := range vec {
		n += x * x
	}
	if len(vec) != 64 || math.Abs(n-1) > 1e-4 {
		t.Errorf("embedding of %d dimensions, norm² %g", len(vec), n)
	}
	// dimensions cuts the embedding, normalised again: the first values'
	// directions are the full one's.
	_, body = post(t, url+"/v1/embeddings", map[string]any{"model": storiesName, "input": []string{"The little dog"}, "dimensions": 16})
	cut := decode[[]float64](t, decode[embResp](t, body).Data[0].Embedding)
	var nf, nc float64
	for i, x := range cut {
		nc += x * x
		nf += vec[i] * vec[i]
	}
	if len(cut) != 16 || math.Abs(nc-1) > 1e-4 || math.Abs(cut[3]-vec[3]/math.Sqrt(nf)) > 1e-5 {
		t.Errorf("dimensions 16: %d values, norm² %g: %s", len(cut), nc, body)
	}
	_, body = post(t, url+"/v1/embeddings", map[string]any{"model": storiesName, "input": "The little dog", "encoding_format": "base64"})
	b64 := decode[string](t, decode[embResp](t, body).Data[0].Embedding)
	if len(b64) != (64*4+2)/3*4 {
		t.Errorf("base64 embedding of %d characters", len(b64))
	}

	resp, body = get(t, url+"/v1/models")
	type modelList struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	models := decode[modelList](t, body)
	if resp.StatusCode != http.StatusOK || models.Object != "list" || len(models.Data) != 1 || models.Data[0].ID != storiesName {
		t.Errorf("models %s", body)
	}
	if resp, _ := get(t, url+"/v1/models/"+storiesName); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/models/%s: %d", storiesName, resp.StatusCode)
	}
	if resp, _ := get(t, url+"/v1/models/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/models/nope: %d", resp.StatusCode)
	}
}
