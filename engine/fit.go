package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/llm-go/llm/loader/gguf"
)

// computeReserve is the least GPU memory kept free for llama.cpp's compute
// buffers and the CUDA context when layers are counted automatically.
const computeReserve = 768 << 20

// AutoGPULayers estimates how many layers of the model at path fit in the
// free memory of the GPUs, for a context with copts (its length, K cache
// type, micro-batch and flash attention), as Ollama estimates: per-layer
// weights from the GGUF header plus per-layer KV, after a reserve for the
// compute graph (at least computeReserve). It returns a layer count for
// ModelOptions.GPULayers (the model's block count + 1 offloads everything,
// the output layer included) and a sentence saying why.
func AutoGPULayers(path string, copts ContextOptions) (int, string, error) {
	h, err := gguf.ValidateModel(path)
	if err != nil {
		return 0, "", fmt.Errorf("engine: %w", err)
	}
	var free uint64
	var names []string
	for _, d := range devices() {
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
	ctxLen := copts.ContextLength
	if ctxLen <= 0 {
		ctxLen = SequenceContext(0, h)
	}
	heads, _ := h.HeadCount()
	// One KV head count for all layers, or one per layer (0 in a hybrid
	// model's recurrent layers).
	kvHeads, _ := h.LayerKVHeads(int(nLayer))
	embd, _ := h.Uint(arch + ".embedding_length")
	headDim := uint64(0)
	if heads > 0 {
		headDim = embd / heads
	}
	if k, ok := h.Uint(arch + ".attention.key_length"); ok {
		headDim = k
	}
	// A layer's memory: its KV cache, or, in a recurrent layer (no KV
	// heads), the recurrent state of each sequence; Falcon-H1's layers
	// keep both.
	seqs := uint64(max(1, copts.MaxSequences))
	state := recurrentStateBytes(h, arch) * seqs
	kvCtx := float64(ctxLen)
	if state > 0 && copts.SplitKV {
		// llama.cpp sizes a hybrid's attention memory by the whole
		// context, and split, each sequence gets one.
		kvCtx *= float64(seqs)
	}
	// As llama.cpp tells them apart: a layer without KV heads is
	// recurrent, unless feed_forward_length (one per layer) gives it an
	// MLP (Nemotron-H's MLP layers keep nothing).
	ff, perLayerFF := h.LayerUints(arch+".feed_forward_length", int(nLayer))
	if v, ok := h.Lookup(arch + ".feed_forward_length"); !ok || !v.IsArray() {
		perLayerFF = false
	}
	memory := func(i int) uint64 {
		if i >= len(kvHeads) || kvHeads[i] == 0 {
			if perLayerFF && ff[i] > 0 {
				return 0
			}
			return state
		}
		kv := uint64(2 * kvCtx * float64(kvHeads[i]*headDim) * CacheTypeBytes(copts.TypeK))
		if arch == "falcon-h1" {
			kv += state // its layers keep a KV cache and a Mamba-2 state both
		}
		return kv
	}
	var vocab uint64
	if v, ok := h.Lookup("tokenizer.ggml.tokens"); ok {
		vocab = uint64(v.Len())
	}
	graph := computeGraph(uint64(ctxLen), embd, heads, vocab, uint64(microBatch(copts)), copts.FlashAttention != FlashAttentionOff)

	budget := int64(free) - int64(max(graph, computeReserve))
	layers := 0
	var total uint64
	for i := range perLayer {
		total += perLayer[i] + memory(i)
	}
	for i := range perLayer {
		need := int64(perLayer[i] + memory(i))
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
	return layers, fmt.Sprintf("%d of %d layers fit in %s (%.1f GiB free; %.2f GiB per layer with KV for %d tokens; %.2f GiB for the compute graph)",
		layers, nLayer, gpus, gib(free), gib(total/nLayer), ctxLen, gib(max(graph, computeReserve))), nil
}

// computeGraph estimates the bytes of llama.cpp's compute buffer on the
// GPU for a micro-batch of batch tokens, as Ollama's GraphSize does for
// llama-like models: the larger of the attention step (without flash
// attention, the scores of every head over the whole context) and the
// output step (the batch's logits).
func computeGraph(ctx, embd, heads, vocab, batch uint64, flashAttention bool) uint64 {
	attention := 4 * batch * (1 + 4*embd + ctx*(1+heads))
	if flashAttention { // the scores are computed in tiles, never stored
		attention = 4 * batch * (1 + 4*embd + ctx)
	}
	return max(attention, 4*batch*(embd+vocab))
}

// microBatch is the micro-batch a context with o computes at once.
func microBatch(o ContextOptions) int {
	n := o.MicroBatchSize
	if n <= 0 {
		n = DefaultMicroBatchSize
	}
	if b := o.BatchSize; b > 0 && b < n {
		n = b
	}
	return n
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

// Fit says how LoadFitted chooses the layers it offloads.
type Fit struct {
	// Auto replaces ModelOptions.GPULayers with what AutoGPULayers
	// estimates for the context's length and K cache type.
	Auto bool
	// Note, when set, is told each decision in a sentence: the layers
	// chosen automatically, layers asked for without a GPU, a retry with
	// fewer layers.
	Note func(string)
}

// LoadFitted loads the model at path and creates a context for it, fitting
// the GPU offload to the devices and memory there are. With fit.Auto the
// layer count is estimated from free GPU memory. Layers asked for when no
// GPU device is available are dropped (the model runs on the CPU) with the
// backends' problems as the reason. When loading the model or creating its
// context fails for lack of memory with layers on a GPU, it retries with
// half as many, down to none. The last error is returned if even that
// fails.
func LoadFitted(ctx context.Context, path string, mopts ModelOptions, copts ContextOptions, fit Fit) (*Model, *Context, error) {
	note := fit.Note
	if note == nil {
		note = func(string) {}
	}
	if fit.Auto {
		n, why, err := AutoGPULayers(path, copts)
		if err != nil {
			return nil, nil, err
		}
		mopts.GPULayers = n
		if n > 0 || haveGPU() { // on a machine without a GPU there is nothing to say
			note(why)
		}
	} else if mopts.GPULayers != 0 && !haveGPU() {
		why := BackendProblems()
		if len(why) == 0 {
			why = append(why, "no GPU backend library in "+strings.Join(BackendDirs(), ", "))
		}
		note("there is no GPU device (" + strings.Join(why, "; ") + "): running on the CPU")
		mopts.GPULayers = 0
	}
	for {
		m, c, err := loadWithContext(ctx, path, mopts, copts)
		if err == nil {
			return m, c, nil
		}
		if mopts.GPULayers == 0 || !outOfMemory(err) || ctx.Err() != nil {
			return nil, nil, err
		}
		layers := mopts.GPULayers
		if layers < 0 {
			layers = blockCount(path) + 1
		}
		mopts.GPULayers = layers / 2
		note(fmt.Sprintf("loading with %d GPU layers failed (%v); retrying with %d", layers, err, mopts.GPULayers))
	}
}

// loadWithContext loads the model and creates its context, closing the
// model if the context fails. Tests replace it to fail loads on purpose.
var loadWithContext = func(ctx context.Context, path string, mopts ModelOptions, copts ContextOptions) (*Model, *Context, error) {
	m, err := LoadModel(ctx, path, mopts)
	if err != nil {
		return nil, nil, err
	}
	c, err := m.NewContext(copts)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, c, nil
}

// haveGPU is HaveGPU and devices is Devices; tests replace them.
var (
	haveGPU = HaveGPU
	devices = Devices
)

// outOfMemory reports whether err is a load failure for lack of memory, as
// the backends word it ("cudaMalloc failed: out of memory", "unable to
// allocate CUDA0 buffer", "failed to allocate buffer").
func outOfMemory(err error) bool {
	if !errors.Is(err, ErrLoad) {
		return false
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "out of memory") || strings.Contains(s, "unable to allocate") ||
		strings.Contains(s, "failed to allocate")
}

// HaveGPU reports whether a GPU device, dedicated or integrated, is
// available, loading the backend libraries of BackendDirs first.
func HaveGPU() bool {
	for _, d := range Devices() {
		if d.Type == DeviceGPU || d.Type == DeviceIGPU {
			return true
		}
	}
	return false
}

// blockCount returns the model's block count from its GGUF header, 0 if
// it cannot be read.
func blockCount(path string) int {
	h, err := gguf.ValidateModel(path)
	if err != nil {
		return 0
	}
	n, _ := h.Uint(h.Architecture() + ".block_count")
	return int(min(n, 1<<20))
}

// SequenceContext returns the context length one sequence of the model
// whose GGUF header is h gets: configured when above 0, else
// DefaultContextLength or the model's training context, whichever is
// smaller (as NewContext does).
func SequenceContext(configured int, h *gguf.File) int {
	if configured > 0 {
		return configured
	}
	n := DefaultContextLength
	if t, ok := h.Uint(h.Architecture() + ".context_length"); ok && t > 0 && t < uint64(n) {
		n = int(t)
	}
	return n
}

// recurrentStateBytes is the F32 recurrent state llama.cpp keeps per
// sequence in a recurrent layer of a Mamba-style model (Mamba-2 hybrids,
// Falcon-H1, Qwen3-Next's DeltaNets), read from the ssm keys: the
// convolution's last ssm.conv_kernel-1 inputs of ssm.inner_size +
// 2·ssm.group_count·ssm.state_size channels, and the ssm.state_size ×
// ssm.inner_size state; of LFM2, the convolution's last shortconv.l_cache-1
// inputs of embedding_length channels. It is 0 for others (RWKV's states
// are not counted).
func recurrentStateBytes(h *gguf.File, arch string) uint64 {
	if l, _ := h.Uint(arch + ".shortconv.l_cache"); l > 1 {
		embd, _ := h.Uint(arch + ".embedding_length")
		return 4 * (l - 1) * embd
	}
	conv, _ := h.Uint(arch + ".ssm.conv_kernel")
	inner, _ := h.Uint(arch + ".ssm.inner_size")
	st, _ := h.Uint(arch + ".ssm.state_size")
	groups, _ := h.Uint(arch + ".ssm.group_count")
	if conv == 0 || inner == 0 {
		return 0
	}
	return 4 * ((conv-1)*(inner+2*groups*st) + st*inner)
}
