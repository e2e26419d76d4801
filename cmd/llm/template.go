package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/llm-go/llm/tokenizer"
)

func init() {
	register(&command{
		name:    "template",
		usage:   "MODEL --messages FILE.json [flags]",
		summary: "print the prompt a model's chat template makes of a conversation",
		run:     runTemplate,
	})
}

func runTemplate(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose, noGen                   bool
		messages, tools, override, named string
		bos, eos, now, kwargs            string
	)
	fs := newFlags("template", &verbose)
	fs.StringVar(&messages, "messages", "", "JSON array of messages (OpenAI/transformers shape); - reads stdin")
	fs.StringVar(&tools, "tools", "", "JSON array of tool definitions")
	fs.BoolVar(&noGen, "no-generation-prompt", false, "do not open an assistant turn at the end")
	fs.StringVar(&override, "template", "", "a .jinja file to use instead of the model's template")
	fs.StringVar(&named, "name", "", "a named template of the model, e.g. tool_use")
	fs.StringVar(&bos, "bos", "", "bos_token text (default: the model's)")
	fs.StringVar(&eos, "eos", "", "eos_token text (default: the model's)")
	fs.StringVar(&now, "now", "", "the time strftime_now formats, e.g. 2024-07-26T12:00:00 (default: now)")
	fs.StringVar(&kwargs, "kwargs", "", `extra template variables as a JSON object, e.g. {"enable_thinking": false}`)
	if err := parseFlags(fs, commands["template"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() != 1 && override == "" {
		return usagef("one MODEL expected (a GGUF file, an HF model directory or a template file), got %d", fs.NArg())
	}
	if fs.NArg() > 1 {
		return usagef("one MODEL expected, got %d", fs.NArg())
	}
	if messages == "" {
		return usagef("--messages FILE.json is required")
	}

	var src *tokenizer.Source
	var err error
	if fs.NArg() == 1 {
		if src, err = tokenizer.LoadSource(fs.Arg(0), named); err != nil && override == "" {
			return err
		}
	}
	if src == nil {
		src = &tokenizer.Source{}
	}
	if override != "" {
		o, err := tokenizer.LoadSource(override, "")
		if err != nil {
			return err
		}
		src.Template, src.From = o.Template, o.From
	}
	if fs.Changed("bos") {
		src.BOS = bos
	}
	if fs.Changed("eos") {
		src.EOS = eos
	}
	opts := tokenizer.Options{AddGenerationPrompt: !noGen, BOS: src.BOS, EOS: src.EOS}

	data, err := readInput(sio, messages)
	if err != nil {
		return err
	}
	if opts.Messages, err = tokenizer.ParseMessages(data); err != nil {
		return fmt.Errorf("--messages %s: %w", messages, err)
	}
	if tools != "" {
		data, err := readInput(sio, tools)
		if err != nil {
			return err
		}
		v, err := tokenizer.DecodeJSON(data)
		if err != nil {
			return fmt.Errorf("--tools %s: %w", tools, err)
		}
		list, ok := v.([]any)
		if !ok {
			return usagef("--tools %s must hold a JSON array", tools)
		}
		opts.Tools = list
	}
	if kwargs != "" {
		v, err := tokenizer.DecodeJSON([]byte(kwargs))
		obj, ok := v.(*tokenizer.Object)
		if err != nil || !ok {
			return usagef("--kwargs must be a JSON object")
		}
		opts.Extra = map[string]any{}
		for _, k := range obj.Keys() {
			opts.Extra[k], _ = obj.Get(k)
		}
	}
	if now != "" {
		t, err := parseNow(now)
		if err != nil {
			return usagef("--now %q: want a time like 2024-07-26T12:00:00 or 2024-07-26", now)
		}
		opts.Now = t
	}
	tmpl, err := tokenizer.Parse(src.Template)
	if err != nil {
		return fmt.Errorf("%s: %w", src.From, err)
	}
	out, err := tmpl.Render(opts)
	if err != nil {
		return fmt.Errorf("%s: %w", src.From, err)
	}
	if verbose {
		fmt.Fprintf(sio.err, "template from %s; bos %q, eos %q\n", src.From, src.BOS, src.EOS)
	}
	_, err = io.WriteString(sio.out, out)
	return err
}

func readInput(sio *stdio, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(sio.in)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return data, nil
}

func parseNow(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised time %q", s)
}
