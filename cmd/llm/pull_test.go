package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/hub/hubtest"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/loader/gguf"
)

// hubEnv points the Hub settings at srv and a fresh cache, with no token.
func hubEnv(t *testing.T, srv *hubtest.Server) string {
	t.Helper()
	home := t.TempDir()
	cache := filepath.Join(home, "hub")
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	return cache
}

func TestPullListShowRm(t *testing.T) {
	srv := hubtest.Shared(t)
	cache := hubEnv(t, srv)

	code, out, errOut := run(t, "", "pull", "test/stories260K/stories260K.gguf")
	if code != 0 {
		t.Fatalf("pull: %d %s", code, errOut)
	}
	path := strings.TrimSpace(out)
	if !strings.HasPrefix(path, filepath.Join(cache, "models--test--stories260K", "snapshots")) || filepath.Base(path) != "stories260K.gguf" {
		t.Errorf("pull printed %q", out)
	}
	if !strings.Contains(errOut, "1.2 MB downloaded") {
		t.Errorf("pull summary: %q", errOut)
	}
	if code, _, errOut = run(t, "", "pull", "-q", "test/tiny-random-gpt2"); code != 0 || errOut != "" {
		t.Fatalf("pull -q: %d %q", code, errOut)
	}

	code, out, _ = run(t, "", "list")
	if code != 0 || !strings.Contains(out, "test/stories260K") || !strings.Contains(out, "test/tiny-random-gpt2") ||
		!strings.Contains(out, "safetensors") || !strings.Contains(out, "REVISION") {
		t.Errorf("list: %d\n%s", code, out)
	}

	code, out, errOut = run(t, "", "show", "test/stories260K/stories260K.gguf")
	if code != 0 {
		t.Fatalf("show: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"License:", "mit", "text-generation", "karpathy/tinyllamas", "A 260K-parameter Llama",
		"Architecture:    llama", "292.8K", "Context length:  2048", "Chat template:   no", "stories260K.gguf", cache,
		"GPU offload:", "Devices:", "CPU (CPU)"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s%s", want, out, errOut)
		}
	}
	code, out, _ = run(t, "", "show", "test/tiny-random-gpt2")
	for _, want := range []string{"GPT2LMHeadModel", "111968", "Context length:  512", "model.safetensors"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show safetensors lacks %q:\n%s", want, out)
		}
	}
	// Not pulled: from the Hub.
	code, out, errOut = run(t, "", "show", "test/tiny-llama-st")
	if code != 0 || !strings.Contains(out, "not downloaded") || !strings.Contains(out, "model.safetensors") {
		t.Errorf("show remote: %d\n%s%s", code, out, errOut)
	}

	code, out, _ = run(t, "", "rm", "test/stories260K")
	if code != 0 || !strings.Contains(out, "removed test/stories260K") {
		t.Errorf("rm: %d %s", code, out)
	}
	code, _, errOut = run(t, "", "rm", "test/stories260K")
	if code != 1 || !strings.Contains(errOut, "not in the cache") {
		t.Errorf("rm again: %d %s", code, errOut)
	}
	code, out, _ = run(t, "", "list", "--json")
	if code != 0 || strings.Contains(out, "stories260K") || !strings.Contains(out, `"repo": "test/tiny-random-gpt2"`) {
		t.Errorf("list --json: %s", out)
	}
}

