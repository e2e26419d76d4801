package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/loader/convert"
)

func init() {
	register(&command{
		name:    "pull",
		usage:   "[flags] MODEL",
		summary: "download a model from the Hugging Face Hub into the shared HF cache",
		run:     runPull,
	})
}

// hubFlags are the flags of the commands that use the Hub and its cache.
type hubFlags struct {
	cacheDir string
	revision string
}

func (h *hubFlags) add(fs interface {
	StringVar(p *string, name, value, usage string)
}, revision bool) {
	fs.StringVar(&h.cacheDir, "cache-dir", "", "Hugging Face cache folder (default $HF_HUB_CACHE, else $HF_HOME/hub)")
	if revision {
		fs.StringVar(&h.revision, "revision", "", "branch, tag or commit (default main)")
	}
}

// newHubClient returns a client configured from the environment (HF_ENDPOINT,
// HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE, HF_TOKEN), with cacheDir overriding
// the cache folder when set.
func newHubClient(cacheDir string) (*hub.Client, error) {
	env := hub.LoadEnv(nil)
	if cacheDir != "" {
		env.HubCache = cacheDir
	}
	return hub.NewClient(env)
}

// parseModel parses a MODEL argument and applies --revision.
func parseModel(arg, revision string) (hub.Ref, error) {
	ref, err := hub.ParseRef(arg)
	if err != nil {
		return ref, usagef("%v", err)
	}
	if revision != "" {
		if err := hub.ValidateRevision(revision); err != nil {
			return ref, usagef("--revision: %v", err)
		}
		ref.Revision = revision
	}
	return ref, nil
}

func runPull(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose, quiet   bool
		hf               hubFlags
		include, exclude []string
		jobs             int
	)
	fs := newFlags("pull", &verbose)
	hf.add(fs, true)
	fs.StringArrayVar(&include, "include", nil, "glob of files to fetch instead of the default choice (repeatable)")
	fs.StringArrayVar(&exclude, "exclude", nil, "glob of files to leave out (repeatable)")
	fs.IntVarP(&jobs, "concurrency", "j", hub.DefaultConcurrency, "files (and connections) at once")
	fs.BoolVarP(&quiet, "quiet", "q", false, "print nothing but errors and the model path")
	if err := parseFlags(fs, commands["pull"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() != 1 {
		return usagef("one MODEL expected (org/repo, org/repo:QUANT or org/repo/file.gguf), got %d arguments", fs.NArg())
	}
	if jobs < 1 {
		return usagef("--concurrency must be at least 1, got %d", jobs)
	}
	ref, err := parseModel(fs.Arg(0), hf.revision)
	if err != nil {
		return err
	}
	client, err := newHubClient(hf.cacheDir)
	if err != nil {
		return err
	}
	client.Concurrency = jobs
	prog := newProgress(ctx, sio.err, quiet)
	client.Progress = prog
	start := time.Now()
	opts := hub.PullOptions{Include: include, Exclude: exclude, Convertible: convert.ConvertibleType}
	if ref.Quant != "" {
		// A conversion follows: check it can be done before the weights.
		opts.Check = convert.CheckSnapshot
	}
	snap, err := client.Pull(ctx, ref, opts)
	prog.Wait()
	if err != nil {
		return err
	}
	if !quiet {
		took := time.Since(start)
		fmt.Fprintf(sio.err, "%s@%s (commit %s): %s, %s", snap.Repo, snap.Revision, short(snap.Commit), plural(len(snap.Files), "file"), hub.FormatBytes(snap.Size()))
		if snap.Downloaded > 0 {
			fmt.Fprintf(sio.err, ", %s downloaded in %s (%s/s)", hub.FormatBytes(snap.Downloaded), took.Round(time.Millisecond),
				hub.FormatBytes(int64(float64(snap.Downloaded)/max(took.Seconds(), 1e-3))))
		} else {
			fmt.Fprint(sio.err, ", all cached")
		}
		fmt.Fprintln(sio.err)
	}
	if snap.Format() == "safetensors" && ref.Quant != "" {
		// org/repo:TYPE of a safetensors repo: converted to that type now,
		// as running it would.
		cs := sio
		if quiet {
			q := *sio
			q.err = io.Discard
			cs = &q
		}
		path, err := convertOnce(ctx, cs, ref.String(), snap.Dir, snap.Repo+"@"+snap.Commit, convert.HubType(ref.Quant))
		if err != nil {
			return err
		}
		fmt.Fprintln(sio.out, path)
		return nil
	}
	fmt.Fprintln(sio.out, snap.ModelPath())
	return nil
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// progress is a hub.Progress that can be waited for.
type progress interface {
	hub.Progress
	Wait()
}

// newProgress returns progress bars on a terminal, periodic lines otherwise,
// nothing with quiet.
func newProgress(ctx context.Context, w io.Writer, quiet bool) progress {
	switch {
	case quiet:
		return quietProgress{}
	case isTerminal(w):
		return newBarProgress(ctx, w)
	}
	return newLineProgress(w, 5*time.Second)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

type quietProgress struct{}

func (quietProgress) Start(string, int64, int64) hub.FileProgress { return quietFile{} }
func (quietProgress) Wait()                                       {}

type quietFile struct{}

func (quietFile) Advance(int64) {}
func (quietFile) Done(error)    {}

// barProgress draws one mpb bar per file: name, bytes, speed and ETA.
type barProgress struct {
	p *mpb.Progress
}

func newBarProgress(ctx context.Context, w io.Writer) *barProgress {
	return &barProgress{p: mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(150*time.Millisecond))}
}

func (b *barProgress) Start(file string, size, done int64) hub.FileProgress {
	name := file
	if r := []rune(name); len(r) > 40 {
		name = "…" + string(r[len(r)-39:])
	}
	bar := b.p.AddBar(max(size, 0),
		mpb.PrependDecorators(
			decor.Name(name, decor.WCSyncSpaceR),
			decor.CountersKiloByte("% .1f / % .1f", decor.WCSyncWidth),
		),
		mpb.AppendDecorators(
			decor.EwmaSpeed(decor.SizeB1000(0), "% .1f", 30, decor.WCSyncSpace),
			decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), " done"),
		),
	)
	if done > 0 {
		bar.SetCurrent(done)
	}
	return &barFile{bar: bar, last: time.Now()}
}

