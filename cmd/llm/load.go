package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/convert"
)

// modelFlags are the flags that say how a model is loaded and run: GPU
// offload, flash attention, KV cache types and LoRA adapters.
type modelFlags struct {
	ngl         string
	mainGPU     int
	tensorSplit string
	splitMode   string
	noRepack    bool
	flashAttn   string
	cacheK      string
	cacheV      string
	threads     int
	ctxLen      int
	lora        []string // --lora FILE[,FILE...]
	loraScaled  []string // --lora-scaled FILE:SCALE[,...]
	presetLoRA  []string // a preset's ADAPTERs, applied first (generate)
	draft       string   // --draft: a draft model (run)
	draftMax    int      // --draft-max
	nglDraft    string   // --ngl-draft
	task        string   // --task: a task adapter (embed)
}

// registerDraft registers --draft and --draft-max, for commands that load
// a pipeline (run).
func (f *modelFlags) registerDraft(fs *pflag.FlagSet) {
	fs.StringVar(&f.draft, "draft", "", "decode speculatively with a draft model: a much smaller model of the same vocabulary (a GGUF, an HF directory or a Hub name)")
	fs.IntVar(&f.draftMax, "draft-max", llm.DefaultDraftTokens, "most tokens the draft model proposes per step")
	fs.StringVar(&f.nglDraft, "ngl-draft", "", "the draft model's layers on GPUs: a number, \"all\" or \"auto\" (default: what fits beside the model; none with --ngl 0)")
}

func (f *modelFlags) register(fs *pflag.FlagSet) {
	fs.IntVarP(&f.threads, "threads", "t", 0, "CPU threads (0: all)")
	fs.IntVarP(&f.ctxLen, "ctx-size", "c", 0, "context length (0: 4096 or the model's, if smaller)")
	fs.StringArrayVar(&f.lora, "lora", nil, "apply a LoRA adapter GGUF (comma-separated or repeated for several)")
	fs.StringArrayVar(&f.loraScaled, "lora-scaled", nil, "apply a LoRA adapter with a scale: FILE:SCALE (comma-separated or repeated)")
	f.registerGPU(fs)
}

// loraFlag is an adapter of --lora or --lora-scaled.
type loraFlag struct {
	path  string
	scale float32
}

// loras parses --lora and --lora-scaled.
func (f *modelFlags) loras() ([]loraFlag, error) {
	var out []loraFlag
	for _, p := range f.presetLoRA {
		out = append(out, loraFlag{p, 1})
	}
	for _, v := range f.lora {
		for _, p := range strings.Split(v, ",") {
			if p == "" {
				return nil, usagef("--lora: an empty file name in %q", v)
			}
			out = append(out, loraFlag{p, 1})
		}
	}
	for _, v := range f.loraScaled {
		for _, p := range strings.Split(v, ",") {
			i := strings.LastIndex(p, ":")
			if i <= 0 {
				return nil, usagef("--lora-scaled: want FILE:SCALE, got %q", p)
			}
			s, err := strconv.ParseFloat(p[i+1:], 32)
			if err != nil || math.IsInf(s, 0) || math.IsNaN(s) {
				return nil, usagef("--lora-scaled %s: the scale %q is not a finite number", p, p[i+1:])
			}
			out = append(out, loraFlag{p[:i], float32(s)})
		}
	}
	return out, nil
}

