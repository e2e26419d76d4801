package main

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/internal/buildinfo"
)

func init() {
	register(&command{
		name:    "version",
		usage:   "",
		summary: "print the version, the llama.cpp commit and the compiled-in CPU features",
		run:     runVersion,
	})
}

func runVersion(ctx context.Context, sio *stdio, args []string) error {
	var verbose bool
	fs := newFlags("version", &verbose)
	if err := parseFlags(fs, commands["version"], sio, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("no arguments expected")
	}
	setupLogging(sio.err, verbose)
	sys := engine.System()
	fmt.Fprintf(sio.out, "llm %s (%s, %s/%s)\n", buildinfo.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(sio.out, "llama.cpp %s\n", sys.LlamaCppCommit)
	names := make([]string, 0, len(sys.Backends))
	for n := range sys.Backends {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(sio.out, "%s features: %s\n", n, strings.Join(sys.Backends[n], " "))
	}
	for _, d := range engine.Devices() {
		fmt.Fprintf(sio.out, "device %s (%s, %s): %s", d.Name, d.Backend, d.Type, d.Description)
		if d.MemoryTotal > 0 {
			fmt.Fprintf(sio.out, ", %.1f of %.1f GiB free", float64(d.MemoryFree)/(1<<30), float64(d.MemoryTotal)/(1<<30))
		}
		fmt.Fprintln(sio.out)
	}
	for _, line := range engine.BackendProblems() {
		fmt.Fprintf(sio.out, "backend problem: %s\n", line)
	}
	gpu := "no"
	if sys.SupportsGPUOffload {
		gpu = "yes"
	}
	fmt.Fprintf(sio.out, "GPU offload: %s (backends are looked for in %s)\n", gpu, strings.Join(engine.BackendDirs(), ", "))
	if verbose {
		fmt.Fprintf(sio.out, "llama.cpp system info: %s\n", sys.Raw)
	}
	return nil
}
