package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/modelfile"
	"github.com/llm-go/llm/server"
)

// storiesName is the name the server gives stories260K.gguf.
const storiesName = "stories260K"

type refPrompt struct {
	Prompt   string  `json:"prompt"`
	NPredict int     `json:"n_predict"`
	Text     string  `json:"generated_text"`
	Steps    []step  `json:"steps"`
	LSE      float64 `json:"last_prompt_position_logsumexp"`
}

type step struct {
	Token int     `json:"token"`
	Logit float64 `json:"logit"`
}

// reference returns the stories260K reference for "Once upon a time".
func reference(t testing.TB) refPrompt {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "stories260K_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []refPrompt `json:"prompts"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if ref.Prompts[0].Prompt != "Once upon a time" {
		t.Fatalf("the first reference prompt is %q", ref.Prompts[0].Prompt)
	}
	return ref.Prompts[0]
}

func storiesPath(t testing.TB) string {
	return shareddata.Path(t, "models", "stories260K.gguf")
}

// offlineHub is a Hub client that never reaches a network: unknown Hub
// names fail at once as not found.
func offlineHub(t testing.TB) *hub.Client {
	t.Helper()
	c, err := hub.NewClient(hub.Env{Endpoint: "http://127.0.0.1:1", HubCache: t.TempDir(), Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testLogger discards the server's log unless LLM_SERVER_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("LLM_SERVER_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// loadCounter is a Loader that counts the models it opens.
type loadCounter struct{ n atomic.Int32 }

func (c *loadCounter) load(ctx context.Context, name string, opts ...llm.Option) (*llm.Pipeline, error) {
	c.n.Add(1)
	return llm.New(ctx, name, opts...)
}

// testConfig is a server of stories260K with one thread and a 512-token
// context, an offline Hub and an empty preset store.
func testConfig(t testing.TB) server.Config {
	return server.Config{Models: []string{storiesPath(t)}, Threads: 1, ContextLength: 512,
		Hub: offlineHub(t), Presets: &modelfile.Store{Dir: t.TempDir()}, Logger: testLogger()}
}

// start runs a server with cfg on 127.0.0.1 and returns its base URL.
func start(t testing.TB, cfg server.Config) (*server.Server, string) {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return srv, ts.URL
}

// post sends body (a value to encode, or a string sent as it is).
func post(t testing.TB, url string, body any, header ...string) (*http.Response, []byte) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func get(t testing.TB, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// decode unmarshals data into a new T, failing the test on error.
func decode[T any](t testing.TB, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return v
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("an SSE line without data: %q", line)
		}
		out = append(out, data)
	}
	return out
}

// ndjsonLines splits an NDJSON body into its lines.
func ndjsonLines(body []byte) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// withTemplate writes a copy of stories260K with a chat template and
// returns its path (named name.gguf in a temporary directory).
func withTemplate(t testing.TB, name, template string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".gguf")
	err := gguf.Rewrite(path, storiesPath(t), func(w *gguf.Writer) {
		w.Set("tokenizer.chat_template", gguf.String(template))
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// errorsAs is errors.As for a value target.
func errorsAs[T error](err error, target *T) bool {
	return errors.As(err, target)
}