// registerGPU registers the flags of GPU offload, flash attention and the
// KV cache, for commands that name their other flags differently (serve).
func (f *modelFlags) registerGPU(fs *pflag.FlagSet) {
	fs.StringVar(&f.ngl, "ngl", "auto", "layers to offload to GPUs: a number, \"all\", or \"auto\" (what fits in free VRAM)")
	fs.IntVar(&f.mainGPU, "main-gpu", 0, "the GPU for the whole model with --split-mode none, and for intermediate results")
	fs.StringVar(&f.tensorSplit, "tensor-split", "", "proportions of the model per GPU, e.g. 3,1")
	fs.StringVar(&f.splitMode, "split-mode", "layer", "how to split across GPUs: layer, row or none")
	fs.BoolVar(&f.noRepack, "no-repack", false, "keep the weights as the file has them, not rearranged for the CPU's faster kernels (slower prompts; the weights stay in the mapped file)")
	fs.StringVarP(&f.flashAttn, "flash-attn", "", "auto", "flash attention: auto, on or off")
	fs.StringVar(&f.cacheK, "cache-type-k", "f16", "K cache type: f16, f32, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1")
	fs.StringVar(&f.cacheV, "cache-type-v", "f16", "V cache type (quantized types need flash attention)")
}

func (f *modelFlags) check() error {
	if f.threads < 0 {
		return usagef("--threads must be 0 or more, got %d", f.threads)
	}
	if f.ctxLen < 0 {
		return usagef("--ctx-size must be 0 or more, got %d", f.ctxLen)
	}
	if _, _, err := f.layers(); err != nil {
		return err
	}
	if _, err := f.options(0); err != nil {
		return err
	}
	if _, err := f.loras(); err != nil {
		return err
	}
	if f.draft != "" && (f.draftMax < 1 || f.draftMax > llm.MaxDraftTokens) {
		return usagef("--draft-max must be 1 to %d, got %d", llm.MaxDraftTokens, f.draftMax)
	}
	if f.nglDraft != "" {
		if _, _, err := parseLayers(f.nglDraft); err != nil {
			return usagef("--ngl-draft must be a layer count, \"all\" or \"auto\", got %q", f.nglDraft)
		}
	}
	_, err := f.contextOptions()
	return err
}

// layers returns the --ngl value: a count, or auto.
func (f *modelFlags) layers() (n int, auto bool, err error) { return parseLayers(f.ngl) }

// parseLayers parses an --ngl value: a layer count, "all" (-1) or "auto".
func parseLayers(s string) (n int, auto bool, err error) {
	switch strings.ToLower(s) {
	case "auto", "":
		return 0, true, nil
	case "all", "-1":
		return -1, false, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false, usagef("--ngl must be a layer count, \"all\" or \"auto\", got %q", s)
	}
	return n, false, nil
}

func (f *modelFlags) options(layers int) (engine.ModelOptions, error) {
	o := engine.ModelOptions{GPULayers: layers, MainGPU: f.mainGPU, NoRepack: f.noRepack}
	if f.mainGPU < 0 {
		return o, usagef("--main-gpu must be 0 or more, got %d", f.mainGPU)
	}
	switch strings.ToLower(f.splitMode) {
	case "layer":
		o.SplitMode = engine.SplitLayer
	case "row":
		o.SplitMode = engine.SplitRow
	case "none":
		o.SplitMode = engine.SplitNone
	default:
		return o, usagef("--split-mode must be layer, row or none, got %q", f.splitMode)
	}
	if f.tensorSplit != "" {
		for _, part := range strings.Split(f.tensorSplit, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(part), 32)
			if err != nil || v < 0 {
				return o, usagef("--tensor-split takes non-negative numbers separated by commas, got %q", f.tensorSplit)
			}
			o.TensorSplit = append(o.TensorSplit, float32(v))
		}
	}
	return o, nil
}

func (f *modelFlags) contextOptions() (engine.ContextOptions, error) {
	o := engine.ContextOptions{ContextLength: f.ctxLen, Threads: f.threads,
		TypeK: engine.CacheType(f.cacheK), TypeV: engine.CacheType(f.cacheV)}
	switch strings.ToLower(f.flashAttn) {
	case "auto":
		o.FlashAttention = engine.FlashAttentionAuto
	case "on", "1", "true":
		o.FlashAttention = engine.FlashAttentionOn
	case "off", "0", "false":
		o.FlashAttention = engine.FlashAttentionOff
	default:
		return o, usagef("--flash-attn must be auto, on or off, got %q", f.flashAttn)
	}
	for flag, t := range map[string]engine.CacheType{"--cache-type-k": o.TypeK, "--cache-type-v": o.TypeV} {
		if err := t.Validate(); err != nil {
			return o, usagef("%s: %v", flag, err)
		}
	}
	return o, nil
}

