package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// TestErrors: bad requests get a clear error in the API's own shape and
// status, never a panic, and the server goes on serving.
func TestErrors(t *testing.T) {
	_, url := start(t, testConfig(t))
	longPrompt := strings.Repeat("Once upon a time there was a little girl. ", 80)
	chat := func(extra string) string {
		return `{"model":"stories260K","messages":[{"role":"user","content":"Hi"}]` + extra + `}`
	}
	tests := []struct {
		name   string
		path   string
		body   string
		status int
		param  string   // OpenAI: the error's param
		want   []string // in the message
	}{
		{"malformed JSON", "/v1/chat/completions", `{"model": "stories260K", "messages": [`, 400, "", []string{"malformed JSON"}},
		{"syntax error", "/v1/chat/completions", `{"model" "x"}`, 400, "", []string{"malformed JSON at byte"}},
		{"not an object", "/v1/chat/completions", `[1, 2]`, 400, "", []string{"must be a JSON object"}},
		{"empty body", "/v1/chat/completions", ``, 400, "", []string{"empty"}},
		{"trailing data", "/v1/chat/completions", chat("") + `{}`, 400, "", []string{"data after"}},
		{"wrong type", "/v1/chat/completions", `{"model": 5, "messages": []}`, 400, "model", []string{`"model" must be a string`}},
		{"max_tokens type", "/v1/chat/completions", chat(`,"max_tokens":"ten"`), 400, "max_tokens", []string{"integer"}},
		{"negative max_tokens", "/v1/chat/completions", chat(`,"max_tokens":-1`), 400, "max_tokens", []string{"0 or more"}},
		{"no messages", "/v1/chat/completions", `{"model":"stories260K"}`, 400, "messages", []string{"required"}},
		{"empty messages", "/v1/chat/completions", `{"model":"stories260K","messages":[]}`, 400, "messages", []string{"at least one"}},
		{"messages not array", "/v1/chat/completions", `{"model":"stories260K","messages":{"role":"user"}}`, 400, "messages", []string{"array"}},
		{"no role", "/v1/chat/completions", `{"model":"stories260K","messages":[{"content":"Hi"}]}`, 400, "messages[0].role", []string{"no role"}},
		{"image part", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "messages[0].content[0]", []string{"only text"}},
		{"temperature type", "/v1/chat/completions", chat(`,"temperature":"hot"`), 400, "temperature", []string{"temperature"}},
		{"temperature range", "/v1/chat/completions", chat(`,"temperature":5`), 400, "temperature", []string{"[0, 2]"}},
		{"stop type", "/v1/chat/completions", chat(`,"stop":7`), 400, "stop", []string{"string or an array"}},
		{"empty stop", "/v1/chat/completions", chat(`,"stop":[""]`), 400, "stop", []string{"empty"}},
		{"n zero", "/v1/chat/completions", chat(`,"n":0`), 400, "n", []string{"[1, 16]", "got 0"}},
		{"n over 16", "/v1/chat/completions", chat(`,"n":17`), 400, "n", []string{"[1, 16]", "got 17"}},
		{"n type", "/v1/chat/completions", chat(`,"n":"two"`), 400, "n", []string{`"n" must be an integer`}},
		// Parallel 1 + Queue 4: the model never admits more than 5 at once.
		{"n over the queue", "/v1/chat/completions", chat(`,"n":6`), 400, "n", []string{"at most 5 generations", "1 running + 4 waiting"}},
		{"n over the queue completion", "/v1/completions", `{"model":"stories260K","prompt":"a","n":6,"stream":true}`, 400, "n", []string{"at most 5"}},
		{"n completion", "/v1/completions", `{"model":"stories260K","prompt":"a","n":-1}`, 400, "n", []string{"[1, 16]"}},
		{"top_logprobs", "/v1/chat/completions", chat(`,"logprobs":true,"top_logprobs":50`), 400, "top_logprobs", []string{"[0, 20]"}},
		{"response_format", "/v1/chat/completions", chat(`,"response_format":{"type":"xml"}`), 400, "response_format.type", []string{"json_schema"}},
		{"bad schema", "/v1/chat/completions", chat(`,"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"nonsense"}}}`), 400, "", []string{"schema"}},
		{"tools without template", "/v1/chat/completions", chat(`,"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]`), 400, "tools", []string{"does not support tools"}},
		{"bad tool", "/v1/chat/completions", chat(`,"tools":[{"type":"retrieval"}]`), 400, "tools[0].type", []string{"function"}},
		{"unknown model", "/v1/chat/completions", `{"model":"no-such-model","messages":[{"role":"user","content":"Hi"}]}`, 404, "model", []string{`"no-such-model" not found`}},
		{"unknown model path", "/v1/chat/completions", `{"model":"/no/such/file.gguf","messages":[{"role":"user","content":"Hi"}]}`, 404, "model", []string{"/no/such/file.gguf"}},
		{"prompt too long", "/v1/completions", `{"model":"stories260K","prompt":"` + longPrompt + `"}`, 400, "", []string{"tokens", "512"}},
		{"prompt too long chat", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"` + longPrompt + `"}]}`, 400, "", []string{"512"}},
		{"prompt too long stream", "/v1/completions", `{"model":"stories260K","stream":true,"prompt":"` + longPrompt + `"}`, 400, "", []string{"512"}},
		{"prompt type", "/v1/completions", `{"model":"stories260K","prompt":{"text":"a"}}`, 400, "prompt", []string{"token ids"}},
		{"prompt mixed", "/v1/completions", `{"model":"stories260K","prompt":[1,"a"]}`, 400, "prompt", []string{"array of token ids"}},
		{"prompt float id", "/v1/completions", `{"model":"stories260K","prompt":[1,2.5]}`, 400, "prompt", []string{"array of token ids"}},
		{"prompt empty", "/v1/completions", `{"model":"stories260K","prompt":[]}`, 400, "prompt", []string{"at least one prompt"}},
		{"token prompt empty", "/v1/completions", `{"model":"stories260K","prompt":[[1,403],[]]}`, 400, "prompt[1]", []string{"empty list of token ids"}},
		{"token id too big", "/v1/completions", `{"model":"stories260K","prompt":[1,403,512]}`, 400, "prompt[2]", []string{"token id 512", "0 to 511"}},
		{"token id negative", "/v1/completions", `{"model":"stories260K","prompt":[[1,403],[1,-3]]}`, 400, "prompt[1][1]", []string{"token id -3", "0 to 511"}},
		{"token prompt streamed", "/v1/completions", `{"model":"stories260K","stream":true,"prompt":[1,99999]}`, 400, "prompt[1]", []string{"token id 99999"}},
		{"suffix without FIM tokens", "/v1/completions", `{"model":"stories260K","prompt":"a","suffix":"b"}`, 400, "suffix", []string{"no fill-in-the-middle tokens"}},
		{"embedding input", "/v1/embeddings", `{"model":"stories260K","input":[[1,2]]}`, 400, "input", []string{"token ids"}},
		{"embedding empty", "/v1/embeddings", `{"model":"stories260K","input":[""]}`, 400, "input", []string{"empty"}},
		{"embedding format", "/v1/embeddings", `{"model":"stories260K","input":"a","encoding_format":"hex"}`, 400, "encoding_format", []string{"base64"}},
		{"embedding dimensions", "/v1/embeddings", `{"model":"stories260K","input":"a","dimensions":65}`, 400, "dimensions", []string{"64"}},
		{"embedding too long", "/v1/embeddings", `{"model":"stories260K","input":"` + longPrompt + `"}`, 400, "", []string{"512"}},
		{"unknown endpoint", "/v1/nothing", `{}`, 404, "", []string{"no such endpoint"}},

		{"ollama malformed", "/api/generate", `{"model":`, 400, "", []string{"malformed JSON"}},
		{"ollama wrong type", "/api/generate", `{"model":"stories260K","prompt":42}`, 400, "", []string{`"prompt" must be a string`}},
		{"ollama options type", "/api/generate", `{"model":"stories260K","prompt":"a","options":[]}`, 400, "", []string{`"options" must be an object`}},
		{"ollama unknown option", "/api/generate", `{"model":"stories260K","prompt":"a","options":{"warp_speed":9}}`, 400, "", []string{"warp_speed"}},
		{"ollama option range", "/api/generate", `{"model":"stories260K","prompt":"a","options":{"top_p":3}}`, 400, "", []string{"top_p"}},
		{"ollama num_predict", "/api/generate", `{"model":"stories260K","prompt":"a","options":{"num_predict":1.5}}`, 400, "", []string{"num_predict"}},
		{"ollama format", "/api/generate", `{"model":"stories260K","prompt":"a","format":"yaml"}`, 400, "", []string{"format"}},
		{"ollama keep_alive", "/api/generate", `{"model":"stories260K","prompt":"a","keep_alive":"soon"}`, 400, "", []string{"keep_alive"}},
		{"ollama think", "/api/chat", `{"model":"stories260K","messages":[{"role":"user","content":"a"}],"think":42}`, 400, "", []string{"think"}},
		{"ollama images", "/api/generate", `{"model":"stories260K","prompt":"a","images":["aGk="]}`, 400, "", []string{"images"}},
		{"ollama template", "/api/generate", `{"model":"stories260K","prompt":"a","template":"{{ .Prompt }}"}`, 400, "", []string{"template"}},
		{"ollama unknown model", "/api/chat", `{"model":"llama3","messages":[{"role":"user","content":"a"}]}`, 404, "", []string{`"llama3" not found`}},
		{"ollama prompt too long", "/api/generate", `{"model":"stories260K","prompt":"` + longPrompt + `"}`, 400, "", []string{"512"}},
		{"ollama chat too long", "/api/chat", `{"model":"stories260K","messages":[{"role":"user","content":"` + longPrompt + `"}]}`, 400, "", []string{"512"}},
		{"ollama embed", "/api/embed", `{"model":"stories260K"}`, 400, "", []string{"input"}},
		{"ollama embed truncate false", "/api/embed", `{"model":"stories260K","truncate":false,"input":["a","` + longPrompt + `"]}`, 400, "", []string{"512"}},
		{"ollama embed truncate type", "/api/embed", `{"model":"stories260K","truncate":"yes","input":"a"}`, 400, "", []string{`"truncate" must be a boolean`}},
		{"ollama pull name", "/api/pull", `{"model":"not a name"}`, 400, "", []string{"not a Hub model name"}},
		{"ollama pull offline", "/api/pull", `{"model":"org/repo","stream":false}`, 503, "", []string{"offline"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, url+tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var msg string
			if strings.HasPrefix(tc.path, "/v1/") {
				e := decode[openAIError](t, body)
				msg = e.Error.Message
				if e.Error.Type == "" || e.Error.Code == nil {
					t.Errorf("OpenAI error without type or code: %s", body)
				}
				if tc.param != "" && (e.Error.Param == nil || *e.Error.Param != tc.param) {
					t.Errorf("param %v, want %q: %s", e.Error.Param, tc.param, body)
				}
			} else {
				msg = decode[map[string]string](t, body)["error"]
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}

	// The body limit is a 413 in both shapes.
	huge := `{"model":"stories260K","prompt":"` + strings.Repeat("a", 9<<20) + `"}`
	for _, path := range []string{"/v1/completions", "/api/generate"} {
		resp, body := post(t, url+path, huge)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "larger than") {
			t.Errorf("%s with 9 MiB: %d %s", path, resp.StatusCode, body)
		}
	}
	// A wrong method is a 405 naming the right one.
	resp, body := get(t, url+"/v1/chat/completions")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || !strings.Contains(string(body), "POST") {
		t.Errorf("GET /v1/chat/completions: %d %s", resp.StatusCode, body)
	}

	// Still serving.
	resp, body = post(t, url+"/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":4,"temperature":0}`)
	if resp.StatusCode != http.StatusOK || decode[chatResp](t, body).Choices[0].Text != ", there was a" {
		t.Errorf("after the errors: %d %s", resp.StatusCode, body)
	}
}

