package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeEndpoint is a minimal OpenAI-compatible API on 127.0.0.1 that
// streams fixed answers and records the requests' bodies and headers.
type fakeEndpoint struct {
	*httptest.Server
	mu      sync.Mutex
	bodies  []map[string]any
	headers []http.Header
}

func newFakeEndpoint(t *testing.T) *fakeEndpoint {
	f := &fakeEndpoint{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		data, _ := io.ReadAll(r.Body)
		json.Unmarshal(data, &body)
		f.mu.Lock()
		f.bodies = append(f.bodies, body)
		f.headers = append(f.headers, r.Header.Clone())
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		event := func(s string) { fmt.Fprintf(w, "data: %s\n\n", s) }
		switch r.URL.Path {
		case "/v1/models":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"data":[{"id":"only-model"}]}`)
		case "/v1/completions":
			event(`{"choices":[{"index":0,"text":" upon"}]}`)
			event(`{"choices":[{"index":0,"text":" a time","finish_reason":"length"}]}`)
			event("[DONE]")
		case "/v1/chat/completions":
			msgs, _ := body["messages"].([]any)
			last, _ := msgs[len(msgs)-1].(map[string]any)["content"].(string)
			event(`{"choices":[{"index":0,"delta":{"content":"echo: "}}]}`)
			event(fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":%q},"finish_reason":"stop"}]}`, last))
			event("[DONE]")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"message":"not found"}}`)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEndpoint) last() (map[string]any, http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return nil, nil
	}
	return f.bodies[len(f.bodies)-1], f.headers[len(f.headers)-1]
}

func TestGenerateRemote(t *testing.T) {
	f := newFakeEndpoint(t)
	t.Setenv("LLM_TEST_API_KEY", "sk-test-key")
	code, out, errOut := run(t, "", "generate", "--remote", f.URL+"/v1", "--remote-model", "m", "--api-key-env", "LLM_TEST_API_KEY",
		"--temp", "0", "-n", "5", "--top-k", "7", "--seed", "3", "Once")
	if code != 0 || out != " upon a time\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	body, h := f.last()
	want := map[string]any{"model": "m", "prompt": "Once", "stream": true, "temperature": 0.0, "max_tokens": 5.0,
		"top_k": 7.0, "seed": 3.0}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v (body %v)", k, body[k], v, body)
		}
	}
	if h.Get("Authorization") != "Bearer sk-test-key" {
		t.Errorf("Authorization %q", h.Get("Authorization"))
	}

	// MODEL PROMPT as arguments, the prompt from stdin, the model discovered.
	if code, out, errOut := run(t, "", "generate", "--remote", f.URL, "named", "Once"); code != 0 || out != " upon a time\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if body, _ := f.last(); body["model"] != "named" {
		t.Errorf("model %v", body["model"])
	}
	if code, out, errOut := run(t, "Twice\n", "generate", "--remote", f.URL); code != 0 || out != " upon a time\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if body, h := f.last(); body["model"] != "only-model" || body["prompt"] != "Twice" || h.Get("Authorization") != "" {
		t.Errorf("body %v, Authorization %q", body, h.Get("Authorization"))
	}
}

func TestRunRemote(t *testing.T) {
	f := newFakeEndpoint(t)
	code, out, errOut := run(t, "Hello there", "run", "--remote", f.URL+"/v1", "chat-model", "--system", "Be brief.", "-n", "9")
	if code != 0 || out != "echo: Hello there\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	body, _ := f.last()
	msgs, _ := json.Marshal(body["messages"])
	if body["model"] != "chat-model" || body["max_tokens"] != 9.0 ||
		string(msgs) != `[{"content":"Be brief.","role":"system"},{"content":"Hello there","role":"user"}]` {
		t.Errorf("body %v", body)
	}
}

func TestRemoteUsageErrors(t *testing.T) {
	f := newFakeEndpoint(t)
	t.Setenv("LLM_TEST_UNSET_KEY", "")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--remote", f.URL, "--ngl", "5", "x"}, "--ngl sets up a local model and has no effect with --remote"},
		{[]string{"run", "--remote", f.URL, "--threads", "2"}, "--threads sets up a local model"},
		{[]string{"generate", "--remote-model", "m", "model.gguf", "x"}, "--remote-model needs --remote URL"},
		{[]string{"generate", "--remote", "ftp://x", "x"}, "--remote \"ftp://x\": want an http(s) URL"},
		{[]string{"generate", "--remote", f.URL, "--api-key-env", "LLM_TEST_UNSET_KEY", "x"}, "LLM_TEST_UNSET_KEY: the variable is not set"},
		{[]string{"generate", "--remote", f.URL, "a", "b", "c"}, "at most a MODEL and a PROMPT"},
		{[]string{"run", "--remote", f.URL, "--remote-model", "a", "b"}, "the model is named twice"},
	}
	for _, tc := range cases {
		code, _, errOut := run(t, "", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestRemoteFailures(t *testing.T) {
	f := newFakeEndpoint(t)
	// An endpoint without /completions: the error says so and what to do.
	code, _, errOut := run(t, "", "generate", "--remote", f.URL+"/chat-only/v1", "--remote-model", "m", "x")
	if code != 1 || !strings.Contains(errOut, "404 Not Found: not found") || !strings.Contains(errOut, "try llm run --remote") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestDefaultKeyEnv(t *testing.T) {
	for host, want := range map[string]string{
		"router.huggingface.co": "HF_TOKEN", "huggingface.co": "HF_TOKEN", "api.openai.com": "OPENAI_API_KEY",
		"127.0.0.1": "", "evilhuggingface.co": "", "api.openai.com.example": "",
	} {
		if got := defaultKeyEnv(host); got != want {
			t.Errorf("%s: %q, want %q", host, got, want)
		}
	}
}
