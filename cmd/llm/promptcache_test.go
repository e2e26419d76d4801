package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
)

// TestPromptCache: generate --prompt-cache saves the prompt's state and a
// later run reuses the part of it its prompt starts with, generating the
// same text as without; a cache of another model or a damaged one is said
// and ignored; --prompt-cache-ro never writes it.
func TestPromptCache(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // the key for saved sequences
	model := shareddata.Path(t, "models", "stories260K.gguf")
	cache := filepath.Join(t.TempDir(), "prompt.cache")
	prompt := "Once upon a time, there was a little girl named Lily. She loved to"
	gen := func(prompt string, extra ...string) (string, string) {
		t.Helper()
		args := append([]string{"generate", model, "--temp", "0", "-n", "16", "-t", "1", "--verbose"}, extra...)
		code, out, stderr := run(t, "", append(args, prompt)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, stderr)
		}
		return out, stderr
	}
	want, _ := gen(prompt)
	first, stderr := gen(prompt, "--prompt-cache", cache)
	if first != want || !strings.Contains(stderr, ", 0 from the prompt cache") {
		t.Fatalf("first run: %q (%s)", first, stderr)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Fatal("no cache written:", err)
	}
	again, stderr := gen(prompt, "--prompt-cache", cache)
	if again != want || strings.Contains(stderr, ", 0 from the prompt cache") {
		t.Errorf("from the cache: %q, want %q (%s)", again, want, stderr)
	}
	// A longer prompt reuses the cached start.
	longer := prompt + " play with her dog"
	wantLonger, _ := gen(longer)
	if got, stderr := gen(longer, "--prompt-cache", cache, "--prompt-cache-ro"); got != wantLonger || strings.Contains(stderr, ", 0 from the prompt cache") {
		t.Errorf("a longer prompt: %q, want %q (%s)", got, wantLonger, stderr)
	}
	// -ro did not write: the cache still holds the shorter prompt.
	if _, stderr := gen(prompt, "--prompt-cache", cache); !strings.Contains(stderr, "from the prompt cache") || strings.Contains(stderr, ", 0 from") {
		t.Errorf("after -ro: %s", stderr)
	}
	// Damaged: said, ignored, rewritten.
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-50] ^= 1
	if err := os.WriteFile(cache, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, stderr := gen(prompt, "--prompt-cache", cache); got != want || !strings.Contains(stderr, "MAC disagrees") {
		t.Errorf("a damaged cache: %q (%s)", got, stderr)
	}
	// Another model's cache is not used.
	other := shareddata.Path(t, "models", "llama-2-tiny-random.gguf")
	if code, _, stderr := run(t, "", "generate", other, "-n", "2", "-t", "1", "--prompt-cache", cache, "--prompt-cache-ro", "Hi"); code != 0 || !strings.Contains(stderr, "another model") {
		t.Errorf("another model: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(t, "", "generate", model, "--prompt-cache-ro", "Hi"); code != 2 || !strings.Contains(stderr, "--prompt-cache") {
		t.Errorf("-ro alone: exit %d, %s", code, stderr)
	}
}
