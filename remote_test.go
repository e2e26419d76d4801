package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/sampler"
	"github.com/llm-go/llm/tokenizer"
)

// fakeRequest is one request the fake API received.
type fakeRequest struct {
	Method, Path string
	Header       http.Header
	Body         map[string]any
}

// fakeAPI is an OpenAI-compatible endpoint on 127.0.0.1 that records what
// it receives. handle, when set, answers instead of the default handler
// (return false to fall through to it).
type fakeAPI struct {
	*httptest.Server
	mu       sync.Mutex
	requests []fakeRequest
	handle   func(w http.ResponseWriter, r *http.Request, body map[string]any) bool
	models   []string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{models: []string{"fake-model"}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// received returns the recorded requests.
func (f *fakeAPI) received() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

// posts returns the recorded requests to path (e.g. "/v1/chat/completions").
func (f *fakeAPI) posts(path string) []fakeRequest {
	var out []fakeRequest
	for _, r := range f.received() {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if r.Body != nil {
		data, _ := io.ReadAll(r.Body)
		if len(data) > 0 {
			if err := json.Unmarshal(data, &body); err != nil {
				http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
				return
			}
		}
	}
	f.mu.Lock()
	f.requests = append(f.requests, fakeRequest{r.Method, r.URL.Path, r.Header.Clone(), body})
	handle := f.handle
	f.mu.Unlock()
	if handle != nil && handle(w, r, body) {
		return
	}
	model, _ := body["model"].(string)
	stream, _ := body["stream"].(bool)
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/models":
		var data []map[string]any
		for _, m := range f.models {
			data = append(data, map[string]any{"id": m, "object": "model"})
		}
		writeJSON(w, map[string]any{"object": "list", "data": data})
	case "POST /v1/chat/completions":
		msgs, _ := body["messages"].([]any)
		last := ""
		if len(msgs) > 0 {
			last, _ = msgs[len(msgs)-1].(map[string]any)["content"].(string)
		}
		if stream {
			sse(w, `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
				`{"choices":[{"index":0,"delta":{"content":"echo: "}}]}`,
				fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":%q}}]}`, last),
				`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, "[DONE]")
			return
		}
		writeJSON(w, map[string]any{"object": "chat.completion", "model": model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": "echo: " + last}}},
			"usage": map[string]any{"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
				"prompt_tokens_details": map[string]any{"cached_tokens": 4}}})
	case "POST /v1/completions":
		if stream {
			sse(w, `{"choices":[{"index":0,"text":" upon"}]}`, `{"choices":[{"index":0,"text":" a time"}]}`,
				`{"choices":[{"index":0,"text":"","finish_reason":"length"}]}`, "[DONE]")
			return
		}
		writeJSON(w, map[string]any{"object": "text_completion", "model": model,
			"choices": []any{map[string]any{"index": 0, "text": " upon a time", "finish_reason": "length"}},
			"usage":   map[string]any{"prompt_tokens": 4, "completion_tokens": 3}})
	case "POST /v1/embeddings":
		inputs, _ := body["input"].([]any)
		var data []any
		for i := len(inputs) - 1; i >= 0; i-- { // out of order on purpose
			s, _ := inputs[i].(string)
			data = append(data, map[string]any{"object": "embedding", "index": i,
				"embedding": []float64{float64(len(s)), 0, 3}})
		}
		writeJSON(w, map[string]any{"object": "list", "data": data, "model": model})
	default:
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]any{"error": map[string]any{"message": "no route " + r.URL.Path, "type": "not_found"}})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	json.NewEncoder(w).Encode(v)
}

// sse writes events as "data: …" lines.
func sse(w http.ResponseWriter, events ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	for _, e := range events {
		fmt.Fprintf(w, "data: %s\n\n", e)
		w.(http.Flusher).Flush()
	}
}

// fastRetries keeps the tests quick.
var fastRetries = RemoteRetries(4, time.Millisecond, 50*time.Millisecond)

func newTestRemote(t *testing.T, f *fakeAPI, opts ...RemoteOption) *RemoteModel {
	t.Helper()
	r, err := Remote(f.URL+"/v1", append([]RemoteOption{RemoteModelName("fake-model"), fastRetries}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func collect(t *testing.T, seq func(func(Chunk, error) bool)) (string, error) {
	t.Helper()
	var b strings.Builder
	for c, err := range seq {
		if err != nil {
			return b.String(), err
		}
		b.WriteString(c.Text)
	}
	return b.String(), nil
}

func TestRemoteChat(t *testing.T) {
	f := newFakeAPI(t)
	r := newTestRemote(t, f, RemoteAPIKey("sk-secret-key"), RemoteHeader("X-Title", "llm tests"))
	ctx := context.Background()
	res, err := r.Chat(ctx, []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi!"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "echo: Hi!" || res.FinishReason != FinishStop || res.Model != "fake-model" {
		t.Errorf("result %+v", res)
	}
	if res.Timings.PromptTokens != 12 || res.Timings.PromptEvaluated != 8 || res.Timings.GeneratedTokens != 3 {
		t.Errorf("timings %+v: want 12 prompt tokens, 8 of them evaluated, 3 generated", res.Timings)
	}
	if res.Timings.TimeToFirstToken <= 0 || res.Timings.GenerateDuration < res.Timings.TimeToFirstToken {
		t.Errorf("timings %+v: want measured durations", res.Timings)
	}
	reqs := f.posts("/v1/chat/completions")
	if len(reqs) != 1 {
		t.Fatalf("%d chat requests", len(reqs))
	}
	got := reqs[0]
	if h := got.Header.Get("Authorization"); h != "Bearer sk-secret-key" {
		t.Errorf("Authorization %q", h)
	}
	if h := got.Header.Get("X-Title"); h != "llm tests" {
		t.Errorf("X-Title %q", h)
	}
	want := []any{map[string]any{"role": "system", "content": "Be brief."}, map[string]any{"role": "user", "content": "Hi!"}}
	if !reflect.DeepEqual(got.Body["messages"], want) || got.Body["model"] != "fake-model" {
		t.Errorf("body %v", got.Body)
	}
	for _, k := range []string{"stream", "temperature", "top_p", "top_k", "seed", "max_tokens"} {
		if v, ok := got.Body[k]; ok {
			t.Errorf("%s = %v sent, but no option set it", k, v)
		}
	}
	// The key never shows.
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%+v %#v %d %s", r, r, r, r), r.String()} {
		if strings.Contains(s, "sk-secret") {
			t.Errorf("the API key shows in %q", s)
		}
	}
}

func TestRemoteGenerate(t *testing.T) {
	f := newFakeAPI(t)
	r := newTestRemote(t, f)
	res, err := r.Generate(context.Background(), "Once", Echo(), MaxTokens(3))
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "Once upon a time" || res.FinishReason != FinishLength || res.Timings.GeneratedTokens != 3 {
		t.Errorf("result %+v", res)
	}
	got := f.posts("/v1/completions")[0].Body
	if got["prompt"] != "Once" || got["max_tokens"] != 3.0 {
		t.Errorf("body %v", got)
	}
	text, err := collect(t, r.Stream(context.Background(), "Once"))
	if err != nil || text != " upon a time" {
		t.Errorf("Stream: %q, %v", text, err)
	}
	if got := f.posts("/v1/completions")[1].Body; got["stream"] != true {
		t.Errorf("stream body %v", got)
	}
	// Suffix goes as OpenAI's suffix field; a chat refuses it.
	if _, err := r.Generate(context.Background(), "def f(", Suffix("\n    return x\n")); err != nil {
		t.Fatal(err)
	}
	if got := f.posts("/v1/completions")[2].Body; got["suffix"] != "\n    return x\n" {
		t.Errorf("suffix body %v", got)
	}
	if _, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "hi"}}, Suffix("x")); err == nil {
		t.Error("Chat with Suffix: no error")
	}
}

func TestRemoteChatStream(t *testing.T) {
	f := newFakeAPI(t)
	r := newTestRemote(t, f)
	var chunks []string
	var final *Result
	for c, err := range r.ChatStream(context.Background(), []Message{{Role: "user", Content: "Hi"}}) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Token != -1 {
			t.Errorf("chunk token %d, want -1", c.Token)
		}
		if c.Result != nil {
			final = c.Result
			continue
		}
		chunks = append(chunks, c.Text)
	}
	if !reflect.DeepEqual(chunks, []string{"echo: ", "Hi"}) {
		t.Errorf("chunks %q", chunks)
	}
	if final == nil || final.Text != "echo: Hi" || final.Model != r.Name() || final.FinishReason != FinishStop {
		t.Errorf("final result %+v", final)
	}
	reqs := f.posts("/v1/chat/completions")
	if reqs[0].Body["stream"] != true || reqs[0].Header.Get("Accept") != "text/event-stream" {
		t.Errorf("request %v %v", reqs[0].Body, reqs[0].Header)
	}
}

// TestRemoteSSE feeds the stream parser what servers send.
func TestRemoteSSE(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    string
		wantErr string
		is      error
	}{
		{name: "comments, ids, CRLF and an event name",
			body: ": keep-alive\r\nid: 1\r\nevent: message\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n" +
				": ping\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
			want: "ab"},
		{name: "an event in several data lines",
			body: "data: {\"choices\":[{\"index\":0,\n" + "data: \"delta\":{\"content\":\"multi\"}}]}\n\ndata: [DONE]\n\n",
			want: "multi"},
		{name: "no [DONE] but a finish_reason, no final blank line",
			body: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"length\"}]}",
			want: "x"},
		{name: "tool calls in pieces",
			body: `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}` + "\n\n" +
				`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}` + "\n\n" +
				`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n",
			want: "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call>"},
		{name: "not JSON", body: "data: {\"choices\": [nope\n\n", wantErr: "an event that is not JSON", is: ErrRemoteProtocol},
		{name: "cut off", body: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
			wantErr: "ended before its end", is: ErrRemoteProtocol},
		{name: "an error object", body: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n" +
			"data: {\"error\":{\"message\":\"the model crashed\",\"type\":\"server_error\"}}\n\n",
			wantErr: "error in the stream: the model crashed", is: ErrRemote},
		{name: "an error event", body: "event: error\ndata: {\"message\":\"overloaded\"}\n\n",
			wantErr: "error in the stream: overloaded", is: ErrRemote},
		{name: "a JSON answer instead of a stream",
			body: `{"choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}`,
			want: "whole"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.handle = func(w http.ResponseWriter, r *http.Request, _ map[string]any) bool {
				if strings.HasPrefix(tc.body, "{") {
					w.Header().Set("Content-Type", "application/json")
				} else {
					w.Header().Set("Content-Type", "text/event-stream")
				}
				io.WriteString(w, tc.body)
				return true
			}
			r := newTestRemote(t, f)
			text, err := collect(t, r.ChatStream(context.Background(), []Message{{Role: "user", Content: "x"}}))
			if tc.wantErr == "" {
				if err != nil || text != tc.want {
					t.Errorf("got %q, %v; want %q", text, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.is) {
				t.Errorf("error %v; want one saying %q and matching %v", err, tc.wantErr, tc.is)
			}
			if err != nil && !strings.Contains(err.Error(), f.URL+"/v1/chat/completions") {
				t.Errorf("error %v does not name the endpoint", err)
			}
		})
	}
}

// TestRemoteRequestFields checks how options map to the request's fields.
func TestRemoteRequestFields(t *testing.T) {
	schema := `{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"number"}}}`
	weather := tokenizer.NewObject("type", "function", "function", tokenizer.NewObject("name", "get_weather"))
	sampling := sampler.DefaultOptions()
	sampling.TopK, sampling.MinP, sampling.RepeatPenalty = 5, 0.1, 1.1
	cases := []struct {
		name   string
		opts   []GenerateOption
		want   map[string]any // fields and their JSON values
		absent []string
	}{
		{"nothing set", nil, map[string]any{"model": "fake-model"},
			[]string{"max_tokens", "temperature", "top_p", "seed", "stop", "logit_bias", "response_format", "tools", "top_k", "logprobs"}},
		{"max tokens, temperature, seed, stop", []GenerateOption{MaxTokens(7), Temperature(0), Seed(42), Stop("\n\n", "END")},
			map[string]any{"max_tokens": 7.0, "temperature": 0.0, "seed": 42.0, "stop": []any{"\n\n", "END"}}, []string{"top_p"}},
		{"OpenAI's sampling fields", []GenerateOption{Sampling(func() sampler.Options {
			o := sampler.DefaultOptions()
			o.TopP, o.FrequencyPenalty, o.PresencePenalty = 0.5, 0.25, -0.5
			o.LogitBias = map[engine.Token]float64{15: 2.5, 7: math.Inf(-1)}
			return o
		}())}, map[string]any{"top_p": 0.5, "frequency_penalty": 0.25, "presence_penalty": -0.5,
			"logit_bias": map[string]any{"15": 2.5, "7": -100.0}}, []string{"temperature", "seed"}},
		{"llama.cpp's names", []GenerateOption{Sampling(sampling)},
			map[string]any{"top_k": 5.0, "min_p": 0.1, "repeat_penalty": 1.1}, []string{"temperature", "typical_p", "mirostat"}},
		{"JSON schema", []GenerateOption{Sampling(sampler.Options{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, TypicalP: 1,
			TopNSigma: -1, XTCThreshold: 0.1, RepeatPenalty: 1, RepeatLastN: 64, DynamicTempExponent: 1, DRYBase: 1.75,
			DRYAllowedLength: 2, DRYLastN: -1, MirostatTau: 5, MirostatEta: 0.1, MirostatM: 100, Seed: -1, JSONSchema: schema})},
			map[string]any{"response_format": map[string]any{"type": "json_schema",
				"json_schema": map[string]any{"name": "response", "schema": map[string]any{"type": "object",
					"properties": map[string]any{"b": map[string]any{"type": "string"}, "a": map[string]any{"type": "number"}}}}}}, nil},
		{"JSON object", []GenerateOption{Sampling(func() sampler.Options { o := sampler.DefaultOptions(); o.JSON = true; return o }())},
			map[string]any{"response_format": map[string]any{"type": "json_object"}}, nil},
		{"tools and template variables", []GenerateOption{Tools(weather), TemplateVars(map[string]any{"enable_thinking": false})},
			map[string]any{"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}},
				"chat_template_kwargs": map[string]any{"enable_thinking": false}}, nil},
		{"logprobs", []GenerateOption{Logprobs(3)}, map[string]any{"logprobs": true, "top_logprobs": 3.0}, nil},
		{"private and context policy are not sent", []GenerateOption{Private(), WithContextPolicy(DropOldestTurns)},
			map[string]any{"model": "fake-model"}, []string{"private"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			r := newTestRemote(t, f)
			if _, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}}, tc.opts...); err != nil {
				t.Fatal(err)
			}
			got := f.posts("/v1/chat/completions")[0].Body
			for k, v := range tc.want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			for _, k := range tc.absent {
				if v, ok := got[k]; ok {
					t.Errorf("%s = %v sent", k, v)
				}
			}
		})
	}
}

