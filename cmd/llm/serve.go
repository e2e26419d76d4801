package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/server"
)

func init() {
	register(&command{
		name:    "serve",
		usage:   "[flags] [-m MODEL]...",
		summary: "serve models over HTTP with the OpenAI and Ollama APIs",
		run:     runServe,
	})
}

// DefaultServeAddr is where "llm serve" listens by default: loopback only,
// on a port next to Ollama's 11434.
const DefaultServeAddr = "127.0.0.1:11435"

// serveOptions are the flags of "llm serve".
type serveOptions struct {
	addr           string
	models         []string
	parallel       int
	ctxLen         int
	queue          int
	maxModels      int
	keepAlive      time.Duration
	apiKey         string
	threads        int
	gpu            modelFlags // only its GPU and cache flags
	requestTimeout time.Duration
	maxBody        int64
	allowPaths     bool
	lookup         int
	draft          string
	draftMax       int
	verbose        bool
}

func runServe(ctx context.Context, sio *stdio, args []string) error {
	var o serveOptions
	fs := newFlags("serve", &o.verbose)
	fs.StringVar(&o.addr, "addr", DefaultServeAddr, "address to listen on (0.0.0.0:PORT serves the network: set --api-key)")
	fs.StringArrayVarP(&o.models, "model", "m", nil, "model to load at start (a GGUF file, an HF directory, a preset or a Hub name); repeatable; others load on first use")
	fs.IntVar(&o.parallel, "parallel", 4, "requests decoded together per model")
	fs.IntVarP(&o.ctxLen, "ctx", "c", 0, "context length of each request (0: 4096 or the model's, if smaller)")
	fs.IntVar(&o.queue, "queue", -1, "requests that may wait per model when all run (-1: 4×parallel); more get 429/503")
	fs.IntVar(&o.maxModels, "max-models", server.DefaultMaxModels, "models loaded at once (the least recently used idle one is unloaded)")
	fs.DurationVar(&o.keepAlive, "keep-alive", server.DefaultKeepAlive, "how long an idle model stays loaded (negative: forever)")
	fs.StringVar(&o.apiKey, "api-key", "", "require \"Authorization: Bearer KEY\" on every route but /health (default: $LLM_API_KEY)")
	fs.IntVarP(&o.threads, "threads", "t", 0, "CPU threads per model (0: all)")
	o.gpu.registerGPU(fs)
	fs.DurationVar(&o.requestTimeout, "request-timeout", 10*time.Minute, "longest a request may take, waiting included (0: no limit)")
	fs.Int64Var(&o.maxBody, "max-body", server.DefaultMaxBodyBytes, "largest request body in bytes")
	fs.IntVar(&o.lookup, "lookup", 0, "speculative decoding by prompt lookup: up to N draft tokens checked per step (0: off; pays off on GPUs when outputs copy their prompts)")
	fs.StringVar(&o.draft, "draft", "", "a draft model (same vocabulary, much smaller) that the first --model decodes speculatively with")
	fs.IntVar(&o.draftMax, "draft-max", llm.DefaultDraftTokens, "most tokens the draft model proposes per step")
	fs.BoolVar(&o.allowPaths, "allow-paths", false, "let requests name local files as models (default: only on a loopback address)")
	if err := parseFlags(fs, commands["serve"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, o.verbose)
	if !fs.Changed("api-key") {
		o.apiKey = os.Getenv("LLM_API_KEY") // read here so that --help never prints it
	}
	o.models = append(o.models, fs.Args()...)
	if !fs.Changed("allow-paths") {
		host, _, _ := net.SplitHostPort(o.addr)
		o.allowPaths = isLoopback(host)
	}
	if err := o.check(); err != nil {
		return err
	}
	return serve(ctx, sio, o)
}

func (o *serveOptions) check() error {
	switch {
	case o.parallel < 1:
		return usagef("--parallel must be 1 or more, got %d", o.parallel)
	case o.ctxLen < 0:
		return usagef("--ctx must be 0 or more, got %d", o.ctxLen)
	case o.queue < -1:
		return usagef("--queue must be -1 (4×parallel) or more, got %d", o.queue)
	case o.maxModels < 1:
		return usagef("--max-models must be 1 or more, got %d", o.maxModels)
	case len(o.models) > o.maxModels:
		return usagef("%d models to load but --max-models is %d", len(o.models), o.maxModels)
	case o.threads < 0:
		return usagef("--threads must be 0 or more, got %d", o.threads)
	case o.requestTimeout < 0:
		return usagef("--request-timeout must be 0 or more, got %v", o.requestTimeout)
	case o.maxBody < 1:
		return usagef("--max-body must be 1 or more, got %d", o.maxBody)
	case o.lookup < 0 || o.lookup > llm.MaxPromptLookup:
		return usagef("--lookup must be 0 to %d, got %d", llm.MaxPromptLookup, o.lookup)
	case o.keepAlive == 0:
		return usagef("--keep-alive must not be 0 (use a negative value to keep models forever)")
	case o.draft != "" && len(o.models) == 0:
		return usagef("--draft needs a --model to draft for")
	case o.draftMax < 1 || o.draftMax > llm.MaxDraftTokens:
		return usagef("--draft-max must be 1 to %d, got %d", llm.MaxDraftTokens, o.draftMax)
	}
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		return usagef("--addr %q: %v", o.addr, err)
	}
	return o.gpu.check()
}

