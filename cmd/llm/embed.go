package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

func init() {
	register(&command{
		name:    "embed",
		usage:   "MODEL [flags] TEXT... (or texts on stdin, one per line)",
		summary: "print the embeddings of texts as JSON (pooled and normalised, as sentence-transformers does)",
		run:     runEmbed,
	})
}

func runEmbed(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose bool
		dims    int
		mf      modelFlags
	)
	fs := newFlags("embed", &verbose)
	mf.register(fs)
	fs.StringVar(&mf.task, "task", "", "embed for one of the model's tasks (jina-embeddings-v3: retrieval.query, retrieval.passage, separation, classification, text-matching): its LoRA adapter, and its instruction before each text")
	fs.IntVar(&dims, "dimensions", 0, "cut the embeddings to their first N values, normalised again (Matryoshka models: nomic-embed-text v1.5, EmbeddingGemma, Qwen3-Embedding); 0: the model's width")
	if err := parseFlags(fs, commands["embed"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() < 1 {
		return usagef("a MODEL is required (a GGUF file or a Hub name)")
	}
	if err := mf.check(); err != nil {
		return err
	}
	texts := fs.Args()[1:]
	if len(texts) == 0 {
		data, err := io.ReadAll(sio.in)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimRight(line, "\r"); line != "" {
				texts = append(texts, line)
			}
		}
	}
	if len(texts) == 0 {
		return usagef("no texts: give them as arguments or on stdin")
	}
	p, err := openPipeline(ctx, sio, fs.Arg(0), &mf)
	if err != nil {
		return err
	}
	defer p.Close()
	if tasks := p.Tasks(); mf.task == "" && len(tasks) > 0 {
		fmt.Fprintf(sio.err, "llm: %s has task adapters (%s); without --task it embeds with its base weights\n", fs.Arg(0), strings.Join(tasks, ", "))
	}
	if dims == 0 {
		dims = p.Model().Info().EmbeddingSize
	}
	vecs, err := p.EmbedDimensions(ctx, dims, texts...)
	if err != nil {
		return err
	}
	type item struct {
		Index     int       `json:"index"`
		Text      string    `json:"text"`
		Embedding []float32 `json:"embedding"`
	}
	out := struct {
		Model string `json:"model"`
		Dims  int    `json:"dimensions"`
		Data  []item `json:"data"`
	}{Model: fs.Arg(0), Dims: len(vecs[0])}
	for i, v := range vecs {
		out.Data = append(out.Data, item{i, texts[i], v})
	}
	return json.NewEncoder(sio.out).Encode(out)
}
