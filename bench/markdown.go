package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// mdColumn is a column of the markdown table: its header, width (negative:
// left-aligned, as llama-bench's get_field_width) and cell.
type mdColumn struct {
	name  string
	width int
	cell  func(r *Result) string
}

type markdownPrinter struct {
	w    *errWriter
	cols []mdColumn
	sys  System
}

// swept reports whether a list has several values or differs from the
// default, llama-bench's rule for showing a column.
func swept[T comparable](vals []T, def ...T) bool {
	return len(vals) > 1 || !slices.Equal(vals, def)
}

func newMarkdown(w io.Writer, p Params, sys System) *markdownPrinter {
	cols := []mdColumn{
		{"model", -30, func(r *Result) string { return r.Label() }},
		{"size", 10, func(r *Result) string {
			if r.ModelSize < 1<<30 {
				return fmt.Sprintf("%.2f MiB", float64(r.ModelSize)/(1<<20))
			}
			return fmt.Sprintf("%.2f GiB", float64(r.ModelSize)/(1<<30))
		}},
		{"params", 10, func(r *Result) string {
			if r.ModelParams < 1e9 {
				return fmt.Sprintf("%.2f M", float64(r.ModelParams)/1e6)
			}
			return fmt.Sprintf("%.2f B", float64(r.ModelParams)/1e9)
		}},
		{"backend", -10, func(r *Result) string { return r.Backends }},
	}
	intCol := func(name string, width int, v func(r *Result) int) mdColumn {
		return mdColumn{name, width, func(r *Result) string { return fmt.Sprint(v(r)) }}
	}
	cpu := sys.CPUOnly()
	if !cpu || len(p.GPULayers) > 1 {
		cols = append(cols, intCol("ngl", 3, func(r *Result) int { return r.GPULayers }))
	}
	if cpu || swept(p.Threads, DefaultThreads()) {
		cols = append(cols, intCol("threads", 7, func(r *Result) int { return r.Threads }))
	}
	if swept(p.Batch, 2048) {
		cols = append(cols, intCol("n_batch", 7, func(r *Result) int { return r.Batch }))
	}
	if swept(p.UBatch, 512) {
		cols = append(cols, intCol("n_ubatch", 8, func(r *Result) int { return r.UBatch }))
	}
	if swept(p.TypeK, "f16") {
		cols = append(cols, mdColumn{"type_k", 6, func(r *Result) string { return r.TypeK }})
	}
	if swept(p.TypeV, "f16") {
		cols = append(cols, mdColumn{"type_v", 6, func(r *Result) string { return r.TypeV }})
	}
	if swept(p.FlashAttn, FlashAttnAuto) {
		cols = append(cols, intCol("fa", 3, func(r *Result) int { return r.FlashAttn }))
	}
	if swept(p.Embeddings, false) {
		cols = append(cols, intCol("embd", 4, func(r *Result) int {
			if r.Embeddings {
				return 1
			}
			return 0
		}))
	}
	cols = append(cols,
		mdColumn{"test", 15, func(r *Result) string { return r.Name() }},
		mdColumn{"t/s", 20, func(r *Result) string { return fmt.Sprintf("%.2f ± %.2f", r.AvgTS(), r.StddevTS()) }},
	)
	// Extras: only for generation tests, the ones bound by memory.
	if slices.ContainsFunc(p.NGen, func(n int) bool { return n > 0 }) {
		cols = append(cols,
			mdColumn{"GB/s", 7, func(r *Result) string {
				if g, ok := r.AchievedGBps(); ok {
					return fmt.Sprintf("%.2f", g)
				}
				return ""
			}},
			mdColumn{"% of bw", 7, func(r *Result) string {
				if p, ok := r.BandwidthPct(); ok {
					return fmt.Sprintf("%.1f", p)
				}
				return ""
			}},
		)
	}
	return &markdownPrinter{w: &errWriter{w: w}, cols: cols, sys: sys}
}

func (m *markdownPrinter) Header() error {
	var head, rule strings.Builder
	head.WriteString("|")
	rule.WriteString("|")
	for _, c := range m.cols {
		fmt.Fprintf(&head, " %*s |", c.width, c.name)
		end := "-"
		if c.width > 0 {
			end = ":"
		}
		fmt.Fprintf(&rule, " %s%s |", strings.Repeat("-", abs(c.width)-1), end)
	}
	m.w.printf("%s\n%s\n", head.String(), rule.String())
	return m.w.err
}

func (m *markdownPrinter) Print(r *Result) error {
	var b strings.Builder
	b.WriteString("|")
	for _, c := range m.cols {
		fmt.Fprintf(&b, " %*s |", c.width, c.cell(r))
	}
	m.w.printf("%s\n", b.String())
	return m.w.err
}

func (m *markdownPrinter) Footer() error {
	m.w.printf("\nbuild: %s (%d)\n", m.sys.BuildCommit, m.sys.BuildNumber)
	if m.sys.GPUInfo != "" {
		m.w.printf("gpu: %s\n", m.sys.GPUInfo)
	}
	if m.sys.MemBandwidthGBps > 0 {
		m.w.printf("memory read bandwidth: %.2f GB/s (%s); GB/s = weight and KV bytes read per generated token × t/s\n",
			m.sys.MemBandwidthGBps, m.sys.CPUInfo)
	}
	return m.w.err
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
