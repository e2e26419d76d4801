package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llm-go/llm/internal/shareddata"
)

// TestServe runs "llm serve" with stories260K, checks that it prints its
// address, answers both APIs with the reference text and the API key from
// LLM_API_KEY, and shuts down when its context ends.
func TestServe(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	ready := make(chan string, 1)
	serveReady = func(a net.Addr) { ready <- a.String() }
	defer func() { serveReady = nil }()
	t.Setenv("LLM_API_KEY", "k") // the key comes from the environment
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, &stdio{in: strings.NewReader(""), out: &out, err: &errOut},
			[]string{"serve", "--addr", "127.0.0.1:0", "-m", model, "-t", "1", "--ctx", "512", "--parallel", "2"})
	}()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start: %s", errOut.String())
	}
	if !strings.Contains(out.String(), "listening on http://"+addr) {
		t.Errorf("stdout %q does not name %s", out.String(), addr)
	}
	post := func(path, body string, key string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	status, body := post("/v1/completions", `{"model":"stories260K","prompt":"Once upon a time","max_tokens":10,"temperature":0}`, "k")
	var c struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &c); status != 200 || err != nil || c.Choices[0].Text != ", there was a little girl named Lily" {
		t.Errorf("completion: %d %s", status, body)
	}
	status, body = post("/api/generate", `{"model":"stories260K","prompt":"Once upon a time","stream":false,"options":{"temperature":0,"repeat_penalty":1,"num_predict":4}}`, "k")
	if status != 200 || !strings.Contains(string(body), `"response":", there was a"`) {
		t.Errorf("generate: %d %s", status, body)
	}
	if status, _ := post("/api/generate", `{}`, ""); status != http.StatusUnauthorized {
		t.Errorf("without the key: %d", status)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeUsage: bad flags are usage errors (exit 2) naming the flag.
func TestServeUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--parallel", "0"}, "--parallel"},
		{[]string{"--queue", "-3"}, "--queue"},
		{[]string{"--max-models", "1", "-m", "a.gguf", "-m", "b.gguf"}, "--max-models"},
		{[]string{"--keep-alive", "0s"}, "--keep-alive"},
		{[]string{"--addr", "nocolon"}, "--addr"},
		{[]string{"--ngl", "-2"}, "--ngl"},
		{[]string{"--draft", "d.gguf"}, "--draft needs a --model"},
		{[]string{"-m", "a.gguf", "--draft", "d.gguf", "--draft-max", "65"}, "--draft-max"},
	} {
		code, _, stderr := run(t, "", append([]string{"serve"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q", tc.args, code, stderr)
		}
	}
	t.Setenv("LLM_API_KEY", "from-the-env")
	if code, out, _ := run(t, "", "help", "serve"); code != 0 || strings.Contains(out, "from-the-env") || !strings.Contains(out, "--keep-alive") {
		t.Errorf("help serve: exit %d, %q", code, out)
	}
	code, _, stderr := run(t, "", "serve", "--addr", "127.0.0.1:0", "-m", "/no/such/model.gguf")
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("a missing model: exit %d, %q", code, stderr)
	}
	code, _, stderr = run(t, "", "serve", "--addr", "127.0.0.1:0", "-m", "/no/such/model.gguf", "--draft", "/no/such/draft.gguf")
	if code != 1 || !strings.Contains(stderr, "--draft") || !strings.Contains(stderr, "draft.gguf") {
		t.Errorf("a missing draft: exit %d, %q", code, stderr)
	}
}
