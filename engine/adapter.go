package engine

// #include <stdlib.h>
// #include "llama_api.h"
import "C"

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/llm-go/llm/loader/gguf"
)

// ErrAdapter is wrapped by the error for a LoRA adapter that does not fit
// its model (another architecture, tensors the model lacks, wrong shapes)
// or is not a LoRA adapter at all.
var ErrAdapter = errors.New("engine: LoRA adapter does not fit the model")

// Adapter is a LoRA adapter loaded for a model (llama.cpp's
// llama_adapter_lora, from a GGUF written by convert_lora_to_gguf.py or
// `llm convert`). Applied to a context with Context.SetAdapter, it adds
// scale·(alpha/rank)·B·A to each adapted weight, without changing the
// model. It lives as long as its model: Model.Close frees it.
type Adapter struct {
	c      *C.struct_llama_adapter_lora
	model  *Model
	path   string
	info   *gguf.Adapter
	digest string // of its file, for saved sequences' identity
}

// Path returns the file the adapter was loaded from.
func (a *Adapter) Path() string { return a.path }

// Alpha returns the adapter's adapter.lora.alpha (0 when absent: the
// scale is then used as it is, not divided by the rank).
func (a *Adapter) Alpha() float64 { return a.info.Alpha }

// Tensors returns the names of the model tensors the adapter changes.
func (a *Adapter) Tensors() []string {
	out := make([]string, len(a.info.Pairs))
	for i, p := range a.info.Pairs {
		out[i] = p.Base
	}
	return out
}

// LoadAdapter loads the LoRA adapter at path for m. The file is validated
// in Go first against the model (architecture, tensor names and shapes,
// metadata types), so that a bad adapter is an error wrapping ErrAdapter
// (or gguf.ErrInvalid and the like for a malformed file) rather than a
// crash in llama.cpp.
func (m *Model) LoadAdapter(path string) (*Adapter, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("engine: LoRA adapter: %w", err)
	}
	tensors, err := m.tensorTable()
	if err != nil {
		return nil, err
	}
	digest, err := fileIdentity(path, -1)
	if err != nil {
		return nil, err
	}
	info, err := gguf.ValidateAdapter(f, m.header.Architecture(), func(name string) (gguf.TensorInfo, bool) {
		t, ok := tensors[name]
		return t, ok
	})
	if err != nil {
		return nil, fmt.Errorf("engine: LoRA adapter %s: %w: %w", path, ErrAdapter, err)
	}
	if err := m.acquire(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	loadMu.Lock()
	takeLastError()
	ca := C.llama_adapter_lora_init(m.c, cpath)
	reason := takeLastError()
	loadMu.Unlock()
	if ca == nil {
		if reason == "" {
			reason = "llama.cpp gave no reason"
		}
		return nil, fmt.Errorf("engine: loading LoRA adapter %s: %s: %w", path, reason, ErrLoad)
	}
	a := &Adapter{c: ca, model: m, path: path, info: info, digest: digest}
	m.ctxMu.Lock()
	m.adapters = append(m.adapters, a)
	m.ctxMu.Unlock()
	return a, nil
}

// tensorTable returns the model's tensors by name, across its splits.
func (m *Model) tensorTable() (map[string]gguf.TensorInfo, error) {
	m.tensorsOnce.Do(func() {
		all, err := gguf.AllTensors(m.path, m.header)
		if err != nil {
			m.tensorsErr = fmt.Errorf("engine: %w", err)
			return
		}
		m.tensors = make(map[string]gguf.TensorInfo, len(all))
		for _, t := range all {
			m.tensors[t.Name] = t
		}
	})
	return m.tensors, m.tensorsErr
}

// freeAdapters frees the model's adapters; its contexts are closed.
func (m *Model) freeAdapters() {
	m.ctxMu.Lock()
	adapters := m.adapters
	m.adapters = nil
	m.ctxMu.Unlock()
	for _, a := range adapters {
		C.llama_adapter_lora_free(a.c)
		a.c = nil
	}
}

// SetAdapter applies a LoRA adapter of the context's model with the given
// scale (1: as trained; 0 turns it off), or changes the scale of one
// applied before. Set adapters before decoding: tokens already in the KV
// cache keep what they were computed with, and llama.cpp may reuse the
// graph of the previous batch for a next one of the same shape without
// the change.
func (c *Context) SetAdapter(a *Adapter, scale float32) error {
	if a == nil || a.model != c.model {
		return fmt.Errorf("engine: SetAdapter: the adapter was not loaded for this context's model: %w", ErrInvalidArgument)
	}
	if math.IsNaN(float64(scale)) || math.IsInf(float64(scale), 0) {
		return fmt.Errorf("engine: SetAdapter: scale %v: %w", scale, ErrInvalidArgument)
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if a.c == nil {
		return ErrClosed
	}
	if rc := C.llama_set_adapter_lora(c.c, a.c, C.float(scale)); rc != 0 {
		return fmt.Errorf("engine: llama_set_adapter_lora returned %d: %w", int(rc), ErrInvalidArgument)
	}
	if c.adapters == nil {
		c.adapters = map[*Adapter]float32{}
	}
	c.adapters[a] = scale
	return nil
}

// ClearAdapters removes every adapter from the context: it runs the base
// model again.
func (c *Context) ClearAdapters() error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	C.llama_clear_adapter_lora(c.c)
	clear(c.adapters)
	return nil
}
