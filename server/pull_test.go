package server_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ollama/ollama/api"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubtest"
)

// pullServer starts a server with no model whose Hub is the shared fake
// one, with an empty cache, and returns its URL and an Ollama client.
func pullServer(t *testing.T) (string, *api.Client) {
	t.Helper()
	fake := hubtest.Shared(t)
	client, err := hub.NewClient(hub.Env{Endpoint: fake.URL, HubCache: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Models, cfg.Hub = nil, client
	_, base := start(t, cfg)
	u, _ := url.Parse(base)
	return base, api.NewClient(u, http.DefaultClient)
}

// TestPull pulls stories260K from a fake Hub with /api/pull (Ollama's
// client, streaming progress), lists it in /api/tags under its Hub name and
// generates with it; an unknown repo is a 404.
func TestPull(t *testing.T) {
	ref := reference(t)
	base, c := pullServer(t)
	const name = "test/stories260K/stories260K.gguf"
	var statuses []string
	var last api.ProgressResponse
	err := c.Pull(context.Background(), &api.PullRequest{Model: name}, func(p api.ProgressResponse) error {
		statuses = append(statuses, p.Status)
		if p.Digest == "stories260K.gguf" {
			last = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if statuses[0] != "pulling manifest" || statuses[len(statuses)-1] != "success" ||
		last.Status != "pulling stories260K.gguf" || last.Total != 1185376 || last.Completed != last.Total {
		t.Errorf("statuses %q, last progress %+v", statuses, last)
	}

	_, body := get(t, base+"/api/tags")
	if !strings.Contains(string(body), `"name":"`+name+`"`) {
		t.Errorf("tags %s", body)
	}
	_, body = get(t, base+"/v1/models")
	if !strings.Contains(string(body), `"id":"`+name+`"`) {
		t.Errorf("models %s", body)
	}
	resp, body := post(t, base+"/api/generate", map[string]any{"model": name, "prompt": ref.Prompt, "stream": false, "options": greedyOllama(ref.NPredict)})
	if resp.StatusCode != http.StatusOK || decode[ollamaResp](t, body).Response != ref.Text {
		t.Errorf("generate with the pulled model: %d %s", resp.StatusCode, body)
	}

	resp, body = post(t, base+"/api/pull", map[string]any{"model": "test/no-such-repo", "stream": false})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(decode[ollamaResp](t, body).Error, "test/no-such-repo") {
		t.Errorf("unknown repo: %d %s", resp.StatusCode, body)
	}
	err = c.Pull(context.Background(), &api.PullRequest{Model: "test/no-such-repo"}, func(api.ProgressResponse) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("streamed pull of an unknown repo: %v", err)
	}
}

// TestPullConvert: /api/pull of org/repo:TYPE on a safetensors repo
// converts it ("converting to Q8_0") into the conversion cache, so that the
// first request finds it converted.
func TestPullConvert(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	base, c := pullServer(t)
	const name = "test/tiny-llama-st:Q8_0"
	var statuses []string
	if err := c.Pull(context.Background(), &api.PullRequest{Model: name}, func(p api.ProgressResponse) error {
		statuses = append(statuses, p.Status)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(statuses, "converting to Q8_0") || statuses[len(statuses)-1] != "success" {
		t.Errorf("statuses %q", statuses)
	}
	matches, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "llm", "converted", "*-q8_0.gguf"))
	if len(matches) != 1 {
		t.Errorf("converted files %v, want one Q8_0", matches)
	}
	resp, body := post(t, base+"/api/generate", map[string]any{"model": name, "prompt": "Hello", "stream": false, "options": greedyOllama(4)})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("generate with the converted model: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, base+"/api/pull", map[string]any{"model": "test/tiny-llama-st:IQ1_S", "stream": false})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(decode[ollamaResp](t, body).Error, "IQ1_S") {
		t.Errorf("an unconvertible type: %d %s", resp.StatusCode, body)
	}
}
