package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/llm-go/llm/internal/shareddata"
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
