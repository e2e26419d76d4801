package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/llm-go/llm/engine"
)

func init() {
	register(&command{
		name:    "tokenize",
		usage:   "-m MODEL.gguf [flags] [TEXT]",
		summary: "print the token ids of a text (read from stdin when absent)",
		run:     runTokenize,
	})
}

func runTokenize(ctx context.Context, sio *stdio, args []string) error {
	var (
		model                    string
		addSpecial, parseSpecial bool
		pieces, asJSON, verbose  bool
	)
	fs := newFlags("tokenize", &verbose)
	fs.StringVarP(&model, "model", "m", "", "GGUF model file (only its vocabulary is loaded)")
	fs.BoolVar(&addSpecial, "add-special", false, "add the model's BOS/EOS tokens")
	fs.BoolVar(&parseSpecial, "parse-special", false, "turn special-token text such as <|im_start|> into those tokens")
	fs.BoolVar(&pieces, "pieces", false, "print each token with its text, as llama-tokenize does")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(fs, commands["tokenize"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if model == "" {
		return usagef("a model is required (-m MODEL.gguf)")
	}
	if fs.NArg() > 1 {
		return usagef("one text argument expected, got %d (quote the text)", fs.NArg())
	}
	text := ""
	if fs.NArg() == 1 {
		text = fs.Arg(0)
	} else {
		data, err := io.ReadAll(sio.in)
		if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
		text = string(data)
	}

	m, err := engine.LoadModel(ctx, model, engine.ModelOptions{VocabOnly: true})
	if err != nil {
		return err
	}
	defer m.Close()
	ids, err := m.Tokenize(text, addSpecial, parseSpecial)
	if err != nil {
		return err
	}
	return printTokens(sio.out, m, ids, pieces, asJSON)
}

func printTokens(w io.Writer, m *engine.Model, ids []engine.Token, pieces, asJSON bool) error {
	type entry struct {
		ID    engine.Token `json:"id"`
		Piece string       `json:"piece"`
	}
	if !pieces {
		if asJSON {
			if ids == nil {
				ids = []engine.Token{}
			}
			return json.NewEncoder(w).Encode(ids)
		}
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = fmt.Sprint(id)
		}
		_, err := fmt.Fprintf(w, "[%s]\n", strings.Join(s, ", "))
		return err
	}
	entries := make([]entry, len(ids))
	for i, id := range ids {
		p, err := m.TokenToPiece(id, true)
		if err != nil {
			return err
		}
		entries[i] = entry{id, string(p)}
	}
	if asJSON {
		return json.NewEncoder(w).Encode(entries)
	}
	for _, e := range entries {
		if _, err := fmt.Fprintf(w, "%6d -> '%s'\n", e.ID, e.Piece); err != nil {
			return err
		}
	}
	return nil
}
