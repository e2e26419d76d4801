package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/hub/hubtest"
	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/sampler"
	"github.com/llm-go/llm/synth"
)

// scripted is a lineReader that plays back lines, then io.EOF.
type scripted struct{ lines []string }

func (s *scripted) Prompt(string) (string, error) {
	if len(s.lines) == 0 {
		return "", io.EOF
	}
	l := s.lines[0]
	s.lines = s.lines[1:]
	return l, nil
}
func (s *scripted) AppendHistory(string) {}

func newTestSession(t *testing.T, out io.Writer) *chatSession {
	t.Helper()
	p, err := llm.New(context.Background(), shareddata.Path(t, "models", "stories260K.gguf"), llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &chatSession{p: p, model: "stories260K", sampling: sampler.DefaultOptions(), maxTok: 16, out: out,
		answerCtx: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }}
}

func TestRunSession(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var out bytes.Buffer
	s := newTestSession(t, &out)
	err := s.repl(&scripted{lines: []string{
		"/set parameter temperature 0",
		"/set parameter top_p 2",
		"/show parameters",
		"Once upon a time",
		"/set think",
		"/save story",
		"/set nothink",
		"/clear",
		"/show info",
		"/load story",
		"/show info",
		`"""The little`,
		`dog"""`,
		"/nonsense",
		"/bye",
		"never read",
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"Set temperature to 0.",
		"top_p",                     // the error names the option
		"temperature 0, top_k 40",   // /show parameters
		", there was a little girl", // the greedy story (no template: the message is the prompt)
		"Saved the session as story.", "Cleared the conversation.", "0 messages so far",
		"Loaded session story (2 messages).", "2 messages so far",
		"Unknown command /nonsense",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if len(s.messages) != 4 || s.messages[2].Content != "The little\ndog" {
		t.Errorf("conversation after the multi-line message: %+v", s.messages)
	}
	if s.think != "true" {
		t.Errorf("think %q after /load, want the saved \"true\"", s.think)
	}
	if strings.Contains(got, "never read") {
		t.Error("input after /bye was read")
	}
}

// cancelAfter is a writer that cancels the current answer once it has
// received n bytes, as a Ctrl-C in the middle of an answer would.
type cancelAfter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.cancel != nil && w.buf.Len() >= w.n {
		w.cancel()
	}
	return len(p), nil
}

func TestRunSessionInterrupt(t *testing.T) {
	w := &cancelAfter{n: 20}
	s := newTestSession(t, w)
	s.maxTok = -1
	s.answerCtx = func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		w.mu.Lock()
		w.cancel = cancel
		w.mu.Unlock()
		return ctx, cancel
	}
	if err := s.repl(&scripted{lines: []string{"/set parameter temperature 0", "Once upon a time", "/show info", "/bye"}}); err != nil {
		t.Fatal(err)
	}
	got := w.buf.String()
	if !strings.Contains(got, "(stopped)") || !strings.Contains(got, "2 messages so far") {
		t.Errorf("an interrupted answer should stop and keep the session:\n%s", got)
	}
}

func TestRunPiped(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	code, out, stderr := run(t, "Once upon a time\n", "run", model, "--temp", "0", "-n", "8", "-t", "1")
	if code != 0 || !strings.HasPrefix(out, ", there was a little girl") {
		t.Errorf("piped run: exit %d (%s): %q", code, stderr, out)
	}
	if code, lookup, stderr := run(t, "Once upon a time\n", "run", model, "--temp", "0", "-n", "8", "-t", "1", "--lookup", "4"); code != 0 || lookup != out {
		t.Errorf("piped run --lookup 4: exit %d (%s): %q, want %q", code, stderr, lookup, out)
	}
	if code, _, stderr := run(t, "", "run", model, "--lookup", "65"); code != 2 || !strings.Contains(stderr, "--lookup") {
		t.Errorf("--lookup 65: exit %d, %s", code, stderr)
	}
	if code, drafted, stderr := run(t, "Once upon a time\n", "run", model, "--temp", "0", "-n", "8", "-t", "1", "--draft", model, "--draft-max", "4"); code != 0 || drafted != out {
		t.Errorf("piped run --draft: exit %d (%s): %q, want %q", code, stderr, drafted, out)
	}
	other := shareddata.Path(t, "models", "llama-2-tiny-random.gguf")
	if code, _, stderr := run(t, "hi\n", "run", model, "-t", "1", "--draft", other); code == 0 || !strings.Contains(stderr, "vocabulary") {
		t.Errorf("--draft of another vocabulary: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(t, "", "run", model, "--draft", model, "--draft-max", "0"); code != 2 || !strings.Contains(stderr, "--draft-max") {
		t.Errorf("--draft-max 0: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(t, "", "run", model, "--draft", model, "--ngl-draft", "many"); code != 2 || !strings.Contains(stderr, "--ngl-draft") {
		t.Errorf("--ngl-draft many: exit %d, %s", code, stderr)
	}
	if code, _, _ := run(t, "", "run", model, model); code != 2 {
		t.Errorf("two models: exit %d", code)
	}
}

// TestRunGPUFlags: llm run and llm embed take the model flags generate
// takes; on a machine without a GPU, --ngl all says so and changes nothing.
func TestRunGPUFlags(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K.gguf")
	code, out, stderr := run(t, "Once upon a time\n", "run", model, "--temp", "0", "-n", "8", "-t", "1",
		"--ngl", "all", "--split-mode", "layer", "--main-gpu", "0", "-fa", "off")
	if code != 0 || !strings.HasPrefix(out, ", there was a little girl") {
		t.Errorf("run with GPU flags: exit %d (%s): %q", code, stderr, out)
	}
	if !engine.HaveGPU() && !strings.Contains(stderr, "--ngl all: there is no GPU device") {
		t.Errorf("run --ngl all without a GPU should say so: %q", stderr)
	}
	if code, _, stderr := run(t, "", "embed", model, "-t", "1", "--ngl", "2", "text"); code != 0 {
		t.Errorf("embed --ngl 2: exit %d (%s)", code, stderr)
	}
	for _, args := range [][]string{
		{"run", model, "--ngl", "lots"}, {"embed", model, "--split-mode", "diagonal", "x"},
		{"serve", "--ngl", "-3"}, {"serve", "--ngl", "some"}, {"serve", "-fa", "maybe"}, {"serve", "-ctk", "q3"},
	} {
		if code, _, stderr := run(t, "", args...); code != 2 || !strings.Contains(stderr, "--") {
			t.Errorf("%v: exit %d (%q), want 2 naming the flag", args, code, stderr)
		}
	}
	// serve's cache types reach the model: q8_0 blocks of 32 do not divide
	// this model's 8-wide heads, so loading it at start fails.
	if code, _, stderr := run(t, "", "serve", "--addr", "127.0.0.1:0", "-t", "1", "-ctk", "q8_0", "-m", model); code == 0 || !strings.Contains(stderr, "q8_0") {
		t.Errorf("serve -ctk q8_0: exit %d (%q), want the engine's refusal", code, stderr)
	}
}

// TestRunDefaultModel: with no MODEL, llm run pulls DefaultRunModel (here
// from a fake Hub that serves stories260K under that name).
func TestRunDefaultModel(t *testing.T) {
	repo, quant, _ := strings.Cut(DefaultRunModel, ":")
	f, err := hubserver.DiskFile("qwen2.5-0.5b-instruct-"+strings.ToLower(quant)+".gguf", shareddata.Path(t, "models", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	srv := hubtest.New(t, hubserver.NewRepo(repo, f))
	hubEnv(t, srv)
	code, out, stderr := run(t, "Once upon a time", "run", "--temp", "0", "-n", "8", "-t", "1")
	if code != 0 || !strings.HasPrefix(out, ", there was a little girl") || !strings.Contains(stderr, DefaultRunModel) {
		t.Errorf("default model: exit %d, %q (stderr %q)", code, out, stderr)
	}
}

// TestRunTerminal drives "llm run" in a real terminal (tmux): a streamed
// answer, /set parameter, Ctrl-C in the middle of a long answer, and /bye,
// which exits 0. The test binary itself plays llm (LLM_TEST_MAIN).
func TestRunTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is needed for this test (.ci/run installs it)")
		}
		t.Skip("tmux not installed")
	}
	// A model slow enough that an answer can be interrupted.
	model := filepath.Join(t.TempDir(), "slow.gguf")
	s := synth.Shape{Name: "slow", Vocab: 1000, Embd: 512, FF: 2048, Layers: 4, Heads: 8, KVHeads: 4,
		Context: 4096, RopeTheta: 10000, NormEps: 1e-5}
	if err := synth.Write(context.Background(), model, s, synth.Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	session := "llmtest" + strings.ReplaceAll(t.Name(), "/", "")
	status := filepath.Join(t.TempDir(), "status")
	cmd := "LLM_TEST_MAIN=1 " + exe + " run " + model + " -t 1 -c 4096 --seed 1; echo exit=$? > " + status
	tmux := func(args ...string) string {
		out, _ := exec.Command("tmux", args...).CombinedOutput()
		return string(out)
	}
	tmux("kill-session", "-t", session)
	if out := tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", cmd); out != "" {
		t.Fatalf("tmux: %s", out)
	}
	defer tmux("kill-session", "-t", session)
	screen := func() string { return tmux("capture-pane", "-p", "-t", session, "-S", "-200") }
	waitFor := func(what string, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if strings.Contains(screen(), what) {
				return
			}
		}
		t.Fatalf("%q did not appear:\n%s", what, screen())
	}
	waitFor("Type /? for help", 30*time.Second)
	tmux("send-keys", "-t", session, "/set parameter temperature 0", "Enter")
	waitFor("Set temperature to 0.", 10*time.Second)
	tmux("send-keys", "-t", session, "hello there", "Enter")
	// The answer streams (it would run until the context is full)...
	before := len(screen())
	time.Sleep(3 * time.Second)
	if len(screen()) <= before {
		t.Fatalf("no streamed text:\n%s", screen())
	}
	// ...until Ctrl-C stops it; the session goes on.
	tmux("send-keys", "-t", session, "C-c")
	waitFor("(stopped)", 20*time.Second)
	tmux("send-keys", "-t", session, "/bye", "Enter")
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if data, err := os.ReadFile(status); err == nil {
			if strings.TrimSpace(string(data)) != "exit=0" {
				t.Fatalf("llm run ended with %s:\n%s", data, screen())
			}
			return
		}
	}
	t.Fatalf("llm run did not exit after /bye:\n%s", screen())
}