// load loads the model at path and creates a context for it, with the
// offload fitted by engine.LoadFitted: --ngl auto offloads what fits in free
// VRAM, layers asked for without a GPU run on the CPU, and an out-of-memory
// load is retried with fewer layers; each decision is said on stderr.
func (f *modelFlags) load(ctx context.Context, sio *stdio, path string, verbose bool) (*engine.Model, *engine.Context, error) {
	layers, auto, err := f.layers()
	if err != nil {
		return nil, nil, err
	}
	mopts, err := f.options(layers)
	if err != nil {
		return nil, nil, err
	}
	copts, err := f.contextOptions()
	if err != nil {
		return nil, nil, err
	}
	if auto && verbose && !engine.HaveGPU() {
		fmt.Fprintln(sio.err, "llm: --ngl auto: no GPU: running on the CPU")
	}
	loras, err := f.loras()
	if err != nil {
		return nil, nil, err
	}
	note := func(s string) { fmt.Fprintf(sio.err, "llm: --ngl %s: %s\n", f.ngl, s) }
	m, c, err := engine.LoadFitted(ctx, path, mopts, copts, engine.Fit{Auto: auto, Note: note})
	if err != nil {
		return nil, nil, err
	}
	for _, l := range loras {
		local, err := resolveAdapter(ctx, sio, l.path)
		var path string
		if err == nil {
			path, err = convert.LoRAFile(ctx, local, "", m.Path(), m.Header())
		}
		var a *engine.Adapter
		if err == nil {
			a, err = m.LoadAdapter(path)
		}
		if err == nil {
			err = c.SetAdapter(a, l.scale)
		}
		if err != nil {
			c.Close()
			m.Close()
			return nil, nil, err
		}
		if verbose {
			fmt.Fprintf(sio.err, "llm: LoRA adapter %s (scale %g) on %d tensors\n", l.path, l.scale, len(a.Tensors()))
		}
	}
	return m, c, nil
}

// pipelineOptions turns the flags into llm.New's options, with the
// pipeline's offload decisions said on stderr. --ngl auto is left to New,
// so that a preset's num_gpu still applies.
func (f *modelFlags) pipelineOptions(sio *stdio) ([]llm.Option, error) {
	layers, auto, err := f.layers()
	if err != nil {
		return nil, err
	}
	mopts, err := f.options(layers)
	if err != nil {
		return nil, err
	}
	copts, err := f.contextOptions()
	if err != nil {
		return nil, err
	}
	opts := append(gpuOptions(mopts, copts), llm.WithThreads(f.threads), llm.WithContextLength(f.ctxLen),
		llm.WithLoadNotes(func(s string) { fmt.Fprintf(sio.err, "llm: --ngl %s: %s\n", f.ngl, s) }))
	if !auto {
		opts = append(opts, llm.WithGPULayers(layers))
	}
	loras, err := f.loras()
	if err != nil {
		return nil, err
	}
	for _, l := range loras {
		opts = append(opts, llm.WithLoRA(l.path, l.scale))
	}
	if f.task != "" {
		opts = append(opts, llm.WithTask(f.task))
	}
	return opts, nil
}

// gpuOptions are llm.New's options for the split across GPUs, flash
// attention and the cache types of mopts and copts.
func gpuOptions(mopts engine.ModelOptions, copts engine.ContextOptions) []llm.Option {
	opts := []llm.Option{
		llm.WithGPUSplit(mopts.SplitMode, mopts.MainGPU, mopts.TensorSplit...),
		llm.WithFlashAttention(copts.FlashAttention), llm.WithCacheTypes(copts.TypeK, copts.TypeV),
	}
	if mopts.NoRepack {
		opts = append(opts, llm.WithNoRepack())
	}
	return opts
}
