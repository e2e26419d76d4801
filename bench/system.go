package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/llm-go/llm/engine"
)

// System describes the machine and the llama.cpp build, as the results
// print them.
type System struct {
	BuildCommit string // llama.cpp commit (build_commit)
	BuildNumber int    // llama.cpp build number (build_number; 0 for the vendored build)
	CPUInfo     string // CPU and accelerator devices' descriptions (cpu_info)
	GPUInfo     string // GPU devices' descriptions (gpu_info)
	Backends    string // backends other than CPU that have devices, or "CPU" (backends)
	GPUs        []engine.Device
	// MemBandwidthGBps is the machine's measured memory-read bandwidth in
	// GB/s (0: unknown), the reference of bandwidth_pct.
	MemBandwidthGBps float64
}

// DetectSystem describes this machine from llama.cpp's devices
// (engine.Devices), as llama-bench does. MemBandwidthGBps is left 0.
func DetectSystem() System {
	s := System{BuildCommit: engine.System().LlamaCppCommit}
	var cpus, gpus, backends []string
	seen := map[string]bool{}
	for _, d := range engine.Devices() {
		switch d.Type {
		case engine.DeviceCPU, engine.DeviceAccel:
			cpus = append(cpus, d.Description)
		case engine.DeviceGPU, engine.DeviceIGPU:
			gpus = append(gpus, d.Description)
			s.GPUs = append(s.GPUs, d)
		}
		if d.Backend != "" && d.Backend != "CPU" && !seen[d.Backend] {
			seen[d.Backend] = true
			backends = append(backends, d.Backend)
		}
	}
	if len(cpus) == 0 {
		cpus = append(cpus, CPUModel())
	}
	s.CPUInfo = strings.Join(cpus, ", ")
	s.GPUInfo = strings.Join(gpus, ", ")
	s.Backends = "CPU"
	if len(backends) > 0 {
		s.Backends = strings.Join(backends, ",")
	}
	return s
}

// CPUOnly reports whether the backend is the CPU's (llama-bench then shows
// threads and hides ngl in its table).
func (s System) CPUOnly() bool {
	return s.Backends == "" || strings.Contains(s.Backends, "CPU") || strings.Contains(s.Backends, "BLAS")
}

// CPUModel returns the CPU's model name from /proc/cpuinfo, or GOARCH.
func CPUModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

// DefaultThreads returns the number of physical CPU cores (llama-bench's
// default thread count), or runtime.NumCPU when the topology is unknown.
func DefaultThreads() int {
	cores := map[string]bool{}
	for i := range runtime.NumCPU() {
		data, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", i))
		if err != nil {
			return runtime.NumCPU()
		}
		cores[strings.TrimSpace(string(data))] = true
	}
	if len(cores) == 0 {
		return runtime.NumCPU()
	}
	return len(cores)
}

// MemAvailable returns the memory available to start new programs
// without swapping (MemAvailable of /proc/meminfo), in bytes.
func MemAvailable() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("bench: available memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				break
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("bench: available memory: no MemAvailable in /proc/meminfo")
}

// DiskFree returns the bytes free for an unprivileged user on the file
// system of dir, or of its nearest existing parent.
func DiskFree(dir string) (uint64, error) {
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(dir, &st)
		if err == nil {
			return st.Bavail * uint64(st.Bsize), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return 0, fmt.Errorf("bench: free disk of %s: %w", dir, err)
		}
		dir = parent
	}
}

// PeakRSS returns the process's peak resident set size (VmHWM of
// /proc/self/status) in bytes, or 0 where it is unknown.
func PeakRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := strings.Fields(string(rest))
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// ResetPeakRSS resets the peak RSS to the current RSS (writing 5 to
// /proc/self/clear_refs), so that PeakRSS measures from now. It reports
// whether the kernel allowed it.
func ResetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