// gpuLayers returns --ngl as the server takes it.
func (o *serveOptions) gpuLayers() (int, error) {
	n, auto, err := o.gpu.layers()
	if auto {
		n = llm.AutoLayers
	}
	return n, err
}

// config turns the flags into the server's configuration.
func (o *serveOptions) config(logger *slog.Logger) server.Config {
	queue := o.queue
	switch queue {
	case -1:
		queue = 0 // the server's default, 4×parallel
	case 0:
		queue = -1 // none
	}
	// Checked by check.
	layers, _ := o.gpuLayers()
	mopts, _ := o.gpu.options(layers)
	copts, _ := o.gpu.contextOptions()
	return server.Config{Models: o.models, Parallel: o.parallel, Queue: queue, ContextLength: o.ctxLen,
		Threads: o.threads, GPULayers: layers, MaxModels: o.maxModels, KeepAlive: o.keepAlive,
		APIKey: o.apiKey, RequestTimeout: o.requestTimeout, MaxBodyBytes: o.maxBody, NoLocalPaths: !o.allowPaths, Logger: logger,
		Options: gpuOptions(mopts, copts), PromptLookup: o.lookup, Drafts: o.drafts(), DraftTokens: o.draftMax}
}

// drafts maps the first model to --draft.
func (o *serveOptions) drafts() map[string]string {
	if o.draft == "" {
		return nil
	}
	return map[string]string{o.models[0]: o.draft}
}

// serve loads the models, listens and serves until ctx ends, then shuts
// down gracefully: running requests get a few seconds to finish.
func serve(ctx context.Context, sio *stdio, o serveOptions) error {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(sio.err, &slog.HandlerOptions{Level: level}))
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.addr, err)
	}
	defer ln.Close()
	if host, _, _ := net.SplitHostPort(o.addr); o.apiKey == "" && !isLoopback(host) {
		fmt.Fprintf(sio.err, "llm serve: warning: listening on %s without --api-key: anyone who can reach it can use it\n", o.addr)
	}
	for _, m := range o.models {
		fmt.Fprintf(sio.err, "llm serve: loading %s\n", m)
	}
	if o.draft != "" {
		// Pulled (with progress) or converted now, rather than at the
		// first request.
		path, err := resolveModel(ctx, sio, o.draft)
		if err != nil {
			return fmt.Errorf("--draft: %w", err)
		}
		o.draft = path
	}
	srv, err := server.New(o.config(logger))
	if err != nil {
		return err
	}
	defer srv.Close()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	fmt.Fprintf(sio.out, "llm serve: listening on http://%s (OpenAI API at /v1, Ollama API at /api)\n", ln.Addr())
	if serveReady != nil {
		serveReady(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(sio.err, "llm serve: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close() // streams still running after the grace period
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveReady, when set (by tests), is called with the listening address.
var serveReady func(net.Addr)
