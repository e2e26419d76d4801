package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The record formats print every field of allFields: llama-bench's, in its
// order and spelling, then the extras. Their layout follows llama-bench's
// printers byte for byte for its fields.

// csvPrinter writes a header line of field names, then one line per result
// with every value quoted.
type csvPrinter struct{ w io.Writer }

func (p *csvPrinter) Header() error {
	_, err := fmt.Fprintln(p.w, strings.Join(fieldNames(allFields), ","))
	return err
}

func (p *csvPrinter) Print(r *Result) error {
	vals := make([]string, len(allFields))
	for i, f := range allFields {
		v, ok := f.value(r)
		if !ok {
			v = ""
		}
		vals[i] = `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
	}
	_, err := fmt.Fprintln(p.w, strings.Join(vals, ","))
	return err
}

func (p *csvPrinter) Footer() error { return nil }

// jsonValue formats a field's value as llama-bench's format_json_value:
// strings quoted and escaped, booleans true/false, numbers as they are.
func jsonValue(f field, r *Result) string {
	v, ok := f.value(r)
	if !ok {
		return "null"
	}
	switch f.kind {
	case kindString:
		return `"` + escapeJSON(v) + `"`
	case kindBool:
		if v == "0" {
			return "false"
		}
		return "true"
	}
	return v
}

func escapeJSON(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c <= 0x1f:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// joinSamples formats the samples as llama-bench's join(v, ", "): integers
// in full, rates as C++ streams print doubles (six significant digits).
func joinNS(ns []uint64) string {
	s := make([]string, len(ns))
	for i, v := range ns {
		s[i] = strconv.FormatUint(v, 10)
	}
	return strings.Join(s, ", ")
}

func joinTS(ts []float64) string {
	s := make([]string, len(ts))
	for i, v := range ts {
		s[i] = strconv.FormatFloat(v, 'g', 6, 64)
	}
	return strings.Join(s, ", ")
}

// jsonPrinter writes a JSON array of objects, one per result.
type jsonPrinter struct {
	w     io.Writer
	count int
}

func (p *jsonPrinter) Header() error {
	_, err := io.WriteString(p.w, "[\n")
	return err
}

func (p *jsonPrinter) Print(r *Result) error {
	var b strings.Builder
	if p.count > 0 {
		b.WriteString(",\n")
	}
	p.count++
	b.WriteString("  {\n")
	for _, f := range fieldsLlamaBench {
		fmt.Fprintf(&b, "    %q: %s,\n", f.name, jsonValue(f, r))
	}
	fmt.Fprintf(&b, "    \"samples_ns\": [ %s ],\n", joinNS(r.SamplesNS))
	fmt.Fprintf(&b, "    \"samples_ts\": [ %s ],\n", joinTS(r.SamplesTS()))
	for i, f := range fieldsExtra {
		sep := ",\n"
		if i == len(fieldsExtra)-1 {
			sep = "\n"
		}
		fmt.Fprintf(&b, "    %q: %s%s", f.name, jsonValue(f, r), sep)
	}
	b.WriteString("  }")
	_, err := io.WriteString(p.w, b.String())
	return err
}

func (p *jsonPrinter) Footer() error {
	_, err := io.WriteString(p.w, "\n]\n")
	return err
}

// jsonlPrinter writes one JSON object per line.
type jsonlPrinter struct{ w io.Writer }

func (p *jsonlPrinter) Header() error { return nil }

func (p *jsonlPrinter) Print(r *Result) error {
	var b strings.Builder
	b.WriteString("{")
	for _, f := range fieldsLlamaBench {
		fmt.Fprintf(&b, "%q: %s, ", f.name, jsonValue(f, r))
	}
	fmt.Fprintf(&b, "\"samples_ns\": [ %s ],", joinNS(r.SamplesNS))
	fmt.Fprintf(&b, "\"samples_ts\": [ %s ]", joinTS(r.SamplesTS()))
	for _, f := range fieldsExtra {
		fmt.Fprintf(&b, ", %q: %s", f.name, jsonValue(f, r))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(p.w, b.String())
	return err
}

func (p *jsonlPrinter) Footer() error { return nil }

// sqlPrinter writes a CREATE TABLE llama_bench statement, then one INSERT
// per result (for sqlite3).
type sqlPrinter struct{ w io.Writer }

func sqlType(k fieldKind) string {
	switch k {
	case kindString:
		return "TEXT"
	case kindFloat:
		return "REAL"
	}
	return "INTEGER"
}

func (p *sqlPrinter) Header() error {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS llama_bench (\n")
	for i, f := range allFields {
		sep := ","
		if i == len(allFields)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %s %s%s\n", f.name, sqlType(f.kind), sep)
	}
	b.WriteString(");\n\n")
	_, err := io.WriteString(p.w, b.String())
	return err
}

func (p *sqlPrinter) Print(r *Result) error {
	vals := make([]string, len(allFields))
	for i, f := range allFields {
		v, ok := f.value(r)
		if !ok {
			vals[i] = "NULL"
			continue
		}
		vals[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	_, err := fmt.Fprintf(p.w, "INSERT INTO llama_bench (%s) VALUES (%s);\n",
		strings.Join(fieldNames(allFields), ", "), strings.Join(vals, ", "))
	return err
}

func (p *sqlPrinter) Footer() error { return nil }
