package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
	"github.com/llm-go/llm/internal/testmodel"
	"github.com/llm-go/llm/loader/gguf"
)

// TestLoadFittedRetries checks LoadFitted's decisions with loads that fail
// on purpose, as a GPU short of memory makes them fail: which failures are
// retried, with how many layers, and what it says. stories260K has 5
// blocks, so "all" is 6 layers.
func TestLoadFittedRetries(t *testing.T) {
	path := shareddata.Path(t, "models", "stories260K.gguf")
	oom := fmt.Errorf("engine: loading model: ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000.00 MiB on device 0: cudaMalloc failed: out of memory; llama_model_load: error loading model: unable to allocate CUDA0 buffer: %w", ErrLoad)
	kvOOM := fmt.Errorf("engine: creating context: llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache: %w", ErrLoad)
	corrupt := fmt.Errorf("engine: loading model: llama_model_load: error loading model: missing tensor 'blk.0.attn_q.weight': %w", ErrLoad)
	cases := []struct {
		name   string
		layers int
		gpu    bool
		fail   func(layers int) error // the load's error with that many layers
		tried  []int                  // GPU layers of each load, in order
		notes  int
		err    error
	}{
		{"fits", -1, true, func(int) error { return nil }, []int{-1}, 0, nil},
		{"all, then half", -1, true, func(n int) error {
			if n < 0 || n > 3 {
				return oom
			}
			return nil
		}, []int{-1, 3}, 1, nil},
		{"KV out of memory", 4, true, func(n int) error {
			if n > 1 {
				return kvOOM
			}
			return nil
		}, []int{4, 2, 1}, 2, nil},
		{"down to the CPU", 5, true, func(n int) error {
			if n > 0 {
				return oom
			}
			return nil
		}, []int{5, 2, 1, 0}, 3, nil},
		{"not memory: no retry", -1, true, func(int) error { return corrupt }, []int{-1}, 0, corrupt},
		{"fails on the CPU too", 2, true, func(int) error { return oom }, []int{2, 1, 0}, 2, oom},
		{"no GPU: layers dropped", -1, false, func(n int) error {
			if n != 0 {
				return oom
			}
			return nil
		}, []int{0}, 1, nil},
		{"none asked", 0, false, func(int) error { return nil }, []int{0}, 0, nil},
	}
	defer func(l func(context.Context, string, ModelOptions, ContextOptions) (*Model, *Context, error), g func() bool) {
		loadWithContext, haveGPU = l, g
	}(loadWithContext, haveGPU)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tried []int
			loadWithContext = func(_ context.Context, _ string, mopts ModelOptions, _ ContextOptions) (*Model, *Context, error) {
				tried = append(tried, mopts.GPULayers)
				return nil, nil, tc.fail(mopts.GPULayers)
			}
			haveGPU = func() bool { return tc.gpu }
			var notes []string
			_, _, err := LoadFitted(context.Background(), path, ModelOptions{GPULayers: tc.layers}, ContextOptions{},
				Fit{Note: func(s string) { notes = append(notes, s) }})
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Errorf("error %v, want %v", err, tc.err)
			}
			if !slices.Equal(tried, tc.tried) {
				t.Errorf("loads with %v GPU layers, want %v", tried, tc.tried)
			}
			if len(notes) != tc.notes {
				t.Errorf("notes %q, want %d", notes, tc.notes)
			}
			for i, n := range notes {
				if !tc.gpu {
					if !strings.Contains(n, "there is no GPU device") || !strings.Contains(n, "running on the CPU") {
						t.Errorf("note %q does not say there is no GPU", n)
					}
					continue
				}
				layers := tc.tried[i]
				if layers < 0 {
					layers = 6 // all: 5 blocks and the output layer
				}
				want := fmt.Sprintf("loading with %d GPU layers failed", layers)
				if !strings.HasPrefix(n, want) || !strings.HasSuffix(n, fmt.Sprintf("retrying with %d", tc.tried[i+1])) {
					t.Errorf("note %q, want %q ... retrying with %d", n, want, tc.tried[i+1])
				}
			}
		})
	}
}

// TestLoadFittedCancelled: a cancelled load is not retried.
func TestLoadFittedCancelled(t *testing.T) {
	path := shareddata.Path(t, "models", "stories260K.gguf")
	defer func(l func(context.Context, string, ModelOptions, ContextOptions) (*Model, *Context, error), g func() bool) {
		loadWithContext, haveGPU = l, g
	}(loadWithContext, haveGPU)
	ctx, cancel := context.WithCancel(context.Background())
	loads := 0
	loadWithContext = func(context.Context, string, ModelOptions, ContextOptions) (*Model, *Context, error) {
		loads++
		cancel()
		return nil, nil, fmt.Errorf("cudaMalloc failed: out of memory: %w", ErrLoad)
	}
	haveGPU = func() bool { return true }
	if _, _, err := LoadFitted(ctx, path, ModelOptions{GPULayers: 4}, ContextOptions{}, Fit{}); err == nil || loads != 1 {
		t.Errorf("cancelled: %d loads, error %v; want 1 load and its error", loads, err)
	}
}

