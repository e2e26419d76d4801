package llm_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain keeps every test of this package off the network and out of the
// user's files: the Hub settings point at an empty cache, offline, with a
// loopback endpoint, and presets live in a temporary directory. Tests that
// pull set up a fake Hub on 127.0.0.1 and pass its client with WithHub.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llm-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("HF_HOME", dir)
	os.Setenv("HF_HUB_CACHE", filepath.Join(dir, "hub"))
	os.Setenv("HF_HUB_OFFLINE", "1")
	os.Setenv("HF_ENDPOINT", "http://127.0.0.1:1")
	os.Setenv("HF_TOKEN", "")
	os.Setenv("LLM_PRESETS", filepath.Join(dir, "presets"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
