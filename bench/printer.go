package bench

import (
	"fmt"
	"io"
	"strings"
)

// Printer writes results in one format as they come: the header first,
// each result when its test ends, the footer last (also after an
// interrupted run, so that the output is complete).
type Printer interface {
	Header() error
	Print(r *Result) error
	Footer() error
}

// Formats are the output formats NewPrinter knows, as llama-bench's -o.
var Formats = []string{"md", "csv", "json", "jsonl", "sql"}

// NewPrinter returns a printer of format (md, csv, json, jsonl or sql)
// writing to w. The markdown table's columns depend on which parameters of
// p are swept or not at their defaults, and on sys's backend, as in
// llama-bench.
func NewPrinter(format string, w io.Writer, p Params, sys System) (Printer, error) {
	switch format {
	case "md":
		return newMarkdown(w, p, sys), nil
	case "csv":
		return &csvPrinter{w: w}, nil
	case "json":
		return &jsonPrinter{w: w}, nil
	case "jsonl":
		return &jsonlPrinter{w: w}, nil
	case "sql":
		return &sqlPrinter{w: w}, nil
	}
	return nil, fmt.Errorf("bench: output format %q is not one of %s", format, strings.Join(Formats, ", "))
}

// errWriter remembers the first write error, so printers check once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
