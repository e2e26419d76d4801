package engine

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
)

// computeReserve is GPU memory kept free for llama.cpp's compute buffers and
// the CUDA context when layers are counted automatically.
const computeReserve = 768 << 20

// AutoGPULayers estimates how many layers of the model at path fit in the
// free memory of the GPUs, with a KV cache of contextLength positions at
// bytesPerKV bytes per element (2 for f16): per-layer weights from the GGUF
// header plus per-layer KV, after a reserve for compute buffers, as Ollama
// estimates. It returns a layer count for ModelOptions.GPULayers (the
// model's block count + 1 offloads everything, the output layer included)
// and a sentence saying why.
func AutoGPULayers(path string, contextLength int, bytesPerKV float64) (int, string, error) {
	h, err := gguf.ValidateModel(path)
	if err != nil {
		return 0, "", fmt.Errorf("engine: %w", err)
	}
	var free uint64
	var names []string
	for _, d := range Devices() {
		if d.Type == DeviceGPU {
			free += d.MemoryFree
			names = append(names, d.Name)
		}
	}
	if len(names) == 0 {
		return 0, "no GPU: running on the CPU", nil
	}
	arch := h.Architecture()
	nLayer, _ := h.Uint(arch + ".block_count")
	if nLayer == 0 {
		return 0, "the model has no layers to offload", nil
	}
	perLayer := make([]uint64, nLayer)
	var output uint64
	for _, t := range h.Tensors {
		if rest, ok := strings.CutPrefix(t.Name, "blk."); ok {
			n, _, _ := strings.Cut(rest, ".")
			if i, err := strconv.Atoi(n); err == nil && i >= 0 && uint64(i) < nLayer {
				perLayer[i] += t.Size
			}
			continue
		}
		if strings.HasPrefix(t.Name, "output") {
			output += t.Size
		}
	}
	if _, ok := h.Tensor("output.weight"); !ok { // tied embeddings: the output reuses token_embd
		if te, ok := h.Tensor("token_embd.weight"); ok {
			output += te.Size
		}
	}
	heads, _ := h.Uint(arch + ".attention.head_count")
	kvHeads, ok := h.Uint(arch + ".attention.head_count_kv")
	if !ok {
		kvHeads = heads
	}
	embd, _ := h.Uint(arch + ".embedding_length")
	headDim := uint64(0)
	if heads > 0 {
		headDim = embd / heads
	}
	if k, ok := h.Uint(arch + ".attention.key_length"); ok {
		headDim = k
	}
	kvPerLayer := uint64(2 * float64(contextLength) * float64(kvHeads*headDim) * bytesPerKV)

	budget := int64(free) - computeReserve
	layers := 0
	for i := range perLayer {
		need := int64(perLayer[i] + kvPerLayer)
		if need > budget {
			break
		}
		budget -= need
		layers++
	}
	gpus := strings.Join(names, ", ")
	if layers == int(nLayer) && int64(output) <= budget {
		return int(nLayer) + 1, fmt.Sprintf("all %d layers fit in %s (%.1f GiB free)", nLayer, gpus, gib(free)), nil
	}
	return layers, fmt.Sprintf("%d of %d layers fit in %s (%.1f GiB free; %.2f GiB per layer with KV for %d tokens)",
		layers, nLayer, gpus, gib(free), gib(perLayer[0]+kvPerLayer), contextLength), nil
}

func gib(b uint64) float64 { return float64(b) / (1 << 30) }

// CacheTypeBytes returns the bytes per element of a K/V cache type, for
// memory estimates (quantized types include their block scales).
func CacheTypeBytes(t CacheType) float64 {
	switch strings.ToLower(string(t)) {
	case "f32":
		return 4
	case "q8_0":
		return 34.0 / 32
	case "q4_0", "iq4_nl":
		return 18.0 / 32
	case "q4_1":
		return 20.0 / 32
	case "q5_0":
		return 22.0 / 32
	case "q5_1":
		return 24.0 / 32
	}
	return 2 // f16, bf16
}