// TestComputeGraph checks the compute-buffer estimate against Ollama's
// formula worked by hand for Llama-3-8B (4096 wide, 32 heads, a 128256
// vocabulary) at 4096 tokens and a 512-token micro-batch, and for
// Llama-3-70B (8192 wide, 64 heads) at 32768 tokens.
func TestComputeGraph(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		ctx, embd, heads, vocab uint64
		fa                      bool
		want                    uint64
	}{
		{"8B, 4k, no flash attention: the scores", 4096, 4096, 32, 128256, false, 4 * 512 * (1 + 4*4096 + 4096*33)},
		{"8B, 4k, flash attention: the logits", 4096, 4096, 32, 128256, true, 4 * 512 * (4096 + 128256)},
		{"70B, 32k, no flash attention", 32768, 8192, 64, 128256, false, 4 * 512 * (1 + 4*8192 + 32768*65)},
		{"70B, 32k, flash attention", 32768, 8192, 64, 128256, true, 4 * 512 * (8192 + 128256)},
	} {
		if got := computeGraph(tc.ctx, tc.embd, tc.heads, tc.vocab, 512, tc.fa); got != tc.want {
			t.Errorf("%s: %d bytes, want %d", tc.name, got, tc.want)
		}
	}
}

// TestAutoGPULayersGraph: on a fake GPU with room for the compute graph
// of a long context without flash attention plus two and a half layers,
// two layers are offloaded; with flash attention the scores are not
// stored, the graph is a ninth of that, and every layer fits, the output
// layer included.
func TestAutoGPULayersGraph(t *testing.T) {
	path := shareddata.Path(t, "models", "stories260K.gguf") // 5 blocks, 64 wide, 8 heads (4 KV), 512 tokens
	defer func(d func() []Device) { devices = d }(devices)
	gpu := func(free uint64) {
		devices = func() []Device { return []Device{{Name: "FAKE0", Type: DeviceGPU, MemoryFree: free}} }
	}
	const ctx = 1 << 20
	graph := computeGraph(ctx, 64, 8, 512, 512, false)
	if graph <= computeReserve {
		t.Fatalf("the graph (%d bytes) should exceed the reserve here", graph)
	}
	kv := uint64(2 * ctx * 4 * 8 * 2) // K and V, 4 KV heads of 8, f16
	h, err := gguf.ValidateModel(path)
	if err != nil {
		t.Fatal(err)
	}
	var layer uint64
	for _, ti := range h.Tensors {
		if strings.HasPrefix(ti.Name, "blk.0.") {
			layer += ti.Size
		}
	}
	gpu(graph + 5*(layer+kv)/2)
	off := ContextOptions{ContextLength: ctx, FlashAttention: FlashAttentionOff}
	if n, why, err := AutoGPULayers(path, off); err != nil || n != 2 || !strings.Contains(why, "2 of 5 layers fit in FAKE0") {
		t.Errorf("without flash attention: %d layers (%q, %v), want 2", n, why, err)
	}
	on := ContextOptions{ContextLength: ctx, FlashAttention: FlashAttentionOn}
	if n, why, err := AutoGPULayers(path, on); err != nil || n != 6 {
		t.Errorf("with flash attention: %d layers (%q, %v), want all 5 and the output", n, why, err)
	}
}

