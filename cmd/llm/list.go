package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/modelfile"
)

func init() {
	register(&command{
		name:    "list",
		usage:   "[flags]",
		summary: "list the models in the Hugging Face cache (shared with Python) and the presets",
		run:     runList,
	})
}

// listEntry is one line of "llm list": a cached snapshot.
type listEntry struct {
	Repo         string    `json:"repo"`
	Revision     string    `json:"revision"` // refs pointing at the commit, or the short commit
	Commit       string    `json:"commit"`
	Format       string    `json:"format"`
	Quant        string    `json:"quant,omitempty"`
	Size         int64     `json:"size"`
	Files        int       `json:"files"`
	LastModified time.Time `json:"last_modified"`
	Path         string    `json:"path"`
	From         string    `json:"from,omitempty"` // a preset's FROM (Format "preset")
}

func runList(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose, asJSON bool
		hf              hubFlags
	)
	fs := newFlags("list", &verbose)
	hf.add(fs, false)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(fs, commands["list"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() > 0 {
		return usagef("no arguments expected")
	}
	client, err := newHubClient(hf.cacheDir)
	if err != nil {
		return err
	}
	repos, err := client.Cache.List()
	if err != nil {
		return err
	}
	var entries []listEntry
	for _, r := range repos {
		for _, s := range r.Snapshots {
			if len(s.Files) == 0 {
				continue
			}
			rev := strings.Join(s.Refs, ",")
			if rev == "" {
				rev = short(s.Commit)
			}
			entries = append(entries, listEntry{
				Repo: r.Repo, Revision: rev, Commit: s.Commit, Format: s.Format(),
				Quant: strings.Join(s.Quants(), ","), Size: s.Size(), Files: len(s.Files),
				LastModified: s.LastModified().UTC(), Path: s.Dir,
			})
		}
	}
	var presets []listEntry
	if store, err := modelfile.DefaultStore(); err == nil {
		list, err := store.List()
		if err != nil {
			return err
		}
		for _, e := range list {
			presets = append(presets, listEntry{Repo: e.Name, Format: "preset", From: e.From, LastModified: e.Modified.UTC(), Path: store.Dir})
		}
	}
	if asJSON {
		entries = append(entries, presets...)
		enc := json.NewEncoder(sio.out)
		enc.SetIndent("", "  ")
		if entries == nil {
			entries = []listEntry{}
		}
		return enc.Encode(entries)
	}
	if len(presets) > 0 {
		defer func() {
			if len(entries) > 0 {
				fmt.Fprintln(sio.out)
			}
			tw := tabwriter.NewWriter(sio.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PRESET\tFROM\tMODIFIED")
			for _, e := range presets {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Repo, e.From, ago(e.LastModified))
			}
			tw.Flush()
		}()
	}
	if len(entries) == 0 {
		if len(presets) == 0 {
			fmt.Fprintf(sio.err, "no models in %s (llm pull MODEL adds one)\n", client.Cache.Dir)
		}
		return nil
	}
	tw := tabwriter.NewWriter(sio.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tREVISION\tFORMAT\tQUANT\tSIZE\tMODIFIED")
	for _, e := range entries {
		q := e.Quant
		if q == "" {
			q = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Repo, e.Revision, e.Format, q, hub.FormatBytes(e.Size), ago(e.LastModified))
	}
	return tw.Flush()
}

// ago formats a time as "3 days ago", or a date when older than a month.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case t.IsZero():
		return "-"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute") + " ago"
	case d < 24*time.Hour:
		return plural(int(d.Hours()), "hour") + " ago"
	case d < 30*24*time.Hour:
		return plural(int(d.Hours()/24), "day") + " ago"
	}
	return t.Local().Format("2006-01-02")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
