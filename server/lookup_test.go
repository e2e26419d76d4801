package server_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/server"
)

// TestServerPromptLookup: a server that decodes with prompt lookup answers
// as one that does not; a lookup out of range is refused.
func TestServerPromptLookup(t *testing.T) {
	cfg := testConfig(t)
	cfg.PromptLookup = 8
	if plain, got := greedyText(t, testConfig(t)), greedyText(t, cfg); got != plain || plain == "" {
		t.Errorf("with lookup %q\nwithout %q", got, plain)
	}
	cfg = testConfig(t)
	cfg.PromptLookup = llm.MaxPromptLookup + 1
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "PromptLookup") {
		t.Errorf("PromptLookup %d: %v", cfg.PromptLookup, err)
	}
}

// TestServerDraft: a model served with a draft model answers as without;
// a draft length out of range is refused.
func TestServerDraft(t *testing.T) {
	cfg := testConfig(t)
	cfg.Drafts, cfg.DraftTokens = map[string]string{cfg.Models[0]: cfg.Models[0]}, 8
	if plain, got := greedyText(t, testConfig(t)), greedyText(t, cfg); got != plain || plain == "" {
		t.Errorf("with a draft %q\nwithout %q", got, plain)
	}
	cfg = testConfig(t)
	cfg.DraftTokens = llm.MaxDraftTokens + 1
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "DraftTokens") {
		t.Errorf("DraftTokens %d: %v", cfg.DraftTokens, err)
	}
	// The mapping is applied (a draft of another vocabulary fails the
	// load) and checked (a model that is not configured is an error).
	cfg = testConfig(t)
	cfg.Drafts = map[string]string{"stories260K": filepath.Join(filepath.Dir(cfg.Models[0]), "llama-2-tiny-random.gguf")}
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("an incompatible draft: %v", err)
	}
	cfg = testConfig(t)
	cfg.Drafts = map[string]string{"no-such-model": cfg.Models[0]}
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "no-such-model") {
		t.Errorf("a draft for a model not configured: %v", err)
	}
}

// greedyText is the text of a greedy 64-token completion of a story
// opening by a server with cfg.
func greedyText(t *testing.T, cfg server.Config) string {
	t.Helper()
	_, url := start(t, cfg)
	prompt := "Once upon a time, there was a little girl named Lily. She loved to play outside. One day, Lily"
	resp, body := post(t, url+"/v1/completions", map[string]any{"model": "stories260K", "prompt": prompt, "max_tokens": 64, "temperature": 0})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	return decode[struct{ Choices []struct{ Text string } }](t, body).Choices[0].Text
}
