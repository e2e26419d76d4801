package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/server"
)

type psList struct {
	Models []struct {
		Name      string    `json:"name"`
		ExpiresAt time.Time `json:"expires_at"`
		Size      int64     `json:"size"`
		SizeVRAM  int64     `json:"size_vram"`
	} `json:"models"`
}

// loadedNames lists the models /api/ps shows.
func loadedNames(t *testing.T, url string) []string {
	t.Helper()
	_, body := get(t, url+"/api/ps")
	var names []string
	for _, m := range decode[psList](t, body).Models {
		names = append(names, m.Name)
	}
	return names
}

// waitFor polls cond every 20 ms until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeepAlive: a model unloads when its keep-alive runs out after its
// last request and loads again on the next; a request's keep_alive 0
// unloads it when the request ends, a negative one keeps it.
func TestKeepAlive(t *testing.T) {
	var loads loadCounter
	cfg := testConfig(t)
	cfg.KeepAlive = 300 * time.Millisecond
	cfg.Loader = loads.load
	_, url := start(t, cfg)
	if got := loadedNames(t, url); len(got) != 1 || loads.n.Load() != 1 {
		t.Fatalf("after New: loaded %v, %d loads", got, loads.n.Load())
	}
	waitFor(t, "the keep-alive to unload the model", func() bool { return len(loadedNames(t, url)) == 0 })

	gen := func(keepAlive any) {
		t.Helper()
		req := map[string]any{"model": storiesName, "prompt": "Once", "stream": false, "options": greedyOllama(2)}
		if keepAlive != nil {
			req["keep_alive"] = keepAlive
		}
		if resp, body := post(t, url+"/api/generate", req); resp.StatusCode != http.StatusOK {
			t.Fatalf("generate: %d %s", resp.StatusCode, body)
		}
	}
	gen(nil)
	if loads.n.Load() != 2 {
		t.Errorf("%d loads, want 2", loads.n.Load())
	}
	gen(0)
	if got := loadedNames(t, url); len(got) != 0 {
		t.Errorf("keep_alive 0 left %v loaded", got)
	}
	gen("-1m")
	time.Sleep(600 * time.Millisecond)
	_, body := get(t, url+"/api/ps")
	ps := decode[psList](t, body)
	if len(ps.Models) != 1 || ps.Models[0].ExpiresAt.Year() < 2100 {
		t.Errorf("keep_alive -1m: %s", body)
	}
	// Ollama's size_vram: the part of size offloaded, none without a GPU.
	if len(ps.Models) == 1 && (ps.Models[0].Size <= 0 || ps.Models[0].SizeVRAM != 0 && !engine.HaveGPU()) {
		t.Errorf("size %d, size_vram %d without a GPU", ps.Models[0].Size, ps.Models[0].SizeVRAM)
	}
	gen("1h")
	_, body = get(t, url+"/api/ps")
	if ps := decode[psList](t, body); len(ps.Models) != 1 || time.Until(ps.Models[0].ExpiresAt) < 59*time.Minute {
		t.Errorf("keep_alive 1h: %s", body)
	}

	// Ollama's empty prompt: unload with keep_alive 0, load otherwise.
	resp, body := post(t, url+"/api/generate", map[string]any{"model": storiesName, "keep_alive": 0})
	if r := decode[ollamaResp](t, body); resp.StatusCode != http.StatusOK || r.DoneReason != "unload" || !r.Done || len(loadedNames(t, url)) != 0 {
		t.Errorf("unload: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, url+"/api/chat", map[string]any{"model": storiesName})
	if r := decode[ollamaResp](t, body); resp.StatusCode != http.StatusOK || r.DoneReason != "load" || len(loadedNames(t, url)) != 1 {
		t.Errorf("load: %d %s", resp.StatusCode, body)
	}
	if loads.n.Load() != 4 {
		t.Errorf("%d loads, want 4", loads.n.Load())
	}
}

// TestMaxModels: with room for one model, using another unloads the idle
// one; while the first is in use the second is refused with 503.
func TestMaxModels(t *testing.T) {
	var loads loadCounter
	cfg := testConfig(t)
	cfg.MaxModels = 1
	cfg.Loader = loads.load
	other := filepath.Join(t.TempDir(), "other.gguf")
	data, err := os.ReadFile(storiesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, url := start(t, cfg)
	resp, body := post(t, url+"/v1/completions", map[string]any{"model": other, "prompt": "Once", "max_tokens": 2})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("other model: %d %s", resp.StatusCode, body)
	}
	if got := loadedNames(t, url); len(got) != 1 || got[0] != other {
		t.Errorf("loaded %v, want only %s", got, other)
	}
	// The loaded model answers to its name; the evicted one loads again.
	post(t, url+"/v1/completions", map[string]any{"model": storiesName, "prompt": "Once", "max_tokens": 2})
	if got := loadedNames(t, url); len(got) != 1 || got[0] != storiesName || loads.n.Load() != 3 {
		t.Errorf("loaded %v after %d loads", got, loads.n.Load())
	}
	if resp, body := get(t, url+"/v1/models"); !strings.Contains(string(body), storiesName) || resp.StatusCode != 200 {
		t.Errorf("models %s", body)
	}
}

// TestMaxModelsBusy: a second model is refused while the only slot's model
// is still loading.
func TestMaxModelsBusy(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cfg := testConfig(t)
	cfg.Models = nil
	cfg.MaxModels = 1
	cfg.Loader = func(ctx context.Context, name string, opts ...llm.Option) (*llm.Pipeline, error) {
		once.Do(func() { close(entered) })
		<-release
		return llm.New(ctx, name, opts...)
	}
	_, url := start(t, cfg)
	done := make(chan int)
	go func() {
		resp, _ := post(t, url+"/v1/completions", map[string]any{"model": storiesPath(t), "prompt": "Once", "max_tokens": 2})
		done <- resp.StatusCode
	}()
	<-entered
	other := withTemplate(t, "other", "{{ messages[0].content }}")
	resp, body := post(t, url+"/api/generate", map[string]any{"model": other, "prompt": "Once"})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(decode[ollamaResp](t, body).Error, "in use") {
		t.Errorf("second model while the first loads: %d %s", resp.StatusCode, body)
	}
	close(release)
	if status := <-done; status != http.StatusOK {
		t.Errorf("the first request: %d", status)
	}
}

// TestMemoryLimit: a model larger than the available memory is refused
// with 507 and a message giving both sizes.
func TestMemoryLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.MemoryAvailable = func() (uint64, error) { return 1 << 20, nil }
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "needs about") {
		t.Errorf("New with too little memory: %v", err)
	}
	cfg.Models = nil
	_, url := start(t, cfg)
	resp, body := post(t, url+"/v1/chat/completions", map[string]any{"model": storiesPath(t), "messages": []map[string]any{{"role": "user", "content": "Hi"}}})
	msg := decode[openAIError](t, body).Error.Message
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(msg, "needs about 1.4 MiB") || !strings.Contains(msg, "only 1.0 MiB") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	// With the memory check failing, the model loads.
	cfg.MemoryAvailable = func() (uint64, error) { return 0, errors.New("no /proc") }
	_, url = start(t, cfg)
	if resp, body := post(t, url+"/v1/completions", map[string]any{"model": storiesPath(t), "prompt": "Once", "max_tokens": 1}); resp.StatusCode != http.StatusOK {
		t.Errorf("unchecked memory: %d %s", resp.StatusCode, body)
	}
}

