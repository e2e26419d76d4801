package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

func init() {
	register(&command{
		name:    "rerank",
		usage:   "MODEL [flags] QUERY [DOCUMENT...] (or documents on stdin, one per line)",
		summary: "score documents against a query with a reranker model, most relevant first",
		run:     runRerank,
	})
}

func runRerank(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose bool
		topN    int
		mf      modelFlags
	)
	fs := newFlags("rerank", &verbose)
	fs.IntVar(&topN, "top-n", 0, "print only the N most relevant documents (0: all)")
	mf.register(fs)
	if err := parseFlags(fs, commands["rerank"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	switch {
	case fs.NArg() < 2:
		return usagef("a MODEL (a reranker: a GGUF file or a Hub name) and a QUERY are required")
	case topN < 0:
		return usagef("--top-n must be 0 or more, got %d", topN)
	}
	if err := mf.check(); err != nil {
		return err
	}
	docs := fs.Args()[2:]
	if len(docs) == 0 {
		data, err := io.ReadAll(sio.in)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimRight(line, "\r"); line != "" {
				docs = append(docs, line)
			}
		}
	}
	if len(docs) == 0 {
		return usagef("no documents: give them as arguments or on stdin")
	}
	p, err := openPipeline(ctx, sio, fs.Arg(0), &mf)
	if err != nil {
		return err
	}
	defer p.Close()
	scores, err := p.Rerank(ctx, fs.Arg(1), docs...)
	if err != nil {
		return err
	}
	order := make([]int, len(docs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	if topN > 0 && topN < len(order) {
		order = order[:topN]
	}
	// score, the document's index, the document: tab-separated.
	for _, i := range order {
		fmt.Fprintf(sio.out, "%.6g\t%d\t%s\n", scores[i], i, docs[i])
	}
	return nil
}
