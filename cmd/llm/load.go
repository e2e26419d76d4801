package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/llm-go/llm/engine"
)

// modelFlags are the flags that say how a model is loaded and run: GPU
// offload, flash attention and KV cache types.
type modelFlags struct {
	ngl         string
	mainGPU     int
	tensorSplit string
	splitMode   string
	flashAttn   string
	cacheK      string
	cacheV      string
	threads     int
	ctxLen      int
}

func (f *modelFlags) register(fs *pflag.FlagSet) {
	fs.IntVarP(&f.threads, "threads", "t", 0, "CPU threads (0: all)")
	fs.IntVarP(&f.ctxLen, "ctx-size", "c", 0, "context length (0: 4096 or the model's, if smaller)")
	fs.StringVar(&f.ngl, "ngl", "auto", "layers to offload to GPUs: a number, \"all\", or \"auto\" (what fits in free VRAM)")
	fs.IntVar(&f.mainGPU, "main-gpu", 0, "the GPU for the whole model with --split-mode none, and for intermediate results")
	fs.StringVar(&f.tensorSplit, "tensor-split", "", "proportions of the model per GPU, e.g. 3,1")
	fs.StringVar(&f.splitMode, "split-mode", "layer", "how to split across GPUs: layer, row or none")
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
	_, err := f.contextOptions()
	return err
}

// layers returns the --ngl value: a count, or auto.
func (f *modelFlags) layers() (n int, auto bool, err error) {
	switch strings.ToLower(f.ngl) {
	case "auto", "":
		return 0, true, nil
	case "all", "-1":
		return -1, false, nil
	}
	n, err = strconv.Atoi(f.ngl)
	if err != nil || n < 0 {
		return 0, false, usagef("--ngl must be a layer count, \"all\" or \"auto\", got %q", f.ngl)
	}
	return n, false, nil
}

func (f *modelFlags) options(layers int) (engine.ModelOptions, error) {
	o := engine.ModelOptions{GPULayers: layers, MainGPU: f.mainGPU}
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
	for _, t := range []engine.CacheType{o.TypeK, o.TypeV} {
		if err := t.Validate(); err != nil {
			return o, usagef("%v", err)
		}
	}
	return o, nil
}

// load loads the model at path and creates a context for it. With --ngl
// auto it offloads what fits in free VRAM and says so on stderr; if the GPU
// then runs out of memory, it retries with fewer layers and says so too.
func (f *modelFlags) load(ctx context.Context, sio *stdio, path string, verbose bool) (*engine.Model, *engine.Context, error) {
	layers, auto, err := f.layers()
	if err != nil {
		return nil, nil, err
	}
	copts, err := f.contextOptions()
	if err != nil {
		return nil, nil, err
	}
	if auto {
		ctxLen := f.ctxLen
		if ctxLen == 0 {
			ctxLen = engine.DefaultContextLength
		}
		n, why, err := engine.AutoGPULayers(path, ctxLen, engine.CacheTypeBytes(copts.TypeK))
		if err != nil {
			return nil, nil, err
		}
		layers = n
		if n > 0 || verbose {
			fmt.Fprintf(sio.err, "llm: --ngl auto: %s\n", why)
		}
	}
	if !auto && layers != 0 && !haveGPU() {
		problems := engine.BackendErrors()
		hint := "; build one with make cuda"
		if len(problems) > 0 {
			hint = ""
		}
		fmt.Fprintf(sio.err, "llm: --ngl %s asked for GPU layers, but there is no GPU device (backends are looked for in %s%s); running on the CPU\n",
			f.ngl, strings.Join(engine.BackendDirs(), ", "), hint)
		for _, err := range problems {
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintf(sio.err, "llm: %s\n", line)
			}
		}
		layers = 0
	}
	for {
		mopts, err := f.options(layers)
		if err != nil {
			return nil, nil, err
		}
		m, err := engine.LoadModel(ctx, path, mopts)
		if err == nil {
			c, cerr := m.NewContext(copts)
			if cerr == nil {
				return m, c, nil
			}
			m.Close()
			err = cerr
		}
		if layers == 0 || !errors.Is(err, engine.ErrLoad) || ctx.Err() != nil {
			return nil, nil, err
		}
		fewer := layers / 2
		if layers < 0 {
			fewer = 16
		}
		fmt.Fprintf(sio.err, "llm: loading with %d GPU layers failed (%v); retrying with %d\n", layers, err, fewer)
		layers = fewer
	}
}

// haveGPU reports whether a GPU device is available.
func haveGPU() bool {
	for _, d := range engine.Devices() {
		if d.Type == engine.DeviceGPU || d.Type == engine.DeviceIGPU {
			return true
		}
	}
	return false
}
