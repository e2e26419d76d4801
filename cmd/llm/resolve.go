package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/llm-go/llm/hub"
)

// resolveModel turns a MODEL argument into a local GGUF path: an existing
// file as it is, else a Hub name (org/repo, org/repo:QUANT,
// org/repo/file.gguf) pulled into the shared HF cache when missing.
func resolveModel(ctx context.Context, sio *stdio, name string) (string, error) {
	_, statErr := os.Stat(name)
	if statErr == nil {
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
	if snap.Format() != "gguf" {
		return "", fmt.Errorf("%s holds %s weights; only GGUF models can be run so far (convert them to GGUF)", name, snap.Format())
	}
	return snap.ModelPath(), nil
}
