package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/repacktest"
	"github.com/llm-go/llm/internal/shareddata"
)

// TestMain keeps every test of this package off the network: the Hub
// settings point at an empty cache, offline, with a loopback endpoint.
// Tests that pull set up a fake Hub on 127.0.0.1 (hubEnv), which overrides
// these for their duration.
func TestMain(m *testing.M) {
	if os.Getenv("LLM_TEST_MAIN") == "1" {
		main() // the test binary plays llm, for tests that need a real process
		return
	}
	dir, err := os.MkdirTemp("", "llm-cmd-test-")
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

// run runs llm in process with args and stdin, returning the exit status,
// stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb lockedBuffer
	code := runMain(context.Background(), &stdio{in: strings.NewReader(stdin), out: &out, err: &errb}, args)
	return code, out.String(), errb.String()
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes, as os.Stdout
// and os.Stderr are: a command's goroutines (a server's loads, logs) write
// to them beside its own output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestGenerateGreedyMatchesReference(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	data, err := os.ReadFile(shareddata.Path(t, "testdata", "reference", "stories260K_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []struct {
			Prompt   string `json:"prompt"`
			NPredict int    `json:"n_predict"`
			Text     string `json:"generated_text"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	p := ref.Prompts[0]
	code, out, stderr := run(t, "", "generate", "-m", model, "--temp", "0", "-t", "1", "-n", strconv.Itoa(p.NPredict), p.Prompt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if out != p.Text+"\n" {
		t.Errorf("generated %q\nwant %q", out, p.Text)
	}

	// The prompt from stdin, and --verbose timings on stderr.
	code, out2, stderr := run(t, p.Prompt+"\n", "generate", "-m", model, "--temp", "0", "-t", "1", "-n", "8", "-v")
	if code != 0 || !strings.HasPrefix(p.Text, strings.TrimSuffix(out2, "\n")) {
		t.Errorf("stdin prompt: exit %d, %q", code, out2)
	}
	if !strings.Contains(stderr, "tokens/s") {
		t.Errorf("--verbose printed no timings: %q", stderr)
	}
}

func TestGenerateSeedReproducible(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	args := []string{"generate", "-m", model, "--temp", "1.0", "--seed", "42", "-t", "1", "-n", "24", "Once upon a time"}
	_, a, _ := run(t, "", args...)
	_, b, _ := run(t, "", args...)
	if a != b || a == "" {
		t.Errorf("same seed, different text:\n%q\n%q", a, b)
	}
	args[6] = "43"
	if _, c, _ := run(t, "", args...); c == a {
		t.Errorf("seeds 42 and 43 gave the same text %q", a)
	}
}

func TestTokenizeFormats(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--add-special", "Once upon a time"}, "[1, 403, 407, 261, 378]\n"},
		{[]string{"Once upon a time"}, "[403, 407, 261, 378]\n"},
		{[]string{"--json", "--add-special", "Once upon"}, "[1,403,407]\n"},
		{[]string{"--pieces", "--add-special", "Once upon"}, "     1 -> '<s>'\n   403 -> ' Once'\n   407 -> ' upon'\n"},
		{[]string{"--pieces", "--json", "Once"}, `[{"id":403,"piece":" Once"}]` + "\n"},
	}
	for _, tc := range cases {
		code, out, stderr := run(t, "", append([]string{"tokenize", "-m", model}, tc.args...)...)
		if code != 0 || out != tc.want {
			t.Errorf("tokenize %v: exit %d, %q (stderr %q), want %q", tc.args, code, out, stderr, tc.want)
		}
	}
	if _, out, _ := run(t, "Once upon a time", "tokenize", "-m", model); out != "[403, 407, 261, 378]\n" {
		t.Errorf("tokenize from stdin: %q", out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "", "version")
	if code != 0 || !strings.Contains(out, "llama.cpp ec98e2002") || !strings.Contains(out, "CPU features:") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"generate"}, 2, "a model is required"},
		{[]string{"generate", "-m", model, "--temp", "-1", "x"}, 2, "--temp"},
		{[]string{"generate", "-m", model, "--bogus"}, 2, "unknown flag"},
		{[]string{"generate", "-m", model, "a", "b"}, 2, "one prompt argument"},
		{[]string{"generate", "-m", "/nonexistent.gguf", "x"}, 1, "no such file"},
		{[]string{"tokenize", "x"}, 2, "a model is required"},
		{[]string{"version", "extra"}, 2, "no arguments"},
	}
	for _, tc := range cases {
		code, _, stderr := run(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with one line containing %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
	if code, out, _ := run(t, "", "generate", "--help"); code != 0 || !strings.Contains(out, "--temp") {
		t.Errorf("generate --help: exit %d, %q", code, out)
	}
	if code, out, _ := run(t, "", "help"); code != 0 || !strings.Contains(out, "generate") {
		t.Errorf("help: exit %d, %q", code, out)
	}
}

func TestTranslateLlamaFlags(t *testing.T) {
	cases := []struct{ in, want []string }{
		{[]string{"-ngl", "99", "-fa", "on"}, []string{"--ngl", "99", "--flash-attn", "on"}},
		{[]string{"-ctk=q8_0", "-ctv", "q8_0"}, []string{"--cache-type-k=q8_0", "--cache-type-v", "q8_0"}},
		{[]string{"-n", "5", "--", "-ngl"}, []string{"-n", "5", "--", "-ngl"}},
		{[]string{"-ngls"}, []string{"-ngls"}},
		{[]string{"-nr", "-n", "4"}, []string{"--no-repack", "-n", "4"}},
	}
	for _, tc := range cases {
		if got := translateLlamaFlags(tc.in); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("translateLlamaFlags(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestGenerateGPUFlags(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	// On a machine without a GPU the offload flags are accepted and have no
	// effect: the text is the same.
	_, want, _ := run(t, "", "generate", "-m", model, "--temp", "0", "-t", "1", "-n", "8", "Once upon a time")
	code, got, stderr := run(t, "", "generate", "-m", model, "--temp", "0", "-t", "1", "-n", "8",
		"-ngl", "all", "-fa", "on", "--split-mode", "row", "--tensor-split", "1", "-nr", "Once upon a time")
	if code != 0 || got != want {
		t.Errorf("with GPU flags: exit %d, %q (stderr %q), want %q", code, got, stderr, want)
	}
	if !engine.HaveGPU() && !strings.Contains(stderr, "there is no GPU device") {
		t.Errorf("--ngl all without a GPU should say so: %q", stderr)
	}
	for _, args := range [][]string{
		{"-ngl", "lots"}, {"--split-mode", "diagonal"}, {"--tensor-split", "1,x"}, {"-fa", "maybe"}, {"-ctk", "q3"},
	} {
		a := append([]string{"generate", "-m", model}, append(args, "x")...)
		if code, _, stderr := run(t, "", a...); code != 2 {
			t.Errorf("%v: exit %d (%q), want 2", args, code, stderr)
		}
	}
}

func TestEmbedCommand(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	code, out, stderr := run(t, "", "embed", model, "-t", "1", "The little dog", "The little dog")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Dims int `json:"dimensions"`
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Dims != 64 || len(res.Data) != 2 || len(res.Data[1].Embedding) != 64 || res.Data[1].Index != 1 {
		t.Errorf("embed output: %+v", res)
	}
	// The two are embedded in one batch, as two sequences: the same up to
	// float32 rounding.
	for i := range res.Data[0].Embedding {
		if d := res.Data[0].Embedding[i] - res.Data[1].Embedding[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("identical texts gave different embeddings (by %g at %d)", d, i)
		}
	}
	if code, out, _ := run(t, "a\nb\n", "embed", model, "-t", "1"); code != 0 || strings.Count(out, `"index"`) != 2 {
		t.Errorf("texts from stdin: exit %d, %.200s", code, out)
	}
	if code, _, _ := run(t, "", "embed"); code != 2 {
		t.Errorf("no model: exit %d", code)
	}
}

func TestGenerateModelArgument(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	_, want, _ := run(t, "", "generate", "-m", model, "--temp", "0", "-t", "1", "-n", "8", "Once upon a time")
	code, got, stderr := run(t, "", "generate", model, "--temp", "0", "-t", "1", "-n", "8", "Once upon a time")
	if code != 0 || got != want {
		t.Errorf("MODEL as the first argument: exit %d (%s): %q, want %q", code, stderr, got, want)
	}
	// A Hub name that is not in the (empty, offline) cache.
	if code, _, stderr := run(t, "", "generate", "no/such-model-anywhere", "x"); code != 1 || !strings.Contains(stderr, "not in the cache") {
		t.Errorf("an unknown Hub name: exit %d, %q", code, stderr)
	}
}

func TestConvertAndQuantizeCommands(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	tmp := t.TempDir()
	f16 := filepath.Join(tmp, "m-f16.gguf")
	if code, _, stderr := run(t, "", "convert", dir, "-o", f16); code != 0 || !strings.Contains(stderr, "converting: 100.0%") {
		t.Fatalf("convert: exit %d: %s", code, stderr)
	}
	q8 := filepath.Join(tmp, "m-q8.gguf")
	if code, _, stderr := run(t, "", "quantize", f16, q8, "q8_0", "-t", "2"); code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, stderr)
	}
	_, fromFile, _ := run(t, "", "generate", f16, "--temp", "0", "-t", "1", "-n", "6", "Hello world")
	// The directory itself converts on the fly to the same F16 model.
	code, fromDir, stderr := run(t, "", "generate", dir, "--temp", "0", "-t", "1", "-n", "6", "Hello world")
	if code != 0 || fromDir != fromFile || fromDir == "" {
		t.Errorf("generate DIR: exit %d (%s): %q, from the converted file %q", code, stderr, fromDir, fromFile)
	}
	if code, _, _ := run(t, "", "generate", q8, "--temp", "0", "-t", "1", "-n", "2", "Hello"); code != 0 {
		t.Errorf("generate with the Q8_0 model: exit %d", code)
	}
	for _, args := range [][]string{
		{"convert", dir}, {"convert", "-o", f16}, {"quantize", f16, q8}, {"quantize", f16, q8, "Q9_Z"},
	} {
		if code, _, _ := run(t, "", args...); code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
}

// TestNoRepackFlag: --no-repack (-nr) keeps a Q4_0 model's matrices in the
// mapped file, on both of the commands' load paths (generate loads through
// the engine, embed through a pipeline); without it, builds that repack
// (the Makefile's, for AVX2) log a repacked buffer.
func TestNoRepackFlag(t *testing.T) {
	model := repacktest.RepackQ4(t)
	for _, tc := range []struct{ cmd, flag string }{{"generate", "--no-repack"}, {"embed", "-nr"}} {
		args := []string{tc.cmd, "-v", "-t", "1", "-c", "64", model}
		if tc.cmd == "generate" {
			args = []string{tc.cmd, "-v", "-t", "1", "-c", "64", "-n", "2", "-m", model}
		}
		code, _, stderr := run(t, "", append(args, "hello")...)
		if code != 0 || !strings.Contains(stderr, "CPU_REPACK model buffer") {
			t.Errorf("%s: exit %d, no repacked buffer in the log", tc.cmd, code)
		}
		code, _, stderr = run(t, "", append(append(args, tc.flag), "hello")...)
		if code != 0 || strings.Contains(stderr, "REPACK model buffer") || strings.Contains(stderr, "AMX model buffer") {
			t.Errorf("%s %s: exit %d, or a repacked buffer in the log: %s", tc.cmd, tc.flag, code, stderr)
		}
	}
}
