package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// sweep is a parameter a plot can put on its x axis.
type sweep struct {
	name  string // axis label
	short string // in series labels
	value func(in Instance) int
}

// sweeps are the candidates for the x axis, in order of preference.
var sweeps = []sweep{
	{"threads", "t", func(in Instance) int { return in.Threads }},
	{"depth (tokens already in the KV cache)", "d", func(in Instance) int { return in.Depth }},
	{"batch size (n_batch)", "b", func(in Instance) int { return in.Batch }},
	{"micro-batch size (n_ubatch)", "ub", func(in Instance) int { return in.UBatch }},
	{"GPU layers (ngl)", "ngl", func(in Instance) int { return in.GPULayers }},
	{"flash attention", "fa", func(in Instance) int { return in.FlashAttn }},
	{"embeddings", "embd", func(in Instance) int {
		if in.Embeddings {
			return 1
		}
		return 0
	}},
}

// Plot draws tokens/s against the swept parameter to path (the format from
// its extension: .png, .svg, .pdf, .jpg): one panel per test (pp512,
// tg128, ...), each with its own y axis, one line per model (and per value
// of any other swept parameter), with ± standard deviation bars. The x axis
// is the first parameter with several values among threads, depth, batch,
// micro-batch, GPU layers and flash attention; when none varies, the tests
// are the x axis of a single panel, on a log scale.
func Plot(results []Result, path string) error {
	if len(results) == 0 {
		return fmt.Errorf("bench: plot: no results")
	}
	var x *sweep
	var others []sweep
	for i := range sweeps {
		vals := map[int]bool{}
		for _, r := range results {
			vals[sweeps[i].value(r.Instance)] = true
		}
		if len(vals) > 1 {
			switch {
			case x == nil:
				x = &sweeps[i]
			case sweeps[i].short != "d": // a depth not on the x axis is in the panel's test name
				others = append(others, sweeps[i])
			}
		}
	}
	var plots []*plot.Plot
	var err error
	if x == nil {
		var p *plot.Plot
		p, err = plotByTest(results)
		plots = []*plot.Plot{p}
	} else {
		plots, err = plotBySweep(results, *x, others)
	}
	if err != nil {
		return err
	}
	return savePlots(plots, path)
}

// seriesKey labels a line: the model and the other swept parameters.
func seriesKey(r *Result, others []sweep) string {
	parts := []string{r.Label()}
	for _, s := range others {
		parts = append(parts, fmt.Sprintf("%s=%d", s.short, s.value(r.Instance)))
	}
	return strings.Join(parts, ", ")
}

// panelKey names a panel: the test, without the depth when depth is on the
// x axis.
func panelKey(in Instance, x sweep) string {
	if x.short == "d" {
		in.Depth = 0
	}
	return in.Name()
}

func newPlot(title, xLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = "tokens/s"
	p.X.Label.TextStyle.Font.Size = vg.Points(11)
	p.Y.Label.TextStyle.Font.Size = vg.Points(11)
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Y.Tick.Marker = plainTicks{}
	p.Add(plotter.NewGrid())
	return p
}

func testTitle(name string) string {
	switch {
	case strings.HasPrefix(name, "pp") && strings.Contains(name, "+tg"):
		return name + ": prompt then generation"
	case strings.HasPrefix(name, "pp"):
		return name + ": prompt processing"
	case strings.HasPrefix(name, "tg"):
		return name + ": generation"
	}
	return name
}

// errPoints are points with ± error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

func plotBySweep(results []Result, x sweep, others []sweep) ([]*plot.Plot, error) {
	var panels []string
	series := map[string][]string{}
	points := map[string]map[string]*errPoints{}
	xs := map[int]bool{}
	for i := range results {
		r := &results[i]
		pk, sk := panelKey(r.Instance, x), seriesKey(r, others)
		if points[pk] == nil {
			panels = append(panels, pk)
			points[pk] = map[string]*errPoints{}
		}
		if points[pk][sk] == nil {
			series[pk] = append(series[pk], sk)
			points[pk][sk] = &errPoints{}
		}
		e := points[pk][sk]
		xv := x.value(r.Instance)
		xs[xv] = true
		e.XYs = append(e.XYs, plotter.XY{X: float64(xv), Y: r.AvgTS()})
		std := r.StddevTS()
		e.YErrors = append(e.YErrors, struct{ Low, High float64 }{std, std})
	}
	// Ticks at the values measured.
	var ticks plot.ConstantTicks
	xvals := make([]int, 0, len(xs))
	for v := range xs {
		xvals = append(xvals, v)
	}
	slices.Sort(xvals)
	for _, v := range xvals {
		ticks = append(ticks, plot.Tick{Value: float64(v), Label: fmt.Sprint(v)})
	}
	var plots []*plot.Plot
	for _, pk := range panels {
		p := newPlot(testTitle(pk), x.name)
		p.X.Tick.Marker = ticks
		p.Y.Min = 0
		for i, sk := range series[pk] {
			e := points[pk][sk]
			sortPoints(e)
			if err := addSeries(p, i, sk, e, false); err != nil {
				return nil, err
			}
		}
		pad := 0.05 * float64(xvals[len(xvals)-1]-xvals[0])
		p.X.Min, p.X.Max = float64(xvals[0])-pad, float64(xvals[len(xvals)-1])+pad
		p.Y.Max *= 1.25 // room for the legend
		plots = append(plots, p)
	}
	return plots, nil
}

