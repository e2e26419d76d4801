package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/modelfile"
)

// resolveModel turns a MODEL argument into a local GGUF path: an existing
// file as it is, else a Hub name (org/repo, org/repo:QUANT,
// org/repo/file.gguf) pulled into the shared HF cache when missing. A
// safetensors repo is converted, to QUANT when the name gives one.
func resolveModel(ctx context.Context, sio *stdio, name string) (string, error) {
	st, statErr := os.Stat(name)
	if statErr == nil {
		if st.IsDir() && convert.IsAdapterDir(name) {
			return "", adapterAsModel(name)
		}
		if st.IsDir() {
			return convertOnce(ctx, sio, name, name, "", "f16")
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
	snap, err := client.Pull(ctx, ref, hub.PullOptions{Convertible: convert.ConvertibleType, Check: convert.CheckSnapshot})
	prog.Wait()
	if err != nil {
		return "", err
	}
	if convert.IsAdapterDir(snap.Dir) {
		return "", adapterAsModel(name)
	}
	if snap.Format() == "safetensors" {
		return convertOnce(ctx, sio, name, snap.Dir, snap.Repo+"@"+snap.Commit, convert.HubType(ref.Quant))
	}
	if snap.Format() != "gguf" {
		return "", fmt.Errorf("%s holds %s weights, which cannot be run", name, snap.Format())
	}
	return snap.ModelPath(), nil
}

// adapterAsModel is the error for a LoRA adapter named as the model.
func adapterAsModel(name string) error {
	return fmt.Errorf("%s is a LoRA adapter (adapter_config.json), not a model: run its base model with --lora %s: %w", name, name, llm.ErrUnsupportedModel)
}

// resolveAdapter turns a --lora value into a local LoRA adapter (a GGUF
// file or a PEFT directory): a path as it is, else a Hub repo holding one,
// pulled into the shared HF cache when missing.
func resolveAdapter(ctx context.Context, sio *stdio, name string) (string, error) {
	if _, err := os.Stat(name); err == nil || filepath.IsAbs(name) || strings.HasPrefix(name, ".") || strings.HasSuffix(strings.ToLower(name), ".gguf") && !strings.Contains(name, "/") {
		return name, nil // a path: its errors are the loader's
	}
	ref, err := hub.ParseRef(name)
	if err != nil {
		return "", fmt.Errorf("LoRA adapter %q is neither a file nor a Hub repo: %w", name, err)
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
	switch {
	case snap.Format() == "gguf":
		return snap.ModelPath(), nil
	case convert.IsAdapterDir(snap.Dir):
		return snap.Dir, nil
	}
	return "", fmt.Errorf("%s holds no LoRA adapter (neither a GGUF file nor a PEFT adapter_config.json)", name)
}

// convertOnce converts a safetensors checkpoint to a GGUF of type typ
// (f16, or the quantization a Hub name gives) into the user cache, once;
// later calls reuse the file.
func convertOnce(ctx context.Context, sio *stdio, name, dir, key, typ string) (string, error) {
	cache, err := convert.DefaultCacheDir()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(sio.err, "llm: using %s converted to GGUF (%s, cached in %s)\n", name, strings.ToUpper(typ), cache)
	return convert.Cached(ctx, dir, cache, key, typ)
}

// openPipeline resolves MODEL (a file, an HF directory, a preset or a Hub
// name) and loads it as a pipeline with the model flags.
func openPipeline(ctx context.Context, sio *stdio, name string, mf *modelFlags) (*llm.Pipeline, error) {
	opts, err := mf.pipelineOptions(sio)
	if err != nil {
		return nil, err
	}
	if mf.draft != "" {
		path, err := resolveModel(ctx, sio, mf.draft)
		if err != nil {
			return nil, fmt.Errorf("--draft: %w", err)
		}
		opts = append(opts, llm.WithDraft(path, mf.draftMax))
		if mf.nglDraft != "" {
			n, auto, _ := parseLayers(mf.nglDraft) // checked
			if auto {
				n = llm.AutoLayers
			}
			opts = append(opts, llm.WithDraftGPULayers(n))
		}
	}
	if st, err := lookupPreset(name); err != nil {
		return nil, err
	} else if st != nil {
		// Fetch the preset's model with the usual progress first; New then
		// finds it in place.
		if _, err := resolveModel(ctx, sio, st.Model); err != nil {
			return nil, fmt.Errorf("preset %s: %w", name, err)
		}
		return llm.New(ctx, name, opts...)
	}
	path, err := resolveModel(ctx, sio, name)
	if err != nil {
		return nil, err
	}
	return llm.New(ctx, path, opts...)
}

// lookupPreset returns the settings of the preset name, or nil when name
// is a file or not a preset.
func lookupPreset(name string) (*modelfile.Settings, error) {
	if _, err := os.Stat(name); err == nil || modelfile.ValidName(name) != nil {
		return nil, nil
	}
	store, err := modelfile.DefaultStore()
	if err != nil {
		return nil, err
	}
	st, err := store.Resolve(name)
	if errors.Is(err, modelfile.ErrNotFound) {
		return nil, nil
	}
	return st, err
}
