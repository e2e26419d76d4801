package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/loader/convert"
)

// resolveModel turns a MODEL argument into a local GGUF path: an existing
// file as it is, else a Hub name (org/repo, org/repo:QUANT,
// org/repo/file.gguf) pulled into the shared HF cache when missing.
func resolveModel(ctx context.Context, sio *stdio, name string) (string, error) {
	st, statErr := os.Stat(name)
	if statErr == nil {
		if st.IsDir() {
			return convertOnce(ctx, sio, name, name, "")
		}
		return name, nil
	}
	if filepath.IsAbs(name) || strings.HasPrefix(name, ".") || strings.HasSuffix(strings.ToLower(name), ".gguf") && !strings.Contains(name, "/") {
		return "", statErr // a path, not a Hub name
	}
	ref, err := hub.ParseRef(name)
	if err != nil {
		return "", fmt.Errorf("%q is neither a file nor a Hub model name: %w", name, err)
	}
	client, err := newHubClient("")
	if err != nil {
		return "", err
	}
	prog := newProgress(ctx, sio.err, false)
	client.Progress = prog
	snap, err := client.Pull(ctx, ref, hub.PullOptions{})
	prog.Wait()
	if err != nil {
		return "", err
	}
	if snap.Format() == "safetensors" {
		return convertOnce(ctx, sio, name, snap.Dir, snap.Repo+"@"+snap.Commit)
	}
	if snap.Format() != "gguf" {
		return "", fmt.Errorf("%s holds %s weights, which cannot be run", name, snap.Format())
	}
	return snap.ModelPath(), nil
}

// convertOnce converts a safetensors checkpoint to F16 GGUF into the user
// cache, once; later calls reuse the file.
func convertOnce(ctx context.Context, sio *stdio, name, dir, key string) (string, error) {
	cache, err := convert.DefaultCacheDir()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(sio.err, "llm: using %s converted to GGUF (F16, cached in %s)\n", name, cache)
	return convert.Cached(ctx, dir, cache, key, "f16")
}

// openPipeline resolves MODEL (a file, an HF directory or a Hub name) and
// loads it as a pipeline.
func openPipeline(ctx context.Context, sio *stdio, name string, threads, ctxLen int) (*llm.Pipeline, error) {
	path, err := resolveModel(ctx, sio, name)
	if err != nil {
		return nil, err
	}
	return llm.New(ctx, path, llm.WithThreads(threads), llm.WithContextLength(ctxLen))
}
