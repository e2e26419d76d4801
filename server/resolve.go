package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/modelfile"
)

// resolver turns model names into local GGUF files, as "llm run" does: a
// file as it is, a Hugging Face directory converted to GGUF once, a preset
// (see package modelfile) by its base model, a Hub name pulled into the
// shared cache.
type resolver struct {
	presets *modelfile.Store // nil: modelfile.DefaultStore()

	mu     sync.Mutex
	client *hub.Client // nil until first needed, unless configured
}

// target is what a model name resolves to.
type target struct {
	load   string              // what the loader opens: the GGUF file, or the preset's name
	path   string              // the GGUF file of the weights
	preset *modelfile.Settings // the preset, when the name is one
}

// preset returns the settings of the preset name, or nil when name is a
// file or no preset.
func (r *resolver) preset(name string) (*modelfile.Settings, error) {
	if _, err := os.Stat(name); err == nil || modelfile.ValidName(name) != nil {
		return nil, nil
	}
	store := r.presets
	if store == nil {
		var err error
		if store, err = modelfile.DefaultStore(); err != nil {
			return nil, err
		}
	}
	st, err := store.Resolve(name)
	if errors.Is(err, modelfile.ErrNotFound) {
		return nil, nil
	}
	return st, err
}

// hubClient returns the configured Hub client, or one from the environment.
func (r *resolver) hubClient() (*hub.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		c, err := hub.NewClient(hub.LoadEnv(nil))
		if err != nil {
			return nil, fmt.Errorf("the Hub client: %w", err)
		}
		r.client = c
	}
	return r.client, nil
}

// shortName is the name a model given as source answers to: a Hub name as
// it is, a local file or directory by its base name without ".gguf".
func shortName(source string) string {
	if _, err := os.Stat(source); err != nil && !looksLikePath(source) {
		return source
	}
	base := filepath.Base(filepath.Clean(source))
	if strings.HasSuffix(strings.ToLower(base), ".gguf") {
		base = base[:len(base)-len(".gguf")]
	}
	return base
}

// looksLikePath reports whether name can only be a file path, not a Hub name.
func looksLikePath(name string) bool {
	return filepath.IsAbs(name) || strings.HasPrefix(name, ".") ||
		strings.HasSuffix(strings.ToLower(name), ".gguf") && !strings.Contains(name, "/")
}

// resolve returns what source names. With pull false, a Hub name is
// looked up in the cache only. Names that name nothing are
// errModelNotFound.
func (r *resolver) resolve(ctx context.Context, name, source string, pull bool) (target, error) {
	st, err := r.preset(source)
	if err != nil {
		return target{}, fmt.Errorf("model %q: %w", name, err)
	}
	if st != nil {
		path, err := r.weights(ctx, name, st.Model, pull)
		if err != nil {
			return target{}, fmt.Errorf("preset %s: %w", source, err)
		}
		return target{load: source, path: path, preset: st}, nil
	}
	path, err := r.weights(ctx, name, source, pull)
	return target{load: path, path: path}, err
}

// weights returns the local GGUF file of source, a file, an HF directory
// or a Hub name.
func (r *resolver) weights(ctx context.Context, name, source string, pull bool) (string, error) {
	st, statErr := os.Stat(source)
	if statErr == nil {
		if st.IsDir() {
			return convertDir(ctx, source, "", "f16")
		}
		return source, nil
	}
	if looksLikePath(source) {
		return "", errModelNotFound(name, nil)
	}
	ref, err := hub.ParseRef(source)
	if err != nil {
		return "", errModelNotFound(name, errors.New("neither a loaded model, a local file nor a Hub model name"))
	}
	client, err := r.hubClient()
	if err != nil {
		return "", err
	}
	var snap *hub.Snapshot
	if pull {
		snap, err = client.Pull(ctx, ref, hub.PullOptions{Convertible: convert.ConvertibleType, Check: convert.CheckSnapshot})
	} else {
		snap, err = client.Cache.Resolve(ref, hub.Selection{Convertible: convert.ConvertibleType})
	}
	if err != nil {
		if errors.Is(err, hub.ErrNotFound) || errors.Is(err, hub.ErrOffline) || errors.Is(err, hub.ErrInvalidName) || errors.Is(err, hub.ErrAmbiguous) {
			return "", errModelNotFound(name, err)
		}
		if errors.Is(err, convert.ErrUnsupported) || errors.Is(err, convert.ErrMismatch) {
			// Checked before the weights were fetched.
			return "", fmt.Errorf("%w: %w", llm.ErrUnsupportedModel, err)
		}
		if ctx.Err() == nil && !errors.Is(err, hub.ErrUnauthorized) && !errors.Is(err, hub.ErrDiskFull) {
			return "", errorf(502, "hub_error", "pulling %s: %v", source, err)
		}
		return "", err
	}
	switch snap.Format() {
	case "gguf":
		return snap.ModelPath(), nil
	case "safetensors":
		return convertDir(ctx, snap.Dir, snap.Repo+"@"+snap.Commit, convert.HubType(ref.Quant))
	}
	return "", fmt.Errorf("%s holds %s weights: %w", source, snap.Format(), llm.ErrUnsupportedModel)
}

// convertDir converts a safetensors checkpoint to a GGUF of type typ (f16,
// or the quantization a Hub name gives) in the user cache the first time,
// and reuses it afterwards.
func convertDir(ctx context.Context, dir, key, typ string) (string, error) {
	cache, err := convert.DefaultCacheDir()
	if err != nil {
		return "", fmt.Errorf("converting %s: %w", dir, err)
	}
	path, err := convert.Cached(ctx, dir, cache, key, typ)
	if err != nil {
		if errors.Is(err, convert.ErrUnsupported) {
			return "", fmt.Errorf("converting %s: %w: %w", dir, llm.ErrUnsupportedModel, err)
		}
		return "", fmt.Errorf("converting %s: %w", dir, err)
	}
	return path, nil
}
