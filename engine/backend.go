package engine

/*
#include <stdlib.h>
#include "llama_api.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// BackendManifest is the file, beside the backend libraries, that names the
// llama.cpp commit they were built from (make cuda writes it). Libraries
// built from another commit share no ABI with this binary's ggml, so they
// are refused.
const BackendManifest = "ggml-backends.commit"

var (
	backendsOnce sync.Once
	backendErrs  []error
	backendMu    sync.Mutex
	loadedLibs   = map[string]bool{}
)

// BackendDirs returns where backend libraries (libggml-cuda.so, ...) are
// looked for: the directories in LLM_BACKEND_PATH (a list separated by the
// OS path separator) when it is set, else lib/ beside the executable's
// directory (bin/llm finds ../lib) and lib/ inside it.
func BackendDirs() []string {
	if p, ok := os.LookupEnv("LLM_BACKEND_PATH"); ok {
		var dirs []string
		for _, d := range filepath.SplitList(p) {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
		return dirs
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	dir := filepath.Dir(exe)
	return []string{filepath.Join(dir, "..", "lib"), filepath.Join(dir, "lib")}
}

// loadDefaultBackends loads the backend libraries of BackendDirs once, the
// first time a model is loaded or devices are listed. The CPU backend is
// compiled in and always present.
func loadDefaultBackends() {
	backendsOnce.Do(func() {
		for _, dir := range BackendDirs() {
			if _, err := os.Stat(dir); err != nil {
				continue
			}
			if err := LoadBackends(dir); err != nil {
				backendErrs = append(backendErrs, err)
				currentLogger().Warn("engine: GPU backends", "dir", dir, "err", err)
			}
		}
	})
}

// BackendErrors returns the errors met while loading backend libraries from
// BackendDirs, for example a CUDA library whose driver is too old.
func BackendErrors() []error {
	loadDefaultBackends()
	return append([]error(nil), backendErrs...)
}

// BackendProblems returns BackendErrors as lines to show, one per library
// (a directory's errors are joined with newlines).
func BackendProblems() []string {
	var lines []string
	for _, err := range BackendErrors() {
		lines = append(lines, strings.Split(err.Error(), "\n")...)
	}
	return lines
}

// LoadBackends loads every ggml backend library (libggml-NAME.so, except
// ggml-base and CPU variants, which this binary has built in) in dir into
// llama.cpp's backend registry, after checking the manifest's commit. A
// library already loaded is skipped. Errors name the library and
// llama.cpp's reason (no driver, driver too old, ABI mismatch).
func LoadBackends(dir string) error {
	libs, err := backendLibraries(dir)
	if err != nil || len(libs) == 0 {
		return err
	}
	manifest, err := os.ReadFile(filepath.Join(dir, BackendManifest))
	if err != nil {
		return fmt.Errorf("engine: backends in %s: %s is missing, so their llama.cpp commit is unknown (rebuild them with make cuda): %w", dir, BackendManifest, err)
	}
	if got := strings.TrimSpace(string(manifest)); got != LlamaCppCommit {
		return fmt.Errorf("engine: backends in %s were built from llama.cpp %s, this binary has %s: rebuild them with make cuda", dir, got, LlamaCppCommit)
	}
	backendMu.Lock()
	defer backendMu.Unlock()
	routeBaseLog(dir)
	var errs []error
	for _, lib := range libs {
		if loadedLibs[lib] {
			continue
		}
		cpath := C.CString(lib)
		takeLastError()
		reg := C.ggml_backend_load(cpath)
		reason := takeLastError()
		C.free(unsafe.Pointer(cpath))
		if reg == nil {
			errs = append(errs, fmt.Errorf("engine: loading backend %s: %s", lib, orUnknown(reason)))
			continue
		}
		loadedLibs[lib] = true
		if C.ggml_backend_reg_dev_count(reg) == 0 {
			errs = append(errs, &NoDeviceError{Backend: C.GoString(C.ggml_backend_reg_name(reg)), Library: lib, Reason: orUnknown(reason)})
		}
	}
	return errors.Join(errs...)
}

// NoDeviceError reports a backend library that loaded but offers no device,
// with the reason the backend logged. It matches ErrNoDevice.
type NoDeviceError struct {
	Backend string // the backend's name, e.g. "CUDA"
	Library string // the library's path
	Reason  string // what the backend logged, e.g. "ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected"
}

func (e *NoDeviceError) Error() string {
	return fmt.Sprintf("engine: backend %s (%s) found no device: %s", e.Backend, e.Library, e.Reason)
}

// Is reports whether target is ErrNoDevice.
func (e *NoDeviceError) Is(target error) bool { return target == ErrNoDevice }

// baseLibraries are the file names of ggml-base, which backend libraries
// link against, soname first.
var baseLibraries = []string{"libggml-base.so.0", "libggml-base.so", "libggml-base.0.dylib", "libggml-base.dylib"}

// routeBaseLog sends the log of the ggml-base library in dir into ours
// before its backends load. That copy of ggml has a log of its own, which
// would print their messages (CUDA's reason for finding no device, a
// failed VRAM allocation) to stderr, out of reach of the errors we return.
func routeBaseLog(dir string) {
	for _, name := range baseLibraries {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		csoname, cpath := C.CString(name), C.CString(path)
		ok := C.llm_route_library_log(csoname, cpath) != 0
		C.free(unsafe.Pointer(csoname))
		C.free(unsafe.Pointer(cpath))
		if !ok {
			currentLogger().Warn("engine: the log of a backend library stays on stderr", "lib", path)
		}
		return
	}
}

// backendLibraries lists the loadable backend libraries in dir.
func backendLibraries(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("engine: backends: %w", err)
	}
	var libs []string
	for _, e := range entries {
		name := e.Name()
		base, ok := strings.CutPrefix(name, "libggml-")
		if !ok || !(strings.HasSuffix(name, ".so") || strings.HasSuffix(name, ".dylib") || strings.HasSuffix(name, ".dll")) {
			continue
		}
		if strings.HasPrefix(base, "base") || strings.HasPrefix(base, "cpu") {
			continue
		}
		libs = append(libs, filepath.Join(dir, name))
	}
	sort.Strings(libs)
	return libs, nil
}

// DeviceType is the kind of a compute device.
type DeviceType int

// Device types, as ggml's enum ggml_backend_dev_type.
const (
	DeviceCPU   DeviceType = C.GGML_BACKEND_DEVICE_TYPE_CPU
	DeviceGPU   DeviceType = C.GGML_BACKEND_DEVICE_TYPE_GPU   // dedicated memory
	DeviceIGPU  DeviceType = C.GGML_BACKEND_DEVICE_TYPE_IGPU  // integrated, host memory
	DeviceAccel DeviceType = C.GGML_BACKEND_DEVICE_TYPE_ACCEL // BLAS, AMX: used with the CPU
)

// String returns "CPU", "GPU", "iGPU" or "accelerator".
func (t DeviceType) String() string {
	switch t {
	case DeviceCPU:
		return "CPU"
	case DeviceGPU:
		return "GPU"
	case DeviceIGPU:
		return "iGPU"
	case DeviceAccel:
		return "accelerator"
	}
	return fmt.Sprintf("DeviceType(%d)", int(t))
}

// Device is a compute device llama.cpp can run on.
type Device struct {
	Name        string     // e.g. "CPU", "CUDA0"
	Description string     // e.g. "NVIDIA H100 80GB HBM3"
	Backend     string     // the backend that provides it, e.g. "CUDA"
	Type        DeviceType // CPU, GPU, ...
	MemoryFree  uint64     // bytes free now
	MemoryTotal uint64     // bytes in all
}

// Devices lists the devices of every loaded backend, loading the backend
// libraries of BackendDirs first.
func Devices() []Device {
	loadDefaultBackends()
	n := int(C.ggml_backend_dev_count())
	out := make([]Device, 0, n)
	for i := range n {
		d := C.ggml_backend_dev_get(C.size_t(i))
		var free, total C.size_t
		C.ggml_backend_dev_memory(d, &free, &total)
		out = append(out, Device{
			Name:        C.GoString(C.ggml_backend_dev_name(d)),
			Description: C.GoString(C.ggml_backend_dev_description(d)),
			Backend:     C.GoString(C.ggml_backend_reg_name(C.ggml_backend_dev_backend_reg(d))),
			Type:        DeviceType(C.ggml_backend_dev_type(d)),
			MemoryFree:  uint64(free),
			MemoryTotal: uint64(total),
		})
	}
	return out
}
