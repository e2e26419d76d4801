package bench

import (
	"errors"
	"fmt"
	"strings"
)

// ErrDoesNotFit means a model (or the file to create for it) needs more
// memory or disk than the machine has; nothing was allocated or written.
// The errors of CheckFit and CheckDisk match it with errors.Is.
var ErrDoesNotFit = errors.New("bench: does not fit")

// fitError is a refusal: its message says what is needed, and it matches
// ErrDoesNotFit.
type fitError struct{ msg string }

func (e *fitError) Error() string        { return e.msg }
func (e *fitError) Is(target error) bool { return target == ErrDoesNotFit }

// computeMargin is kept free beyond the estimated buffers: the program, the
// runtime, and llama.cpp's smaller allocations.
const computeMargin = 256 << 20

// Footprint is the memory one model needs for a set of tests, split between
// the host's RAM and the GPUs.
type Footprint struct {
	Weights, KV, Compute          uint64 // in RAM
	GPUWeights, GPUKV, GPUCompute uint64 // on GPUs
	Context                       int    // KV cache positions it was estimated for
}

// RAM returns the bytes needed in RAM.
func (f Footprint) RAM() uint64 { return f.Weights + f.KV + f.Compute }

// GPU returns the bytes needed on GPUs.
func (f Footprint) GPU() uint64 { return f.GPUWeights + f.GPUKV + f.GPUCompute }

// Estimate returns the memory needed to run model f with a KV cache of nCtx
// positions of types typeK and typeV and micro-batches of nUBatch tokens,
// with ngl layers offloaded when the machine has GPUs (llama.cpp offloads
// the last ngl blocks, and the output layer too when ngl exceeds the block
// count; the token embeddings stay in RAM). The KV cache is
// 2 · n_layer · n_ctx · n_kv_heads · head_dim elements (K and V); the
// compute buffers are estimated from the micro-batch's largest activations
// (logits, attention scores, feed-forward), plus a fixed margin.
func Estimate(f Facts, nCtx, nUBatch int, typeK, typeV string, ngl int, hasGPU bool) Footprint {
	fp := Footprint{Context: nCtx}
	ub := uint64(max(min(nUBatch, max(nCtx, 1)), 1))
	compute := 4 * ub * uint64(f.Vocab+f.Heads*nCtx+3*f.FF+4*f.Embd)
	kvPerLayer := uint64(0)
	if f.Layers > 0 {
		kvPerLayer = f.KVBytes(nCtx, typeK, typeV) / uint64(f.Layers)
	}
	offloaded := 0
	if hasGPU && ngl != 0 {
		offloaded = f.Layers
		if ngl > 0 && ngl < f.Layers {
			offloaded = ngl
		}
	}
	for i, b := range f.LayerBytes {
		if i >= f.Layers-offloaded {
			fp.GPUWeights += b
			fp.GPUKV += kvPerLayer
		} else {
			fp.Weights += b
			fp.KV += kvPerLayer
		}
	}
	fp.Weights += f.EmbdBytes
	if hasGPU && (ngl < 0 || ngl > f.Layers) {
		fp.GPUWeights += f.OutputBytes
		if f.TiedOutput {
			fp.GPUWeights += f.EmbdBytes // a copy for the output layer
		}
	} else {
		fp.Weights += f.OutputBytes
	}
	// Unaccounted tensors (none in llama models) stay in RAM.
	if sum := fp.Weights + fp.GPUWeights; f.WeightBytes > sum {
		fp.Weights += f.WeightBytes - sum
	}
	fp.Compute = computeMargin
	if offloaded > 0 {
		fp.GPUCompute = compute
		fp.Compute += 4 * ub * uint64(f.Embd) * 4
	} else {
		fp.Compute += compute
	}
	return fp
}

// Resources is the memory and disk a run may use.
type Resources struct {
	RAM      uint64 // bytes of RAM available (MemAvailable)
	GPUFree  uint64 // bytes free on all GPUs together
	GPUCount int
}

// AvailableResources reads the free RAM and, from sys.GPUs, the free GPU
// memory.
func AvailableResources(sys System) (Resources, error) {
	ram, err := MemAvailable()
	if err != nil {
		return Resources{}, err
	}
	r := Resources{RAM: ram, GPUCount: len(sys.GPUs)}
	for _, d := range sys.GPUs {
		r.GPUFree += d.MemoryFree
	}
	return r, nil
}

// CheckFit returns an error wrapping ErrDoesNotFit, with a message that
// says what is needed and what to change, when footprint fp does not fit in
// res. name labels the model.
func CheckFit(name string, fp Footprint, res Resources) error {
	var msgs []string
	if fp.RAM() > res.RAM {
		msgs = append(msgs, fmt.Sprintf("it needs about %s of RAM (weights %s, KV cache %s for %d positions, compute buffers %s) but %s is available",
			gib(fp.RAM()), gib(fp.Weights), gib(fp.KV), fp.Context, gib(fp.Compute), gib(res.RAM)))
	}
	if fp.GPU() > res.GPUFree {
		msgs = append(msgs, fmt.Sprintf("the offloaded layers need about %s of GPU memory (weights %s, KV cache %s, compute buffers %s) but %s is free on %d GPU(s)",
			gib(fp.GPU()), gib(fp.GPUWeights), gib(fp.GPUKV), gib(fp.GPUCompute), gib(res.GPUFree), res.GPUCount))
	}
	if len(msgs) == 0 {
		return nil
	}
	hint := "use a smaller type (-q), a smaller model, or fewer positions (-p, -n, -d)"
	if res.GPUCount > 0 {
		if fp.GPU() > res.GPUFree {
			hint = "offload fewer layers (-ngl), " + hint
		} else {
			hint = "offload more layers to the GPU (-ngl), " + hint
		}
	}
	return &fitError{fmt.Sprintf("%s does not fit: %s; %s", name, strings.Join(msgs, "; "), hint)}
}

// CheckDisk returns an error wrapping ErrDoesNotFit when creating a file of
// need bytes in dir, which has free bytes free, would fill the disk.
func CheckDisk(name, dir string, need, free uint64) error {
	const reserve = 1 << 30 // leave the disk a little room
	if need+reserve <= free {
		return nil
	}
	return &fitError{fmt.Sprintf("%s does not fit on disk: creating it needs about %s in %s (the model and the F16 file it is quantized from, and 1 GiB to spare) but %s is free",
		name, gib(need+reserve), dir, gib(free))}
}

// gib formats bytes in GiB, as llama-bench's size column.
func gib(n uint64) string {
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// PeakFootprint returns the largest footprint among p's tests of model m
// (facts f) with ngl GPU layers: the RAM of the test that needs the most
// RAM and the GPU memory of the test that needs the most of it.
func PeakFootprint(p Params, m Model, f Facts, ngl int, hasGPU bool) Footprint {
	var ram, gpu Footprint
	for _, in := range p.Instances() {
		if in.Model != m || in.GPULayers != ngl {
			continue
		}
		fp := Estimate(f, in.ContextLength(), min(in.UBatch, in.Batch), in.TypeK, in.TypeV, ngl, hasGPU)
		if fp.RAM() > ram.RAM() {
			ram = fp
		}
		if fp.GPU() > gpu.GPU() {
			gpu = fp
		}
	}
	ram.GPUWeights, ram.GPUKV, ram.GPUCompute = gpu.GPUWeights, gpu.GPUKV, gpu.GPUCompute
	ram.Context = max(ram.Context, gpu.Context)
	return ram
}
