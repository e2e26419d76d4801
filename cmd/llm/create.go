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
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/modelfile"
)

func init() {
	register(&command{
		name:    "create",
		usage:   "NAME [-f Modelfile]",
		summary: "make a preset from an Ollama Modelfile (FROM, PARAMETER, SYSTEM, TEMPLATE, MESSAGE)",
		run:     runCreate,
	})
}

func runCreate(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose bool
		file    string
	)
	fs := newFlags("create", &verbose)
	fs.StringVarP(&file, "file", "f", "Modelfile", "the Modelfile to read")
	if err := parseFlags(fs, commands["create"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() != 1 {
		return usagef("one NAME expected, got %d arguments", fs.NArg())
	}
	name := fs.Arg(0)
	if err := modelfile.ValidName(name); err != nil {
		return usagef("%v", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	mf, err := modelfile.Parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	store, err := modelfile.DefaultStore()
	if err != nil {
		return err
	}
	from, err := createFrom(store, mf.From, filepath.Dir(file), name)
	if err != nil {
		return fmt.Errorf("%s: FROM %s: %w", file, mf.From, err)
	}
	mf.From = from
	for i, a := range mf.Adapters {
		path, err := createAdapter(ctx, sio, a, filepath.Dir(file))
		if err != nil {
			return fmt.Errorf("%s: ADAPTER %s: %w", file, a, err)
		}
		mf.Adapters[i] = path
	}
	for _, o := range mf.Other {
		fmt.Fprintf(sio.err, "llm: %s %s: ignored (Ollama-specific)\n", strings.ToUpper(o.Name), o.Value)
	}
	// Check the preset as New will use it, through a scratch store that
	// holds it beside the others.
	tmp, err := os.MkdirTemp("", "llm-create-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	scratch := &modelfile.Store{Dir: tmp}
	if err := copyPresets(store, scratch); err != nil {
		return err
	}
	if err := scratch.Save(name, mf); err != nil {
		return err
	}
	st, err := scratch.Resolve(name)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := llm.ValidatePreset(st); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := store.Save(name, mf); err != nil {
		return err
	}
	fmt.Fprintf(sio.out, "created %s (FROM %s)\n", name, from)
	return nil
}

// createFrom checks a FROM value and makes a relative path absolute: a
// file or directory (relative to the Modelfile), another preset, or a Hub
// name (pulled on first use).
func createFrom(store *modelfile.Store, from, dir, name string) (string, error) {
	if from == name {
		return "", errors.New("a preset cannot be made FROM itself")
	}
	path := from
	if strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, path[2:])
		}
	} else if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	if _, err := os.Stat(path); err == nil {
		return filepath.Abs(path)
	}
	if modelfile.ValidName(from) == nil {
		if _, err := store.Get(from); err == nil {
			return from, nil
		}
	}
	looksLikePath := filepath.IsAbs(from) || strings.HasPrefix(from, ".") || strings.HasPrefix(from, "~") ||
		strings.HasSuffix(strings.ToLower(from), ".gguf")
	if looksLikePath {
		return "", fmt.Errorf("no such file: %s", path)
	}
	if _, err := hub.ParseRef(from); err != nil {
		return "", fmt.Errorf("neither a file, a preset nor a Hub name: %w", err)
	}
	return from, nil
}

// createAdapter checks an ADAPTER value, a LoRA adapter GGUF file or PEFT
// adapter directory (relative to the Modelfile), and makes it absolute.
// Whether it fits the model is checked when the model loads.
func createAdapter(ctx context.Context, sio *stdio, a, dir string) (string, error) {
	path := a
	if strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, path[2:])
		}
	} else if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	st, err := os.Stat(path)
	switch {
	case err != nil && hubName(a):
		// A Hub repo holding an adapter, as --lora takes: pulled now, so
		// that a missing one fails here; the preset keeps the name.
		if _, err := resolveAdapter(ctx, sio, a); err != nil {
			return "", err
		}
		return a, nil
	case err != nil:
		return "", fmt.Errorf("no such file: %s", path)
	case st.IsDir() && convert.IsAdapterDir(path):
		return filepath.Abs(path) // a PEFT adapter, converted when the model loads
	case st.IsDir():
		return "", fmt.Errorf("%s is a directory without %s: not a PEFT LoRA adapter", path, convert.AdapterConfigFile)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return "", err
	}
	if typ, _ := f.String(gguf.KeyGeneralType); typ != "adapter" {
		return "", fmt.Errorf("%s is not a LoRA adapter (general.type %q)", path, typ)
	}
	return filepath.Abs(path)
}

// hubName reports whether a Modelfile value that names no local file
// looks like a Hub repo (org/repo, org/repo/file.gguf) rather than a path.
func hubName(s string) bool {
	if filepath.IsAbs(s) || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "~") || !strings.Contains(s, "/") {
		return false
	}
	_, err := hub.ParseRef(s)
	return err == nil
}

// copyPresets copies every preset of src into dst.
func copyPresets(src, dst *modelfile.Store) error {
	list, err := src.List()
	if err != nil {
		return err
	}
	for _, e := range list {
		m, err := src.Get(e.Name)
		if err != nil {
			return err
		}
		if err := dst.Save(e.Name, m); err != nil {
			return err
		}
	}
	return nil
}
