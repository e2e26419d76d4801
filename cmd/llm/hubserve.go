package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubserver"
)

func init() {
	register(&command{
		name:    "hub",
		usage:   "serve [flags] [DIR]",
		summary: "serve a folder of repos or the HF cache over the Hub protocol (HF_ENDPOINT for a LAN mirror)",
		run:     runHub,
	})
}

func runHub(ctx context.Context, sio *stdio, args []string) error {
	if len(args) == 0 || args[0] != "serve" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return runHubServe(ctx, sio, args)
		}
		return usagef("hub: unknown subcommand (want: llm hub serve [DIR] --addr HOST:PORT)")
	}
	return runHubServe(ctx, sio, args[1:])
}

func runHubServe(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose bool
		addr    string
		hf      hubFlags
	)
	fs := newFlags("hub serve", &verbose)
	fs.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (0.0.0.0:PORT to serve the LAN)")
	hf.add(fs, false)
	if err := parseFlags(fs, commands["hub"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() > 1 {
		return usagef("hub serve: at most one DIR expected")
	}
	dir := fs.Arg(0)
	if dir == "" {
		client, err := newHubClient(hf.cacheDir)
		if err != nil {
			return err
		}
		dir = client.Cache.Dir
	}
	start := time.Now()
	repos, err := hubserver.Load(dir)
	if err != nil {
		return fmt.Errorf("hub serve: %w", err)
	}
	srv := hubserver.New(repos, hubserver.Options{Logger: slog.Default()})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("hub serve: %w", err)
	}
	var files int
	var bytes int64
	for _, r := range repos {
		for _, c := range r.Commits {
			for _, f := range c.Files {
				files++
				bytes += f.Size
			}
		}
	}
	fmt.Fprintf(sio.err, "serving %d repos (%d files, %s) from %s on http://%s (loaded in %s)\n",
		len(repos), files, hub.FormatBytes(bytes), dir, ln.Addr(), time.Since(start).Round(time.Millisecond))
	for _, id := range srv.Repos() {
		fmt.Fprintf(sio.err, "  %s\n", id)
	}
	fmt.Fprintf(sio.err, "use it with: HF_ENDPOINT=http://%s llm pull REPO\n", ln.Addr())
	if hubServeReady != nil {
		hubServeReady(ln.Addr())
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// hubServeReady, when set (by tests), is called with the listening address.
var hubServeReady func(net.Addr)