func (b *barProgress) Wait() { b.p.Wait() }

type barFile struct {
	bar  *mpb.Bar
	last time.Time
}

func (f *barFile) Advance(n int64) {
	now := time.Now()
	f.bar.EwmaIncrInt64(n, now.Sub(f.last))
	f.last = now
}

func (f *barFile) Done(err error) {
	if err != nil {
		f.bar.Abort(false)
		return
	}
	f.bar.SetTotal(-1, true)
}

// lineProgress prints one line per file in progress every interval, and a
// line when each file ends: for logs and pipes.
type lineProgress struct {
	w        io.Writer
	mu       sync.Mutex
	files    map[*lineFile]bool
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

type lineFile struct {
	name        string
	size, done  int64
	start       time.Time
	startedWith int64
	reported    bool
}

func newLineProgress(w io.Writer, every time.Duration) *lineProgress {
	p := &lineProgress{w: w, files: map[*lineFile]bool{}, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.report()
			}
		}
	}()
	return p
}

func (p *lineProgress) Start(file string, size, done int64) hub.FileProgress {
	f := &lineFile{name: file, size: size, done: done, start: time.Now(), startedWith: done}
	p.mu.Lock()
	p.files[f] = true
	p.mu.Unlock()
	if done > 0 {
		fmt.Fprintf(p.w, "%s: resuming at %s of %s\n", file, hub.FormatBytes(done), hub.FormatBytes(size))
	}
	return &lineHandle{p: p, f: f}
}

func (p *lineProgress) report() {
	p.mu.Lock()
	var fs []*lineFile
	for f := range p.files {
		fs = append(fs, f)
	}
	p.mu.Unlock()
	sort.Slice(fs, func(i, j int) bool { return fs[i].name < fs[j].name })
	for _, f := range fs {
		p.mu.Lock()
		done := f.done
		f.reported = true
		p.mu.Unlock()
		fmt.Fprintln(p.w, f.line(done))
	}
}

func (f *lineFile) line(done int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", f.name, hub.FormatBytes(done))
	if f.size > 0 {
		fmt.Fprintf(&b, " / %s (%d%%)", hub.FormatBytes(f.size), done*100/f.size)
	}
	el := time.Since(f.start).Seconds()
	if rate := float64(done-f.startedWith) / max(el, 1e-3); rate > 0 {
		fmt.Fprintf(&b, ", %s/s", hub.FormatBytes(int64(rate)))
		if f.size > 0 {
			fmt.Fprintf(&b, ", %s left", time.Duration(float64(f.size-done)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	return b.String()
}

func (p *lineProgress) Wait() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
}

type lineHandle struct {
	p *lineProgress
	f *lineFile
}

func (h *lineHandle) Advance(n int64) {
	h.p.mu.Lock()
	h.f.done += n
	h.p.mu.Unlock()
}

func (h *lineHandle) Done(err error) {
	h.p.mu.Lock()
	delete(h.p.files, h.f)
	done, reported := h.f.done, h.f.reported
	h.p.mu.Unlock()
	if !reported && err == nil && done < 10<<20 {
		return // small and quick: the summary line covers it
	}
	if err != nil {
		fmt.Fprintf(h.p.w, "%s: failed at %s\n", h.f.name, hub.FormatBytes(done))
		return
	}
	el := time.Since(h.f.start)
	fmt.Fprintf(h.p.w, "%s: %s done in %s\n", h.f.name, hub.FormatBytes(done), el.Round(time.Millisecond))
}