// TestRequestTimeout: a request that outlives the request timeout ends
// with 504, or with an error line when it is already streaming.
func TestRequestTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.RequestTimeout = 300 * time.Millisecond
	_, url := start(t, cfg)
	long := map[string]any{"model": storiesName, "prompt": "Once upon a time", "stream": false,
		"options": map[string]any{"temperature": 0, "repeat_penalty": 1, "num_predict": 1000000}}
	resp, body := post(t, url+"/api/generate", long)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(decode[ollamaResp](t, body).Error, "timeout") {
		t.Errorf("not streamed: %d %s", resp.StatusCode, body)
	}
	long["stream"] = true
	resp, body = post(t, url+"/api/generate", long)
	lines := ndjsonLines(body)
	if last := decode[ollamaResp](t, []byte(lines[len(lines)-1])); resp.StatusCode != http.StatusOK || !strings.Contains(last.Error, "timeout") {
		t.Errorf("streamed: %d, last line %s", resp.StatusCode, lines[len(lines)-1])
	}
	resp, body = post(t, url+"/v1/chat/completions", map[string]any{"model": storiesName, "stream": true, "max_tokens": 2,
		"messages": []map[string]any{{"role": "user", "content": "Once"}}})
	if resp.StatusCode != http.StatusOK || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Errorf("a short request: %d %s", resp.StatusCode, body)
	}
}