// TestMemoryLimitDraft: the memory check counts a draft model: memory
// that holds the model alone does not hold it with its draft.
func TestMemoryLimitDraft(t *testing.T) {
	cfg := testConfig(t)
	cfg.MemoryAvailable = func() (uint64, error) { return 2 << 20, nil }
	if _, err := server.New(cfg); err != nil {
		t.Fatalf("the model alone in 2 MiB: %v", err)
	}
	cfg = testConfig(t)
	cfg.MemoryAvailable = func() (uint64, error) { return 2 << 20, nil }
	cfg.Drafts = map[string]string{cfg.Models[0]: cfg.Models[0]}
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "needs about 2.9 MiB") || !strings.Contains(err.Error(), "+ draft model 1.4 MiB") {
		t.Errorf("with its draft in 2 MiB: %v", err)
	}
}

// TestConcurrentLoad: requests arriving while a model loads share the one
// load.
func TestConcurrentLoad(t *testing.T) {
	var loads loadCounter
	cfg := testConfig(t)
	cfg.Models = nil
	cfg.Parallel = 4
	cfg.Loader = loads.load
	_, url := start(t, cfg)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, body := post(t, url+"/v1/completions", map[string]any{"model": storiesPath(t), "prompt": "Once", "max_tokens": 8})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%d %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if n := loads.n.Load(); n != 1 {
		t.Errorf("%d loads, want 1", n)
	}
}

// TestConfigErrors: New rejects what it cannot serve.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"negative parallel", server.Config{Parallel: -1}, "Parallel"},
		{"negative context", server.Config{ContextLength: -5}, "ContextLength"},
		{"too many models", server.Config{Models: []string{"a", "b"}, MaxModels: 1}, "MaxModels"},
		{"missing file", server.Config{Models: []string{"/no/such/model.gguf"}, Hub: offlineHub(t), Logger: testLogger()}, "not found"},
		{"same name", server.Config{Models: []string{"/a/x.gguf", "/b/x.gguf"}, MaxModels: 2}, "two models"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := server.New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
}

// TestNoLocalPaths: with NoLocalPaths a request may name the configured
// models but no other local file.
func TestNoLocalPaths(t *testing.T) {
	cfg := testConfig(t)
	cfg.NoLocalPaths = true
	other := filepath.Join(t.TempDir(), "other.gguf")
	data, err := os.ReadFile(storiesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, url := start(t, cfg)
	for _, name := range []string{other, "/etc/passwd", "./x.gguf"} {
		resp, body := post(t, url+"/v1/completions", map[string]any{"model": name, "prompt": "Once", "max_tokens": 2})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "allow-paths") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	for _, name := range []string{storiesName, storiesPath(t)} {
		if resp, body := post(t, url+"/v1/completions", map[string]any{"model": name, "prompt": "Once", "max_tokens": 2}); resp.StatusCode != http.StatusOK {
			t.Errorf("configured %s: %d %s", name, resp.StatusCode, body)
		}
	}
}