func TestPullErrors(t *testing.T) {
	repo := hubserver.NewRepo("acme/gated", hubserver.MemFile("m-Q4_K_M.gguf", []byte("GGUF....")))
	repo.Gated = true
	srv := hubtest.New(t, repo)
	hubEnv(t, srv)
	srv.Add(hubserver.NewRepo("acme/two", hubserver.MemFile("a.gguf", []byte("a")), hubserver.MemFile("b.gguf", []byte("b"))))

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pull"}, 2, "one MODEL expected"},
		{[]string{"pull", "../etc"}, 2, "invalid name"},
		{[]string{"pull", "acme/two", "--revision", "../x"}, 2, "revision"},
		{[]string{"pull", "acme/two"}, 1, "name one as REPO/FILE"},
		{[]string{"pull", "acme/nope"}, 1, "not found"},
		{[]string{"pull", "acme/gated"}, 1, "accept its licence"},
		{[]string{"pull", "acme/two/b.gguf", "-j", "0"}, 2, "--concurrency"},
		{[]string{"show", "acme/nope"}, 1, "not found"},
		{[]string{"hub", "frobnicate"}, 2, "unknown subcommand"},
	} {
		code, _, errOut := run(t, "", tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("llm %v: %d %q, want %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
	// The token is used but never printed.
	t.Setenv("HF_TOKEN", "hf_secret_value_xyz")
	code, out, errOut := run(t, "", "pull", "acme/gated")
	if code != 1 || strings.Contains(out+errOut, "hf_secret_value_xyz") || !strings.Contains(errOut, "token in use has no access") {
		t.Errorf("wrong token: %d %q", code, errOut)
	}
	t.Setenv("HF_TOKEN", hubtest.Token)
	if code, _, errOut := run(t, "", "pull", "acme/gated"); code != 0 {
		t.Errorf("right token: %d %s", code, errOut)
	}
	// Offline: from the cache, or a clear error.
	t.Setenv("HF_HUB_OFFLINE", "1")
	if code, _, errOut := run(t, "", "pull", "acme/gated"); code != 0 {
		t.Errorf("offline, cached: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "", "pull", "acme/two/a.gguf"); code != 1 || !strings.Contains(errOut, "acme/two is not in the cache") {
		t.Errorf("offline, not cached: %d %s", code, errOut)
	}
}

func TestLineProgress(t *testing.T) {
	var buf syncBuffer
	p := newLineProgress(&buf, 20*time.Millisecond)
	f := p.Start("big.gguf", 100<<20, 10<<20)
	f.Advance(40 << 20)
	time.Sleep(60 * time.Millisecond)
	f.Done(nil)
	g := p.Start("bad.gguf", 1000, 0)
	g.Done(errors.New("boom"))
	p.Wait()
	out := buf.String()
	for _, want := range []string{"big.gguf: resuming at 10.5 MB", "big.gguf: 52.4 MB / 104.9 MB (50%)", "big.gguf: 52.4 MB done", "bad.gguf: failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	f, _ := os.CreateTemp(t.TempDir(), "x")
	defer f.Close()
	if isTerminal(f) {
		t.Error("a file is not a terminal")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPullConvertQuant: org/repo:TYPE of a safetensors repo pulls its
// files and converts them to TYPE into the conversion cache (pull prints
// the GGUF); running the same name reuses it; a type the converter does
// not write is refused before anything is downloaded.
func TestPullConvertQuant(t *testing.T) {
	srv := hubtest.Shared(t)
	hubEnv(t, srv)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	served := srv.Served("test/tiny-llama-st", "model.safetensors")
	code, _, errOut := run(t, "", "pull", "test/tiny-llama-st:IQ1_S")
	if code == 0 || !strings.Contains(errOut, "do not convert to IQ1_S") {
		t.Errorf("an unconvertible type: %d %s", code, errOut)
	}
	if n := srv.Served("test/tiny-llama-st", "model.safetensors"); n != served {
		t.Errorf("the weights were downloaded (%d bytes) for an unconvertible type", n-served)
	}
	code, out, errOut := run(t, "", "pull", "test/tiny-llama-st:Q8_0")
	if code != 0 {
		t.Fatalf("pull: %d %s", code, errOut)
	}
	path := strings.TrimSpace(out)
	if !strings.HasSuffix(path, "-q8_0.gguf") || !strings.Contains(errOut, "converted to GGUF (Q8_0") {
		t.Errorf("pull printed %q\n%s", out, errOut)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if ft, _ := f.Uint("general.file_type"); ft != 7 { // LLAMA_FTYPE_MOSTLY_Q8_0
		t.Errorf("file type %d, want 7 (Q8_0)", ft)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	code, gen, errOut := run(t, "", "generate", "test/tiny-llama-st:Q8_0", "--temp", "0", "-t", "1", "-n", "4", "Hello")
	if code != 0 || gen == "" {
		t.Fatalf("generate: %d %q %s", code, gen, errOut)
	}
	if st2, err := os.Stat(path); err != nil || !st2.ModTime().Equal(st.ModTime()) {
		t.Errorf("the conversion was not reused: %v", err)
	}
	if code, out, errOut := run(t, "", "show", "test/tiny-llama-st:Q8_0"); code != 0 || !strings.Contains(out, "model.safetensors") {
		t.Errorf("show :Q8_0: %d\n%s%s", code, out, errOut)
	}
	// -q prints the path only; rm of the type removes the conversion and
	// keeps the checkpoint.
	if code, out, errOut := run(t, "", "pull", "-q", "test/tiny-llama-st:Q8_0"); code != 0 || errOut != "" || strings.TrimSpace(out) != path {
		t.Errorf("pull -q: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run(t, "", "rm", "test/tiny-llama-st:Q8_0")
	if _, err := os.Stat(path); code != 0 || !errors.Is(err, os.ErrNotExist) || !strings.Contains(out, "converted to Q8_0") {
		t.Errorf("rm :Q8_0: %d %q %s; the file: %v", code, out, errOut, err)
	}
	if code, out, _ := run(t, "", "list"); code != 0 || !strings.Contains(out, "test/tiny-llama-st") {
		t.Errorf("the checkpoint went with its conversion: %s", out)
	}
	run(t, "", "pull", "-q", "test/tiny-llama-st:Q8_0")
	if code, _, errOut := run(t, "", "rm", "test/tiny-llama-st"); code != 0 {
		t.Fatalf("rm: %s", errOut)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rm of the repo left its conversion: %v", err)
	}
}

// TestPullChecksBeforeWeights: a safetensors repo whose architecture the
// converter does not take is refused, when it is to be converted, once
// its config.json is fetched, before its weights are.
func TestPullChecksBeforeWeights(t *testing.T) {
	srv := hubtest.Shared(t)
	hubEnv(t, srv)
	dir := shareddata.Path(t, "models", "hf", "tiny-llama-st")
	var files []*hubserver.File
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "model.safetensors"} {
		f, err := hubserver.DiskFile(name, filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	files = append(files, hubserver.MemFile("config.json", []byte(`{"architectures":["FooForCausalLM"],"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":32000}`)))
	srv.Add(hubserver.NewRepo("acme/foo", files...))
	for _, args := range [][]string{{"pull", "acme/foo:Q8_0"}, {"generate", "acme/foo", "Hello"}} {
		code, _, errOut := run(t, "", args...)
		if code == 0 || !strings.Contains(errOut, "FooForCausalLM") {
			t.Errorf("%v: %d %s", args, code, errOut)
		}
	}
	if n := srv.Served("acme/foo", "model.safetensors"); n != 0 {
		t.Errorf("%d bytes of weights downloaded for an architecture that is not converted", n)
	}
	if n := srv.Served("acme/foo", "config.json"); n == 0 {
		t.Error("config.json was not fetched")
	}
	// A plain pull only downloads: it converts nothing, so checks nothing.
	if code, _, errOut := run(t, "", "pull", "acme/foo"); code != 0 {
		t.Errorf("pull without a type: %d %s", code, errOut)
	}
}