// TestLogprobsStreams: streamed chunks carry one token's log-probability
// each, on both APIs.
func TestLogprobsStreams(t *testing.T) {
	_, url := start(t, testConfig(t))
	_, body := post(t, url+"/v1/chat/completions", map[string]any{"model": storiesName, "stream": true, "max_tokens": 8,
		"temperature": 0, "logprobs": true, "top_logprobs": 2, "messages": []map[string]any{{"role": "user", "content": "Once upon a time"}}})
	n := 0
	for _, e := range sseEvents(t, body) {
		if e == "[DONE]" {
			continue
		}
		c := decode[chatResp](t, []byte(e))
		if lp := c.Choices[0].Logprobs; lp != nil {
			if len(lp.Content) != 1 || len(lp.Content[0].TopLogprobs) != 2 || lp.Content[0].Logprob > 0 {
				t.Errorf("chunk logprobs %s", e)
			}
			n++
		}
	}
	if n != 8 {
		t.Errorf("%d chunks with logprobs, want 8", n)
	}
	_, body = post(t, url+"/api/generate", map[string]any{"model": storiesName, "prompt": "Once upon a time", "stream": false,
		"logprobs": true, "top_logprobs": 3, "options": greedyOllama(8)})
	type logprobs struct {
		Logprobs []struct {
			Token       string            `json:"token"`
			Logprob     float64           `json:"logprob"`
			TopLogprobs []json.RawMessage `json:"top_logprobs"`
		} `json:"logprobs"`
	}
	r := decode[logprobs](t, body)
	if len(r.Logprobs) != 8 || r.Logprobs[0].Token != "," || len(r.Logprobs[0].TopLogprobs) != 3 {
		t.Errorf("Ollama logprobs %s", body)
	}
}

// TestTemplateErrors: a chat template that rejects the conversation
// (raise_exception) is the request's fault: a 400 with its message.
func TestTemplateErrors(t *testing.T) {
	cfg := testConfig(t)
	cfg.Models = []string{withTemplate(t, "strict",
		`{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}`)}
	_, url := start(t, cfg)
	msgs := []map[string]any{{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}}
	for _, stream := range []bool{false, true} {
		resp, body := post(t, url+"/v1/chat/completions", map[string]any{"model": "strict", "messages": msgs, "stream": stream})
		if e := decode[openAIError](t, body); resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error.Message, "System role not supported") {
			t.Errorf("stream %v: %d %s", stream, resp.StatusCode, body)
		}
	}
	resp, body := post(t, url+"/api/chat", map[string]any{"model": "strict", "messages": msgs})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "System role not supported") {
		t.Errorf("/api/chat: %d %s", resp.StatusCode, body)
	}
}