// TestGenerateSuffix: llm generate --suffix fills in the middle as
// llm.Suffix does; a model without FIM tokens says so.
func TestGenerateSuffix(t *testing.T) {
	stories := shareddata.Path(t, "models", "stories260K.gguf")
	fim := testmodel.StoriesWithFIM(t, "coder")
	prefix, suffix := "Once upon a time, there was", " They were happy."
	p, err := llm.New(context.Background(), fim, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Generate(context.Background(), prefix, llm.Temperature(0), llm.MaxTokens(12), llm.Suffix(suffix))
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "generate", "-m", fim, "--temp", "0", "-n", "12", "-t", "1", "--suffix", suffix, prefix)
	if code != 0 || out != want.Text+"\n" {
		t.Errorf("generate --suffix: exit %d (%s): %q, want %q", code, stderr, out, want.Text)
	}
	if code, _, stderr := run(t, "", "generate", "-m", stories, "-n", "4", "-t", "1", "--suffix", suffix, prefix); code != 1 || !strings.Contains(stderr, "fill-in-the-middle") {
		t.Errorf("a model without FIM tokens: exit %d, %q", code, stderr)
	}
}

// TestRunThinking: a reasoning model's reasoning is shown apart, between
// "Thinking..." and "...done thinking.", and kept out of the answer in the
// conversation; --hidethinking leaves it out, /set nothink reaches the
// template as enable_thinking false, and a bad --think is a usage error.
// The template opens a <think> block unless enable_thinking is false, so
// stories260K's text is reasoning.
func TestRunThinking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reasoner.gguf")
	err := gguf.Rewrite(path, shareddata.Path(t, "models", "stories260K.gguf"), func(w *gguf.Writer) {
		w.Set("tokenizer.chat_template", gguf.String("{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}"+
			"{% if enable_thinking is not false %}<think>\n{% endif %}"))
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := llm.New(context.Background(), path, llm.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var out bytes.Buffer
	s := &chatSession{p: p, model: "reasoner", sampling: sampler.DefaultOptions(), maxTok: 8, out: &out,
		answerCtx: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }}
	s.sampling.Temperature = 0
	if err := s.answer("Once upon a time"); err != nil {
		t.Fatal(err)
	}
	reasoning, _ := s.messages[1].Extra.Get("thinking")
	got := out.String()
	if !strings.HasPrefix(got, "Thinking...\n") || !strings.HasSuffix(got, "\n...done thinking.\n") || reasoning == "" ||
		!strings.Contains(got, reasoning.(string)) || s.messages[1].Content != "" {
		t.Errorf("shown %q; kept %+v", got, s.messages[1])
	}
	out.Reset()
	s.hideThinking = true
	if err := s.answer("Once upon a time"); err != nil || out.String() != "\n" {
		t.Errorf("--hidethinking: %q, %v", out.String(), err)
	}
	out.Reset()
	s.set([]string{"nothink"}, "/set nothink")
	if err := s.answer("Once upon a time"); err != nil || !strings.HasPrefix(out.String(), "Set 'nothink' mode.\n") ||
		strings.Contains(out.String(), "Thinking") || s.messages[5].Content == "" {
		t.Errorf("/set nothink: %q, %+v, %v", out.String(), s.messages[5], err)
	}
	if code, _, stderr := run(t, "", "run", path, "--think=lots"); code != 2 || !strings.Contains(stderr, "--think") {
		t.Errorf("--think=lots: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := run(t, "Once upon a time", "run", path, "--think", "--temp", "0", "-n", "8", "-t", "1")
	if code != 0 || !strings.HasPrefix(stdout, "Thinking...\n") {
		t.Errorf("--think, piped: exit %d (%s): %q", code, stderr, stdout)
	}
}
