package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
)

func init() {
	register(&command{
		name:    "convert",
		usage:   "DIR -o OUT.gguf [--type f16]  (a PEFT LoRA adapter: DIR --base MODEL -o OUT.gguf)",
		summary: "convert a Hugging Face safetensors model directory, or a PEFT LoRA adapter, to GGUF, in Go",
		run:     runConvert,
	})
	register(&command{
		name:    "quantize",
		usage:   "IN.gguf OUT.gguf TYPE",
		summary: "quantize a GGUF model (Q4_K_M, Q8_0, ...) with llama.cpp's quantizer",
		run:     runQuantize,
	})
}

func runConvert(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose  bool
		out, typ string
		base     string
		threads  int
	)
	fs := newFlags("convert", &verbose)
	fs.StringVarP(&out, "output", "o", "", "the GGUF file to write")
	fs.StringVar(&typ, "type", "f16", "output type: f32, f16, bf16 or q8_0 (written in Go), or another llama.cpp type such as q4_k_m (quantized by llama.cpp)")
	fs.IntVarP(&threads, "threads", "t", 0, "threads for quantizing (0: all)")
	fs.StringVar(&base, "base", "", "for a PEFT LoRA adapter: the GGUF model (or model name) it was trained on")
	if err := parseFlags(fs, commands["convert"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	switch {
	case fs.NArg() != 1:
		return usagef("one model DIR expected, got %d (supported: %s)", fs.NArg(), strings.Join(convert.Supported(), ", "))
	case out == "":
		return usagef("an output file is required (-o OUT.gguf)")
	case threads < 0:
		return usagef("--threads must be 0 or more")
	}
	start := time.Now()
	if convert.IsAdapterDir(fs.Arg(0)) {
		if base == "" {
			return usagef("%s is a PEFT LoRA adapter: --base MODEL names the model it adapts", fs.Arg(0))
		}
		if !fs.Changed("type") {
			typ = "f16"
		}
		path, err := resolveModel(ctx, sio, base)
		if err != nil {
			return err
		}
		header, err := gguf.ValidateModel(path)
		if err != nil {
			return err
		}
		tensors, err := gguf.AllTensors(path, header)
		if err != nil {
			return err
		}
		if err := convert.ConvertLoRA(ctx, fs.Arg(0), out, header, tensors, convert.Options{Type: typ, Progress: convertProgress(sio.err)}); err != nil {
			return err
		}
		fmt.Fprintf(sio.err, "wrote LoRA adapter %s (%s) for %s in %v\n", out, typ, base, time.Since(start).Round(time.Millisecond))
		return nil
	}
	if base != "" {
		return usagef("--base applies to PEFT LoRA adapters; %s has no %s", fs.Arg(0), convert.AdapterConfigFile)
	}
	if err := convert.ToType(ctx, fs.Arg(0), out, typ, threads, convertProgress(sio.err)); err != nil {
		return err
	}
	fmt.Fprintf(sio.err, "wrote %s (%s) in %v\n", out, typ, time.Since(start).Round(time.Millisecond))
	if tasks, err := convert.TaskAdapters(out); err == nil {
		for _, t := range tasks {
			fmt.Fprintf(sio.err, "wrote %s, the adapter of task %s (llm embed --task %s)\n", t.Path, t.Task, t.Task)
		}
	}
	return nil
}

func runQuantize(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose bool
		threads int
	)
	fs := newFlags("quantize", &verbose)
	fs.IntVarP(&threads, "threads", "t", 0, "threads (0: all)")
	if err := parseFlags(fs, commands["quantize"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() != 3 {
		return usagef("IN.gguf OUT.gguf TYPE expected (TYPE one of %s)", strings.Join(engine.QuantTypes(), ", "))
	}
	if threads < 0 {
		return usagef("--threads must be 0 or more")
	}
	start := time.Now()
	if err := engine.Quantize(ctx, fs.Arg(0), fs.Arg(1), fs.Arg(2), threads); err != nil {
		return err
	}
	fmt.Fprintf(sio.err, "wrote %s (%s) in %v\n", fs.Arg(1), strings.ToUpper(fs.Arg(2)), time.Since(start).Round(time.Millisecond))
	// The task adapters follow the model (they stay F32, as written),
	// replacing those of a model quantized to the same path before.
	tasks, err := convert.TaskAdapters(fs.Arg(0))
	if err != nil {
		return err
	}
	if stale, err := convert.TaskAdapters(fs.Arg(1)); err == nil && fs.Arg(0) != fs.Arg(1) {
		for _, t := range stale {
			os.Remove(t.Path)
		}
	}
	for _, t := range tasks {
		to := convert.TaskAdapterPath(fs.Arg(1), t.Task)
		if err := copyFile(t.Path, to); err != nil {
			return fmt.Errorf("the adapter of task %s: %w", t.Task, err)
		}
		fmt.Fprintf(sio.err, "copied the adapter of task %s to %s\n", t.Task, to)
	}
	return nil
}

// copyFile copies the file from to the path to, through a temporary file
// renamed into place.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, to); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// convertProgress reports a conversion's progress on w: a line rewritten in
// place on a terminal, a line every 5 seconds otherwise.
func convertProgress(w io.Writer) func(done, total int64) {
	tty := isTerminal(w)
	var last time.Time
	return func(done, total int64) {
		if done < total && time.Since(last) < 200*time.Millisecond || !tty && done < total && time.Since(last) < 5*time.Second {
			return
		}
		last = time.Now()
		pct := 100 * float64(done) / float64(max(total, 1))
		if tty {
			fmt.Fprintf(w, "\rconverting: %5.1f%% of %.0f MB", pct, float64(total)/1e6)
			if done >= total {
				fmt.Fprintln(w)
			}
			return
		}
		fmt.Fprintf(w, "converting: %.1f%% of %.0f MB\n", pct, float64(total)/1e6)
	}
}