// sortPoints orders a series by x, keeping the error bars with their points.
func sortPoints(e *errPoints) {
	idx := make([]int, len(e.XYs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case e.XYs[a].X < e.XYs[b].X:
			return -1
		case e.XYs[a].X > e.XYs[b].X:
			return 1
		}
		return 0
	})
	xy := make(plotter.XYs, len(idx))
	ye := make(plotter.YErrors, len(idx))
	for i, j := range idx {
		xy[i], ye[i] = e.XYs[j], e.YErrors[j]
	}
	e.XYs, e.YErrors = xy, ye
}

// addSeries adds a series of points with error bars, joined by a line
// unless points is set (for an x axis of categories).
func addSeries(p *plot.Plot, i int, label string, e *errPoints, points bool) error {
	line, pts, err := plotter.NewLinePoints(e)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	c := plotutil.Color(i)
	line.Color = c
	line.Width = vg.Points(1.5)
	line.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
	pts.Color = c
	pts.Shape = plotutil.Shape(i)
	pts.Radius = vg.Points(3)
	bars, err := plotter.NewYErrorBars(e)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	bars.Color = c
	if points {
		pts.Radius = vg.Points(4)
		p.Add(pts, bars)
		p.Legend.Add(label, pts)
		return nil
	}
	p.Add(line, pts, bars)
	p.Legend.Add(label, line, pts)
	return nil
}

// plotByTest draws one point per test and model when no parameter varies.
func plotByTest(results []Result) (*plot.Plot, error) {
	var tests, models []string
	for i := range results {
		if n := results[i].Name(); !slices.Contains(tests, n) {
			tests = append(tests, n)
		}
		if l := results[i].Label(); !slices.Contains(models, l) {
			models = append(models, l)
		}
	}
	p := newPlot("tokens/s per test", "test")
	p.NominalX(tests...)
	lo, hi := math.Inf(1), 0.0
	for mi, model := range models {
		e := &errPoints{}
		for i := range results {
			r := &results[i]
			if r.Label() != model {
				continue
			}
			y, std := r.AvgTS(), r.StddevTS()
			e.XYs = append(e.XYs, plotter.XY{X: float64(slices.Index(tests, r.Name())), Y: y})
			low := min(std, y*0.5) // log scale: keep bars above zero
			e.YErrors = append(e.YErrors, struct{ Low, High float64 }{low, std})
			lo, hi = min(lo, y-low), max(hi, y+std)
		}
		if err := addSeries(p, mi, model, e, true); err != nil {
			return nil, err
		}
	}
	switch {
	case lo > 0 && hi/lo > 20: // rates of different magnitudes: log scale
		p.Y.Label.Text = "tokens/s (log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		p.Y.Min, p.Y.Max = lo/1.5, hi*3
	case hi > 0:
		p.Y.Min, p.Y.Max = 0, hi*1.3
	}
	p.X.Min, p.X.Max = -0.5, float64(len(tests))-0.5
	return p, nil
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// (2500, not 2500.00).
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'g', 6, 64)
		}
	}
	return ticks
}

// logTicks labels 1, 2 and 5 times each power of ten, so that a log axis
// spanning less than a few decades still reads.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return ticks
}

// savePlots stacks the panels (two columns beyond three) into one image.
func savePlots(plots []*plot.Plot, path string) error {
	rows, cols := len(plots), 1
	if rows > 3 {
		cols = 2
		rows = (len(plots) + 1) / 2
	}
	w := vg.Length(cols) * 7 * vg.Inch
	h := vg.Length(rows) * 3.6 * vg.Inch
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return fmt.Errorf("bench: plot %s: %w", path, err)
	}
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
		for col := range cols {
			if i := r*cols + col; i < len(plots) {
				grid[r][col] = plots[i]
			}
		}
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols,
		PadX: vg.Points(20), PadY: vg.Points(20),
		PadTop: vg.Points(10), PadBottom: vg.Points(10), PadLeft: vg.Points(10), PadRight: vg.Points(15)}
	canvases := plot.Align(grid, tiles, draw.New(c))
	for r := range grid {
		for col := range grid[r] {
			if grid[r][col] != nil {
				grid[r][col].Draw(canvases[r][col])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}