// TestAutoGPULayersHybrid: a hybrid model's recurrent layers (head_count_kv
// 0 in its per-layer array) have no KV cache but a small recurrent state
// per sequence; stories260K made hybrid (attention in blocks 0 and 4)
// fits whole where the memory of its blocks, two KV caches and three
// states of two sequences each is free, and counting a KV cache in every
// block would fit two.
func TestAutoGPULayersHybrid(t *testing.T) {
	// As a granitehybrid (llama.cpp refuses a llama whose layers differ),
	// which the estimate reads from the header alone.
	path := testmodel.AsArch(t, shareddata.Path(t, "models", "stories260K.gguf"), "granitehybrid", func(set func(string, gguf.Value)) {
		set("attention.head_count_kv", gguf.Uint32s([]uint32{4, 0, 0, 0, 4}))
		set("ssm.conv_kernel", gguf.Uint32(4))
		set("ssm.inner_size", gguf.Uint32(128))
		set("ssm.state_size", gguf.Uint32(16))
		set("ssm.group_count", gguf.Uint32(1))
		set("ssm.time_step_rank", gguf.Uint32(8))
	})
	defer func(d func() []Device) { devices = d }(devices)
	const ctx = 1 << 20
	graph := computeGraph(ctx, 64, 8, 512, 512, true)
	kv := uint64(2 * ctx * 4 * 8 * 2)
	state := uint64(4 * (3*(128+2*16) + 16*128))
	h, err := gguf.ValidateModel(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks, output uint64
	for _, ti := range h.Tensors {
		switch {
		case strings.HasPrefix(ti.Name, "blk."):
			blocks += ti.Size
		case strings.HasPrefix(ti.Name, "output"):
			output += ti.Size
		}
	}
	if _, ok := h.Tensor("output.weight"); !ok {
		te, _ := h.Tensor("token_embd.weight")
		output += te.Size
	}
	devices = func() []Device {
		return []Device{{Name: "FAKE0", Type: DeviceGPU, MemoryFree: max(graph, computeReserve) + blocks + 2*kv + 3*2*state + output}}
	}
	opts := ContextOptions{ContextLength: ctx, FlashAttention: FlashAttentionOn, MaxSequences: 2}
	if n, why, err := AutoGPULayers(path, opts); err != nil || n != 6 {
		t.Errorf("%d layers (%q, %v), want all 5 and the output", n, why, err)
	}
	split := opts
	split.SplitKV = true // a hybrid's attention then holds the whole context per sequence
	if n, why, err := AutoGPULayers(path, split); err != nil || n != 4 {
		t.Errorf("split KV: %d layers (%q, %v), want 4 (the last KV cache, twice as large, does not fit)", n, why, err)
	}
	opts.MaxSequences = 4 // with the states of two more sequences the output no longer fits
	if n, why, err := AutoGPULayers(path, opts); err != nil || n != 5 {
		t.Errorf("4 sequences: %d layers (%q, %v), want the 5 blocks", n, why, err)
	}
}

// TestLFM2State checks LFM2's recurrent state, the convolution's last
// shortconv.l_cache-1 inputs per channel, and that an lfm2 file whose
// final norm this llama.cpp does not find by name is refused with the
// reason before llama.cpp sees it.
func TestLFM2State(t *testing.T) {
	path := testmodel.AsArch(t, shareddata.Path(t, "models", "stories260K.gguf"), "lfm2", func(set func(string, gguf.Value)) {
		set("attention.head_count_kv", gguf.Uint32s([]uint32{0, 4, 0, 0, 4}))
		set("shortconv.l_cache", gguf.Uint32(3))
	})
	h, err := gguf.ValidateModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := recurrentStateBytes(h, "lfm2"), uint64(4*2*64); got != want {
		t.Errorf("state %d bytes, want %d", got, want)
	}
	err = loadable(h)
	if !errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), "output_norm.weight") || !strings.Contains(err.Error(), "llm convert") {
		t.Errorf("loadable: %v", err)
	}
	if _, err := LoadModel(context.Background(), path, ModelOptions{}); !errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), "llm convert") {
		t.Errorf("LoadModel: %v", err)
	}
	// Its vocabulary alone loads: llama.cpp then reads no tensor.
	if m, err := LoadModel(context.Background(), path, ModelOptions{VocabOnly: true}); err != nil {
		t.Errorf("vocabulary only: %v", err)
	} else {
		m.Close()
	}
	llama, err := gguf.ValidateModel(shareddata.Path(t, "models", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := loadable(llama); err != nil {
		t.Errorf("llama: %v", err)
	}
}

// TestFalconH1Loadable: a falcon-h1 file is refused before llama.cpp sees
// it when its MLP norms carry the .weight suffix this llama.cpp does not
// look up, or when a layer lacks the convolution's bias, which llama.cpp
// takes as optional but adds anyway (a crash at the first decode).
func TestFalconH1Loadable(t *testing.T) {
	file := func(names ...string) *gguf.File {
		f := &gguf.File{KV: []gguf.KV{{Key: "general.architecture", Value: gguf.String("falcon-h1")}, {Key: "falcon-h1.block_count", Value: gguf.Uint32(2)}}}
		for _, n := range names {
			f.Tensors = append(f.Tensors, gguf.TensorInfo{Name: n})
		}
		return f
	}
	for _, tc := range []struct {
		name  string
		f     *gguf.File
		words string // in the error; "" for none
	}{
		{"as llm convert writes it", file("blk.0.ffn_norm", "blk.1.ffn_norm", "blk.0.ssm_conv1d.bias", "blk.1.ssm_conv1d.bias"), ""},
		{"suffixed MLP norms", file("blk.0.ffn_norm.weight", "blk.1.ffn_norm.weight", "blk.0.ssm_conv1d.bias", "blk.1.ssm_conv1d.bias"), "blk.N.ffn_norm.weight"},
		{"no convolution bias in layer 1", file("blk.0.ffn_norm", "blk.1.ffn_norm", "blk.0.ssm_conv1d.bias"), "blk.1.ssm_conv1d.bias"},
	} {
		err := loadable(tc.f)
		switch {
		case tc.words == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.words != "" && (!errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), tc.words)):
			t.Errorf("%s: %v, want ErrLoad naming %s", tc.name, err, tc.words)
		}
	}
}
