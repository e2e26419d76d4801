package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/modelfile"
)

func init() {
	register(&command{
		name:    "rm",
		usage:   "[flags] MODEL[:QUANT]|PRESET...",
		summary: "remove a model (or one quantization or file of it) from the Hugging Face cache, with its conversions, or a preset",
		run:     runRm,
	})
}

func runRm(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose bool
		hf      hubFlags
	)
	fs := newFlags("rm", &verbose)
	hf.add(fs, true)
	if err := parseFlags(fs, commands["rm"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() == 0 {
		return usagef("MODEL expected (org/repo, org/repo:QUANT or org/repo/file)")
	}
	client, err := newHubClient(hf.cacheDir)
	if err != nil {
		return err
	}
	store, err := modelfile.DefaultStore()
	if err != nil {
		return err
	}
	for _, arg := range fs.Args() {
		if modelfile.ValidName(arg) == nil {
			if err := store.Remove(arg); err == nil {
				fmt.Fprintf(sio.out, "removed preset %s\n", arg)
				continue
			} else if !errors.Is(err, modelfile.ErrNotFound) {
				return err
			}
		}
		ref, err := parseModel(arg, hf.revision)
		if err != nil {
			return err
		}
		// Conversions of a safetensors repo: org/repo:TYPE removes that
		// type's, leaving the checkpoint; org/repo removes them all with it.
		var conv []string
		var convBytes int64
		if ref.File == "" {
			var commits []string
			if es, err := os.ReadDir(filepath.Join(client.Cache.RepoDir(ref.Repo), "snapshots")); err == nil {
				for _, e := range es {
					commits = append(commits, e.Name())
				}
			}
			if dir, err := convert.DefaultCacheDir(); err == nil {
				if conv, convBytes, err = convert.RemoveConverted(dir, ref.Repo, commits, ref.Quant); err != nil {
					return fmt.Errorf("%s: %w", arg, err)
				}
			}
		}
		if ref.Quant != "" && len(conv) > 0 {
			fmt.Fprintf(sio.out, "removed %s: %s converted to %s, %s freed\n", ref.String(),
				plural(len(conv), "file"), strings.ToUpper(ref.Quant), hub.FormatBytes(convBytes))
			continue
		}
		res, err := client.Cache.Remove(ref)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		fmt.Fprintf(sio.out, "removed %s: %s, %s, %s freed\n", ref.String(),
			plural(res.Files+len(conv), "file"), plural(res.Blobs, "blob"), hub.FormatBytes(res.Bytes+convBytes))
	}
	return nil
}