// TestRemoteSchemaKeepsOrder checks that a JSON schema goes out as written.
func TestRemoteSchemaKeepsOrder(t *testing.T) {
	var raw []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ = io.ReadAll(r.Body)
		writeJSON(w, map[string]any{"choices": []any{map[string]any{"index": 0, "message": map[string]any{"content": "{}"}, "finish_reason": "stop"}}})
	}))
	defer srv.Close()
	r, err := Remote(srv.URL, RemoteModelName("m"))
	if err != nil {
		t.Fatal(err)
	}
	o := sampler.DefaultOptions()
	o.JSONSchema = `{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"number"}}}`
	if _, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}}, Sampling(o)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"schema":{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"number"}}}`) {
		t.Errorf("schema not sent as written: %s", raw)
	}
}

func TestRemoteMessages(t *testing.T) {
	f := newFakeAPI(t)
	f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
		writeJSON(w, map[string]any{"choices": []any{map[string]any{"index": 0, "finish_reason": "tool_calls",
			"message": map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
				"id": "call_9", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": `{"city":"Oslo"}`}}}}}}})
		return true
	}
	r := newTestRemote(t, f)
	msgs := []Message{
		{Role: "user", Content: []tokenizer.Part{{Type: "text", Text: "What is in this picture?"},
			{Type: "image_url", Extra: tokenizer.NewObject("image_url", tokenizer.NewObject("url", "data:image/png;base64,AAAA"))}}},
		{Role: "assistant", ToolCalls: []tokenizer.ToolCall{{ID: "call_1", Function: tokenizer.FunctionCall{Name: "get_weather",
			Arguments: tokenizer.NewObject("city", "Paris")}}}},
		{Role: "tool", ToolCallID: "call_1", Name: "get_weather", Content: "22 °C"},
		{Role: "assistant", Content: "Sunny.", Extra: tokenizer.NewObject("reasoning_content", "hm")},
	}
	res, err := r.Chat(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}\n</tool_call>"; res.Text != want || res.FinishReason != "tool_calls" {
		t.Errorf("result %q %q, want %q", res.Text, res.FinishReason, want)
	}
	got, _ := json.Marshal(f.posts("/v1/chat/completions")[0].Body["messages"])
	want := `[{"content":[{"text":"What is in this picture?","type":"text"},{"image_url":{"url":"data:image/png;base64,AAAA"},"type":"image_url"}],"role":"user"},` +
		`{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{\"city\":\"Paris\"}","name":"get_weather"},"id":"call_1","type":"function"}]},` +
		`{"content":"22 °C","name":"get_weather","role":"tool","tool_call_id":"call_1"},` +
		`{"content":"Sunny.","reasoning_content":"hm","role":"assistant"}]`
	if string(got) != want {
		t.Errorf("messages\n got %s\nwant %s", got, want)
	}
}

func TestRemoteLogprobs(t *testing.T) {
	f := newFakeAPI(t)
	f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
		writeJSON(w, map[string]any{"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"content": "Hi"},
			"logprobs": map[string]any{"content": []any{map[string]any{"token": "Hi", "logprob": -0.25,
				"top_logprobs": []any{map[string]any{"token": "Hi", "logprob": -0.25}, map[string]any{"token": "Hello", "logprob": -1.5}}}}}}}})
		return true
	}
	r := newTestRemote(t, f)
	res, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}}, Logprobs(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logprobs) != 1 || res.Logprobs[0].Text != "Hi" || res.Logprobs[0].Logprob != -0.25 ||
		len(res.Logprobs[0].Top) != 2 || res.Logprobs[0].Top[1].Text != "Hello" || res.Logprobs[0].Token != -1 {
		t.Errorf("logprobs %+v", res.Logprobs)
	}
}

func TestRemoteEmbed(t *testing.T) {
	f := newFakeAPI(t)
	r := newTestRemote(t, f, RemoteEmbeddingModel("fake-embedder"))
	vecs, err := r.Embed(context.Background(), "four", "eight!!!")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float32{{0.8, 0, 0.6}, {8 / float32(math.Sqrt(73)), 0, 3 / float32(math.Sqrt(73))}}
	for i := range want {
		for j := range want[i] {
			if math.Abs(float64(vecs[i][j]-want[i][j])) > 1e-6 {
				t.Fatalf("embeddings %v, want %v (in the order of the texts, unit length)", vecs, want)
			}
		}
	}
	got := f.posts("/v1/embeddings")[0].Body
	if got["model"] != "fake-embedder" || !reflect.DeepEqual(got["input"], []any{"four", "eight!!!"}) {
		t.Errorf("body %v", got)
	}
	if vecs, err := r.Embed(context.Background()); err != nil || len(vecs) != 0 {
		t.Errorf("no texts: %v, %v", vecs, err)
	}
}

func TestRemoteDiscoversModel(t *testing.T) {
	f := newFakeAPI(t)
	r, err := Remote(f.URL) // no path: /v1
	if err != nil {
		t.Fatal(err)
	}
	if r.Name() != f.URL+"/v1" {
		t.Errorf("Name before the first request: %q", r.Name())
	}
	res, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Model != "fake-model" || r.Name() != "fake-model" {
		t.Errorf("model %q, name %q", res.Model, r.Name())
	}
	if got := f.posts("/v1/chat/completions")[0].Body["model"]; got != "fake-model" {
		t.Errorf("model sent %v", got)
	}

	f.models = []string{"a", "b"}
	r2, _ := Remote(f.URL + "/v1/chat/completions")
	_, err = r2.Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
	if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "serves 2: a, b") {
		t.Errorf("two models: %v", err)
	}
}

func TestRemoteRetries(t *testing.T) {
	cases := []struct {
		name     string
		status   []int // per attempt; the last repeats
		header   http.Header
		opts     []RemoteOption
		attempts int
		wantErr  string
		minWait  time.Duration
	}{
		{name: "429 then success, Retry-After honoured", status: []int{429, 200},
			header: http.Header{"Retry-After": {"1"}}, attempts: 2, minWait: time.Second,
			opts: []RemoteOption{RemoteRetries(4, time.Millisecond, 5*time.Second)}},
		{name: "retry-after-ms", status: []int{503, 503, 200},
			header: http.Header{"Retry-After-Ms": {"150"}}, attempts: 3, minWait: 300 * time.Millisecond,
			opts: []RemoteOption{RemoteRetries(4, time.Millisecond, 5*time.Second)}},
		{name: "500s exhausted", status: []int{500}, attempts: 4,
			wantErr: "/v1/chat/completions: 500 Internal Server Error after 4 attempts: boom"},
		{name: "400 is not retried", status: []int{400}, attempts: 1,
			wantErr: "/v1/chat/completions: 400 Bad Request: boom"},
		{name: "a Retry-After beyond the longest wait ends the retries", status: []int{429},
			header: http.Header{"Retry-After": {"3600"}}, attempts: 1, wantErr: "429 Too Many Requests: boom"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			n := 0
			f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
				st := tc.status[min(n, len(tc.status)-1)]
				n++
				if st == 200 {
					return false
				}
				for k, v := range tc.header {
					w.Header()[k] = v
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(st)
				io.WriteString(w, `{"error":{"message":"boom","type":"server_error","code":"x1"}}`)
				return true
			}
			r := newTestRemote(t, f, tc.opts...)
			start := time.Now()
			res, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
			if got := len(f.posts("/v1/chat/completions")); got != tc.attempts {
				t.Errorf("%d attempts, want %d", got, tc.attempts)
			}
			if tc.wantErr == "" {
				if err != nil || res.Text != "echo: x" {
					t.Fatalf("%v, %v", res, err)
				}
				if d := time.Since(start); d < tc.minWait {
					t.Errorf("succeeded after %v, want at least %v (Retry-After)", d, tc.minWait)
				}
				return
			}
			var re *RemoteError
			if !errors.As(err, &re) || !errors.Is(err, ErrRemote) || re.Attempts != tc.attempts || re.Message != "boom" || re.Code != "x1" {
				t.Fatalf("error %#v", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "llm: remote "+f.URL) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestRemoteDeadEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := Remote("http://"+addr+"/v1", RemoteModelName("m"), RemoteRetries(3, 10*time.Millisecond, 50*time.Millisecond),
		RemoteTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = r.Generate(context.Background(), "x")
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.StatusCode != 0 || re.Attempts != 3 || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("error %#v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "llm: remote http://"+addr+"/v1/completions: cannot connect") ||
		!strings.Contains(msg, "after 3 attempts") {
		t.Errorf("error %q", msg)
	}
}

func TestRemoteTimeout(t *testing.T) {
	f := newFakeAPI(t)
	release := make(chan struct{})
	defer close(release)
	f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}
	r := newTestRemote(t, f, RemoteTimeout(100*time.Millisecond), RemoteRetries(2, time.Millisecond, time.Millisecond))
	start := time.Now()
	_, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrRemote) ||
		!strings.Contains(err.Error(), "no answer within 100ms (RemoteTimeout) after 2 attempts") {
		t.Errorf("error %v", err)
	}
}

// TestRemoteStreamIdleTimeout: a stream that goes silent ends with an error.
func TestRemoteStreamIdleTimeout(t *testing.T) {
	f := newFakeAPI(t)
	f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 5; i++ { // slower in total than the timeout, but never silent that long
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
		<-r.Context().Done()
		return true
	}
	r := newTestRemote(t, f, RemoteTimeout(300*time.Millisecond))
	text, err := collect(t, r.ChatStream(context.Background(), []Message{{Role: "user", Content: "x"}}))
	if text != "01234" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%q, %v", text, err)
	}
}

func TestRemoteStreamCancel(t *testing.T) {
	f := newFakeAPI(t)
	gone := make(chan struct{})
	f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"first\"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // never sends more
		close(gone)
		return true
	}
	r := newTestRemote(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []string
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c, e := range r.ChatStream(ctx, []Message{{Role: "user", Content: "x"}}) {
			if e != nil {
				err = e
				break
			}
			got = append(got, c.Text)
			cancel()
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not stop when its context was cancelled")
	}
	if !reflect.DeepEqual(got, []string{"first"}) || !errors.Is(err, context.Canceled) {
		t.Errorf("%q, %v", got, err)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Error("the server did not see the request end")
	}
}

func TestRemoteErrors(t *testing.T) {
	f := newFakeAPI(t)
	r := newTestRemote(t, f, RemoteAPIKey("sk-never-shown"))
	f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `<html>not json</html>`)
		return true
	}
	_, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}})
	if !errors.Is(err, ErrRemoteProtocol) || !strings.Contains(err.Error(), "200 OK is not the expected JSON (<html>not json</html>)") {
		t.Errorf("decode error: %v", err)
	}
	if strings.Contains(err.Error(), "sk-never-shown") {
		t.Error("the key shows in the error")
	}
	f.handle = nil
	if _, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}}, Stop("")); err == nil {
		t.Error("an empty stop string was accepted")
	}
	r.Close()
	if _, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := Remote("ftp://example.com"); err == nil {
		t.Error("an ftp URL was accepted")
	}
	if r, err := Remote("http://user:pw@127.0.0.1:9/v1/?key=k"); err != nil || strings.Contains(r.BaseURL(), "pw") || strings.Contains(r.BaseURL(), "key") {
		t.Errorf("credentials in the URL: %v, %v", r, err)
	}
}

func TestRemoteAPIKeyFromEnv(t *testing.T) {
	t.Setenv("LLM_TEST_EMPTY_KEY", "")
	t.Setenv("LLM_TEST_KEY", "hf_from_env")
	f := newFakeAPI(t)
	r := newTestRemote(t, f, RemoteAPIKeyFromEnv("LLM_TEST_EMPTY_KEY", "LLM_TEST_KEY"))
	if _, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}}); err != nil {
		t.Fatal(err)
	}
	if h := f.posts("/v1/chat/completions")[0].Header.Get("Authorization"); h != "Bearer hf_from_env" {
		t.Errorf("Authorization %q", h)
	}
	r2 := newTestRemote(t, f, RemoteAPIKeyFromEnv("LLM_TEST_EMPTY_KEY"))
	if _, err := r2.Chat(context.Background(), []Message{{Role: "user", Content: "x"}}); err != nil {
		t.Fatal(err)
	}
	if h := f.posts("/v1/chat/completions")[1].Header.Get("Authorization"); h != "" {
		t.Errorf("Authorization %q without a key", h)
	}
}

func TestRemoteRetryRespectsContext(t *testing.T) {
	f := newFakeAPI(t)
	f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":"slow down"}`)
		return true
	}
	r := newTestRemote(t, f, RemoteRetries(4, time.Millisecond, 10*time.Second))

	// A deadline before the retry is due: no waiting at all.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := r.Chat(ctx, []Message{{Role: "user", Content: "x"}})
	var re *RemoteError
	if !errors.As(err, &re) || re.StatusCode != 429 || re.RetryAfter != 2*time.Second || re.Message != "slow down" || time.Since(start) > 500*time.Millisecond {
		t.Errorf("with a deadline: %v after %v", err, time.Since(start))
	}

	// Cancelled while waiting.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = r.Chat(ctx, []Message{{Role: "user", Content: "x"}})
	if !errors.Is(err, context.Canceled) || !errors.As(err, &re) || re.StatusCode != 429 || time.Since(start) > time.Second {
		t.Errorf("cancelled: %v after %v", err, time.Since(start))
	}
	if want := "429 Too Many Requests: slow down: context canceled"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestRemoteBaseURL(t *testing.T) {
	f := newFakeAPI(t)
	var query string
	f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
		query = r.URL.RawQuery
		return false
	}
	r, err := Remote(f.URL+"/v1/?api-version=2024-10-21", RemoteModelName("m"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Chat(context.Background(), []Message{{Role: "user", Content: "x"}}); err != nil {
		t.Fatal(err)
	}
	if got := f.received()[0].Path; got != "/v1/chat/completions" || query != "api-version=2024-10-21" {
		t.Errorf("path %q, query %q", got, query)
	}
	if r.BaseURL() != f.URL+"/v1" {
		t.Errorf("BaseURL %q", r.BaseURL())
	}
}

// TestRemoteThink: with Think(true) the remote client asks for
// enable_thinking and separates the reasoning, whether the endpoint sends
// it as reasoning_content (llama-server, vLLM) or inline in a <think>
// block, streamed or not.
func TestRemoteThink(t *testing.T) {
	for _, tc := range []struct {
		name            string
		message, deltas []string // the answer's message fields, and the stream's deltas
	}{
		{"reasoning_content", []string{`"reasoning_content":"weigh it","content":"yes"`},
			[]string{`"reasoning_content":"weigh"`, `"reasoning_content":" it"`, `"content":"yes"`}},
		{"inline block", []string{`"content":"<think>\nweigh it\n</think>\n\nyes"`},
			[]string{`"content":"<thi"`, `"content":"nk>\nweigh"`, `"content":" it\n</th"`, `"content":"ink>\n\nye"`, `"content":"s"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.handle = func(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
				if stream, _ := body["stream"].(bool); stream {
					var events []string
					for _, d := range tc.deltas {
						events = append(events, `{"choices":[{"index":0,"delta":{`+d+`}}]}`)
					}
					sse(w, append(events, `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, "[DONE]")...)
					return true
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant",%s}}]}`, tc.message[0])
				return true
			}
			r := newTestRemote(t, f)
			msgs := []Message{{Role: "user", Content: "Is it?"}}
			res, err := r.Chat(context.Background(), msgs, Think(true))
			if err != nil || res.Thinking != "weigh it" || res.Text != "yes" {
				t.Errorf("Chat: %+v, %v", res, err)
			}
			kwargs, _ := f.posts("/v1/chat/completions")[0].Body["chat_template_kwargs"].(map[string]any)
			if kwargs["enable_thinking"] != true {
				t.Errorf("chat_template_kwargs %v", kwargs)
			}
			if _, err := r.Chat(context.Background(), msgs, ThinkLevel(ThinkLow)); err != nil {
				t.Fatal(err)
			}
			if body := f.posts("/v1/chat/completions")[1].Body; body["reasoning_effort"] != "low" || body["chat_template_kwargs"] != nil {
				t.Errorf("ThinkLevel(low) sent %v, want reasoning_effort alone (OpenAI refuses chat_template_kwargs)", body)
			}
			// A user's template variables still go; a later Think undoes
			// the level.
			if _, err := r.Chat(context.Background(), msgs, ThinkLevel(ThinkHigh), TemplateVars(map[string]any{"x": 1}), ThinkLevel(ThinkHigh)); err != nil {
				t.Fatal(err)
			}
			if body := f.posts("/v1/chat/completions")[2].Body; body["reasoning_effort"] != "high" || fmt.Sprint(body["chat_template_kwargs"]) != "map[x:1]" {
				t.Errorf("ThinkLevel with TemplateVars sent %v", body)
			}
			if _, err := r.Chat(context.Background(), msgs, ThinkLevel(ThinkHigh), Think(false)); err != nil {
				t.Fatal(err)
			}
			if body := f.posts("/v1/chat/completions")[3].Body; body["reasoning_effort"] != nil || fmt.Sprint(body["chat_template_kwargs"]) != "map[enable_thinking:false thinking:false]" {
				t.Errorf("ThinkLevel then Think(false) sent %v", body)
			}
			var thinking, answer strings.Builder
			var final *Result
			for c, err := range r.ChatStream(context.Background(), msgs, Think(true)) {
				if err != nil {
					t.Fatal(err)
				}
				if c.Thinking {
					thinking.WriteString(c.Text)
				} else {
					answer.WriteString(c.Text)
				}
				if c.Result != nil {
					final = c.Result
				}
			}
			if thinking.String() != "weigh it" || answer.String() != "yes" || final == nil || final.Thinking != "weigh it" || final.Text != "yes" {
				t.Errorf("ChatStream: thinking %q, answer %q, final %+v", thinking.String(), answer.String(), final)
			}
		})
	}
}
