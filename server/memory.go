package server

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/loader/gguf"
)

// memEstimate is what a model is expected to take in memory: its weights
// and the KV cache of its context, and its draft model's.
type memEstimate struct {
	Weights uint64 // bytes of the GGUF file(s)
	KV      uint64 // bytes of the K and V caches
	Context int    // KV cache positions: context per sequence × sequences
	Layers  int    // blocks of the model
	// Draft is the draft model's weights and KV cache (0: none). It is
	// counted whole against host memory: a draft is small, and how much
	// of it the GPU memory left after the model takes is known only once
	// both are loaded.
	Draft uint64
}

// Total is weights plus KV cache, the draft's included.
func (m memEstimate) Total() uint64 { return m.Weights + m.KV + m.Draft }

// Host is the part of Total expected in host memory when gpuLayers of the
// model's blocks (-1: all) go to GPUs, which they do only when a GPU
// backend is loaded: the offloaded blocks' share of the weights and of
// the KV cache leaves host memory (the embeddings and output stay, so a
// block's share is counted against the host conservatively).
func (m memEstimate) Host(gpuLayers int, haveGPU bool) uint64 {
	if gpuLayers == 0 || !haveGPU || m.Layers == 0 {
		return m.Total()
	}
	own := m.Weights + m.KV
	off := gpuLayers
	if off < 0 || off > m.Layers {
		off = m.Layers
	}
	// The embeddings table stays on the host: keep one block's share
	// however many blocks go.
	kept := max(m.Layers-off, 1)
	return own/uint64(m.Layers)*uint64(kept) + m.Draft
}

// dedicatedGPU reports whether a GPU with its own memory is available:
// layers offloaded to an integrated GPU stay in host memory.
func dedicatedGPU() bool {
	for _, d := range engine.Devices() {
		if d.Type == engine.DeviceGPU {
			return true
		}
	}
	return false
}

// estimateMemory reads the GGUF header at path and estimates the memory of
// the model with ctxLen positions per sequence and parallel sequences: the
// size of its files plus an F16 KV cache of 2 bytes × layers × positions ×
// KV heads × (key head size + value head size).
func estimateMemory(path string, ctxLen, parallel int) (memEstimate, error) {
	h, err := gguf.Open(path)
	if err != nil {
		return memEstimate{}, fmt.Errorf("reading the GGUF header of %s: %w", path, err)
	}
	weights := uint64(h.Size)
	if c, ok := h.Uint(gguf.KeySplitCount); ok && c > 1 {
		weights = 0
		prefix := strings.TrimSuffix(path, fmt.Sprintf("-00001-of-%05d.gguf", c))
		for i := range int(c) {
			st, err := os.Stat(gguf.SplitPath(prefix, i, int(c)))
			if err != nil {
				return memEstimate{}, fmt.Errorf("split %d of %s: %w", i+1, path, err)
			}
			weights += uint64(st.Size())
		}
	}
	n := engine.SequenceContext(ctxLen, h) * max(parallel, 1)
	arch := h.Architecture()
	layers, _ := h.Uint(arch + ".block_count")
	heads, _ := h.HeadCount()
	embd, _ := h.Uint(arch + ".embedding_length")
	var kDim, vDim uint64
	if heads > 0 {
		kDim, vDim = embd/heads, embd/heads
	}
	if k, ok := h.Uint(arch + ".attention.key_length"); ok {
		kDim = k
	}
	if v, ok := h.Uint(arch + ".attention.value_length"); ok {
		vDim = v
	}
	// head_count_kv (else head_count) is one number, or one per layer.
	var kvHeadsSum uint64
	kvs, _ := h.LayerKVHeads(int(min(layers, 1<<20)))
	for _, x := range kvs {
		kvHeadsSum += x
	}
	const bytesPerElem = 2 // F16
	kv := bytesPerElem * uint64(n) * kvHeadsSum * (kDim + vDim)
	return memEstimate{Weights: weights, KV: kv, Context: n, Layers: int(layers)}, nil
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("available memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("available memory: /proc/meminfo: %w", err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("available memory: %w", err)
	}
	return 0, errors.New("available memory: no MemAvailable in /proc/meminfo")
}

// mib formats bytes in MiB for messages.
func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
