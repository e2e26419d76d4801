package server_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// openAINodeVersion is the version of the "openai" npm package the test
// installs.
const openAINodeVersion = "openai@4"

// TestOpenAINodeClient runs testdata/openai_client.mjs, which drives the
// server with the official OpenAI Node client: chat (plain, streamed and
// with the stream helper, with one choice and with n=2), completion,
// embeddings, models and errors. The
// greedy texts must be the reference. Outside CI the test skips when node
// or npm is missing or the package cannot be installed (no network); with
// CI=true it fails instead.
func TestOpenAINodeClient(t *testing.T) {
	if testing.Short() {
		t.Skip("installs an npm package")
	}
	ci := os.Getenv("CI") == "true"
	skip := func(format string, args ...any) {
		t.Helper()
		if ci {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not installed: %v", err)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		skip("npm is not installed: %v", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefer-offline", "--no-save",
		"--loglevel=error", openAINodeVersion)
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		skip("npm install %s: %v\n%s", openAINodeVersion, err, out)
	}
	script, err := os.ReadFile(filepath.Join("testdata", "openai_client.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "openai_client.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}

	ref := reference(t)
	cfg := testConfig(t)
	cfg.APIKey = "node-test-key"
	_, url := start(t, cfg)
	cmd := exec.CommandContext(ctx, node, "openai_client.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LLM_BASE_URL="+url+"/v1", "LLM_API_KEY="+cfg.APIKey, "LLM_MODEL="+storiesName,
		"LLM_PROMPT="+ref.Prompt, "LLM_EXPECT="+ref.Text, "LLM_TOKENS="+strconv.Itoa(ref.NPredict))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("openai_client.mjs:\n%s", out.String())
	if err != nil {
		t.Fatalf("openai_client.mjs: %v", err)
	}
	if !strings.Contains(out.String(), "all ok") {
		t.Error("the script did not finish")
	}
}
