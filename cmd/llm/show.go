package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/llm-go/llm/internal/pyjson"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/loader/convert"
	"github.com/llm-go/llm/loader/gguf"
	"github.com/llm-go/llm/modelfile"
	"github.com/llm-go/llm/tokenizer"
)

func init() {
	register(&command{
		name:    "show",
		usage:   "[flags] MODEL",
		summary: "describe a model: its card, weights, files and cache path",
		run:     runShow,
	})
}

// modelReport is what "llm show" prints.
type modelReport struct {
	Repo        string          `json:"repo"`
	Revision    string          `json:"revision"`
	Commit      string          `json:"commit"`
	Cached      bool            `json:"cached"`
	Local       bool            `json:"local,omitempty"` // a file or folder named by its path, not a Hub repo
	Path        string          `json:"path,omitempty"`  // snapshot folder, or the local model's folder
	License     string          `json:"license,omitempty"`
	PipelineTag string          `json:"pipeline_tag,omitempty"`
	BaseModels  []string        `json:"base_model,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	Languages   []string        `json:"languages,omitempty"`
	Description string          `json:"description,omitempty"`
	Weights     []weightsReport `json:"weights,omitempty"`
	Files       []fileReport    `json:"files"`
	Devices     []engine.Device `json:"devices"`
	// BackendProblems are why backend libraries gave no device, one each.
	BackendProblems []string `json:"backend_problems,omitempty"`
}

type weightsReport struct {
	File          string   `json:"file"` // the first file (of a split model, or of the shards)
	Format        string   `json:"format"`
	Architecture  string   `json:"architecture,omitempty"`
	Parameters    uint64   `json:"parameters,omitempty"`
	Quant         string   `json:"quant,omitempty"`
	ContextLength uint64   `json:"context_length,omitempty"`
	ChatTemplate  *bool    `json:"chat_template,omitempty"`
	TemplateKind  string   `json:"template_kind,omitempty"` // jinja, builtin or plain: how chats are rendered
	DTypes        []string `json:"dtypes,omitempty"`
	Capabilities  []string `json:"capabilities,omitempty"` // llm.Capabilities, of a GGUF
	Embedding     string   `json:"embedding,omitempty"`    // an embedding model's size and pooling
	Adapter       string   `json:"adapter,omitempty"`      // what a LoRA adapter GGUF is
	Tasks         []string `json:"tasks,omitempty"`        // the task adapters beside a model (convert.TaskAdapters)
	Offload       string   `json:"offload,omitempty"`      // what --ngl auto would offload
	Error         string   `json:"error,omitempty"`
}

type fileReport struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

func runShow(ctx context.Context, sio *stdio, args []string) error {
	var (
		verbose, asJSON bool
		hf              hubFlags
	)
	fs := newFlags("show", &verbose)
	hf.add(fs, true)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(fs, commands["show"], sio, args); err != nil {
		return err
	}
	setupLogging(sio.err, verbose)
	if fs.NArg() != 1 {
		return usagef("one MODEL expected, got %d arguments", fs.NArg())
	}
	if done, err := showPreset(sio, fs.Arg(0), asJSON); done || err != nil {
		return err
	}
	rep, err := showModel(ctx, fs.Arg(0), hf)
	if err != nil {
		return err
	}
	rep.Devices = engine.Devices()
	rep.BackendProblems = engine.BackendProblems()
	if rep.Cached {
		for i, wr := range rep.Weights {
			if wr.Format != "gguf" || wr.Error != "" || wr.Adapter != "" {
				continue
			}
			if _, why, err := engine.AutoGPULayers(filepath.Join(rep.Path, wr.File), engine.ContextOptions{}); err == nil {
				rep.Weights[i].Offload = why
			}
		}
	}
	if asJSON {
		enc := json.NewEncoder(sio.out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(sio.out, rep)
	return nil
}

// showModel describes name: a GGUF file or a model folder on disk, else a
// Hub model, from the cache or (online) from the Hub.
func showModel(ctx context.Context, name string, hf hubFlags) (*modelReport, error) {
	if _, err := os.Stat(name); err == nil {
		return showLocal(name)
	}
	ref, err := parseModel(name, hf.revision)
	if err != nil {
		return nil, err
	}
	client, err := newHubClient(hf.cacheDir)
	if err != nil {
		return nil, err
	}
	rep, err := showCached(client.Cache, ref)
	if err != nil && errors.Is(err, hub.ErrOffline) && !client.Offline {
		rep, err = showRemote(ctx, client, ref)
	}
	return rep, err
}

// showLocal describes a model on disk: a GGUF file (with the other parts
// of a split one) or a folder in the Hugging Face layout.
func showLocal(name string) (*modelReport, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	dir, only := abs, ""
	if !st.IsDir() {
		dir, only = filepath.Split(abs)
		dir = filepath.Clean(dir)
	}
	onlyPrefix, _, _, split := hub.SplitPart(only)
	rep := &modelReport{Repo: abs, Cached: true, Local: true, Path: dir}
	var paths []string
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if p != dir && (only != "" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir // a file's folder: its own level only
			}
			return nil
		}
		if only != "" {
			prefix, _, _, ok := hub.SplitPart(rel)
			if rel != only && !(split && ok && prefix == onlyPrefix) {
				return nil
			}
		}
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		rel = filepath.ToSlash(rel)
		rep.Files = append(rep.Files, fileReport{rel, info.Size()})
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if only == "" {
		if b, err := os.ReadFile(filepath.Join(dir, "README.md")); err == nil {
			card, _ := hub.ParseCard(b)
			rep.setCard(card)
		}
	}
	local := func(p string) string {
		lp := filepath.Join(dir, filepath.FromSlash(p))
		if _, err := os.Stat(lp); err != nil {
			return ""
		}
		return lp
	}
	groups, err := weightFiles(paths, hub.Ref{})
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("%s: no GGUF or safetensors weights there", name)
	}
	for _, group := range groups {
		rep.Weights = append(rep.Weights, describeWeights(group, local))
	}
	return rep, nil
}

// showCached describes a model from the cache alone.
func showCached(c *hub.Cache, ref hub.Ref) (*modelReport, error) {
	all := ref
	all.Quant, all.File = "", ""
	snap, err := c.Resolve(all, hub.Selection{Include: []string{"*"}})
	if err != nil {
		return nil, err
	}
	rep := &modelReport{Repo: snap.Repo, Revision: snap.Revision, Commit: snap.Commit, Cached: true, Path: snap.Dir}
	paths := make([]string, 0, len(snap.Files))
	for _, f := range snap.Files {
		rep.Files = append(rep.Files, fileReport{f.Path, f.Size})
		paths = append(paths, f.Path)
	}
	if f, ok := snap.File("README.md"); ok {
		if b, err := os.ReadFile(f.LocalPath); err == nil {
			card, _ := hub.ParseCard(b)
			rep.setCard(card)
		}
	}
	local := func(p string) string {
		f, _ := snap.File(p)
		return f.LocalPath
	}
	weights, err := weightFiles(paths, ref)
	if err != nil {
		return nil, err
	}
	for _, group := range weights {
		rep.Weights = append(rep.Weights, describeWeights(group, local))
	}
	return rep, nil
}

// weightFiles groups the weight files to describe: the GGUF model(s) ref
// names (all of them when the repo has several and ref names none), or the
// safetensors shards.
func weightFiles(paths []string, ref hub.Ref) ([][]string, error) {
	// org/repo:TYPE of a safetensors repo names a conversion: the
	// checkpoint's shards are described.
	sel := hub.Selection{Quant: ref.Quant, File: ref.File, Convertible: convert.ConvertibleType}
	files, err := hub.SelectFiles(paths, sel)
	switch {
	case errors.Is(err, hub.ErrAmbiguous):
		files = paths // describe every GGUF model
	case err != nil && (ref.Quant != "" || ref.File != ""):
		return nil, fmt.Errorf("%s in the cache: %w", ref.String(), err)
	case err != nil:
		return nil, nil
	}
	var groups [][]string
	byPrefix := map[string]int{}
	var shards []string
	for _, p := range files {
		low := strings.ToLower(p)
		switch {
		case strings.HasSuffix(low, ".gguf") && !strings.HasPrefix(path.Base(low), "mmproj"):
			key := p
			if prefix, _, _, ok := hub.SplitPart(p); ok {
				key = prefix
			}
			if i, ok := byPrefix[key]; ok {
				groups[i] = append(groups[i], p)
			} else {
				byPrefix[key] = len(groups)
				groups = append(groups, []string{p})
			}
		case strings.HasSuffix(low, ".safetensors"):
			shards = append(shards, p)
		}
	}
	if len(shards) > 0 {
		groups = append(groups, shards)
	}
	for _, g := range groups {
		sort.Strings(g)
	}
	return groups, nil
}

// describeWeights reads the headers of one model's files (the parts of a
// GGUF, or safetensors shards with the config.json beside them).
func describeWeights(files []string, local func(string) string) weightsReport {
	w := weightsReport{File: files[0]}
	if strings.HasSuffix(strings.ToLower(files[0]), ".gguf") {
		w.Format = "gguf"
		for i, p := range files {
			f, err := gguf.Open(local(p))
			if err != nil {
				w.Error = err.Error()
				return w
			}
			w.Parameters += f.ParamCount()
			if i > 0 {
				continue
			}
			w.Architecture = f.Architecture()
			if ft, ok := f.Uint("general.file_type"); ok {
				w.Quant = gguf.FileTypeName(ft)
			} else if w.Quant = hub.QuantOf(p); w.Quant == "" {
				w.Quant = dominantType(f)
			}
			if n, ok := f.Uint(w.Architecture + ".context_length"); ok {
				w.ContextLength = n
			}
			if typ, _ := f.String(gguf.KeyGeneralType); typ == "adapter" {
				kind, _ := f.String(gguf.KeyAdapterType)
				alpha, _ := f.Float(gguf.KeyLoRAAlpha)
				w.Adapter = fmt.Sprintf("%s adapter for %s models: alpha %g, %d tensors (apply with --lora)", kind, w.Architecture, alpha, len(f.Tensors))
				if task, _ := f.String(gguf.KeyLoRATaskName); task != "" {
					w.Adapter += fmt.Sprintf(", for task %s (llm embed --task %s)", task, task)
				}
				continue
			}
			src, has := f.String("tokenizer.chat_template")
			w.ChatTemplate = &has
			w.TemplateKind = templateKind(src, has)
			w.Capabilities = llm.Capabilities(f)
			if slices.Contains(w.Capabilities, llm.CapEmbedding) {
				w.Embedding = embeddingSummary(f)
			}
			if tasks, err := convert.TaskAdapters(local(p)); err == nil {
				for _, t := range tasks {
					w.Tasks = append(w.Tasks, t.Task)
				}
			}
		}
		return w
	}
	w.Format = "safetensors"
	dtypes := map[string]bool{}
	for _, p := range files {
		h, err := hub.ReadSafetensorsHeader(local(p))
		if err != nil {
			w.Error = err.Error()
			return w
		}
		w.Parameters += h.Params
		for d := range h.DTypes {
			dtypes[d] = true
		}
	}
	for d := range dtypes {
		w.DTypes = append(w.DTypes, d)
	}
	sort.Strings(w.DTypes)
	dir := path.Dir(files[0])
	cfgPath := "config.json"
	if dir != "." {
		cfgPath = dir + "/config.json"
	}
	if lp := local(cfgPath); lp != "" {
		if b, err := os.ReadFile(lp); err == nil {
			var cfg struct {
				Architectures []string `json:"architectures"`
				MaxPos        uint64   `json:"max_position_embeddings"`
				NPositions    uint64   `json:"n_positions"`
			}
			if json.Unmarshal(pyjson.Clean(b), &cfg) == nil {
				w.Architecture = strings.Join(cfg.Architectures, ", ")
				w.ContextLength = max(cfg.MaxPos, cfg.NPositions)
			}
		}
	}
	tmpl := false
	for _, name := range []string{"tokenizer_config.json", "chat_template.jinja", "chat_template.json"} {
		p := name
		if dir != "." {
			p = dir + "/" + name
		}
		lp := local(p)
		if lp == "" {
			continue
		}
		if name != "tokenizer_config.json" {
			tmpl = true
			continue
		}
		if b, err := os.ReadFile(lp); err == nil {
			var tc map[string]json.RawMessage
			if json.Unmarshal(b, &tc) == nil {
				if v, ok := tc["chat_template"]; ok && string(v) != "null" && string(v) != `""` {
					tmpl = true
				}
			}
		}
	}
	w.ChatTemplate = &tmpl
	return w
}

// showRemote describes a model that is not cached, from the Hub's repo info
// and model card.
func showRemote(ctx context.Context, c *hub.Client, ref hub.Ref) (*modelReport, error) {
	info, err := c.RepoInfo(ctx, ref.Repo, ref.Revision)
	if err != nil {
		return nil, err
	}
	rev := ref.Revision
	if rev == "" {
		rev = hub.DefaultRevision
	}
	rep := &modelReport{Repo: ref.Repo, Revision: rev, Commit: info.SHA}
	card := hub.CardFromData(info.CardData)
	for _, s := range info.Siblings {
		rep.Files = append(rep.Files, fileReport{s.Path, s.Size})
		if s.Path == "README.md" && s.Size < 1<<20 {
			if b, err := c.ReadFile(ctx, ref.Repo, info.SHA, "README.md", 1<<20); err == nil {
				if full, err := hub.ParseCard(b); err == nil || full.Description != "" {
					if info.CardData == nil {
						card = full
					}
					card.Description = full.Description
				}
			}
		}
	}
	rep.setCard(card)
	return rep, nil
}

func (r *modelReport) setCard(c hub.Card) {
	r.License, r.PipelineTag, r.BaseModels, r.Tags, r.Languages, r.Description =
		c.License, c.PipelineTag, c.BaseModels, c.Tags, c.Languages, c.Description
}

func printReport(w io.Writer, r *modelReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Model:\t%s\n", r.Repo)
	switch {
	case r.Local: // a path: no revision, no cache
	case r.Cached:
		fmt.Fprintf(tw, "Revision:\t%s (commit %s)\n", r.Revision, r.Commit)
		fmt.Fprintf(tw, "Cache:\t%s\n", r.Path)
	default:
		fmt.Fprintf(tw, "Revision:\t%s (commit %s)\n", r.Revision, r.Commit)
		fmt.Fprintf(tw, "Cache:\tnot downloaded (llm pull %s)\n", r.Repo)
	}
	line := func(k string, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	line("License", r.License)
	line("Pipeline", r.PipelineTag)
	line("Base model", strings.Join(r.BaseModels, ", "))
	line("Tags", strings.Join(r.Tags, ", "))
	line("Languages", strings.Join(r.Languages, ", "))
	line("Description", r.Description)
	tw.Flush()
	for _, wr := range r.Weights {
		fmt.Fprintf(w, "\nWeights (%s):\n", wr.File)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if wr.Error != "" {
			fmt.Fprintf(tw, "  Error:\t%s\n", wr.Error)
		}
		fmt.Fprintf(tw, "  Format:\t%s\n", wr.Format)
		if wr.Architecture != "" {
			fmt.Fprintf(tw, "  Architecture:\t%s\n", wr.Architecture)
		}
		if wr.Parameters > 0 {
			fmt.Fprintf(tw, "  Parameters:\t%s (%d)\n", humanCount(wr.Parameters), wr.Parameters)
		}
		if wr.Quant != "" {
			fmt.Fprintf(tw, "  Quantization:\t%s\n", wr.Quant)
		}
		if len(wr.DTypes) > 0 {
			fmt.Fprintf(tw, "  Data types:\t%s\n", strings.Join(wr.DTypes, ", "))
		}
		if wr.ContextLength > 0 {
			fmt.Fprintf(tw, "  Context length:\t%d\n", wr.ContextLength)
		}
		if wr.ChatTemplate != nil {
			yes := "no (llm run and Chat send conversations as a plain completion prompt)"
			switch {
			case wr.TemplateKind == "builtin":
				yes = "yes, but not valid Jinja here: llama.cpp's built-in implementation of its format is used"
			case *wr.ChatTemplate:
				yes = "yes (rendered as transformers' apply_chat_template does; see llm template)"
			}
			fmt.Fprintf(tw, "  Chat template:\t%s\n", yes)
		}
		if wr.Adapter != "" {
			fmt.Fprintf(tw, "  Adapter:\t%s\n", wr.Adapter)
		}
		if len(wr.Capabilities) > 0 {
			fmt.Fprintf(tw, "  Capabilities:\t%s\n", strings.Join(wr.Capabilities, ", "))
		}
		if wr.Embedding != "" {
			fmt.Fprintf(tw, "  Embeddings:\t%s\n", wr.Embedding)
		}
		if len(wr.Tasks) > 0 {
			fmt.Fprintf(tw, "  Tasks:\t%s (llm embed --task)\n", strings.Join(wr.Tasks, ", "))
		}
		if wr.Offload != "" {
			fmt.Fprintf(tw, "  GPU offload:\t%s\n", wr.Offload)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nFiles:")
	width := len("total")
	var total int64
	for _, f := range r.Files {
		width = max(width, len(f.Path))
		total += f.Size
	}
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %-*s  %10s\n", width, f.Path, hub.FormatBytes(f.Size))
	}
	fmt.Fprintf(w, "  %-*s  %10s\n", width, "total", hub.FormatBytes(total))
	if len(r.Devices) > 0 {
		fmt.Fprintln(w, "\nDevices:")
		for _, d := range r.Devices {
			fmt.Fprintf(w, "  %s (%s): %s", d.Name, d.Type, d.Description)
			if d.MemoryTotal > 0 {
				fmt.Fprintf(w, ", %s free of %s", hub.FormatBytes(int64(d.MemoryFree)), hub.FormatBytes(int64(d.MemoryTotal)))
			}
			fmt.Fprintln(w)
		}
		for _, p := range r.BackendProblems {
			fmt.Fprintf(w, "  backend problem: %s\n", p)
		}
	}
}

// dominantType names the tensor type holding most of a GGUF file's
// parameters, for files without general.file_type.
func dominantType(f *gguf.File) string {
	best, only := f.DominantType()
	switch {
	case best == "":
		return ""
	case only:
		return "all " + best
	}
	return "mostly " + best
}

// humanCount formats a parameter count: 292.8K, 7.24B.
func humanCount(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// showPreset describes a preset, if name is one: its Modelfile, or with
// --json the settings it resolves to.
func showPreset(sio *stdio, name string, asJSON bool) (bool, error) {
	if modelfile.ValidName(name) != nil {
		return false, nil
	}
	if _, err := os.Stat(name); err == nil {
		return false, nil
	}
	store, err := modelfile.DefaultStore()
	if err != nil {
		return false, err
	}
	mf, err := store.Get(name)
	if errors.Is(err, modelfile.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	st, err := store.Resolve(name)
	if err != nil {
		return true, err
	}
	if asJSON {
		out := map[string]any{
			"preset": name, "chain": st.Chain, "model": st.Model, "parameters": st.Parameters,
			"stop": st.Stop, "system": st.System, "messages": st.Messages, "modelfile": mf.String(),
		}
		if st.Template != nil {
			out["template"] = st.Template.String()
		}
		enc := json.NewEncoder(sio.out)
		enc.SetIndent("", "  ")
		return true, enc.Encode(out)
	}
	fmt.Fprintf(sio.out, "# preset %s (%s), resolves to %s\n", name, strings.Join(st.Chain, " <- "), st.Model)
	fmt.Fprint(sio.out, mf.String())
	return true, nil
}

// templateKind says how a chat template is rendered: "jinja" when it
// parses, "builtin" when llama.cpp recognises its format instead, "plain"
// when there is none or neither works (a plain completion prompt).
func templateKind(src string, has bool) string {
	if !has {
		return "plain"
	}
	if _, err := tokenizer.Parse(src); err == nil {
		return "jinja"
	}
	if _, err := engine.ApplyBuiltinTemplate(src, nil, true); err == nil {
		return "builtin"
	}
	return "plain"
}

// embeddingSummary describes an embedding model's output: its size (after
// EmbeddingGemma's projections) and the pooling Embed uses.
func embeddingSummary(f *gguf.File) string {
	arch := f.Architecture()
	dims, _ := f.Uint(arch + ".embedding_length")
	if d, ok := f.Uint(arch + ".dense_3_feat_out"); ok && d > 0 {
		dims = d
	}
	pooling := "mean"
	if p, ok := f.Uint(arch + ".pooling_type"); ok {
		pooling = map[uint64]string{0: "none", 1: "mean", 2: "CLS", 3: "last token"}[p]
	}
	s := fmt.Sprintf("%d dimensions, %s pooling", dims, pooling)
	if _, ok := f.Uint(arch + ".dense_2_feat_out"); ok {
		s += ", then the model's projections"
	}
	return s
}
