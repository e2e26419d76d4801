// Command hybrid answers with two models through one llm.Router: private
// notes are summarised by a local model, in this process, and never leave
// the machine; a general-knowledge question goes to a remote model behind
// an OpenAI-compatible API (Hugging Face's router, OpenAI, llm serve,
// llama-server, Ollama). For each part it prints which model answered,
// how long it took and how many tokens it used.
//
//	go run ./examples/hybrid                                   # HF router, HF_TOKEN
//	go run ./examples/hybrid -remote http://127.0.0.1:8080/v1 -remote-model NAME
//
// See README.md beside this file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/llm-go/llm"
)

const (
	defaultLocal       = "Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M"
	defaultRemote      = "https://router.huggingface.co/v1"
	defaultRemoteModel = "meta-llama/Llama-3.1-8B-Instruct" // only for the HF router
	defaultQuestion    = "In three sentences: why is the sky blue?"
)

func main() {
	var (
		local       = flag.String("local", defaultLocal, `the local model: a GGUF file or a Hub name ("none": no local model, to see private notes refused)`)
		remoteURL   = flag.String("remote", defaultRemote, "the OpenAI-compatible API of the remote model")
		remoteModel = flag.String("remote-model", "", "the remote model (default: "+defaultRemoteModel+" on the HF router, else the one the endpoint lists)")
		keyEnv      = flag.String("api-key-env", "", "the environment variable with the API key (default: HF_TOKEN for huggingface.co, OPENAI_API_KEY for api.openai.com, none elsewhere)")
		notes       = flag.String("notes", "", "a directory of private notes (*.txt, *.md) (default: this example's testdata)")
		question    = flag.String("question", defaultQuestion, "the general-knowledge question for the remote model")
		maxTokens   = flag.Int("max-tokens", 200, "the most tokens per answer")
		timeout     = flag.Duration("timeout", 2*time.Minute, "the longest any one answer may take")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, config{*local, *remoteURL, *remoteModel, *keyEnv, *notes, *question, *maxTokens, *timeout}); err != nil {
		fmt.Fprintln(os.Stderr, "hybrid:", err)
		os.Exit(1)
	}
}

type config struct {
	local, remoteURL, remoteModel, keyEnv, notes, question string
	maxTokens                                              int
	timeout                                                time.Duration
}

func run(ctx context.Context, c config) error {
	files, err := noteFiles(c.notes)
	if err != nil {
		return err
	}
	remote, err := openRemote(c)
	if err != nil {
		return err
	}

	// The local model. If it cannot load, the router still runs: the
	// question goes remote, and the private notes are refused.
	var local llm.Generator
	if c.local != "none" {
		fmt.Printf("loading the local model %s ...\n", c.local)
		p, err := llm.New(ctx, c.local)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hybrid: no local model (%v): private notes will be refused, not sent away\n", err)
		} else {
			local = p
		}
	}

	router := llm.NewRouter(local, remote)
	defer router.Close()
	failed := 0

	// 1. Private notes: marked Private (they are private whatever they
	// say), and the detectors find e-mail addresses and IBANs in them too.
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		msgs := []llm.Message{
			{Role: "system", Content: "Summarise the user's note in two sentences. Leave out e-mail addresses and account numbers."},
			{Role: "user", Content: string(data)},
		}
		opts := []llm.GenerateOption{llm.Private(), llm.MaxTokens(c.maxTokens), llm.Temperature(0.2)}
		req := router.Classify(ctx, llm.Request{Op: llm.OpChat, Messages: msgs}, opts...)
		why := "marked private"
		if len(req.Findings) > 0 {
			why += "; contains " + strings.Join(req.Findings, ", ")
		}
		if !answer(ctx, router, c.timeout, fmt.Sprintf("note %s (%s)", filepath.Base(path), why), msgs, opts) {
			failed++
		}
	}

	// 2. A general question: nothing private, so the remote model answers.
	msgs := []llm.Message{{Role: "user", Content: c.question}}
	if !answer(ctx, router, c.timeout, "question: "+c.question, msgs, []llm.GenerateOption{llm.MaxTokens(c.maxTokens)}) {
		failed++
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d parts failed", failed, len(files)+1)
	}
	return nil
}

// answer asks the router one part, prints the answer with who gave it,
// the latency and the tokens, and reports whether it succeeded.
func answer(ctx context.Context, r *llm.Router, timeout time.Duration, title string, msgs []llm.Message, opts []llm.GenerateOption) bool {
	fmt.Printf("\n== %s\n", title)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res, err := r.Chat(ctx, msgs, opts...)
	latency := time.Since(start)
	if err != nil {
		switch {
		case errors.Is(err, llm.ErrPrivateInput):
			fmt.Printf("refused, and not sent to the remote model: %v\n", err)
		default:
			fmt.Printf("failed after %v: %v\n", latency.Round(time.Millisecond), err)
		}
		return false
	}
	side := "remote"
	if local := r.Local(); local != nil && res.Model == local.Name() {
		side = "local"
	}
	fmt.Println(strings.TrimSpace(res.Text))
	t := res.Timings
	fmt.Printf("-- answered by the %s model %s in %v (first token after %v); %d prompt tokens, %d generated; finish: %s\n",
		side, res.Model, latency.Round(time.Millisecond), t.TimeToFirstToken.Round(time.Millisecond),
		t.PromptTokens, t.GeneratedTokens, res.FinishReason)
	return true
}

// openRemote makes the remote client, sending an API key only to the
// service it belongs to unless -api-key-env names one.
func openRemote(c config) (*llm.RemoteModel, error) {
	u, err := url.Parse(c.remoteURL)
	if err != nil {
		return nil, fmt.Errorf("-remote: %w", err)
	}
	host := strings.ToLower(u.Hostname())
	hf := host == "huggingface.co" || strings.HasSuffix(host, ".huggingface.co")
	model := c.remoteModel
	if model == "" && hf {
		model = defaultRemoteModel
	}
	env := c.keyEnv
	switch {
	case env != "":
		if os.Getenv(env) == "" {
			return nil, fmt.Errorf("-api-key-env %s: the variable is not set", env)
		}
	case hf:
		env = "HF_TOKEN"
	case host == "api.openai.com":
		env = "OPENAI_API_KEY"
	}
	opts := []llm.RemoteOption{llm.RemoteModelName(model)}
	if env != "" {
		if os.Getenv(env) == "" {
			fmt.Fprintf(os.Stderr, "hybrid: %s is not set: %s will likely refuse the request\n", env, host)
		}
		opts = append(opts, llm.RemoteAPIKeyFromEnv(env))
	}
	return llm.Remote(c.remoteURL, opts...)
}

// noteFiles lists the notes: dir's *.txt and *.md files, or this
// example's testdata.
func noteFiles(dir string) ([]string, error) {
	if dir == "" {
		dir = filepath.Join("examples", "hybrid", "testdata")
		if _, err := os.Stat(dir); err != nil {
			dir = "testdata" // run from the example's directory
		}
	}
	var files []string
	for _, pattern := range []string{"*.txt", "*.md"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no notes (*.txt, *.md) in %s", dir)
	}
	sort.Strings(files)
	return files, nil
}
